//! Processes: decoding wait statuses and a safe `exec`.

use alloc::ffi::CString;
use alloc::vec::Vec;
use core::ffi::c_char;
use core::fmt;

use crate::env;
use crate::errno::Errno;
use crate::sys;

/// A wait status as wait4(2) stores it (Linux encoding): exit code in bits 8..16 when
/// bits 0..7 are 0; otherwise bits 0..7 are the signal that ended the process (0x7f:
/// stopped, which our kernel never reports) and bit 7 says "core dumped".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WaitStatus(pub i32);

/// How a child ended, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ended {
    /// exit(code) or exit_group(code), or returned `code` from main.
    Exited(u8),
    /// Killed by this signal.
    Signalled(u8),
    /// Something else (stopped/continued): the raw status.
    Other(i32),
}

impl WaitStatus {
    pub fn decode(self) -> Ended {
        let low = self.0 & 0x7f;
        if low == 0 {
            Ended::Exited(((self.0 >> 8) & 0xff) as u8)
        } else if low != 0x7f && self.0 & 0xffff == self.0 & 0xff {
            Ended::Signalled(low as u8)
        } else {
            Ended::Other(self.0)
        }
    }
}

impl fmt::Display for Ended {
    /// "exited with status N" / "killed by signal N".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exited with status {code}"),
            Ended::Signalled(sig) => write!(f, "killed by signal {sig}"),
            Ended::Other(raw) => write!(f, "changed state (wait status {raw:#x})"),
        }
    }
}

/// Wait for child `pid` (-1: any) to end; returns its pid and how it ended.
pub fn wait(pid: isize) -> Result<(usize, Ended), Errno> {
    let mut status = 0;
    loop {
        match sys::wait4(pid, &mut status, 0) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(child) => return Ok((child, WaitStatus(status).decode())),
        }
    }
}

/// execve(path, args, our own environment). Returns only on failure, with the error.
/// Fails with `EINVAL` if a string contains a NUL byte.
pub fn exec(path: &str, args: &[&str]) -> Errno {
    let Ok(cpath) = CString::new(path) else {
        return Errno::EINVAL;
    };
    let mut cargs = Vec::with_capacity(args.len());
    for a in args {
        match CString::new(*a) {
            Ok(c) => cargs.push(c),
            Err(_) => return Errno::EINVAL,
        }
    }
    let mut argv: Vec<*const c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argv.push(core::ptr::null());
    let empty_env: [*const c_char; 1] = [core::ptr::null()];
    let envp = if env::envp().is_null() {
        empty_env.as_ptr()
    } else {
        env::envp()
    };
    // SAFETY: cpath and every argv entry are NUL-terminated strings that outlive the
    // call, argv ends with NULL, envp is the kernel's NULL-terminated environment (or
    // our empty one).
    match unsafe { sys::execve(cpath.as_ptr(), argv.as_ptr(), envp) } {
        Err(e) => e,
        Ok(_) => Errno::EINVAL, // execve does not return on success
    }
}
