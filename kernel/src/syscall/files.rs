//! File syscalls: open, close, read, write, writev, ioctl.
#![deny(unsafe_code)]

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;

use super::errno::Errno;
use super::{uaccess, Args, SysResult};
use crate::fs::{File, FileKind};
use crate::proc::sched;

/// `open` flags (Linux values).
const O_ACCMODE: i32 = 3;
const O_RDONLY: i32 = 0;
const O_WRONLY: i32 = 1;
const O_RDWR: i32 = 2;
const O_CREAT: i32 = 0o100;

/// Longest path we accept (Linux PATH_MAX).
const PATH_MAX: usize = 4096;
/// Bytes moved per step between user memory and a device.
const CHUNK: usize = 512;

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
    open_path(&alloc::format!("/{path}"), args.int(2))
}

/// Open `path` with `flags` into the lowest free fd.
fn open_path(path: &str, flags: i32) -> SysResult {
    let (readable, writable) = match flags & O_ACCMODE {
        O_RDONLY => (true, false),
        O_WRONLY => (false, true),
        O_RDWR => (true, true),
        _ => return Err(Errno::EINVAL),
    };
    let kind = match path {
        "/dev/console" => FileKind::Console,
        "/proc/ps" => FileKind::Snapshot(ps_text()),
        "/proc/self/ptes" => FileKind::Snapshot(crate::fs::procfs::page_states(&sched::current())),
        "/dev/hmm_dmirror0" => FileKind::Dmirror(crate::drivers::hmm::open(0)?),
        "/dev/hmm_dmirror1" => FileKind::Dmirror(crate::drivers::hmm::open(1)?),
        _ => match crate::fs::initramfs::lookup(path) {
            Some(_) if writable => return Err(Errno::EROFS),
            Some(data) => FileKind::Initramfs { data },
            None if flags & O_CREAT != 0 => return Err(Errno::EROFS),
            None => return Err(Errno::ENOENT),
        },
    };
    let f = File::new(kind, readable, writable);
    match sched::current().with(|p| p.files.insert(f)) {
        Ok(fd) => Ok(fd as u64),
        Err((errno, f)) => {
            // Dropped here, not under the process lock: the release of a dmirror (the
            // last reference) may sleep.
            drop(f);
            Err(errno)
        }
    }
}

/// The text of /proc/ps: one line per process.
fn ps_text() -> Vec<u8> {
    let mut s = String::from("  PID  PPID STATE     NAME\n");
    for (pid, ppid, state, name) in crate::proc::list() {
        let state = match state {
            crate::proc::State::Runnable => "runnable",
            crate::proc::State::Running => "running",
            crate::proc::State::Sleeping => "sleeping",
            crate::proc::State::Zombie(_) => "zombie",
        };
        let _ = writeln!(s, "{pid:>5} {ppid:>5} {state:<9} {name}");
    }
    let free = crate::mm::frame::free_frames();
    let _ = writeln!(s, "free memory: {} KiB ({free} frames)", free * 4);
    s.into_bytes()
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
    if !f.readable {
        return Err(Errno::EBADF);
    }
    let (buf, count) = (args.ptr(1), args.ulong(2) as usize);
    if count == 0 {
        return Ok(0);
    }
    match &f.kind {
        FileKind::Console => read_console(buf, count),
        FileKind::Dmirror(_) => Err(Errno::EINVAL),
        FileKind::Initramfs { .. } | FileKind::Snapshot(_) => {
            // Copy straight from the file to the user buffer; the offset moves only by
            // what arrived, so a bad buffer (EFAULT) leaves it where it was.
            let (data, _) = f.remaining()?;
            let n = count.min(data.len());
            uaccess::write_bytes(buf, &data[..n])?;
            f.advance(n);
            Ok(n as u64)
        }
    }
}

/// Block until the console has input, then return what is there (at least one byte).
/// The console is raw: no echo, no line editing (the shell does both).
fn read_console(buf: u64, count: usize) -> SysResult {
    // Check that the buffer is writable before waiting for a key.
    uaccess::write_bytes(buf, &[0])?;
    loop {
        let mut got = Vec::new();
        while got.len() < count.min(CHUNK) {
            match crate::drivers::serial::try_read_byte() {
                Some(b) => got.push(b),
                None => break,
            }
        }
        if !got.is_empty() {
            uaccess::write_bytes(buf, &got)?;
            return Ok(got.len() as u64);
        }
        sched::sleep_ticks(10);
        if crate::proc::signal::pending_for_current() {
            return Err(Errno::ERESTARTSYS); // restarted, or EINTR after a handler
        }
    }
}

/// write(fd, buf, count)
pub fn write(args: Args) -> SysResult {
    let f = file(args.fd(0))?;
    write_to(&f, args.ptr(1), args.ulong(2) as usize)
}

fn write_to(f: &File, buf: u64, count: usize) -> SysResult {
    if !f.writable {
        return Err(Errno::EBADF);
    }
    match &f.kind {
        FileKind::Console => {
            let mut done = 0;
            while done < count {
                let mut chunk = [0u8; CHUNK];
                let n = (count - done).min(CHUNK);
                uaccess::read_bytes(buf + done as u64, &mut chunk[..n])?;
                crate::drivers::serial::write_bytes(&chunk[..n]);
                done += n;
            }
            Ok(done as u64)
        }
        FileKind::Initramfs { .. } | FileKind::Snapshot(_) | FileKind::Dmirror(_) => {
            Err(Errno::EBADF)
        }
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

/// ioctl(fd, request, arg): the console answers TIOCGWINSZ (so C programs see a
/// terminal and line-buffer stdout); a dmirror has the ioctls of its driver; everything
/// else is ENOTTY. The request is 32 bits (`unsigned int cmd`): musl passes it as an
/// `int`, sign-extended, so 0xc0284805 arrives as 0xffffffffc0284805.
pub fn ioctl(args: Args) -> SysResult {
    const TIOCGWINSZ: u32 = 0x5413;
    let f = file(args.fd(0))?;
    let request = args.uint(1);
    match (&f.kind, request) {
        (FileKind::Dmirror(mirror), _) => {
            crate::drivers::hmm::ioctl(mirror, request, args.ulong(2))
        }
        (FileKind::Console, TIOCGWINSZ) => {
            // struct winsize { rows, cols, xpixel, ypixel: u16 }
            let ws: [u16; 4] = [24, 80, 0, 0];
            let mut raw = [0u8; 8];
            for (i, v) in ws.iter().enumerate() {
                raw[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
            }
            uaccess::write_bytes(args.ptr(2), &raw)?;
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
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
        crate::fs::stat_path(&alloc::format!("/{path}"))?
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
    let exe = sched::current().with(|p| p.exe.clone());
    let n = exe.len().min(size as usize);
    uaccess::write_bytes(args.ptr(1), &exe.as_bytes()[..n])?;
    Ok(n as u64)
}
