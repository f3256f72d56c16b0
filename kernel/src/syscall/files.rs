//! File syscalls: open, openat, close, read, write, writev, ioctl, fstat, newfstatat,
//! readlink. Argument checks only: what a file does is its owner's `fs::FileOps`.
#![deny(unsafe_code)]

use alloc::sync::Arc;

use super::{Args, SysResult};
use crate::error::Errno;
use crate::fs::{File, OpenMode, Whence};
use crate::mm::fallible::try_string;
use crate::proc::sched;
use crate::vm::uaccess;

/// `open` flags (Linux values).
const O_ACCMODE: i32 = 3;
const O_RDONLY: i32 = 0;
const O_WRONLY: i32 = 1;
const O_RDWR: i32 = 2;

/// Longest path we accept (Linux PATH_MAX).
const PATH_MAX: usize = 4096;

/// The open file behind `fd` in the current process (EBADF if none).
pub(super) fn file(fd: i32) -> Result<Arc<File>, Errno> {
    sched::current().with(|p| p.files.get(fd))
}

/// open(path, flags, mode)
pub fn open(args: Args) -> SysResult {
    let path = uaccess::read_cstr(args.ptr(0), PATH_MAX)?;
    open_path(&path, args.int(1))
}

/// openat(dfd, filename, flags, mode): absolute paths, or relative to AT_FDCWD ("/",
/// the only working directory here); relative to another fd is ENOTDIR (no directory
/// can be opened). What C libraries call for `open()`.
pub fn openat(args: Args) -> SysResult {
    const AT_FDCWD: i32 = -100;
    let path = uaccess::read_cstr(args.ptr(1), PATH_MAX)?;
    if path.starts_with('/') {
        return open_path(&path, args.int(2));
    }
    if args.fd(0) != AT_FDCWD {
        file(args.fd(0))?; // EBADF first, as Linux
        return Err(Errno::ENOTDIR);
    }
    open_path(&crate::try_format!("/{path}")?, args.int(2))
}

/// Open `path` with `flags` into the lowest free fd. What the path is (a device, a
/// /proc file, an initramfs file) is fs's business.
fn open_path(path: &str, flags: i32) -> SysResult {
    let mode = match flags & O_ACCMODE {
        O_RDONLY => OpenMode::ReadOnly,
        O_WRONLY => OpenMode::WriteOnly,
        O_RDWR => OpenMode::ReadWrite,
        _ => return Err(Errno::EINVAL),
    };
    let f = crate::fs::open(path, mode, flags)?;
    Ok(super::fds::install(0, f, super::fds::cloexec_of(flags))? as u64)
}

/// close(fd)
pub fn close(args: Args) -> SysResult {
    let f = sched::current().with(|p| p.files.close(args.fd(0)))?;
    // Dropped here, not under the process lock: if this was the last reference, the
    // file's release runs, and a dmirror's may sleep.
    drop(f);
    Ok(0)
}

/// read(fd, buf, count)
pub fn read(args: Args) -> SysResult {
    let f = file(args.fd(0))?;
    Ok(f.read(args.ptr(1), args.ulong(2) as usize)? as u64)
}

/// pread64(fd, buf, count, pos), checked in Linux's order: a negative position or one
/// whose end passes i64::MAX (EINVAL) before the fd (EBADF).
pub fn pread64(args: Args) -> SysResult {
    let (pos, count) = (args.ulong(3) as i64, args.ulong(2) as usize);
    if pos < 0
        || pos
            .checked_add(count.min(isize::MAX as usize) as i64)
            .is_none()
    {
        return Err(Errno::EINVAL);
    }
    let f = file(args.fd(0))?;
    Ok(f.pread(args.ptr(1), count, pos as usize)? as u64)
}

/// lseek(fd, offset, whence)
pub fn lseek(args: Args) -> SysResult {
    let f = file(args.fd(0))?;
    let whence = match args.uint(2) {
        0 => Whence::Set,
        1 => Whence::Current,
        2 => Whence::End,
        _ => return Err(Errno::EINVAL),
    };
    Ok(f.lseek(args.ulong(1) as i64, whence)? as u64)
}

/// write(fd, buf, count)
pub fn write(args: Args) -> SysResult {
    let f = file(args.fd(0))?;
    write_to(&f, args.ptr(1), args.ulong(2) as usize)
}

/// Write through `f`; EPIPE (a pipe with no reader left) also sends the writer SIGPIPE,
/// as Linux's `pipe_write` does.
fn write_to(f: &File, buf: u64, count: usize) -> SysResult {
    match f.write(buf, count) {
        Ok(n) => Ok(n as u64),
        Err(Errno::EPIPE) => {
            let me = sched::current();
            let info = crate::proc::signal::SigInfo {
                signo: crate::proc::signal::SIGPIPE,
                code: crate::proc::signal::SI_USER,
                pid: me.pid,
                addr: 0,
                status: 0,
            };
            crate::proc::signal::send(&me, info);
            Err(Errno::EPIPE)
        }
        Err(e) => Err(e),
    }
}

/// writev(fd, iov, iovcnt)
pub fn writev(args: Args) -> SysResult {
    const IOV_MAX: u64 = 1024;
    let f = file(args.fd(0))?;
    let (iov, count) = (args.ptr(1), args.ulong(2));
    if count > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut total = 0u64;
    for i in 0..count {
        let base = uaccess::read_u64(iov + i * 16)?;
        let len = uaccess::read_u64(iov + i * 16 + 8)?;
        if len == 0 {
            continue;
        }
        total += write_to(&f, base, len as usize)?;
    }
    Ok(total)
}

/// ioctl(fd, request, arg): whatever the file's owner answers (ENOTTY by default). The
/// request is 32 bits (`unsigned int cmd`): musl passes it as an `int`, sign-extended,
/// so 0xc0284805 arrives as 0xffffffffc0284805.
pub fn ioctl(args: Args) -> SysResult {
    file(args.fd(0))?.ioctl(args.uint(1), args.ulong(2))
}

/// fstat(fd, statbuf)
pub fn fstat(args: Args) -> SysResult {
    let st = file(args.fd(0))?.stat();
    uaccess::write_bytes(args.ptr(1), &st.to_bytes())?;
    Ok(0)
}

/// newfstatat(dfd, filename, statbuf, flag): absolute paths, and AT_EMPTY_PATH on an
/// open fd (what C libraries use for fstat). A relative path is resolved against "/"
/// when dfd is AT_FDCWD (the only directory a process can be in here).
pub fn newfstatat(args: Args) -> SysResult {
    const AT_FDCWD: i32 = -100;
    const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
    const AT_NO_AUTOMOUNT: i32 = 0x800;
    const AT_EMPTY_PATH: i32 = 0x1000;
    let (dfd, flags) = (args.fd(0), args.int(3));
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = uaccess::read_cstr(args.ptr(1), PATH_MAX)?;
    let st = if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        file(dfd)?.stat()
    } else if path.starts_with('/') {
        crate::fs::stat_path(&path)?
    } else if dfd == AT_FDCWD {
        crate::fs::stat_path(&crate::try_format!("/{path}")?)?
    } else {
        file(dfd)?; // EBADF first, as Linux
        return Err(Errno::ENOTDIR);
    };
    uaccess::write_bytes(args.ptr(2), &st.to_bytes())?;
    Ok(0)
}

/// readlink(path, buf, bufsiz): the one symbolic link, /proc/self/exe (the program's
/// path). Another existing file is EINVAL (not a link), a missing one ENOENT. The
/// result is not NUL-terminated and is cut at bufsiz, as Linux.
pub fn readlink(args: Args) -> SysResult {
    let path = uaccess::read_cstr(args.ptr(0), PATH_MAX)?;
    let size = args.int(2);
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    if path != "/proc/self/exe" {
        crate::fs::stat_path(&path)?;
        return Err(Errno::EINVAL);
    }
    let exe = sched::current().with(|p| try_string(&p.exe))?;
    let n = exe.len().min(size as usize);
    uaccess::write_bytes(args.ptr(1), &exe.as_bytes()[..n])?;
    Ok(n as u64)
}

/// pidfd_open(pid, flags): a file referring to process `pid` (flags: 0 or
/// PIDFD_NONBLOCK, which only matters for waitid here absent).
pub fn pidfd_open(args: Args) -> SysResult {
    const PIDFD_NONBLOCK: u32 = 0o4000;
    let (pid, flags) = (args.int(0), args.uint(1));
    if pid <= 0 || flags & !PIDFD_NONBLOCK != 0 {
        return Err(Errno::EINVAL);
    }
    let f = crate::proc::pidfd::open(pid as crate::proc::Pid)?;
    // Linux sets close-on-exec on a pidfd.
    Ok(super::fds::install(0, f, crate::fs::CloseOnExec::Close)? as u64)
}

/// How long `poll` may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeout {
    Forever,
    Ms(u64),
}

/// poll(fds, nfds, timeout_ms)
pub fn poll(args: Args) -> SysResult {
    let ms = args.int(2);
    let timeout = if ms < 0 {
        Timeout::Forever
    } else {
        Timeout::Ms(ms as u64)
    };
    poll_fds(args.ptr(0), u64::from(args.uint(1)), timeout)
}

/// ppoll(fds, nfds, tsp, sigmask, sigsetsize): like poll with a timespec; the signal
/// mask, if given, is in force during the wait (Linux `do_ppoll`).
pub fn ppoll(args: Args) -> SysResult {
    let tsp = args.ptr(2);
    let timeout = if tsp == 0 {
        Timeout::Forever
    } else {
        let secs = uaccess::read_u64(tsp)?;
        let nanos = uaccess::read_u64(tsp + 8)?;
        if (secs as i64) < 0 || nanos >= 1_000_000_000 {
            return Err(Errno::EINVAL);
        }
        Timeout::Ms(
            secs.saturating_mul(1000)
                .saturating_add(nanos.div_ceil(1_000_000)),
        )
    };
    let (mask, size) = (args.ptr(3), args.ulong(4));
    if mask == 0 {
        return poll_fds(args.ptr(0), u64::from(args.uint(1)), timeout);
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    // In force until the call returns, or, if a signal cuts it short, until that signal's
    // handler is set up (Linux `restore_saved_sigmask_unless`): the race-free pattern of
    // ppoll/pselect depends on it.
    let new = crate::proc::signal::SigSet(uaccess::read_u64(mask)?);
    let p = sched::current();
    p.with(|i| i.signals.set_temporary_mask(new));
    let r = poll_fds(args.ptr(0), u64::from(args.uint(1)), timeout);
    if r != Err(Errno::ERESTARTNOHAND) {
        p.with(|i| i.signals.restore_saved_mask());
    }
    r
}

/// Check every `struct pollfd { int fd; short events; short revents; }` at `fds`; wait
/// (in 1 ms ticks) until one is ready, the timeout passes, or a signal is to be handled
/// (ERESTARTNOHAND: restarted if no handler runs, else EINTR, as Linux). Returns how
/// many have events.
fn poll_fds(fds: u64, nfds: u64, timeout: Timeout) -> SysResult {
    const NOFILE: u64 = crate::fs::MAX_FDS as u64;
    if nfds > NOFILE.max(1024) {
        return Err(Errno::EINVAL);
    }
    let start = crate::arch::x86_64::interrupts::ticks();
    loop {
        let mut ready = 0u64;
        for i in 0..nfds {
            let at = fds + i * 8;
            let mut raw = [0u8; 8];
            uaccess::read_bytes(at, &mut raw)?;
            let fd = i32::from_le_bytes(raw[0..4].try_into().expect("4 bytes"));
            let events = u16::from_le_bytes(raw[4..6].try_into().expect("2 bytes"));
            let revents = if fd < 0 {
                0
            } else {
                match file(fd) {
                    Ok(f) => {
                        let got = f.poll();
                        let wanted = crate::fs::PollEvents::from_bits_truncate(events)
                            | crate::fs::PollEvents::ERR
                            | crate::fs::PollEvents::HUP;
                        (got & wanted).bits()
                    }
                    Err(_) => crate::fs::PollEvents::NVAL.bits(),
                }
            };
            uaccess::write_bytes(at + 6, &revents.to_le_bytes())?;
            ready += u64::from(revents != 0);
        }
        if ready > 0 {
            return Ok(ready);
        }
        let elapsed = crate::arch::x86_64::interrupts::ticks() - start;
        if let Timeout::Ms(ms) = timeout {
            if elapsed >= ms {
                return Ok(0);
            }
        }
        sched::sleep_ticks(1);
        if crate::proc::signal::pending_for_current() {
            return Err(Errno::ERESTARTNOHAND);
        }
    }
}
