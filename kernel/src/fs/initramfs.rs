//! The initramfs: a cpio archive in `newc` format (the format Linux uses) that the
//! bootloader loads into memory as the "ramdisk". Parsed with the `cpio_reader` crate.
#![deny(unsafe_code)]

use spin::Once;

static ARCHIVE: Once<&'static [u8]> = Once::new();

/// Remember the archive (empty if the bootloader got none).
pub fn init(archive: &'static [u8]) {
    ARCHIVE.call_once(|| archive);
}

/// Size of the archive in bytes.
pub fn size() -> usize {
    ARCHIVE.get().map_or(0, |a| a.len())
}

/// The contents of the regular file at `path` ("/init", "/bin/hello"; the leading
/// slash is optional).
pub fn lookup(path: &str) -> Option<&'static [u8]> {
    let archive: &'static [u8] = ARCHIVE.get()?;
    let want = path.trim_start_matches('/');
    cpio_reader::iter_files(archive)
        .find(|e| e.name().trim_start_matches("./") == want && is_regular(e))
        .map(|e| e.file())
}

/// Every regular file: (path, size).
pub fn files() -> impl Iterator<Item = (&'static str, usize)> {
    let archive: &'static [u8] = ARCHIVE.get().copied().unwrap_or(&[]);
    cpio_reader::iter_files(archive)
        .filter(is_regular)
        .map(|e| (e.name(), e.file().len()))
}

/// The file-type bits of a mode (S_IFMT) say "regular file" (S_IFREG).
fn is_regular(e: &cpio_reader::Entry<'_>) -> bool {
    const S_IFMT: u32 = 0o170_000;
    const S_IFREG: u32 = 0o100_000;
    e.mode().bits() & S_IFMT == S_IFREG
}
