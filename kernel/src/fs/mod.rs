//! Files: the initramfs (read-only), the serial console, and per-process file tables.
//!
//! There is no real filesystem: `open` finds a path in the initramfs, or one of the
//! device nodes. A [`File`] is shared (`Arc`) between the file tables of processes that
//! inherited it by `fork`, so they share its offset, as on Linux.
#![forbid(unsafe_code)]

pub mod initramfs;
pub mod procfs;

use alloc::sync::Arc;
use spin::Mutex;

use crate::syscall::errno::Errno;

/// What an open file is.
#[derive(Debug)]
pub enum FileKind {
    /// The serial console (/dev/console).
    Console,
    /// A file of the initramfs, read-only.
    Initramfs { data: &'static [u8] },
    /// A text generated when the file was opened (/proc/ps), read-only.
    Snapshot(alloc::vec::Vec<u8>),
    /// /dev/hmm_dmirror0 or 1: one subscription of the emulated accelerator.
    Dmirror(alloc::sync::Arc<crate::drivers::hmm::Mirror>),
}

/// An open file: its kind, how it was opened, and the read offset.
#[derive(Debug)]
pub struct File {
    pub kind: FileKind,
    pub readable: bool,
    pub writable: bool,
    offset: Mutex<usize>,
}

impl File {
    /// A new open file.
    pub fn new(kind: FileKind, readable: bool, writable: bool) -> Arc<File> {
        Arc::new(File {
            kind,
            readable,
            writable,
            offset: Mutex::new(0),
        })
    }

    /// The bytes of a regular file from the current offset on, and that offset (the
    /// caller copies some and then calls [`File::advance`]). Not for the console.
    pub fn remaining(&self) -> Result<(&[u8], usize), Errno> {
        let data: &[u8] = match &self.kind {
            FileKind::Initramfs { data } => data,
            FileKind::Snapshot(text) => text,
            FileKind::Console | FileKind::Dmirror(_) => return Err(Errno::EINVAL),
        };
        let off = *self.offset.lock();
        Ok((data.get(off..).unwrap_or(&[]), off))
    }

    /// Move the offset forward by `n` bytes (after they were delivered).
    pub fn advance(&self, n: usize) {
        *self.offset.lock() += n;
    }
}

/// Most open files one process may have (Linux's default soft limit is 1024).
pub const MAX_FDS: usize = 64;

/// A process's file descriptors.
#[derive(Debug, Clone)]
pub struct FileTable {
    fds: [Option<Arc<File>>; MAX_FDS],
}

impl Default for FileTable {
    fn default() -> Self {
        FileTable {
            fds: [const { None }; MAX_FDS],
        }
    }
}

impl FileTable {
    /// fds 0, 1 and 2 on the console, as init gets them.
    pub fn with_console() -> FileTable {
        let mut table = FileTable::default();
        let console = File::new(FileKind::Console, true, true);
        for fd in 0..3 {
            table.fds[fd] = Some(console.clone());
        }
        table
    }

    /// The file behind `fd` (EBADF if it is negative, too large or not open).
    pub fn get(&self, fd: i32) -> Result<Arc<File>, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|fd| self.fds.get(fd))
            .and_then(|f| f.clone())
            .ok_or(Errno::EBADF)
    }

    /// Put `file` in the lowest free slot and return its number. If there is none:
    /// EMFILE, and the file comes back, for the caller to drop once it has released the
    /// process lock (dropping the last reference runs the file's release, which may
    /// sleep: a dmirror's release waits for its device).
    pub fn insert(&mut self, file: Arc<File>) -> Result<usize, (Errno, Arc<File>)> {
        match self.fds.iter().position(Option::is_none) {
            Some(fd) => {
                self.fds[fd] = Some(file);
                Ok(fd)
            }
            None => Err((Errno::EMFILE, file)),
        }
    }

    /// Take `fd` out of the table and return its file, for the caller to drop once it
    /// has released the process lock (see [`FileTable::insert`]). EBADF if `fd` is not
    /// open.
    pub fn close(&mut self, fd: i32) -> Result<Arc<File>, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|fd| self.fds.get_mut(fd))
            .and_then(Option::take)
            .ok_or(Errno::EBADF)
    }

    /// Close everything (exit). Like the last reference dropped by [`FileTable::close`],
    /// this may run a release that sleeps: not under the process lock.
    pub fn close_all(&mut self) {
        self.fds.iter_mut().for_each(|f| *f = None);
    }
}

/// What `stat` reports about a file (the fields of Linux's x86-64 `struct stat` that
/// mean something here; the rest are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub ino: u64,
    pub mode: u32,
    pub rdev: u64,
    pub size: u64,
}

/// `st_mode` file types and the device numbers Linux gives these nodes.
const S_IFCHR: u32 = 0o020000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

impl Stat {
    /// The 144 bytes of `struct stat` (x86-64): dev, ino, nlink, mode, uid, gid, pad,
    /// rdev, size, blksize, blocks, then the times (zero: no clock on files here).
    pub fn to_bytes(self) -> [u8; 144] {
        let mut b = [0u8; 144];
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16..24].copy_from_slice(&1u64.to_le_bytes()); // nlink
        b[24..28].copy_from_slice(&self.mode.to_le_bytes());
        b[40..48].copy_from_slice(&self.rdev.to_le_bytes());
        b[48..56].copy_from_slice(&self.size.to_le_bytes());
        b[56..64].copy_from_slice(&4096u64.to_le_bytes()); // blksize
        b[64..72].copy_from_slice(&self.size.div_ceil(512).to_le_bytes()); // blocks
        b
    }
}

/// Linux `makedev(major, minor)` for small numbers.
const fn dev(major: u64, minor: u64) -> u64 {
    (major << 8) | minor
}

impl File {
    /// `fstat` of this open file.
    pub fn stat(&self) -> Stat {
        match &self.kind {
            FileKind::Console => Stat {
                ino: 2,
                mode: S_IFCHR | 0o620,
                rdev: dev(5, 1),
                size: 0,
            },
            FileKind::Initramfs { data } => Stat {
                ino: 3,
                mode: S_IFREG | 0o755,
                rdev: 0,
                size: data.len() as u64,
            },
            FileKind::Snapshot(_) => Stat {
                ino: 4,
                mode: S_IFREG | 0o444,
                rdev: 0,
                size: 0, // like /proc files: the size is not known in advance
            },
            FileKind::Dmirror(m) => Stat {
                ino: 5,
                mode: S_IFCHR | 0o600,
                rdev: dev(240, u64::from(m.minor)),
                size: 0,
            },
        }
    }
}

/// `stat` by path: the device nodes, the /proc files, the initramfs files, and the
/// directories that hold them.
pub fn stat_path(path: &str) -> Result<Stat, Errno> {
    let node = |ino, mode, rdev| Stat {
        ino,
        mode,
        rdev,
        size: 0,
    };
    match path {
        "/" | "/bin" | "/dev" | "/proc" | "/proc/self" => Ok(node(1, S_IFDIR | 0o755, 0)),
        "/dev/console" => Ok(node(2, S_IFCHR | 0o620, dev(5, 1))),
        "/dev/hmm_dmirror0" => Ok(node(5, S_IFCHR | 0o600, dev(240, 0))),
        "/dev/hmm_dmirror1" => Ok(node(5, S_IFCHR | 0o600, dev(240, 1))),
        "/proc/ps" | "/proc/self/ptes" => Ok(node(4, S_IFREG | 0o444, 0)),
        _ => initramfs::lookup(path)
            .map(|data| Stat {
                ino: 3,
                mode: S_IFREG | 0o755,
                rdev: 0,
                size: data.len() as u64,
            })
            .ok_or(Errno::ENOENT),
    }
}
