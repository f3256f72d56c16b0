//! One wrapper per system call. Each returns `Result<usize, Errno>`: `Ok(rax)` on
//! success, `Err(Errno(-rax))` when the kernel returned -4095..=-1 (Linux's rule).
//!
//! Calls whose memory safety depends on their arguments (unmapping, changing
//! protections, raw pointers the kernel writes through later) are `unsafe fn`; the
//! others take Rust references and slices and are safe.

use core::ffi::{c_char, CStr};
use core::marker::PhantomData;

use crate::errno::Errno;
use crate::nr;
use crate::raw::syscall6;

/// What every wrapper returns.
pub type Result<T> = core::result::Result<T, Errno>;

/// Linux's rule for telling an error from a result: -4095..=-1 is `-errno`.
fn check(ret: isize) -> Result<usize> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// `syscall6` for calls whose arguments are plain numbers or pointers the wrapper built
/// from references it holds for the duration of the call.
macro_rules! call {
    ($nr:expr $(, $arg:expr)* $(,)?) => {{
        let mut a = [0usize; 6];
        let args: &[usize] = &[$($arg as usize),*];
        a[..args.len()].copy_from_slice(args);
        // SAFETY: every use below passes only numbers, or pointers derived from Rust
        // references/slices that are live and large enough for the whole call (the
        // wrapper's signature ties their lifetimes to the call), or has its own
        // `unsafe fn` contract that the caller upholds.
        check(unsafe { syscall6($nr, a) })
    }};
}

// ---- open(2) flags, mmap(2) constants, and the like (Linux x86-64 values) ----

pub const O_RDONLY: usize = 0;
pub const O_WRONLY: usize = 1;
pub const O_RDWR: usize = 2;
pub const O_CREAT: usize = 0o100;
pub const O_TRUNC: usize = 0o1000;
pub const O_APPEND: usize = 0o2000;
pub const O_DIRECTORY: usize = 0o200000;
pub const O_CLOEXEC: usize = 0o2000000;

/// `dirfd` meaning "the working directory" (for [`newfstatat`]).
pub const AT_FDCWD: isize = -100;
/// File type bits of `Stat::mode`, and two of the types.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;

pub const PROT_NONE: usize = 0;
pub const PROT_READ: usize = 1;
pub const PROT_WRITE: usize = 2;
pub const PROT_EXEC: usize = 4;
pub const MAP_SHARED: usize = 0x01;
pub const MAP_PRIVATE: usize = 0x02;
pub const MAP_FIXED: usize = 0x10;
pub const MAP_ANONYMOUS: usize = 0x20;
pub const MADV_DONTNEED: usize = 4;

pub const WNOHANG: usize = 1;

pub const SIGKILL: usize = 9;
pub const SIGTERM: usize = 15;

pub const CLOCK_REALTIME: usize = 0;
pub const CLOCK_MONOTONIC: usize = 1;

pub const ARCH_SET_FS: usize = 0x1002;
pub const ARCH_GET_FS: usize = 0x1003;

pub const LINUX_REBOOT_MAGIC1: usize = 0xfee1_dead;
pub const LINUX_REBOOT_MAGIC2: usize = 672_274_793;
pub const LINUX_REBOOT_CMD_RESTART: usize = 0x0123_4567;
pub const LINUX_REBOOT_CMD_HALT: usize = 0xcdef_0123;
pub const LINUX_REBOOT_CMD_POWER_OFF: usize = 0x4321_fedc;

// ---- structures the kernel reads or fills in (Linux x86-64 layouts) ----

/// `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

/// `struct iovec` for [`writev`], borrowing the bytes it points at.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IoSlice<'a> {
    base: *const u8,
    len: usize,
    _bytes: PhantomData<&'a [u8]>,
}

impl<'a> IoSlice<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        IoSlice {
            base: bytes.as_ptr(),
            len: bytes.len(),
            _bytes: PhantomData,
        }
    }
}

/// `struct sysinfo` (112 bytes on x86-64). Memory sizes are in units of `mem_unit` bytes.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SysInfo {
    pub uptime: i64,
    pub loads: [u64; 3],
    pub totalram: u64,
    pub freeram: u64,
    pub sharedram: u64,
    pub bufferram: u64,
    pub totalswap: u64,
    pub freeswap: u64,
    pub procs: u16,
    pub pad: u16,
    pub totalhigh: u64,
    pub freehigh: u64,
    pub mem_unit: u32,
}

/// `struct stat` (144 bytes on x86-64), as newfstatat(2) and fstat(2) fill it in.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub pad0: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub unused: [i64; 3],
}

const _: () = assert!(core::mem::size_of::<Stat>() == 144);

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
}

/// `struct utsname` (six NUL-terminated fields of 65 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UtsName {
    pub sysname: [u8; 65],
    pub nodename: [u8; 65],
    pub release: [u8; 65],
    pub version: [u8; 65],
    pub machine: [u8; 65],
    pub domainname: [u8; 65],
}

impl Default for UtsName {
    fn default() -> Self {
        UtsName {
            sysname: [0; 65],
            nodename: [0; 65],
            release: [0; 65],
            version: [0; 65],
            machine: [0; 65],
            domainname: [0; 65],
        }
    }
}

/// The text of one `utsname` field, up to its NUL.
pub fn uts_field(field: &[u8; 65]) -> &str {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..len]).unwrap_or("?")
}

// ---- the calls, in system call number order ----

/// read(2): read up to `buf.len()` bytes from `fd`; `Ok(0)` is end of file.
pub fn read(fd: usize, buf: &mut [u8]) -> Result<usize> {
    call!(nr::READ, fd, buf.as_mut_ptr(), buf.len())
}

/// write(2): write up to `buf.len()` bytes to `fd`; returns how many were written.
pub fn write(fd: usize, buf: &[u8]) -> Result<usize> {
    call!(nr::WRITE, fd, buf.as_ptr(), buf.len())
}

/// open(2): returns the new file descriptor.
pub fn open(path: &CStr, flags: usize, mode: usize) -> Result<usize> {
    call!(nr::OPEN, path.as_ptr(), flags, mode)
}

/// close(2).
pub fn close(fd: usize) -> Result<usize> {
    call!(nr::CLOSE, fd)
}

/// mmap(2): returns the address of the mapping.
///
/// # Safety
///
/// With `MAP_FIXED` the new mapping replaces whatever was mapped at `addr..addr+len`:
/// the caller must own that range (no Rust object, stack or code lives there).
pub unsafe fn mmap(
    addr: usize,
    len: usize,
    prot: usize,
    flags: usize,
    fd: isize,
    offset: usize,
) -> Result<usize> {
    call!(nr::MMAP, addr, len, prot, flags, fd, offset)
}

/// A fresh private anonymous mapping of `len` bytes (zero-filled) where the kernel
/// chooses: mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0). Safe: without
/// `MAP_FIXED` the kernel never places it over an existing mapping.
pub fn mmap_anonymous(len: usize, prot: usize) -> Result<usize> {
    // SAFETY: no MAP_FIXED, so no existing memory is replaced.
    unsafe { mmap(0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) }
}

/// mprotect(2).
///
/// # Safety
///
/// Rust code must not access `addr..addr+len` in a way the new protection forbids
/// (e.g. the caller owns the range and no reference into it is live).
pub unsafe fn mprotect(addr: usize, len: usize, prot: usize) -> Result<usize> {
    call!(nr::MPROTECT, addr, len, prot)
}

/// munmap(2).
///
/// # Safety
///
/// Nothing may use `addr..addr+len` afterwards: the caller must own the range (it came
/// from its own `mmap`) and no reference into it may be live.
pub unsafe fn munmap(addr: usize, len: usize) -> Result<usize> {
    call!(nr::MUNMAP, addr, len)
}

/// brk(2), the raw system call: asks for the program break at `addr` (0 = just ask)
/// and returns the break now in force. Linux never fails this call: when it cannot
/// move the break it returns the old one, so compare the result with `addr`.
///
/// # Safety
///
/// Lowering the break unmaps memory: only the heap ([`crate::heap`]), which owns the
/// area above the initial break, may move it.
pub unsafe fn brk(addr: usize) -> Result<usize> {
    call!(nr::BRK, addr)
}

/// writev(2): write the slices in order as one operation.
pub fn writev(fd: usize, iov: &[IoSlice<'_>]) -> Result<usize> {
    call!(nr::WRITEV, fd, iov.as_ptr(), iov.len())
}

/// sched_yield(2).
pub fn sched_yield() -> Result<usize> {
    call!(nr::SCHED_YIELD)
}

/// madvise(2), e.g. `MADV_DONTNEED`.
///
/// # Safety
///
/// `MADV_DONTNEED` on private anonymous memory replaces its contents with zeros: the
/// caller must own the range and hold no reference into it whose contents matter.
pub unsafe fn madvise(addr: usize, len: usize, advice: usize) -> Result<usize> {
    call!(nr::MADVISE, addr, len, advice)
}

/// nanosleep(2): sleep for `req`; if interrupted, the time left goes into `rem`.
pub fn nanosleep(req: &Timespec, rem: Option<&mut Timespec>) -> Result<usize> {
    let rem = rem.map_or(core::ptr::null_mut(), |r| r as *mut Timespec);
    call!(nr::NANOSLEEP, req as *const Timespec, rem)
}

/// getpid(2).
pub fn getpid() -> Result<usize> {
    call!(nr::GETPID)
}

/// fork(2): `Ok(0)` in the child, `Ok(child pid)` in the parent. Our processes have a
/// single thread, so the child is a complete copy (including the heap and its lock).
pub fn fork() -> Result<usize> {
    call!(nr::FORK)
}

/// execve(2): returns only on failure (on success the program is replaced).
///
/// # Safety
///
/// `path` must point to a NUL-terminated string; `argv` and `envp` to arrays of
/// pointers to NUL-terminated strings, each array ending with a null pointer. See
/// [`crate::process::exec`] for a safe version.
pub unsafe fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> Result<usize> {
    call!(nr::EXECVE, path, argv, envp)
}

/// exit(2): ends the calling thread (our processes have one) with `status & 0xff`.
pub fn exit(status: i32) -> ! {
    let _ = call!(nr::EXIT, status as isize);
    unreachable_exit()
}

/// wait4(2) without rusage: waits for child `pid` (-1 = any child), stores its wait
/// status (see [`crate::process::WaitStatus`]), returns its pid (0 with `WNOHANG` when
/// none has ended yet).
pub fn wait4(pid: isize, status: &mut i32, options: usize) -> Result<usize> {
    call!(nr::WAIT4, pid, status as *mut i32, options, 0usize)
}

/// kill(2): send signal `sig` to process `pid`.
pub fn kill(pid: isize, sig: usize) -> Result<usize> {
    call!(nr::KILL, pid, sig)
}

/// uname(2).
pub fn uname(buf: &mut UtsName) -> Result<usize> {
    call!(nr::UNAME, buf as *mut UtsName)
}

/// sysinfo(2).
pub fn sysinfo(info: &mut SysInfo) -> Result<usize> {
    call!(nr::SYSINFO, info as *mut SysInfo)
}

/// getppid(2).
pub fn getppid() -> Result<usize> {
    call!(nr::GETPPID)
}

/// arch_prctl(2), e.g. `ARCH_SET_FS` (the thread pointer that musl's TLS uses).
///
/// # Safety
///
/// `ARCH_SET_FS` changes what `fs:`-relative accesses (thread-local storage) refer to:
/// `addr` must be a valid thread control block for code that uses TLS. `ARCH_GET_FS`
/// writes a `u64` to `addr`, which must be valid for that write.
pub unsafe fn arch_prctl(code: usize, addr: usize) -> Result<usize> {
    call!(nr::ARCH_PRCTL, code, addr)
}

/// reboot(2) with Linux's magic numbers, e.g. `LINUX_REBOOT_CMD_POWER_OFF`. On our
/// kernel only pid 1 may do it; POWER_OFF ends QEMU as if init exited with status 0.
/// (On a Linux host as root this really powers the machine off.)
pub fn reboot(cmd: usize) -> Result<usize> {
    call!(
        nr::REBOOT,
        LINUX_REBOOT_MAGIC1,
        LINUX_REBOOT_MAGIC2,
        cmd,
        0usize
    )
}

/// gettid(2).
pub fn gettid() -> Result<usize> {
    call!(nr::GETTID)
}

/// getdents64(2): fill `buf` with `struct linux_dirent64` records of the directory open
/// on `fd`; returns how many bytes it filled, 0 at the end of the directory. (Not on
/// memkernel yet: ENOSYS there, and no directory can be opened anyway.)
pub fn getdents64(fd: usize, buf: &mut [u8]) -> Result<usize> {
    call!(nr::GETDENTS64, fd, buf.as_mut_ptr(), buf.len())
}

/// set_tid_address(2): returns the caller's thread id.
///
/// # Safety
///
/// When the thread exits the kernel writes 0 to `tidptr` (and wakes futex waiters):
/// it must stay valid for a 4-byte write for the rest of the thread's life, or be null.
pub unsafe fn set_tid_address(tidptr: *mut i32) -> Result<usize> {
    call!(nr::SET_TID_ADDRESS, tidptr)
}

/// clock_gettime(2).
pub fn clock_gettime(clock: usize, tp: &mut Timespec) -> Result<usize> {
    call!(nr::CLOCK_GETTIME, clock, tp as *mut Timespec)
}

/// newfstatat(2): what `path` is (relative paths from `dirfd`, e.g. [`AT_FDCWD`]).
pub fn newfstatat(dirfd: isize, path: &CStr, st: &mut Stat, flags: usize) -> Result<usize> {
    call!(nr::NEWFSTATAT, dirfd, path.as_ptr(), st as *mut Stat, flags)
}

/// stat(2) by way of newfstatat(AT_FDCWD, path, st, 0), what C libraries do.
pub fn stat(path: &CStr, st: &mut Stat) -> Result<usize> {
    newfstatat(AT_FDCWD, path, st, 0)
}

/// exit_group(2): ends the process with `status & 0xff`.
pub fn exit_group(status: i32) -> ! {
    let _ = call!(nr::EXIT_GROUP, status as isize);
    unreachable_exit()
}

/// After an exit call that returned (a kernel bug): try exit(2), then fault.
#[cold]
fn unreachable_exit() -> ! {
    let _ = call!(nr::EXIT, 127usize);
    loop {
        // SAFETY: ud2 raises #UD, which ends the process; it touches no memory.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    }
}
