//! Choosing the initramfs for a run, and packing the temporary one for `--init`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cpio;
use crate::Ramdisk;

/// The repository root: `MEMKERNEL_ROOT` (run-qemu.sh sets it), else the directory
/// that holds `target/boot/release/boot` (this program), else the working directory.
pub fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("MEMKERNEL_ROOT") {
        return PathBuf::from(root);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(4).map(Path::to_path_buf))
        .filter(|root| root.join("target").is_dir())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The default initramfs that `make user` (scripts/build-user.sh) writes.
pub fn default_initramfs() -> PathBuf {
    repo_root().join("target/initramfs.cpio")
}

/// Where `make user` puts every user program (packed as /bin/NAME).
pub fn user_bin_dir() -> PathBuf {
    repo_root().join("target/user/bin")
}

/// A private temporary directory, removed (with its contents) when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new() -> Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("memkernel-run-{}-{n}", std::process::id()));
        // A leftover from an earlier process with our pid: ours now.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kib(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len().div_ceil(1024))
}

/// The ramdisk file to boot with, if any; for `--init` it is packed into `scratch`.
pub fn resolve(choice: &Ramdisk, scratch: Option<&Path>) -> Result<Option<PathBuf>> {
    match choice {
        Ramdisk::Nothing => Ok(None),
        Ramdisk::Default => {
            let path = default_initramfs();
            if path.is_file() {
                println!(
                    "[runner] initramfs: {} ({} KiB; `make user` rebuilds it)",
                    path.display(),
                    kib(&path)
                );
                Ok(Some(path))
            } else {
                Ok(None)
            }
        }
        Ramdisk::File(path) => {
            if !path.is_file() {
                bail!("initramfs {} does not exist", path.display());
            }
            Ok(Some(path.clone()))
        }
        Ramdisk::Init(program) => {
            check_program(program)?;
            let dir = scratch.context("--init needs a scratch directory")?;
            let bin = list_programs(&user_bin_dir())?;
            let entries = cpio::initramfs_entries(program, &bin)?;
            let path = dir.join("initramfs.cpio");
            cpio::write_file(&path, &entries)?;
            let names: Vec<&str> = bin.iter().map(|(n, _)| n.as_str()).collect();
            println!(
                "[runner] initramfs: /init = {}, /bin = [{}] ({} KiB)",
                program.display(),
                names.join(", "),
                kib(&path)
            );
            Ok(Some(path))
        }
    }
}

/// The regular files of `dir` as (name, path), sorted by name; none if `dir` is missing.
pub fn list_programs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            if let Some(name) = entry.file_name().to_str() {
                out.push((name.to_string(), entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `--init PROGRAM` must be a static x86-64 ELF executable (no program interpreter:
/// there is no dynamic linker in the initramfs).
pub fn check_program(path: &Path) -> Result<()> {
    use object::elf::PT_INTERP;
    use object::read::elf::{ElfFile64, ProgramHeader};
    use object::{Architecture, Object, ObjectKind};
    let bytes =
        std::fs::read(path).with_context(|| format!("--init: cannot read {}", path.display()))?;
    let elf = ElfFile64::<object::Endianness>::parse(&*bytes).map_err(|e| {
        anyhow::anyhow!("--init: {} is not a 64-bit ELF file ({e})", path.display())
    })?;
    if elf.architecture() != Architecture::X86_64 {
        bail!("--init: {} is not an x86-64 program", path.display());
    }
    if !matches!(elf.kind(), ObjectKind::Executable | ObjectKind::Dynamic) {
        bail!(
            "--init: {} is not an executable ({:?})",
            path.display(),
            elf.kind()
        );
    }
    let endian = elf.endian();
    if elf
        .elf_program_headers()
        .iter()
        .any(|ph| ph.p_type(endian) == PT_INTERP)
    {
        bail!(
            "--init: {} is dynamically linked (it has a PT_INTERP program interpreter); \
             build it statically (musl-gcc -static, or the user/ Rust workspace)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf_and_dynamic_programs() {
        let dir = ScratchDir::new().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"#!/bin/sh\n").unwrap();
        assert!(check_program(&junk)
            .unwrap_err()
            .to_string()
            .contains("not a 64-bit ELF"));
        // The test binary itself is a dynamically linked host program.
        let me = std::env::current_exe().unwrap();
        let err = check_program(&me).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
    }

    #[test]
    fn lists_only_files_sorted() {
        let dir = ScratchDir::new().unwrap();
        std::fs::write(dir.path().join("b"), b"").unwrap();
        std::fs::write(dir.path().join("a"), b"").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let names: Vec<String> = list_programs(dir.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(list_programs(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
    }
}
