//! Files: the initramfs (read-only), the serial console, and per-process file tables.
//!
//! There is no real filesystem: `open` finds a path in the initramfs, or one of the
//! device nodes. A [`File`] is shared (`Arc`) between the file tables of processes that
//! inherited it by `fork`, so they share its offset, as on Linux.
#![deny(unsafe_code)]

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
