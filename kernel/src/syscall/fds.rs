//! File descriptors: pipe, pipe2, dup, dup2, dup3 and fcntl (Linux fs/pipe.c `do_pipe2`,
//! fs/file.c `ksys_dup3`, fs/fcntl.c `do_fcntl`). The table itself is `fs::FileTable`;
//! a file that leaves it is dropped here, after the process lock is released (dropping
//! the last reference runs its release, which may sleep).

#![forbid(unsafe_code)]

use alloc::sync::Arc;

use super::files::file;
use super::{Args, SysResult};
use crate::error::Errno;
use crate::fs::{CloseOnExec, File, MAX_FDS, O_NONBLOCK};
use crate::proc::sched;
use crate::vm::uaccess;

/// `open`'s, `pipe2`'s and `dup3`'s O_CLOEXEC.
pub const O_CLOEXEC: i32 = 0o2000000;
/// `pipe2`'s O_DIRECT (packet mode): accepted, and pipes stay byte streams here.
const O_DIRECT: i32 = 0o40000;

/// The descriptor flag O_CLOEXEC in `flags` asks for.
pub fn cloexec_of(flags: i32) -> CloseOnExec {
    if flags & O_CLOEXEC != 0 {
        CloseOnExec::Close
    } else {
        CloseOnExec::Keep
    }
}

/// Put `f` in the current process's lowest free fd at or above `from`, with `cloexec`
/// (EMFILE if there is none; the file is then dropped here, outside the process lock).
pub fn install(from: usize, f: Arc<File>, cloexec: CloseOnExec) -> Result<usize, Errno> {
    match sched::current().with(|p| p.files.insert_from(from, f, cloexec)) {
        Ok(fd) => Ok(fd),
        Err((errno, f)) => {
            drop(f);
            Err(errno)
        }
    }
}

/// Close `fd` in the current process and drop its file outside the process lock.
fn close_quietly(fd: usize) {
    let f = sched::current().with(|p| p.files.close(fd as i32));
    drop(f);
}

/// pipe(fds)
pub fn pipe(args: Args) -> SysResult {
    pipe_with(args.ptr(0), 0)
}

/// pipe2(fds, flags): O_CLOEXEC, O_NONBLOCK (both ends), O_DIRECT; EINVAL for others.
pub fn pipe2(args: Args) -> SysResult {
    pipe_with(args.ptr(0), args.int(1))
}

fn pipe_with(fds: u64, flags: i32) -> SysResult {
    if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    let (r, w) = crate::fs::pipe::pipe()?;
    r.set_status_flags(flags);
    w.set_status_flags(flags);
    let cloexec = cloexec_of(flags);
    let rfd = install(0, r, cloexec)?;
    let wfd = match install(0, w, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            close_quietly(rfd);
            return Err(e);
        }
    };
    let mut pair = [0u8; 8];
    pair[..4].copy_from_slice(&(rfd as i32).to_le_bytes());
    pair[4..].copy_from_slice(&(wfd as i32).to_le_bytes());
    if let Err(e) = uaccess::write_bytes(fds, &pair) {
        // As Linux: nobody learnt the numbers, so both descriptors go again.
        close_quietly(rfd);
        close_quietly(wfd);
        return Err(e);
    }
    Ok(0)
}

/// dup(oldfd): the lowest free descriptor, sharing the open file (no close-on-exec).
pub fn dup(args: Args) -> SysResult {
    let f = file(args.fd(0))?;
    Ok(install(0, f, CloseOnExec::Keep)? as u64)
}

/// dup2(oldfd, newfd): newfd (closed first if open) shares oldfd's file; oldfd ==
/// newfd only checks that it is open.
pub fn dup2(args: Args) -> SysResult {
    let (old, new) = (args.fd(0), args.fd(1));
    if old == new {
        file(old)?;
        return Ok(new as u64);
    }
    dup_to(old, new, CloseOnExec::Keep)
}

/// dup3(oldfd, newfd, flags): dup2 with O_CLOEXEC; EINVAL if oldfd == newfd or for
/// another flag.
pub fn dup3(args: Args) -> SysResult {
    let (old, new, flags) = (args.fd(0), args.fd(1), args.int(2));
    if flags & !O_CLOEXEC != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    dup_to(old, new, cloexec_of(flags))
}

/// Linux `do_dup2`: EBADF for a bad oldfd or a newfd out of range.
fn dup_to(old: i32, new: i32, cloexec: CloseOnExec) -> SysResult {
    let f = file(old)?;
    if !(0..MAX_FDS as i32).contains(&new) {
        return Err(Errno::EBADF);
    }
    let replaced = sched::current().with(|p| p.files.install_at(new, f, cloexec))?;
    drop(replaced);
    Ok(new as u64)
}

/// fcntl(fd, cmd, arg): F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL
/// (O_NONBLOCK); EINVAL for other commands.
pub fn fcntl(args: Args) -> SysResult {
    const F_DUPFD: u32 = 0;
    const F_GETFD: u32 = 1;
    const F_SETFD: u32 = 2;
    const F_GETFL: u32 = 3;
    const F_SETFL: u32 = 4;
    const F_DUPFD_CLOEXEC: u32 = 1030;
    const FD_CLOEXEC: u64 = 1;
    let (fd, cmd, arg) = (args.fd(0), args.uint(1), args.ulong(2));
    let f = file(fd)?;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            // Linux: EINVAL at or past the descriptor limit.
            let from = usize::try_from(arg as u32 as i32).map_err(|_| Errno::EINVAL)?;
            let cloexec = if cmd == F_DUPFD {
                CloseOnExec::Keep
            } else {
                CloseOnExec::Close
            };
            Ok(install(from, f, cloexec)? as u64)
        }
        F_GETFD => {
            let c = sched::current().with(|p| p.files.cloexec(fd))?;
            Ok(if c == CloseOnExec::Close {
                FD_CLOEXEC
            } else {
                0
            })
        }
        F_SETFD => {
            let c = if arg & FD_CLOEXEC != 0 {
                CloseOnExec::Close
            } else {
                CloseOnExec::Keep
            };
            sched::current().with(|p| p.files.set_cloexec(fd, c))?;
            Ok(0)
        }
        F_GETFL => Ok(f.status_flags() as u64),
        F_SETFL => {
            f.set_status_flags(arg as i32);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
