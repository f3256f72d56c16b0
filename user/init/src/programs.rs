//! What the programs in /bin are: a line each for `help`, so a newcomer knows where to
//! start. A program this table does not know is listed by name alone; `NAME_glibc` is
//! NAME built against glibc instead of musl (scripts/build-user.sh).

use alloc::format;
use alloc::string::String;

use crate::dir;
use ulib::println;

/// The built-in commands, as the greeting and `help` show them.
pub const BUILTINS: &str = "built-ins: help [NAME], ls [DIR...], echo WORDS, free, ps, exit [N]";

/// (program, what it is), for the programs of user/ and user/c.
#[rustfmt::skip]
const DESCRIPTIONS: &[(&str, &str)] = &[
    ("exdemo", "start here: device-exclusive access, narrated step by step"),
    ("cowdemo", "demand-zero pages and copy-on-write, step by step"),
    ("hello", "prints a greeting and its arguments: the smallest program"),
    ("bench", "memory-management micro-benchmarks (key=value lines)"),
    ("bench_hmm", "benchmarks of device-exclusive access (/dev/hmm_dmirror0)"),
    ("init", "this shell (the kernel starts it as /init, pid 1)"),
    ("fuzz_sys", "random system calls; the kernel must survive [SEED [CALLS]]"),
    ("fuzz_hmm", "random device-exclusive traffic mixed with mmap and fork"),
    ("failwrap", "run a program with a share of kernel allocations failing"),
    ("t_abi", "test: argument widths and error codes as Linux has them"),
    ("t_cow", "test: copy-on-write isolation after fork, both ways"),
    ("t_cowtest", "test: xv6's cowtest (simple, three), sized with sysinfo"),
    ("t_efault", "test: every bad pointer a syscall takes gives EFAULT"),
    ("t_enomem", "test: run out of memory with processes, get every page back"),
    ("t_exec", "test: execve"),
    ("t_failnth", "test: each allocation a syscall makes fails in turn (fail-nth)"),
    ("t_fdinherit", "test: file descriptors across fork"),
    ("t_fork", "test: fork basics"),
    ("t_fork100", "test: 100 processes alive at once"),
    ("t_hmm_close", "test: closing a device file while the device is busy"),
    ("t_hmm_exclusive", "test: device-exclusive access in one process"),
    ("t_hmm_fork", "test: device-exclusive pages across fork, unmap and exit"),
    ("t_hmm_race", "test: device-exclusive access under concurrency"),
    ("t_hmm_unmap", "test: the device never keeps a page the CPU side replaced"),
    ("t_kill_wait", "test: every wait a process can be in is killable"),
    ("t_libc", "test: ordinary musl code (printf, malloc, strings)"),
    ("t_mmap", "test: mmap, munmap, mprotect and madvise"),
    ("t_pipe", "test: pipes, dup/dup2/dup3, fcntl, close-on-exec, SIGPIPE"),
    ("t_procfs", "test: /proc files are produced as they are read"),
    ("t_rust", "test: user-space tests in Rust on ulib (no libc)"),
    ("t_shm", "test: shared anonymous memory across fork"),
    ("t_signal", "test: POSIX signals (handlers, frames, alarm, masks)"),
    ("t_sys", "test: the small system calls, and the scheduler"),
    ("t_wait", "test: wait statuses, faults and kill()"),
];

/// What `name` is, if the table knows it (or knows the musl program it is a glibc build of).
pub fn describe(name: &str) -> Option<String> {
    let find = |n: &str| DESCRIPTIONS.iter().find(|(p, _)| *p == n).map(|(_, d)| *d);
    if let Some(d) = find(name) {
        return Some(String::from(d));
    }
    let base = name.strip_suffix("_glibc")?;
    find(base).map(|d| format!("{d} (built with glibc)"))
}

/// `help`: the built-ins, then every program in /bin with a line each.
pub fn help() {
    println!("{BUILTINS}");
    println!("  any other NAME ARGS runs /bin/NAME; `help NAME` says what NAME is");
    println!("  Ctrl-C drops the line; Ctrl-D or `exit N` leaves the shell and powers off");
    let Some(entries) = dir::list("/bin") else {
        println!(
            "programs: /bin cannot be listed here (no getdents64, no {})",
            dir::BIN_INDEX
        );
        return;
    };
    println!("programs in /bin:");
    let width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0)
        .min(16);
    for e in entries.iter().filter(|e| !e.is_dir) {
        match describe(&e.name) {
            Some(d) => println!("  {:<width$}  {d}", e.name),
            None => println!("  {}", e.name),
        }
    }
}

/// `help NAME`: what one program or built-in is.
pub fn help_for(name: &str) {
    let builtin = match name {
        "help" => Some("help [NAME]: the built-ins and the programs in /bin, or what NAME is"),
        "ls" => Some("ls [DIR...]: the entries of each DIR (default: /bin, /dev and /proc)"),
        "echo" => Some("echo WORDS: print the words"),
        "free" => Some("free: total, used and free memory (sysinfo)"),
        "ps" => Some("ps: the processes (/proc/ps)"),
        "exit" => Some("exit [N]: leave the shell with status N; as pid 1 that powers off"),
        _ => None,
    };
    match (builtin, describe(name)) {
        (Some(b), _) => println!("{b}"),
        (None, Some(d)) => println!("{name}: {d}"),
        (None, None) if dir::exists(&format!("/bin/{name}")) => {
            println!("{name}: a program in /bin (no description)");
        }
        (None, None) => println!("{name}: neither a built-in nor a program in /bin"),
    }
}
