//! Writing initramfs archives: cpio in the "newc" format (SVR4 without CRC), the format
//! Linux unpacks its initramfs from (Documentation/driver-api/early-userspace/
//! buffer-format.rst), so one archive boots both kernels.
//!
//! Each member is a 110-byte ASCII header, the NUL-terminated name, padding to a
//! multiple of 4 bytes, the data, and padding to a multiple of 4 again:
//!
//! ```text
//! "070701" ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
//!          namesize check            (13 fields, each 8 hex digits)
//! ```
//!
//! `namesize` counts the NUL; `check` is 0. The archive ends with a member named
//! `TRAILER!!!`. Names are relative, without a leading `/` or `./` ("init",
//! "bin/hello"); a directory comes before everything inside it.
//!
//! An archive with programs in `bin/` also gets [`BIN_INDEX`], their names one per line
//! ([`add_bin_index`]): memkernel has no getdents(2) yet, so the shell's `help` and `ls`
//! read it to know what is in /bin (user/init/src/dir.rs).

use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// The magic of the newc format.
pub const MAGIC: &[u8; 6] = b"070701";
/// Header length: magic + 13 fields of 8 hex digits.
pub const HEADER_LEN: usize = 6 + 13 * 8;
/// Name of the last member.
pub const TRAILER: &str = "TRAILER!!!";
/// The list of the programs in `bin/`, one name per line, sorted.
pub const BIN_INDEX: &str = "bin/INDEX";

/// File type bits of `mode` (Linux stat.h).
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;

/// One member of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, e.g. "bin/hello".
    pub name: String,
    /// Type and permission bits, e.g. `S_IFREG | 0o755`.
    pub mode: u32,
    /// File contents (empty for a directory).
    pub data: Vec<u8>,
}

impl Entry {
    /// A directory `name`, mode 0755.
    pub fn dir(name: &str) -> Entry {
        Entry {
            name: name.to_string(),
            mode: S_IFDIR | 0o755,
            data: Vec::new(),
        }
    }

    /// An executable file `name`, mode 0755.
    pub fn executable(name: &str, data: Vec<u8>) -> Entry {
        Entry {
            name: name.to_string(),
            mode: S_IFREG | 0o755,
            data,
        }
    }
}

/// Bytes of padding after `len` bytes to reach a multiple of 4.
fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn write_member(
    out: &mut impl Write,
    ino: u32,
    name: &str,
    mode: u32,
    nlink: u32,
    data: &[u8],
) -> Result<()> {
    let filesize = u32::try_from(data.len())
        .with_context(|| format!("{name}: too large for a cpio archive (4 GiB)"))?;
    let namesize = u32::try_from(name.len() + 1).context("name too long")?;
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    let fields = [ino, mode, 0, 0, nlink, 0, filesize, 0, 0, 0, 0, namesize, 0];
    let mut header = Vec::with_capacity(HEADER_LEN + name.len() + 4);
    header.extend_from_slice(MAGIC);
    for f in fields {
        header.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    header.extend_from_slice(name.as_bytes());
    header.push(0);
    header.resize(header.len() + pad4(header.len()), 0);
    out.write_all(&header)?;
    out.write_all(data)?;
    out.write_all(&[0u8; 3][..pad4(data.len())])?;
    Ok(())
}

/// Check a member name: relative, normalised, no empty or `.`/`..` components.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.starts_with('/')
        || name.contains('\0')
        || name == TRAILER
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("bad archive member name {name:?} (want e.g. \"bin/hello\")");
    }
    Ok(())
}

/// Write `entries` as a newc archive, in order, then the trailer. Every directory that
/// a name lies in must be an earlier entry, and names must be unique.
pub fn write_newc(out: &mut impl Write, entries: &[Entry]) -> Result<()> {
    let mut seen_dirs = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        check_name(&e.name)?;
        if !seen.insert(e.name.as_str()) {
            bail!("archive member {} given twice", e.name);
        }
        if let Some((parent, _)) = e.name.rsplit_once('/') {
            if !seen_dirs.contains(parent) {
                bail!(
                    "archive member {} comes before its directory {parent}",
                    e.name
                );
            }
        }
        let is_dir = e.mode & 0o170000 == S_IFDIR;
        if is_dir {
            if !e.data.is_empty() {
                bail!("directory {} has data", e.name);
            }
            seen_dirs.insert(e.name.as_str());
        }
        let ino = u32::try_from(i + 1).context("too many members")?;
        write_member(
            out,
            ino,
            &e.name,
            e.mode,
            if is_dir { 2 } else { 1 },
            &e.data,
        )?;
    }
    write_member(out, 0, TRAILER, 0, 1, &[])
}

/// The members for an initramfs: `bin/` and every file in `bin_files` as `bin/NAME`
/// (if any), then `init`. Directories of the names are added before them.
pub fn initramfs_entries(
    init: &Path,
    bin_files: &[(String, std::path::PathBuf)],
) -> Result<Vec<Entry>> {
    let mut specs: Vec<(String, std::path::PathBuf)> = bin_files
        .iter()
        .map(|(name, path)| (format!("bin/{name}"), path.clone()))
        .collect();
    specs.push(("init".to_string(), init.to_path_buf()));
    let mut entries = entries_from_specs(&specs)?;
    add_bin_index(&mut entries);
    Ok(entries)
}

/// Append [`BIN_INDEX`], listing the regular files directly in `bin/`, if there are any
/// and the archive has no member of that name already.
pub fn add_bin_index(entries: &mut Vec<Entry>) {
    if entries.iter().any(|e| e.name == BIN_INDEX) {
        return;
    }
    let mut names: Vec<&str> = entries
        .iter()
        .filter(|e| e.mode & 0o170000 == S_IFREG)
        .filter_map(|e| e.name.strip_prefix("bin/"))
        .filter(|n| !n.contains('/'))
        .collect();
    if names.is_empty() {
        return;
    }
    names.sort_unstable();
    let mut data = names.join("\n");
    data.push('\n');
    entries.push(Entry {
        name: BIN_INDEX.to_string(),
        mode: S_IFREG | 0o644,
        data: data.into_bytes(),
    });
}

/// Members for `(archive name, host file)` pairs, in order, each preceded by any of its
/// directories not seen yet. Files are stored with mode 0755.
pub fn entries_from_specs(specs: &[(String, std::path::PathBuf)]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut dirs = BTreeSet::new();
    for (name, path) in specs {
        let name = name.trim_start_matches("./").trim_start_matches('/');
        check_name(name)?;
        let components: Vec<&str> = name.split('/').collect();
        for depth in 1..components.len() {
            let dir = components[..depth].join("/");
            if dirs.insert(dir.clone()) {
                entries.push(Entry::dir(&dir));
            }
        }
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        entries.push(Entry::executable(name, data));
    }
    Ok(entries)
}

/// Write an archive to `path` (through a temporary file renamed into place, so a
/// reader never sees half an archive).
pub fn write_file(path: &Path, entries: &[Entry]) -> Result<()> {
    let mut bytes = Vec::new();
    write_newc(&mut bytes, entries)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// `boot mkcpio OUT.cpio NAME=FILE...`: pack host files into an archive, e.g.
/// `init=target/user/bin/init bin/hello=target/user/bin/hello` (plus [`BIN_INDEX`]).
pub fn mkcpio_main(args: &[String]) -> Result<()> {
    let Some((out, members)) = args.split_first() else {
        bail!("usage: boot mkcpio OUT.cpio NAME=FILE...   (e.g. init=target/user/bin/init)");
    };
    let mut specs = Vec::new();
    for m in members {
        let Some((name, file)) = m.split_once('=') else {
            bail!("mkcpio: {m:?} is not NAME=FILE");
        };
        specs.push((name.to_string(), std::path::PathBuf::from(file)));
    }
    let mut entries = entries_from_specs(&specs)?;
    add_bin_index(&mut entries);
    write_file(Path::new(out), &entries)?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "mkcpio: {out}: {} members, {} KiB",
        entries.len(),
        size.div_ceil(1024)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member as read back.
    #[derive(Debug)]
    struct Read {
        offset: usize,
        ino: u32,
        name: String,
        mode: u32,
        nlink: u32,
        data: Vec<u8>,
    }

    /// A minimal newc reader, independent of the writer.
    fn parse(archive: &[u8]) -> Vec<Read> {
        let mut out = Vec::new();
        let mut pos: usize = 0;
        loop {
            assert!(pos.is_multiple_of(4), "member not 4-byte aligned");
            let h = &archive[pos..pos + HEADER_LEN];
            assert_eq!(&h[..6], MAGIC);
            let field = |i: usize| {
                let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (ino, mode, nlink, filesize, namesize) = (
                field(0),
                field(1),
                field(4),
                field(6) as usize,
                field(11) as usize,
            );
            assert_eq!((field(2), field(3), field(12)), (0, 0, 0), "uid gid check");
            let name_start = pos + HEADER_LEN;
            let name_bytes = &archive[name_start..name_start + namesize];
            assert_eq!(name_bytes.last(), Some(&0), "name not NUL-terminated");
            let name = std::str::from_utf8(&name_bytes[..namesize - 1])
                .unwrap()
                .to_string();
            let mut data_start = name_start + namesize;
            while !data_start.is_multiple_of(4) {
                assert_eq!(archive[data_start], 0, "name padding not zero");
                data_start += 1;
            }
            let data = archive[data_start..data_start + filesize].to_vec();
            let mut next = data_start + filesize;
            while !next.is_multiple_of(4) {
                assert_eq!(archive[next], 0, "data padding not zero");
                next += 1;
            }
            let done = name == TRAILER;
            out.push(Read {
                offset: pos,
                ino,
                name,
                mode,
                nlink,
                data,
            });
            pos = next;
            if done {
                assert_eq!(pos, archive.len(), "bytes after the trailer");
                return out;
            }
        }
    }

    #[test]
    fn round_trip() {
        // Data lengths 0..=4 cover every padding case.
        let entries = vec![
            Entry::dir("bin"),
            Entry::executable("bin/a", b"".to_vec()),
            Entry::executable("bin/bb", b"x".to_vec()),
            Entry::executable("bin/ccc", b"xy".to_vec()),
            Entry::executable("bin/dddd", b"xyz".to_vec()),
            Entry::executable("init", b"\x7fELF".to_vec()),
        ];
        let mut archive = Vec::new();
        write_newc(&mut archive, &entries).unwrap();
        assert_eq!(archive.len() % 4, 0);
        let read = parse(&archive);
        assert_eq!(read.len(), entries.len() + 1);
        for (e, r) in entries.iter().zip(&read) {
            assert_eq!(r.name, e.name);
            assert_eq!(r.mode, e.mode);
            assert_eq!(r.data, e.data);
            assert_eq!(r.offset % 4, 0);
        }
        assert_eq!(read[0].mode, 0o040755);
        assert_eq!(read[0].nlink, 2);
        assert_eq!(read[5].mode, 0o100755);
        assert_eq!(read[5].nlink, 1);
        // Distinct inode numbers, so Linux does not take members for hard links.
        let inos: BTreeSet<u32> = read[..6].iter().map(|r| r.ino).collect();
        assert_eq!(inos.len(), 6);
        let trailer = read.last().unwrap();
        assert_eq!(
            (trailer.name.as_str(), trailer.mode, trailer.data.len()),
            (TRAILER, 0, 0)
        );
        // The first header, field by field.
        let want = [
            "070701",
            "00000001",
            "000041ed",
            "00000000",
            "00000000",
            "00000002",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000004",
            "00000000",
            "bin\0\0\0",
        ]
        .concat();
        assert_eq!(&archive[..want.len()], want.as_bytes());
    }

    #[test]
    fn directories_must_come_first_and_names_be_clean() {
        let mut out = Vec::new();
        let e = write_newc(&mut out, &[Entry::executable("bin/x", vec![1])]);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("before its directory bin"));
        for bad in ["/init", "a//b", "./x", "a/../b", "", TRAILER] {
            let mut out = Vec::new();
            assert!(
                write_newc(&mut out, &[Entry::executable(bad, vec![])]).is_err(),
                "{bad:?}"
            );
        }
        let twice = [
            Entry::executable("x", vec![]),
            Entry::executable("x", vec![]),
        ];
        assert!(write_newc(&mut Vec::new(), &twice).is_err());
    }

    #[test]
    fn specs_add_directories_once_in_order() {
        let dir = std::env::temp_dir().join(format!("boot-cpio-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, b"AAAAA").unwrap();
        std::fs::write(&b, b"B").unwrap();
        let entries = initramfs_entries(
            &b,
            &[("hello".into(), a.clone()), ("other".into(), b.clone())],
        )
        .unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["bin", "bin/hello", "bin/other", "init", "bin/INDEX"]
        );
        assert_eq!(entries[1].data, b"AAAAA");
        assert_eq!(entries[4].data, b"hello\nother\n");
        assert_eq!(entries[4].mode, S_IFREG | 0o644);
        let out = dir.join("t.cpio");
        write_file(&out, &entries).unwrap();
        let read = parse(&std::fs::read(&out).unwrap());
        assert_eq!(read.len(), 6);
        assert_eq!(read[3].data, b"B");
        let mut nested = entries_from_specs(&[("/usr/local/bin/x".into(), a)]).unwrap();
        add_bin_index(&mut nested); // nothing in bin/: no index
        let names: Vec<&str> = nested.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["usr", "usr/local", "usr/local/bin", "usr/local/bin/x"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
