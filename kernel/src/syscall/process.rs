//! Process syscalls: fork, execve, exit, wait4, kill, getpid/getppid, sched_yield,
//! nanosleep, clock_gettime, arch_prctl, uname, sysinfo, reboot.
#![deny(unsafe_code)]

use alloc::string::String;
use spin::Once;
use x86_64::registers::model_specific::FsBase;
use x86_64::VirtAddr;

use super::{Args, SysResult};
use crate::arch::x86_64::trap::TrapFrame;
use crate::arch::x86_64::{interrupts, tsc};
use crate::error::Errno;
use crate::mm::fallible::try_collect;
use crate::proc::{self, sched, ExitStatus, Pid, WaitChildren, WaitFor, WaitMode};
use crate::vm::uaccess;

pub fn getpid() -> SysResult {
    Ok(sched::current().pid as u64)
}

pub fn getppid() -> SysResult {
    Ok(sched::current().with(|p| p.ppid) as u64)
}

pub fn sched_yield() -> SysResult {
    sched::yield_now();
    Ok(0)
}

/// fork(): the child returns 0 from the same syscall (see `proc::fork`).
pub fn fork(frame: &TrapFrame) -> SysResult {
    Ok(proc::fork(frame, &proc::CloneOptions::fork())? as u64)
}

/// clone(flags, newsp, parent_tid, child_tid, tls): a new *process* (glibc's `fork()`
/// is `clone(CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD, 0, NULL, &tid)`).
/// There are no threads yet: flags that share the address space, files or signal
/// handlers, or set a TLS, are ENOSYS (said once on the console), so a thread library
/// fails cleanly instead of getting a process that looks like a thread (said at most 10
/// times per 5 s). The exit signal (the low byte) is any signal or none, as Linux's.
pub fn clone(frame: &TrapFrame, args: Args) -> SysResult {
    const CSIGNAL: u64 = 0xff;
    const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
    const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
    const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
    let flags = args.ulong(0);
    let handled = CSIGNAL | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID;
    if flags & !handled != 0 {
        // A program may call this in a loop: at most 10 lines per 5 s (Linux
        // printk_ratelimited).
        static LIMIT: crate::klog::RateLimit = crate::klog::RateLimit::new("clone", 5000, 10);
        if LIMIT.allow() {
            log::warn!(
                "pid {}: clone flags {:#x} need threads, which are not implemented: ENOSYS",
                sched::current().pid,
                flags & !handled
            );
        }
        return Err(Errno::ENOSYS);
    }
    // Any value may be the exit signal; one past the last signal is never sent (Linux's
    // clone leaves the check to `do_notify_parent`'s `valid_signal`; only clone3 refuses).
    let exit_signal = (flags & CSIGNAL) as i32;
    let (newsp, parent_tid, child_tid) = (args.ptr(1), args.ptr(2), args.ptr(3));
    let opts = proc::CloneOptions {
        set_child_tid: (flags & CLONE_CHILD_SETTID != 0).then_some(child_tid),
        clear_child_tid: (flags & CLONE_CHILD_CLEARTID != 0).then_some(child_tid),
        set_parent_tid: (flags & CLONE_PARENT_SETTID != 0).then_some(parent_tid),
        stack: (newsp != 0).then_some(newsp),
        exit_signal,
    };
    Ok(proc::fork(frame, &opts)? as u64)
}

/// set_tid_address(tidptr): remember where to write 0 at exit; returns the tid.
pub fn set_tid_address(args: Args) -> SysResult {
    let p = sched::current();
    p.with(|i| i.tid_addrs.clear_child_tid = args.ptr(0));
    Ok(u64::from(p.pid))
}

/// set_robust_list(head, len): remembered (the list matters only with threads that
/// die holding a robust mutex); EINVAL if len is not the size Linux expects.
pub fn set_robust_list(args: Args) -> SysResult {
    const ROBUST_LIST_HEAD_SIZE: u64 = 24;
    if args.ulong(1) != ROBUST_LIST_HEAD_SIZE {
        return Err(Errno::EINVAL);
    }
    sched::current().with(|i| i.tid_addrs.robust_list = args.ptr(0));
    Ok(0)
}

/// prlimit64(pid, resource, new, old): the limits this kernel has, read-only. Setting a
/// limit to the value it already has succeeds; any other change is EPERM (limits are
/// not adjustable here).
pub fn prlimit64(args: Args) -> SysResult {
    let (pid, resource, new, old) = (args.int(0), args.uint(1), args.ptr(2), args.ptr(3));
    let me = sched::current().pid;
    if pid != 0 && pid as Pid != me {
        proc::lookup(pid as Pid).ok_or(Errno::ESRCH)?;
    }
    let current = limit(resource)?;
    if new != 0 {
        let cur = uaccess::read_u64(new)?;
        let max = uaccess::read_u64(new + 8)?;
        if cur > max {
            return Err(Errno::EINVAL);
        }
        if (cur, max) != current {
            return Err(Errno::EPERM);
        }
    }
    if old != 0 {
        uaccess::write_u64s(old, &[current.0, current.1])?;
    }
    Ok(0)
}

/// (soft, hard) limit of `resource` (Linux RLIMIT_* numbers).
fn limit(resource: u32) -> Result<(u64, u64), Errno> {
    const RLIM_INFINITY: u64 = u64::MAX;
    const RLIMIT_STACK: u32 = 3;
    const RLIMIT_CORE: u32 = 4;
    const RLIMIT_NOFILE: u32 = 7;
    const RLIMIT_NLIMITS: u32 = 16;
    match resource {
        RLIMIT_STACK => Ok((proc::elf::STACK_SIZE, proc::elf::STACK_SIZE)),
        RLIMIT_CORE => Ok((0, 0)),
        RLIMIT_NOFILE => {
            let n = crate::fs::MAX_FDS as u64;
            Ok((n, n))
        }
        r if r < RLIMIT_NLIMITS => Ok((RLIM_INFINITY, RLIM_INFINITY)),
        _ => Err(Errno::EINVAL),
    }
}

/// getrandom(buf, len, flags): bytes from the CPU's RDRAND when it has one, else from
/// a generator seeded by the TSC (not cryptographic: a teaching kernel's entropy).
pub fn getrandom(args: Args) -> SysResult {
    const GRND_NONBLOCK: u32 = 1;
    const GRND_RANDOM: u32 = 2;
    const GRND_INSECURE: u32 = 4;
    let (buf, len, flags) = (args.ptr(0), args.ulong(1), args.uint(2));
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.min(33_554_431) as usize; // Linux's per-call maximum
    let mut done = 0;
    let mut chunk = [0u8; 256];
    while done < len {
        let n = (len - done).min(chunk.len());
        crate::arch::x86_64::rng::fill(&mut chunk[..n]);
        uaccess::write_bytes(buf + done as u64, &chunk[..n])?;
        done += n;
    }
    Ok(len as u64)
}

/// execve(path, argv, envp)
pub fn execve(frame: &mut TrapFrame, args: Args) -> SysResult {
    let path = uaccess::read_cstr(args.ptr(0), 4096)?;
    let argv = uaccess::read_cstr_array(args.ptr(1), proc::elf::MAX_ARG_BYTES)?;
    let envp = uaccess::read_cstr_array(args.ptr(2), proc::elf::MAX_ARG_BYTES)?;
    let argv = try_collect(argv.iter().map(String::as_str))?;
    let envp = try_collect(envp.iter().map(String::as_str))?;
    proc::exec(frame, &path, &argv, &envp)?;
    Ok(0)
}

/// exit(code) / exit_group(code)
pub fn exit(args: Args) -> SysResult {
    proc::exit_current(ExitStatus::Exited(args.int(0) & 0xff))
}

/// wait4(pid, status, options, rusage): pid -1 (any child), > 0, 0 or -pgid (a group).
/// Options as Linux accepts them: WNOHANG; WUNTRACED and WCONTINUED (no process is ever
/// stopped here, so they add nothing); __WCLONE (only children whose exit signal is not
/// SIGCHLD), __WALL (every child), __WNOTHREAD (one thread per process anyway).
pub fn wait4(args: Args) -> SysResult {
    const WNOHANG: i32 = 1;
    const WUNTRACED: i32 = 2;
    const WCONTINUED: i32 = 8;
    const WNOTHREAD: i32 = 0x2000_0000;
    const WALL: i32 = 0x4000_0000;
    const WCLONE: i32 = 0x8000_0000_u32 as i32;
    let (status, options) = (args.ptr(1), args.int(2));
    let which = match args.int(0) {
        -1 => WaitFor::Any,
        0 => WaitFor::Group(sched::current().with(|p| p.pgid)),
        pid if pid > 0 => WaitFor::Pid(pid as Pid),
        i32::MIN => return Err(Errno::ESRCH),
        pgid => WaitFor::Group(pgid.unsigned_abs()),
    };
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
        return Err(Errno::EINVAL);
    }
    let mode = if options & WNOHANG != 0 {
        WaitMode::NoHang
    } else {
        WaitMode::Block
    };
    let children = if options & WALL != 0 {
        WaitChildren::All
    } else if options & WCLONE != 0 {
        WaitChildren::Clone
    } else {
        WaitChildren::Sigchld
    };
    let (child, exit) = proc::wait(which, mode, children)?;
    if child != 0 && status != 0 {
        // As Linux: the child is reaped even if the status cannot be stored.
        uaccess::write_i32(status, exit.wait_status())?;
    }
    Ok(child as u64)
}

/// nanosleep(req, rem): sleeps at least the requested time, in timer ticks (1 ms).
pub fn nanosleep(args: Args) -> SysResult {
    let ns = read_timespec(args.ptr(0))?;
    sleep_until(monotonic_ns().saturating_add(ns), args.ptr(1))
}

/// clock_nanosleep(clock, flags, req, rem): a relative sleep, or with TIMER_ABSTIME
/// until `req` on that clock. (What glibc's `nanosleep` calls.)
pub fn clock_nanosleep(args: Args) -> SysResult {
    const TIMER_ABSTIME: i32 = 1;
    let clock = args.int(0);
    let now_on_clock = clock_now_ns(clock)?;
    let ns = read_timespec(args.ptr(2))?;
    let deadline = if args.int(1) & TIMER_ABSTIME != 0 {
        // An absolute time on `clock`, as a point on the monotonic clock.
        monotonic_ns().saturating_add(ns.saturating_sub(now_on_clock))
    } else {
        monotonic_ns().saturating_add(ns)
    };
    let rem = if args.int(1) & TIMER_ABSTIME != 0 {
        0
    } else {
        args.ptr(3)
    };
    sleep_until(deadline, rem)
}

/// A `struct timespec` in nanoseconds; EINVAL if negative or tv_nsec out of range.
fn read_timespec(at: u64) -> Result<u64, Errno> {
    let secs = uaccess::read_u64(at)?;
    let nanos = uaccess::read_u64(at + 8)?;
    if nanos >= 1_000_000_000 || (secs as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// Sleep in timer ticks until the monotonic clock (the TSC) reaches `deadline` (never
/// early: the first tick may be partly gone already). A signal to handle ends it with
/// EINTR and the time left in `rem` (if not 0), as Linux's nanosleep.
fn sleep_until(deadline: u64, rem: u64) -> SysResult {
    loop {
        let now = monotonic_ns();
        if now >= deadline {
            return Ok(0);
        }
        let ticks = (deadline - now).div_ceil(1_000_000_000 / interrupts::TIMER_HZ);
        sched::sleep_ticks(ticks);
        if crate::proc::signal::pending_for_current() {
            if rem != 0 {
                let left = deadline.saturating_sub(monotonic_ns());
                uaccess::write_u64s(rem, &[left / 1_000_000_000, left % 1_000_000_000])?;
            }
            return Err(Errno::EINTR);
        }
    }
}

/// Nanoseconds since boot per the TSC.
fn monotonic_ns() -> u64 {
    tsc::uptime_ns()
}

/// (unix time in ns at boot) - read from the RTC once.
static REALTIME_OFFSET: Once<u64> = Once::new();

/// clock_gettime(clock, tp): REALTIME and the MONOTONIC family.
pub fn clock_gettime(args: Args) -> SysResult {
    let ns = clock_now_ns(args.int(0))?;
    uaccess::write_u64s(args.ptr(1), &[ns / 1_000_000_000, ns % 1_000_000_000])?;
    Ok(0)
}

/// The time on `clock` in nanoseconds: REALTIME and the MONOTONIC family; EINVAL else.
fn clock_now_ns(clock: i32) -> Result<u64, Errno> {
    const REALTIME: i32 = 0;
    const MONOTONIC: i32 = 1;
    const MONOTONIC_RAW: i32 = 4;
    const REALTIME_COARSE: i32 = 5;
    const MONOTONIC_COARSE: i32 = 6;
    const BOOTTIME: i32 = 7;
    let now = monotonic_ns();
    match clock {
        MONOTONIC | MONOTONIC_RAW | MONOTONIC_COARSE | BOOTTIME => Ok(now),
        REALTIME | REALTIME_COARSE => {
            let offset = *REALTIME_OFFSET.call_once(|| {
                (crate::arch::x86_64::rtc::unix_time() * 1_000_000_000).saturating_sub(now)
            });
            Ok(offset + now)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// arch_prctl(code, addr): ARCH_SET_FS / ARCH_GET_FS (thread-local storage base).
pub fn arch_prctl(args: Args) -> SysResult {
    const ARCH_SET_FS: i32 = 0x1002;
    const ARCH_GET_FS: i32 = 0x1003;
    match args.int(0) {
        ARCH_SET_FS => {
            // Linux: the base must be a user address (below TASK_SIZE_MAX).
            let base = VirtAddr::try_new(args.ulong(1))
                .ok()
                .filter(|b| b.as_u64() < crate::mm::page_table::USER_END)
                .ok_or(Errno::EPERM)?;
            FsBase::write(base);
            sched::current().with(|p| p.fs_base = base.as_u64());
            Ok(0)
        }
        ARCH_GET_FS => {
            uaccess::write_u64s(args.ptr(1), &[FsBase::read().as_u64()])?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// uname(buf): sysname "memkernel", so programs can tell they run on us.
pub fn uname(args: Args) -> SysResult {
    const FIELD: usize = 65;
    let fields = [
        "memkernel",
        "memkernel",
        env!("CARGO_PKG_VERSION"),
        "#1",
        "x86_64",
        "(none)",
    ];
    let mut raw = [0u8; FIELD * 6];
    for (i, f) in fields.iter().enumerate() {
        raw[i * FIELD..i * FIELD + f.len()].copy_from_slice(f.as_bytes());
    }
    uaccess::write_bytes(args.ptr(0), &raw)?;
    Ok(0)
}

/// sysinfo(info): uptime, total and free RAM (what tests use as a leak baseline),
/// process count.
pub fn sysinfo(args: Args) -> SysResult {
    // struct sysinfo on x86-64: 112 bytes.
    let mut raw = [0u8; 112];
    let put = |raw: &mut [u8], off: usize, bytes: &[u8]| {
        raw[off..off + bytes.len()].copy_from_slice(bytes)
    };
    let uptime = monotonic_ns() / 1_000_000_000;
    let total = crate::mm::frame::total_frames() as u64 * 4096;
    let free = crate::mm::frame::free_frames() as u64 * 4096;
    let procs = proc::count() as u16;
    put(&mut raw, 0, &uptime.to_le_bytes()); // uptime
    put(&mut raw, 32, &total.to_le_bytes()); // totalram
    put(&mut raw, 40, &free.to_le_bytes()); // freeram
    put(&mut raw, 80, &procs.to_le_bytes()); // procs
    put(&mut raw, 104, &1u32.to_le_bytes()); // mem_unit
    uaccess::write_bytes(args.ptr(0), &raw)?;
    Ok(0)
}

/// reboot(magic1, magic2, cmd, arg): LINUX_REBOOT_CMD_POWER_OFF powers off with status
/// 0 (the runner exits 0); other commands are EINVAL. Linux declares the magics `int`
/// and compares them with unsigned constants, so they are read as 32-bit patterns.
pub fn reboot(args: Args) -> SysResult {
    const MAGIC1: u32 = 0xfee1_dead;
    const MAGIC2: [u32; 4] = [672_274_793, 85_072_278, 369_367_448, 537_993_216];
    const CMD_POWER_OFF: u32 = 0x4321_fedc;
    if args.uint(0) != MAGIC1 || !MAGIC2.contains(&args.uint(1)) {
        return Err(Errno::EINVAL);
    }
    match args.uint(2) {
        CMD_POWER_OFF => proc::request_power_off(0),
        _ => Err(Errno::EINVAL),
    }
}
