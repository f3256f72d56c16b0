//! Listing a directory on a kernel that cannot list directories.
//!
//! memkernel has no getdents64(2) yet, and a directory cannot even be opened: its files
//! are the initramfs's members and the nodes that drivers and /proc register by full
//! path. So [`list`] takes the first of these that works:
//!
//! 1. **getdents64** on the directory: what Linux does (the shell's host tests run it
//!    there), and what memkernel will do once it has the call.
//! 2. **What the initramfs and the kernel are known to hold**, as full paths: `/init`;
//!    `/bin/NAME` for each line of `/bin/INDEX`, the program list that the host tool
//!    (`boot mkcpio`, and `run-qemu.sh --init`) writes into every initramfs it packs;
//!    and the files memkernel registers ([`KERNEL_FILES`]), each kept only if stat(2)
//!    finds it now (the accelerator's may be missing). A directory's entries are then
//!    the next component of the paths below it, so `/`, `/proc` and `/proc/self` work
//!    too. A file the kernel registers that is not in [`KERNEL_FILES`] is not shown:
//!    getdents64 in the kernel is the real fix.

use alloc::ffi::CString;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use ulib::sys;

/// The files memkernel registers at boot (drivers/console.rs, drivers/hmm, proc/procfs.rs).
pub const KERNEL_FILES: &[&str] = &[
    "/dev/console",
    "/dev/hmm_dmirror0",
    "/dev/hmm_dmirror1",
    "/proc/ps",
    "/proc/self/ptes",
];

/// The program list in the initramfs (one name per line).
pub const BIN_INDEX: &str = "/bin/INDEX";

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
}

/// `dir` as an absolute path without a trailing slash ("/" stays "/"); relative names
/// are taken from "/", the only working directory on memkernel.
pub fn absolute(dir: &str) -> String {
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        alloc::format!("/{trimmed}")
    }
}

/// The entries of `dir`, sorted, without `.`, `..` and /bin/INDEX; `None` if neither
/// getdents64 nor the known paths say anything about it.
pub fn list(dir: &str) -> Option<Vec<Entry>> {
    if let Some(mut entries) = getdents(dir) {
        let is_bin = absolute(dir) == "/bin";
        entries.retain(|e| e.name != "." && e.name != ".." && !(is_bin && e.name == "INDEX"));
        entries.sort();
        return Some(entries);
    }
    let entries = children(&absolute(dir), &known_paths());
    (!entries.is_empty()).then_some(entries)
}

/// The directory's entries by getdents64(2), or `None` if it cannot be read that way.
fn getdents(dir: &str) -> Option<Vec<Entry>> {
    const DT_DIR: u8 = 4;
    let path = CString::new(dir).ok()?;
    let fd = sys::open(&path, sys::O_RDONLY | sys::O_DIRECTORY | sys::O_CLOEXEC, 0).ok()?;
    let mut entries = Vec::new();
    let mut buf = [0u8; 2048];
    let result = loop {
        let n = match sys::getdents64(fd, &mut buf) {
            Ok(0) => break Some(()),
            Ok(n) => n.min(buf.len()),
            Err(_) => break None,
        };
        // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
        let mut at = 0;
        while at + 19 < n {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen == 0 || at + reclen > n {
                break;
            }
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            entries.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                is_dir: buf[at + 18] == DT_DIR,
            });
            at += reclen;
        }
    };
    let _ = sys::close(fd);
    result.map(|()| entries)
}

/// Whether `path` exists (stat(2) succeeds).
pub fn exists(path: &str) -> bool {
    let Ok(c) = CString::new(path) else {
        return false;
    };
    let mut st = sys::Stat::default();
    sys::stat(&c, &mut st).is_ok()
}

/// The whole contents of the file at `path`, if it can be read.
pub fn read_file(path: &str) -> Option<Vec<u8>> {
    let c = CString::new(path).ok()?;
    let fd = sys::open(&c, sys::O_RDONLY | sys::O_CLOEXEC, 0).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 1024];
    let ok = loop {
        match sys::read(fd, &mut buf) {
            Ok(0) => break true,
            Ok(n) => data.extend_from_slice(&buf[..n.min(buf.len())]),
            Err(ulib::Errno::EINTR) => {}
            Err(_) => break false,
        }
    };
    let _ = sys::close(fd);
    ok.then_some(data)
}

/// Every file known to exist, as an absolute path (see the module documentation).
fn known_paths() -> Vec<String> {
    let mut paths = Vec::new();
    if exists("/init") {
        paths.push("/init".to_string());
    }
    if let Some(index) = read_file(BIN_INDEX) {
        for name in String::from_utf8_lossy(&index).lines() {
            let name = name.trim();
            if !name.is_empty() && !name.contains('/') {
                paths.push(alloc::format!("/bin/{name}"));
            }
        }
    }
    for path in KERNEL_FILES {
        if exists(path) {
            paths.push(path.to_string());
        }
    }
    paths
}

/// The entries directly inside `dir` (absolute) among `paths`, sorted and unique.
fn children(dir: &str, paths: &[String]) -> Vec<Entry> {
    let prefix = if dir == "/" {
        "/".to_string()
    } else {
        alloc::format!("{dir}/")
    };
    let mut entries: Vec<Entry> = paths
        .iter()
        .filter_map(|p| p.strip_prefix(prefix.as_str()))
        .map(|rest| match rest.split_once('/') {
            Some((first, _)) => Entry {
                name: first.to_string(),
                is_dir: true,
            },
            None => Entry {
                name: rest.to_string(),
                is_dir: false,
            },
        })
        .filter(|e| !e.name.is_empty())
        .collect();
    entries.sort();
    entries.dedup();
    entries
}

/// Print `names` in columns across an 80-column line, like `ls -x`.
pub fn print_columns(names: &[String]) {
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0) + 2;
    let per_line = (80 / width).max(1);
    for row in names.chunks(per_line) {
        let mut line = String::new();
        for (i, name) in row.iter().enumerate() {
            line.push_str(name);
            if i + 1 < row.len() {
                line.extend(core::iter::repeat_n(' ', width - name.len()));
            }
        }
        ulib::println!("{line}");
    }
}
