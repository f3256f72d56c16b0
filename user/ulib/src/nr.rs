//! Linux x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl) that ulib
//! knows, all in the subset memkernel implements (the table of docs chapter 5.9) except
//! `getdents64`, which the shell tries first (Linux has it) and does without here.

pub const READ: usize = 0;
pub const WRITE: usize = 1;
pub const OPEN: usize = 2;
pub const CLOSE: usize = 3;
pub const MMAP: usize = 9;
pub const MPROTECT: usize = 10;
pub const MUNMAP: usize = 11;
pub const BRK: usize = 12;
pub const IOCTL: usize = 16;
pub const WRITEV: usize = 20;
pub const SCHED_YIELD: usize = 24;
pub const MADVISE: usize = 28;
pub const NANOSLEEP: usize = 35;
pub const GETPID: usize = 39;
pub const FORK: usize = 57;
pub const EXECVE: usize = 59;
pub const EXIT: usize = 60;
pub const WAIT4: usize = 61;
pub const KILL: usize = 62;
pub const UNAME: usize = 63;
pub const SYSINFO: usize = 99;
pub const GETPPID: usize = 110;
pub const ARCH_PRCTL: usize = 158;
pub const REBOOT: usize = 169;
pub const GETTID: usize = 186;
pub const GETDENTS64: usize = 217;
pub const SET_TID_ADDRESS: usize = 218;
pub const CLOCK_GETTIME: usize = 228;
pub const EXIT_GROUP: usize = 231;
pub const NEWFSTATAT: usize = 262;
