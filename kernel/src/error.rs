//! Linux error numbers, and how kernel errors map to them. Below every subsystem
//! (mm, vm, proc, fs, drivers use it); the system-call layer turns an `Errno` into the
//! `-errno` return value (`Errno::as_return`).
#![deny(unsafe_code)]

use crate::mm::MmError;

/// A Linux errno. System calls return `-errno` in rax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    EMFILE = 24,
    ENOTTY = 25,
    ESPIPE = 29,
    EROFS = 30,
    EPIPE = 32,
    ERANGE = 34,
    E2BIG = 7,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    EOPNOTSUPP = 95,
    /// Kernel-internal (Linux `ERESTARTSYS`): a sleep was interrupted by a signal; the
    /// way back to user mode restarts the syscall or turns this into EINTR. Never
    /// reaches user code.
    ERESTARTSYS = 512,
    /// Kernel-internal (Linux `ERESTARTNOHAND`): restarted only if no handler runs
    /// (pause).
    ERESTARTNOHAND = 514,
}

impl Errno {
    /// The value a syscall returns for this error.
    pub fn as_return(self) -> u64 {
        (-(self as i64)) as u64
    }
}

impl From<MmError> for Errno {
    fn from(e: MmError) -> Errno {
        match e {
            MmError::NoMemory => Errno::ENOMEM,
            MmError::Unaligned | MmError::InvalidRange => Errno::EINVAL,
            MmError::AlreadyMapped => Errno::EEXIST,
            MmError::NotMapped | MmError::BadAddress => Errno::EFAULT,
            MmError::Killed => Errno::EINTR,
        }
    }
}
