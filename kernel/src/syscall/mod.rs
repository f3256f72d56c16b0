//! The system-call layer: a subset of the Linux x86-64 ABI (the table is in docs chapter
//! 5.9).
//!
//! [`dispatch`] reads the number and arguments from the saved registers, checks every
//! argument, calls the mechanism (proc/, vm/, fs/) and writes the result (or `-errno`)
//! into rax. User memory is only ever touched through [`uaccess`], which checks VMAs and
//! goes through the page-fault path, so a bad pointer is `-EFAULT`, never a crash.
//!
//! # Argument types
//!
//! Linux declares every system call with C types (`SYSCALL_DEFINEn` in the kernel,
//! `include/linux/syscalls.h`), and the type is part of the ABI: an argument declared
//! `int` or `unsigned int` is the low 32 bits of its register, whatever the upper half
//! holds. That matters: musl's `ioctl(int fd, int req, ...)` passes the request as an
//! `int`, so `0xc0284805` arrives sign-extended as `0xffffffffc0284805`. Handlers
//! therefore read their arguments only through the typed accessors of [`Args`]
//! (`fd`, `int`, `uint`, `ulong`, `ptr`), one per C type, never as raw registers.
//!
//! Every system call here, by number, with its Linux prototype, then (after the colon)
//! the arguments that are 32 bits and so use only the low half of their register:
//!
//! - 0 `read(unsigned int fd, char *buf, size_t count)`: fd
//! - 1 `write(unsigned int fd, const char *buf, size_t count)`: fd
//! - 2 `open(const char *filename, int flags, umode_t mode)`: flags (mode is unused)
//! - 3 `close(unsigned int fd)`: fd
//! - 5 `fstat(unsigned int fd, struct stat *statbuf)`: fd
//! - 8 `lseek(unsigned int fd, off_t offset, unsigned int whence)`: fd, whence
//! - 7 `poll(struct pollfd *ufds, unsigned int nfds, int timeout_msecs)`: nfds,
//!   timeout_msecs
//! - 9 `mmap(unsigned long addr, unsigned long len, unsigned long prot, unsigned long
//!   flags, unsigned long fd, unsigned long off)`: fd (Linux's `fget` takes an
//!   `unsigned int`); unknown prot and flag bits, above 32 included, are ignored
//! - 10 `mprotect(unsigned long start, size_t len, unsigned long prot)`: none; an
//!   unknown prot bit, above 32 included, is EINVAL
//! - 11 `munmap(unsigned long addr, size_t len)`: none
//! - 12 `brk(unsigned long brk)`: none
//! - 13 `rt_sigaction(int sig, const struct sigaction *act, struct sigaction *oact,
//!   size_t sigsetsize)`: sig
//! - 14 `rt_sigprocmask(int how, sigset_t *set, sigset_t *oset, size_t sigsetsize)`: how
//! - 15 `rt_sigreturn(void)`
//! - 16 `ioctl(unsigned int fd, unsigned int cmd, unsigned long arg)`: fd, cmd
//! - 17 `pread64(unsigned int fd, char *buf, size_t count, loff_t pos)`: fd
//! - 22 `pipe(int *fildes)`, 293 `pipe2(int *fildes, int flags)`: flags
//! - 32 `dup(unsigned int fildes)`, 33 `dup2(unsigned int oldfd, unsigned int newfd)`,
//!   292 `dup3(unsigned int oldfd, unsigned int newfd, int flags)`: the fds, flags
//! - 72 `fcntl(unsigned int fd, unsigned int cmd, unsigned long arg)`: fd, cmd
//! - 20 `writev(unsigned long fd, const struct iovec *vec, unsigned long vlen)`: fd
//!   (Linux's `fdget_pos` takes an `unsigned int`)
//! - 24 `sched_yield(void)`
//! - 28 `madvise(unsigned long start, size_t len, int behavior)`: behavior
//! - 34 `pause(void)`
//! - 35 `nanosleep(struct __kernel_timespec *rqtp, struct __kernel_timespec *rmtp)`
//!   (rmtp is unused)
//! - 36 `getitimer(int which, struct __kernel_old_itimerval *value)`: which
//! - 37 `alarm(unsigned int seconds)`: seconds
//! - 38 `setitimer(int which, struct __kernel_old_itimerval *value,
//!   struct __kernel_old_itimerval *ovalue)`: which (ITIMER_REAL only)
//! - 39 `getpid(void)`
//! - 56 `clone(unsigned long clone_flags, unsigned long newsp, int *parent_tidptr,
//!   int *child_tidptr, unsigned long tls)`: none (processes only: see `process::clone`)
//! - 57 `fork(void)`
//! - 59 `execve(const char *filename, const char *const *argv, const char *const *envp)`
//! - 60 `exit(int error_code)`: error_code
//! - 61 `wait4(pid_t pid, int *stat_addr, int options, struct rusage *ru)`: pid, options
//!   (ru is unused)
//! - 62 `kill(pid_t pid, int sig)`: pid, sig
//! - 63 `newuname(struct new_utsname *name)`
//! - 99 `sysinfo(struct sysinfo *info)`
//! - 89 `readlink(const char *path, char *buf, int bufsiz)`: bufsiz
//! - 109 `setpgid(pid_t pid, pid_t pgid)`: pid, pgid
//! - 110 `getppid(void)`
//! - 111 `getpgrp(void)`
//! - 112 `setsid(void)`
//! - 121 `getpgid(pid_t pid)`: pid
//! - 124 `getsid(pid_t pid)`: pid
//! - 127 `rt_sigpending(sigset_t *set, size_t sigsetsize)`
//! - 130 `rt_sigsuspend(sigset_t *unewset, size_t sigsetsize)`
//! - 158 `arch_prctl(int option, unsigned long arg2)`: option
//! - 169 `reboot(int magic1, int magic2, unsigned int cmd, void *arg)`: magic1, magic2,
//!   cmd (arg is unused)
//! - 186 `gettid(void)`
//! - 200 `tkill(pid_t pid, int sig)`: pid, sig
//! - 218 `set_tid_address(int *tidptr)`
//! - 228 `clock_gettime(clockid_t which_clock, struct __kernel_timespec *tp)`: which_clock
//! - 230 `clock_nanosleep(clockid_t which_clock, int flags, const struct
//!   __kernel_timespec *rqtp, struct __kernel_timespec *rmtp)`: which_clock, flags
//! - 231 `exit_group(int error_code)`: error_code
//! - 234 `tgkill(pid_t tgid, pid_t pid, int sig)`: tgid, pid, sig
//! - 257 `openat(int dfd, const char *filename, int flags, umode_t mode)`: dfd, flags
//! - 262 `newfstatat(int dfd, const char *filename, struct stat *statbuf, int flag)`:
//!   dfd, flag
//! - 271 `ppoll(struct pollfd *ufds, unsigned int nfds, struct __kernel_timespec *tsp,
//!   const sigset_t *sigmask, size_t sigsetsize)`: nfds
//! - 273 `set_robust_list(struct robust_list_head *head, size_t len)`
//! - 302 `prlimit64(pid_t pid, unsigned int resource, const struct rlimit64 *new_rlim,
//!   struct rlimit64 *old_rlim)`: pid, resource
//! - 318 `getrandom(char *buf, size_t count, unsigned int flags)`: flags
//! - 434 `pidfd_open(pid_t pid, unsigned int flags)`: pid, flags
//! - 334 `rseq(...)` and 435 `clone3(...)`: ENOSYS on purpose (C libraries fall back)
//!
//! `pid_t` and `clockid_t` are `int`; pointers, `size_t` and `unsigned long` are all 64
//! bits. The system call number itself is an `int` too: Linux's entry code uses eax only.
//! An fd is 32 bits whether declared `int` or `unsigned int`; a negative one (as `int`)
//! is EBADF, as a too large `unsigned int` is on Linux.
#![forbid(unsafe_code)]

mod fds;
mod files;
mod memory;
mod process;
mod signal;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::trap::TrapFrame;
use crate::error::Errno;

/// Linux x86-64 syscall numbers of the subset we implement.
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const FSTAT: u64 = 5;
    pub const LSEEK: u64 = 8;
    pub const PIPE: u64 = 22;
    pub const DUP: u64 = 32;
    pub const DUP2: u64 = 33;
    pub const FCNTL: u64 = 72;
    pub const DUP3: u64 = 292;
    pub const PIPE2: u64 = 293;
    pub const POLL: u64 = 7;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const RT_SIGRETURN: u64 = 15;
    pub const IOCTL: u64 = 16;
    pub const PREAD64: u64 = 17;
    pub const WRITEV: u64 = 20;
    pub const SCHED_YIELD: u64 = 24;
    pub const MADVISE: u64 = 28;
    pub const PAUSE: u64 = 34;
    pub const NANOSLEEP: u64 = 35;
    pub const GETITIMER: u64 = 36;
    pub const ALARM: u64 = 37;
    pub const SETITIMER: u64 = 38;
    pub const GETPID: u64 = 39;
    pub const CLONE: u64 = 56;
    pub const FORK: u64 = 57;
    pub const EXECVE: u64 = 59;
    pub const EXIT: u64 = 60;
    pub const WAIT4: u64 = 61;
    pub const KILL: u64 = 62;
    pub const UNAME: u64 = 63;
    pub const SYSINFO: u64 = 99;
    pub const SETPGID: u64 = 109;
    pub const READLINK: u64 = 89;
    pub const GETPPID: u64 = 110;
    pub const GETPGRP: u64 = 111;
    pub const SETSID: u64 = 112;
    pub const RT_SIGPENDING: u64 = 127;
    pub const RT_SIGSUSPEND: u64 = 130;
    pub const GETPGID: u64 = 121;
    pub const GETSID: u64 = 124;
    pub const ARCH_PRCTL: u64 = 158;
    pub const REBOOT: u64 = 169;
    pub const GETTID: u64 = 186;
    pub const TKILL: u64 = 200;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const CLOCK_NANOSLEEP: u64 = 230;
    pub const EXIT_GROUP: u64 = 231;
    pub const TGKILL: u64 = 234;
    pub const OPENAT: u64 = 257;
    pub const NEWFSTATAT: u64 = 262;
    pub const PPOLL: u64 = 271;
    pub const SET_ROBUST_LIST: u64 = 273;
    pub const PRLIMIT64: u64 = 302;
    pub const GETRANDOM: u64 = 318;
    pub const RSEQ: u64 = 334;
    pub const PIDFD_OPEN: u64 = 434;
    pub const CLONE3: u64 = 435;
}

/// What a syscall returns: a value for rax, or an errno.
pub type SysResult = Result<u64, Errno>;

/// The six argument registers, in ABI order (rdi, rsi, rdx, r10, r8, r9). They are read
/// only through the accessors below, each named after the C type the Linux prototype
/// gives the argument (see the table at the top of this module), so that a 32-bit
/// argument is never compared with the upper half of its register. `i` is the argument's
/// position, 0 to 5.
#[derive(Debug, Clone, Copy)]
pub struct Args([u64; 6]);

impl Args {
    fn from_frame(frame: &TrapFrame) -> Args {
        Args([
            frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
        ])
    }

    /// An `unsigned long` or `size_t` argument: the whole register.
    pub fn ulong(self, i: usize) -> u64 {
        self.0[i]
    }

    /// A user pointer: the whole register (uaccess checks it).
    pub fn ptr(self, i: usize) -> u64 {
        self.0[i]
    }

    /// An `unsigned int` argument: the low 32 bits.
    pub fn uint(self, i: usize) -> u32 {
        self.0[i] as u32
    }

    /// An `int` argument (also `pid_t`, `clockid_t`): the low 32 bits, signed.
    pub fn int(self, i: usize) -> i32 {
        self.uint(i) as i32
    }

    /// A file descriptor: the low 32 bits, as C's `int` (the file table answers EBADF
    /// for a negative one).
    pub fn fd(self, i: usize) -> i32 {
        self.int(i)
    }
}

/// Handle the system call whose registers are in `frame`; the result goes to rax.
pub fn dispatch(frame: &mut TrapFrame) {
    // The number is an `int` (Linux `do_syscall_64(regs, int nr)`): the upper half of
    // rax does not count.
    let number = frame.orig_rax & 0xffff_ffff;
    let args = Args::from_frame(frame);
    let result = match number {
        nr::READ => files::read(args),
        nr::WRITE => files::write(args),
        nr::OPEN => files::open(args),
        nr::CLOSE => files::close(args),
        nr::LSEEK => files::lseek(args),
        nr::PIPE => fds::pipe(args),
        nr::PIPE2 => fds::pipe2(args),
        nr::DUP => fds::dup(args),
        nr::DUP2 => fds::dup2(args),
        nr::DUP3 => fds::dup3(args),
        nr::FCNTL => fds::fcntl(args),
        nr::PREAD64 => files::pread64(args),
        nr::IOCTL => files::ioctl(args),
        nr::WRITEV => files::writev(args),
        nr::MMAP => memory::mmap(args),
        nr::MPROTECT => memory::mprotect(args),
        nr::MUNMAP => memory::munmap(args),
        nr::BRK => memory::brk(args),
        nr::MADVISE => memory::madvise(args),
        nr::SCHED_YIELD => process::sched_yield(),
        nr::NANOSLEEP => process::nanosleep(args),
        nr::GETPID | nr::GETTID => process::getpid(),
        nr::GETPPID => process::getppid(),
        nr::FORK => process::fork(frame),
        nr::CLONE => process::clone(frame, args),
        nr::CLONE3 => Err(Errno::ENOSYS), // C libraries fall back to clone
        nr::SET_ROBUST_LIST => process::set_robust_list(args),
        nr::RSEQ => Err(Errno::ENOSYS), // C libraries run without it
        nr::PRLIMIT64 => process::prlimit64(args),
        nr::GETRANDOM => process::getrandom(args),
        nr::FSTAT => files::fstat(args),
        nr::NEWFSTATAT => files::newfstatat(args),
        nr::OPENAT => files::openat(args),
        nr::POLL => files::poll(args),
        nr::PPOLL => files::ppoll(args),
        nr::PIDFD_OPEN => files::pidfd_open(args),
        nr::READLINK => files::readlink(args),
        nr::EXECVE => process::execve(frame, args),
        nr::EXIT | nr::EXIT_GROUP => process::exit(args),
        nr::WAIT4 => process::wait4(args),
        nr::KILL => signal::kill(args),
        nr::TKILL => signal::tkill(args.int(0), args.int(1)),
        nr::TGKILL => signal::tgkill(args),
        nr::RT_SIGACTION => signal::rt_sigaction(args),
        nr::RT_SIGPROCMASK => signal::rt_sigprocmask(args),
        nr::RT_SIGRETURN => signal::rt_sigreturn(frame),
        nr::RT_SIGPENDING => signal::rt_sigpending(args),
        nr::CLOCK_NANOSLEEP => process::clock_nanosleep(args),
        nr::ALARM => signal::alarm(args),
        nr::GETITIMER => signal::getitimer(args),
        nr::SETITIMER => signal::setitimer(args),
        nr::PAUSE => signal::pause(),
        nr::RT_SIGSUSPEND => signal::rt_sigsuspend(args),
        nr::SETPGID => signal::setpgid(args),
        nr::GETPGID => signal::getpgid(args),
        nr::GETPGRP => signal::getpgrp(),
        nr::SETSID => signal::setsid(),
        nr::GETSID => signal::getsid(args),
        nr::UNAME => process::uname(args),
        nr::SYSINFO => process::sysinfo(args),
        nr::ARCH_PRCTL => process::arch_prctl(args),
        nr::REBOOT => process::reboot(args),
        nr::SET_TID_ADDRESS => process::set_tid_address(args),
        nr::CLOCK_GETTIME => process::clock_gettime(args),
        _ => unknown(number),
    };
    // execve rewrote the whole frame; everything else returns a value in rax.
    if !(number == nr::EXECVE && result.is_ok()) {
        frame.rax = match result {
            Ok(v) => v,
            Err(e) => e.as_return(),
        };
    }
}

/// Numbers we already logged, so each unknown one is reported once.
static LOGGED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn unknown(number: u64) -> SysResult {
    let (word, bit) = ((number / 64) as usize, number % 64);
    let first_time = LOGGED
        .get(word)
        .is_some_and(|w| w.fetch_or(1 << bit, Ordering::Relaxed) & (1 << bit) == 0);
    // Numbers past the table are logged at most 10 times per 5 s (Linux
    // printk_ratelimited): a program may issue them in a loop.
    static LIMIT: crate::klog::RateLimit =
        crate::klog::RateLimit::new("unsupported syscalls", 5000, 10);
    if first_time || (word >= LOGGED.len() && LIMIT.allow()) {
        let pid = crate::proc::sched::current().pid;
        log::warn!("pid {pid}: unsupported syscall {number}, returning -ENOSYS");
    }
    Err(Errno::ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::Args;

    #[test_case]
    fn int_arguments_use_the_low_32_bits() {
        let args = Args([
            0xffff_ffff_c028_4805,
            0x1_0000_0003,
            0xffff_ffff_ffff_ffff,
            0x8000_0000,
            0x1234_5678_9abc_def0,
            0,
        ]);
        assert_eq!(args.uint(0), 0xc028_4805);
        assert_eq!(args.fd(1), 3);
        assert_eq!(args.int(2), -1);
        assert_eq!(args.fd(2), -1);
        assert_eq!(args.int(3), i32::MIN);
        assert_eq!(args.ulong(4), 0x1234_5678_9abc_def0);
        assert_eq!(args.ptr(0), 0xffff_ffff_c028_4805);
    }
}
