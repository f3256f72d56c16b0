//! The real-time timer: `alarm`, `setitimer(ITIMER_REAL)` (Linux `kernel/time/itimer.c`).
//! A list of due ticks the timer interrupt checks; SIGALRM is sent when one passes.
#![forbid(unsafe_code)]

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use super::{send, SigInfo, SIGALRM, SI_KERNEL};
use crate::error::Errno;
use crate::proc::{sched, Process};
use crate::sync::SpinLock;

/// Processes with an alarm set: (due tick, process).
static ALARMS: SpinLock<Vec<(u64, Weak<Process>)>> = SpinLock::new("alarms", Vec::new());

/// Arm the real-time timer (`setitimer(ITIMER_REAL)`, which `alarm` is too): SIGALRM
/// after `value` ticks (0 disarms), then every `interval` ticks (0: once). Returns the
/// old (ticks left, interval) (Linux `do_setitimer`).
pub fn set_real_timer(value: u64, interval: u64) -> Result<(u64, u64), Errno> {
    let p = sched::current();
    let now = crate::arch::x86_64::interrupts::ticks();
    let due = (value > 0).then(|| now.saturating_add(value));
    let (old, old_interval) = p.with(|i| {
        let s = &mut i.signals;
        let old = core::mem::replace(&mut s.alarm_at, due);
        let old_interval = core::mem::replace(&mut s.alarm_interval, interval);
        (old, old_interval)
    });
    let left = old.map_or(0, |t| t.saturating_sub(now).max(1));
    let mut alarms = ALARMS.lock();
    alarms.retain(|(_, w)| w.upgrade().is_some_and(|q| !Arc::ptr_eq(&q, &p)));
    if let Some(t) = due {
        alarms.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        alarms.push((t, Arc::downgrade(&p)));
    }
    Ok((left, old_interval))
}

/// The real timer: (ticks left, interval).
pub fn real_timer() -> (u64, u64) {
    let now = crate::arch::x86_64::interrupts::ticks();
    sched::current().with(|i| {
        let s = &i.signals;
        (
            s.alarm_at.map_or(0, |t| t.saturating_sub(now).max(1)),
            s.alarm_interval,
        )
    })
}

/// `alarm(seconds)`: SIGALRM after `seconds` (0 cancels); returns the seconds left of
/// the previous alarm, rounded up.
pub fn alarm(seconds: u32) -> Result<u64, Errno> {
    let hz = crate::arch::x86_64::interrupts::TIMER_HZ;
    let (left, _) = set_real_timer(u64::from(seconds) * hz, 0)?;
    Ok(left.div_ceil(hz))
}

/// Every tick (interrupts off): send SIGALRM to processes whose alarm is due, and re-arm
/// interval timers in place. Allocates nothing: an interrupt has nobody to report ENOMEM
/// to. (Lock order: the alarm list, then a process's lock and the run queue.)
pub fn on_tick(now: u64) {
    let mut alarms = ALARMS.lock();
    if alarms.iter().all(|(t, _)| *t > now) {
        return;
    }
    alarms.retain_mut(|(t, w)| {
        if *t > now {
            return true;
        }
        let Some(p) = w.upgrade() else {
            return false;
        };
        let interval = p.with(|i| {
            let s = &mut i.signals;
            s.alarm_at = (s.alarm_interval > 0).then(|| now.saturating_add(s.alarm_interval));
            s.alarm_interval
        });
        send(
            &p,
            SigInfo {
                signo: SIGALRM,
                code: SI_KERNEL,
                pid: 0,
                addr: 0,
                status: 0,
            },
        );
        if interval > 0 {
            *t = now.saturating_add(interval);
            true
        } else {
            false
        }
    });
}
