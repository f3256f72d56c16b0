//! pidfd: a file that refers to a process (Linux `pidfd_open`, `kernel/pid.c`). `poll`
//! reports it readable once the process has exited, which is how newer kselftest
//! harnesses wait for a test with a timeout.
#![forbid(unsafe_code)]

use alloc::sync::Weak;

use super::{Pid, Process, State};
use crate::error::Errno;
use crate::fs::{File, FileOps, OpenMode, PollEvents, Stat};
use alloc::sync::Arc;

/// An open pidfd: the process, weakly (the file does not keep it alive).
struct PidFd {
    target: Weak<Process>,
}

impl FileOps for PidFd {
    /// A stream: lseek and pread64 answer ESPIPE (Linux `no_llseek`).
    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> Stat {
        // Linux: an anonymous inode ("anon_inode:[pidfd]").
        Stat {
            ino: 6,
            mode: 0o600,
            rdev: 0,
            size: 0,
        }
    }

    /// Readable (POLLIN) once the process has exited: a zombie, or already reaped.
    fn poll(&self) -> PollEvents {
        let exited = match self.target.upgrade() {
            Some(p) => matches!(p.with(|i| i.state), State::Zombie(_)),
            None => true,
        };
        if exited {
            PollEvents::IN
        } else {
            PollEvents::empty()
        }
    }
}

/// `pidfd_open(pid, flags)`: a file for process `pid` (ESRCH if there is none).
pub fn open(pid: Pid) -> Result<Arc<File>, Errno> {
    let target = super::lookup(pid).ok_or(Errno::ESRCH)?;
    File::new(
        crate::fs::boxed(PidFd {
            target: Arc::downgrade(&target),
        })?,
        OpenMode::ReadOnly,
    )
}
