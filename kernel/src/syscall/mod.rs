//! The system-call layer: a subset of the Linux x86-64 ABI (DESIGN.md section 4).
//!
//! [`dispatch`] reads the number and arguments from the saved registers, checks every
//! argument, calls the mechanism (proc/, vm/, fs/) and writes the result (or `-errno`)
//! into rax. User memory is only ever touched through [`uaccess`], which checks VMAs and
//! goes through the page-fault path, so a bad pointer is `-EFAULT`, never a crash.
#![deny(unsafe_code)]

pub mod errno;
mod files;
mod memory;
mod process;
pub mod uaccess;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::syscall::TrapFrame;
use errno::Errno;

/// Linux x86-64 syscall numbers of the subset we implement.
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const IOCTL: u64 = 16;
    pub const WRITEV: u64 = 20;
    pub const SCHED_YIELD: u64 = 24;
    pub const MADVISE: u64 = 28;
    pub const NANOSLEEP: u64 = 35;
    pub const GETPID: u64 = 39;
    pub const FORK: u64 = 57;
    pub const EXECVE: u64 = 59;
    pub const EXIT: u64 = 60;
    pub const WAIT4: u64 = 61;
    pub const KILL: u64 = 62;
    pub const UNAME: u64 = 63;
    pub const SYSINFO: u64 = 99;
    pub const GETPPID: u64 = 110;
    pub const ARCH_PRCTL: u64 = 158;
    pub const REBOOT: u64 = 169;
    pub const GETTID: u64 = 186;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const EXIT_GROUP: u64 = 231;
}

/// What a syscall returns: a value for rax, or an errno.
pub type SysResult = Result<u64, Errno>;

/// The six argument registers, in ABI order.
#[derive(Debug, Clone, Copy)]
pub struct Args {
    pub a0: u64,
    pub a1: u64,
    pub a2: u64,
    pub a3: u64,
    pub a4: u64,
    pub a5: u64,
}

/// Handle the system call whose registers are in `frame`; the result goes to rax.
pub fn dispatch(frame: &mut TrapFrame) {
    let number = frame.rax;
    let args = Args {
        a0: frame.rdi,
        a1: frame.rsi,
        a2: frame.rdx,
        a3: frame.r10,
        a4: frame.r8,
        a5: frame.r9,
    };
    // Syscalls run with interrupts on, so the timer keeps ticking while we work or sleep.
    x86_64::instructions::interrupts::enable();
    let result = match number {
        nr::READ => files::read(args),
        nr::WRITE => files::write(args),
        nr::OPEN => files::open(args),
        nr::CLOSE => files::close(args),
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
        nr::EXECVE => process::execve(frame, args),
        nr::EXIT | nr::EXIT_GROUP => process::exit(args),
        nr::WAIT4 => process::wait4(args),
        nr::KILL => process::kill(args),
        nr::UNAME => process::uname(args),
        nr::SYSINFO => process::sysinfo(args),
        nr::ARCH_PRCTL => process::arch_prctl(args),
        nr::REBOOT => process::reboot(args),
        nr::SET_TID_ADDRESS => process::getpid(),
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
    crate::proc::exit_if_killed();
    x86_64::instructions::interrupts::disable();
}

/// Numbers we already logged, so each unknown one is reported once.
static LOGGED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn unknown(number: u64) -> SysResult {
    let (word, bit) = ((number / 64) as usize, number % 64);
    let first_time = LOGGED
        .get(word)
        .is_some_and(|w| w.fetch_or(1 << bit, Ordering::Relaxed) & (1 << bit) == 0);
    if first_time || word >= LOGGED.len() {
        let pid = crate::proc::sched::current().pid;
        log::warn!("pid {pid}: unsupported syscall {number}, returning -ENOSYS");
    }
    Err(Errno::ENOSYS)
}
