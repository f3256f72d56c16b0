//! Signal syscalls: rt_sigaction, rt_sigprocmask, rt_sigreturn, kill, tkill, tgkill,
//! alarm, pause, and the process-group calls setpgid, getpgid, getpgrp, setsid, getsid.
//! The mechanism is `proc::signal`; this is argument checking (Linux prototypes in
//! `syscall/mod.rs`).
#![deny(unsafe_code)]

use super::{Args, SysResult};
use crate::arch::x86_64::trap::TrapFrame;
use crate::error::Errno;
use crate::proc::signal::{self, SigAction, SigSet, NSIG, SIGKILL, SIGSTOP};
use crate::proc::{self, sched, KillTarget, Pid};
use crate::vm::uaccess;

/// The only `sigsetsize` the x86-64 kernel accepts.
const SIGSET_SIZE: u64 = 8;

/// A signal number argument: 1..=64, else EINVAL.
fn signum(sig: i32) -> Result<i32, Errno> {
    if (1..=NSIG).contains(&sig) {
        Ok(sig)
    } else {
        Err(Errno::EINVAL)
    }
}

/// rt_sigaction(sig, act, oact, sigsetsize)
pub fn rt_sigaction(args: Args) -> SysResult {
    let sig = signum(args.int(0))?;
    let (act, oact) = (args.ptr(1), args.ptr(2));
    if args.ulong(3) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let new = if act != 0 {
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mut raw = [0u8; 32];
        uaccess::read_bytes(act, &mut raw)?;
        let mut a = SigAction::from_bytes(&raw);
        a.mask = a.mask.without_unblockable();
        Some(a)
    } else {
        None
    };
    let p = sched::current();
    let old = p.with(|i| {
        let old = i.signals.action(sig);
        if let Some(a) = new {
            i.signals.set_action(sig, a);
        }
        old
    });
    if oact != 0 {
        uaccess::write_bytes(oact, &old.to_bytes())?;
    }
    Ok(0)
}

/// rt_sigprocmask(how, set, oset, sigsetsize)
pub fn rt_sigprocmask(args: Args) -> SysResult {
    const SIG_BLOCK: i32 = 0;
    const SIG_UNBLOCK: i32 = 1;
    const SIG_SETMASK: i32 = 2;
    let (how, set, oset) = (args.int(0), args.ptr(1), args.ptr(2));
    if args.ulong(3) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let new = if set != 0 {
        Some(SigSet(uaccess::read_u64(set)?))
    } else {
        None
    };
    if new.is_some() && !(SIG_BLOCK..=SIG_SETMASK).contains(&how) {
        return Err(Errno::EINVAL);
    }
    let old = sched::current().with(|i| {
        let old = i.signals.blocked;
        if let Some(s) = new {
            let b = match how {
                SIG_BLOCK => old.0 | s.0,
                SIG_UNBLOCK => old.0 & !s.0,
                _ => s.0,
            };
            i.signals.blocked = SigSet(b).without_unblockable();
        }
        old
    });
    if oset != 0 {
        uaccess::write_u64s(oset, &[old.0])?;
    }
    Ok(0)
}

/// rt_sigpending(set, sigsetsize): the pending signals (blocked ones included).
pub fn rt_sigpending(args: Args) -> SysResult {
    if args.ulong(1) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let pending = sched::current().with(|i| i.signals.pending());
    uaccess::write_u64s(args.ptr(0), &[pending.0])?;
    Ok(0)
}

/// rt_sigreturn(): the registers come back from the signal frame; rax is the
/// interrupted code's.
pub fn rt_sigreturn(frame: &mut TrapFrame) -> SysResult {
    signal::sigreturn(frame);
    Ok(frame.rax)
}

/// kill(pid, sig): pid > 0 a process, 0 the caller's group, -1 everyone, < -1 a group.
pub fn kill(args: Args) -> SysResult {
    let target = match args.int(0) {
        pid if pid > 0 => KillTarget::Pid(pid as Pid),
        0 => KillTarget::Group(sched::current().with(|i| i.pgid)),
        -1 => KillTarget::All,
        // i32::MIN has no positive counterpart: Linux answers ESRCH.
        i32::MIN => return Err(Errno::ESRCH),
        pid => KillTarget::Group(pid.unsigned_abs()),
    };
    proc::kill(target, args.int(1))?;
    Ok(0)
}

/// tkill(tid, sig) and tgkill(tgid, tid, sig): one thread per process here, so the
/// thread is the process (tgid must match).
pub fn tkill(tid: i32, sig: i32) -> SysResult {
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    proc::kill(KillTarget::Pid(tid as Pid), sig)?;
    Ok(0)
}

/// tgkill(tgid, tid, sig)
pub fn tgkill(args: Args) -> SysResult {
    let (tgid, tid) = (args.int(0), args.int(1));
    if tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tgid != tid {
        return Err(Errno::ESRCH);
    }
    tkill(tid, args.int(2))
}

/// alarm(seconds)
pub fn alarm(args: Args) -> SysResult {
    signal::alarm(args.uint(0))
}

/// setitimer(which, new, old) and getitimer(which, cur): ITIMER_REAL only (the other
/// timers count CPU time, which is not accounted here: EINVAL).
pub fn setitimer(args: Args) -> SysResult {
    const ITIMER_REAL: i32 = 0;
    if args.int(0) != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    let (new, old) = (args.ptr(1), args.ptr(2));
    let (value, interval) = if new != 0 {
        let mut raw = [0u8; 32];
        uaccess::read_bytes(new, &mut raw)?;
        let w = |i: usize| i64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        (timeval_ticks(w(2), w(3))?, timeval_ticks(w(0), w(1))?)
    } else {
        (0, 0)
    };
    let (left, old_interval) = if new != 0 {
        signal::set_real_timer(value, interval)?
    } else {
        signal::real_timer()
    };
    if old != 0 {
        let (is, iu) = ticks_timeval(old_interval);
        let (vs, vu) = ticks_timeval(left);
        uaccess::write_u64s(old, &[is, iu, vs, vu])?;
    }
    Ok(0)
}

/// getitimer(which, cur)
pub fn getitimer(args: Args) -> SysResult {
    if args.int(0) != 0 {
        return Err(Errno::EINVAL);
    }
    let (left, interval) = signal::real_timer();
    let (is, iu) = ticks_timeval(interval);
    let (vs, vu) = ticks_timeval(left);
    uaccess::write_u64s(args.ptr(1), &[is, iu, vs, vu])?;
    Ok(0)
}

/// A `struct timeval` as timer ticks, rounded up; EINVAL if negative or usec >= 1e6.
/// Like Linux, which keeps timers in `ktime_t` nanoseconds, a time past `KTIME_MAX`
/// (i64::MAX ns, about 292 years) is `KTIME_MAX`: getitimer then reports 9223372036 s.
fn timeval_ticks(sec: i64, usec: i64) -> Result<u64, Errno> {
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(Errno::EINVAL);
    }
    let hz = crate::arch::x86_64::interrupts::TIMER_HZ;
    let ktime_max_ticks = (i64::MAX as u64) / (1_000_000_000 / hz);
    let per_tick = 1_000_000 / hz;
    Ok((sec as u64)
        .saturating_mul(hz)
        .saturating_add((usec as u64).div_ceil(per_tick))
        .min(ktime_max_ticks))
}

/// Timer ticks as (sec, usec).
fn ticks_timeval(ticks: u64) -> (u64, u64) {
    let hz = crate::arch::x86_64::interrupts::TIMER_HZ;
    (ticks / hz, (ticks % hz) * (1_000_000 / hz))
}

/// pause(): sleep until a signal is delivered; always EINTR (after the handler).
pub fn pause() -> SysResult {
    while !signal::pending_for_current() {
        sched::sleep_ticks(1000);
    }
    Err(Errno::ERESTARTNOHAND)
}

/// rt_sigsuspend(mask, sigsetsize): wait for a signal with `mask` in force (SIGKILL and
/// SIGSTOP stay unblocked); always EINTR, after the handler, which runs with `mask` and
/// returns to the mask from before (Linux `sys_rt_sigsuspend`: `saved_sigmask`).
pub fn rt_sigsuspend(args: Args) -> SysResult {
    if args.ulong(1) != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = signal::SigSet(uaccess::read_u64(args.ptr(0))?);
    sched::current().with(|i| i.signals.set_temporary_mask(mask));
    pause()
}

/// setpgid(pid, pgid)
pub fn setpgid(args: Args) -> SysResult {
    let (pid, pgid) = (args.int(0), args.int(1));
    if pid < 0 || pgid < 0 {
        return Err(Errno::EINVAL);
    }
    proc::setpgid(pid as Pid, pgid as Pid)?;
    Ok(0)
}

/// getpgid(pid)
pub fn getpgid(args: Args) -> SysResult {
    let pid = args.int(0);
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    Ok(u64::from(proc::getpgid_getsid(pid as Pid)?.0))
}

/// getpgrp()
pub fn getpgrp() -> SysResult {
    Ok(u64::from(proc::getpgid_getsid(0)?.0))
}

/// getsid(pid)
pub fn getsid(args: Args) -> SysResult {
    let pid = args.int(0);
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    Ok(u64::from(proc::getpgid_getsid(pid as Pid)?.1))
}

/// setsid()
pub fn setsid() -> SysResult {
    Ok(u64::from(proc::setsid()?))
}
