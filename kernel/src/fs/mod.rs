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

    /// The file behind `fd`.
    pub fn get(&self, fd: i64) -> Result<Arc<File>, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|fd| self.fds.get(fd))
            .and_then(|f| f.clone())
            .ok_or(Errno::EBADF)
    }

    /// Put `file` in the lowest free slot; EMFILE if there is none.
    pub fn insert(&mut self, file: Arc<File>) -> Result<usize, Errno> {
        let fd = self
            .fds
            .iter()
            .position(Option::is_none)
            .ok_or(Errno::EMFILE)?;
        self.fds[fd] = Some(file);
        Ok(fd)
    }

    /// Close `fd`.
    pub fn close(&mut self, fd: i64) -> Result<(), Errno> {
        let slot = usize::try_from(fd)
            .ok()
            .and_then(|fd| self.fds.get_mut(fd))
            .ok_or(Errno::EBADF)?;
        slot.take().map(|_| ()).ok_or(Errno::EBADF)
    }

    /// Close everything (exit).
    pub fn close_all(&mut self) {
        self.fds.iter_mut().for_each(|f| *f = None);
    }
}
