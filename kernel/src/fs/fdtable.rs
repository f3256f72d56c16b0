//! A process's file descriptors (Linux `struct fdtable`, fs/file.c): slots 0..MAX_FDS,
//! each an open file shared by `Arc` (dup and fork share the open file: its position and
//! status flags), and a close-on-exec bit per slot, which `execve` honours and `fork`
//! copies.
//!
//! Nothing here drops a file: a file taken out of the table comes back to the caller, to
//! be dropped once the process lock is released, because dropping the last reference
//! runs the file's release, which may sleep (a dmirror's waits for its device).

#![forbid(unsafe_code)]

use alloc::sync::Arc;

use super::File;
use crate::error::Errno;

/// Most open files one process may have (Linux's default soft limit is 1024).
pub const MAX_FDS: usize = 64;

/// The per-descriptor flag (Linux `FD_CLOEXEC`, set by `O_CLOEXEC`, `F_SETFD`, `dup3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOnExec {
    Keep,
    Close,
}

/// A process's file descriptors.
#[derive(Debug, Clone)]
pub struct FileTable {
    fds: [Option<Arc<File>>; MAX_FDS],
    /// Bit i: fd i is closed by execve.
    cloexec: u64,
}

impl Default for FileTable {
    fn default() -> Self {
        FileTable {
            fds: [const { None }; MAX_FDS],
            cloexec: 0,
        }
    }
}

/// `fd` as a slot number, if it can be one.
fn slot(fd: i32) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&i| i < MAX_FDS)
}

impl FileTable {
    /// fds 0, 1 and 2 on `console`, as init gets them.
    pub fn with_stdio(console: Arc<File>) -> FileTable {
        let mut table = FileTable::default();
        for fd in 0..3 {
            table.fds[fd] = Some(console.clone());
        }
        table
    }

    /// The file behind `fd` (EBADF if it is negative, too large or not open).
    pub fn get(&self, fd: i32) -> Result<Arc<File>, Errno> {
        slot(fd)
            .and_then(|i| self.fds[i].clone())
            .ok_or(Errno::EBADF)
    }

    /// Put `file` in the lowest free slot and return its number. If there is none:
    /// EMFILE, and the file comes back, for the caller to drop once it has released the
    /// process lock.
    pub fn insert(&mut self, file: Arc<File>) -> Result<usize, (Errno, Arc<File>)> {
        self.insert_from(0, file, CloseOnExec::Keep)
    }

    /// Put `file` in the lowest free slot at or above `from` (Linux `F_DUPFD`) with
    /// `cloexec`; EMFILE (and the file back) if there is none, EINVAL if `from` is out
    /// of range.
    pub fn insert_from(
        &mut self,
        from: usize,
        file: Arc<File>,
        cloexec: CloseOnExec,
    ) -> Result<usize, (Errno, Arc<File>)> {
        if from >= MAX_FDS {
            return Err((Errno::EINVAL, file));
        }
        match (from..MAX_FDS).find(|&i| self.fds[i].is_none()) {
            Some(fd) => {
                self.fds[fd] = Some(file);
                self.set_cloexec_slot(fd, cloexec);
                Ok(fd)
            }
            None => Err((Errno::EMFILE, file)),
        }
    }

    /// Put `file` at `fd` (Linux `dup2`/`dup3`'s `do_dup2`), with `cloexec`; the file
    /// that was there comes back for the caller to drop. EBADF if `fd` cannot be a slot.
    pub fn install_at(
        &mut self,
        fd: i32,
        file: Arc<File>,
        cloexec: CloseOnExec,
    ) -> Result<Option<Arc<File>>, Errno> {
        let i = slot(fd).ok_or(Errno::EBADF)?;
        let old = self.fds[i].replace(file);
        self.set_cloexec_slot(i, cloexec);
        Ok(old)
    }

    fn set_cloexec_slot(&mut self, i: usize, cloexec: CloseOnExec) {
        match cloexec {
            CloseOnExec::Close => self.cloexec |= 1 << i,
            CloseOnExec::Keep => self.cloexec &= !(1 << i),
        }
    }

    /// `fd`'s close-on-exec flag (EBADF if not open).
    pub fn cloexec(&self, fd: i32) -> Result<CloseOnExec, Errno> {
        self.get(fd)?;
        let i = slot(fd).ok_or(Errno::EBADF)?;
        Ok(if self.cloexec & (1 << i) != 0 {
            CloseOnExec::Close
        } else {
            CloseOnExec::Keep
        })
    }

    /// Set `fd`'s close-on-exec flag (EBADF if not open).
    pub fn set_cloexec(&mut self, fd: i32, cloexec: CloseOnExec) -> Result<(), Errno> {
        self.get(fd)?;
        let i = slot(fd).ok_or(Errno::EBADF)?;
        self.set_cloexec_slot(i, cloexec);
        Ok(())
    }

    /// Take `fd` out of the table and return its file, for the caller to drop once it
    /// has released the process lock. EBADF if `fd` is not open.
    pub fn close(&mut self, fd: i32) -> Result<Arc<File>, Errno> {
        let i = slot(fd).ok_or(Errno::EBADF)?;
        let f = self.fds[i].take().ok_or(Errno::EBADF)?;
        self.cloexec &= !(1 << i);
        Ok(f)
    }

    /// Take out every close-on-exec file (Linux `do_close_on_exec`); they come back as a
    /// table of their own, for the caller to drop outside the process lock.
    pub fn take_cloexec(&mut self) -> FileTable {
        let mut closing = FileTable::default();
        for i in 0..MAX_FDS {
            if self.cloexec & (1 << i) != 0 {
                closing.fds[i] = self.fds[i].take();
            }
        }
        self.cloexec = 0;
        closing
    }

    /// Close everything (exit). Like the last reference dropped by [`FileTable::close`],
    /// this may run a release that sleeps: not under the process lock.
    pub fn close_all(&mut self) {
        self.fds.iter_mut().for_each(|f| *f = None);
        self.cloexec = 0;
    }
}
