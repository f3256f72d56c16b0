//! The scheduler: round-robin over runnable processes, preemptive for user code.
//!
//! Like xv6, the scheduler is a loop on the boot stack ([`run`]): it takes the next
//! runnable process, switches the CPU to its kernel stack, address space and FS base,
//! and `switch_context`s into it. A process comes back to the loop when it yields (the
//! timer interrupt preempts user code every [`TIME_SLICE_TICKS`]), sleeps (wait4,
//! nanosleep, console input), or exits. Kernel code is not preempted: it runs until it
//! blocks or returns to user mode, which keeps locking simple on one CPU.
//!
//! Every lock here is a [`SpinLock`] (interrupts off), because the timer interrupt takes
//! the same locks to wake sleepers. The scheduler plugs itself into [`crate::sync`] at
//! boot, so sleeping locks and wait queues can put a process to sleep and wake it.

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::instructions::interrupts;
use x86_64::registers::model_specific::FsBase;
use x86_64::VirtAddr;

use super::{Process, State};
use crate::arch::x86_64::context::{self, Context};
use crate::arch::x86_64::trap;
use crate::mm::fallible::NoMemory;
use crate::mm::gfp;
use crate::sync::{self, SpinLock};

/// Timer ticks a process may run in user mode before it is preempted (10 ms).
pub const TIME_SLICE_TICKS: u64 = 10;

static RUN_QUEUE: SpinLock<VecDeque<Arc<Process>>> = SpinLock::new("run queue", VecDeque::new());
static CURRENT: SpinLock<Option<Arc<Process>>> = SpinLock::new("current process", None);
/// Processes sleeping until a tick: (deadline, process).
static SLEEPERS: SpinLock<Vec<(u64, Arc<Process>)>> = SpinLock::new("sleepers", Vec::new());
/// The scheduler loop's context (on the boot stack) while a process runs.
static SCHEDULER: Context = Context::empty();
/// Tick at which the running process started its slice.
static SLICE_START: AtomicU64 = AtomicU64::new(0);

/// Run `f` on `m`'s contents with the lock held (and so interrupts off).
fn locked<T, R>(m: &SpinLock<T>, f: impl FnOnce(&mut T) -> R) -> R {
    m.with(f)
}

/// The running process. Panics outside process context (a kernel bug).
pub fn current() -> Arc<Process> {
    try_current().expect("sched::current: no process is running")
}

/// The running process, if any.
pub fn try_current() -> Option<Arc<Process>> {
    locked(&CURRENT, |c| c.clone())
}

/// Take room for `n` processes in the run queue and the sleepers list (once, at boot:
/// see `proc::init`), so queueing never allocates.
pub fn reserve_all(n: usize) -> Result<(), NoMemory> {
    locked(&RUN_QUEUE, |q| q.try_reserve_exact(n))?;
    locked(&SLEEPERS, |s| s.try_reserve_exact(n))?;
    Ok(())
}

/// Put `p` at the back of the run queue (it must be Runnable). Never allocates: a
/// process is queued at most once and the room for all was taken at boot.
pub fn enqueue(p: Arc<Process>) {
    locked(&RUN_QUEUE, |q| {
        debug_assert!(
            q.len() < q.capacity(),
            "run queue full: more processes than MAX_PROCS"
        );
        q.push_back(p);
    });
}

/// Wake `p` if it sleeps: make it Runnable and queue it.
pub fn wake(p: &Arc<Process>) {
    interrupts::without_interrupts(|| {
        let woke = p.with(|inner| {
            if matches!(inner.state, State::Sleeping(_)) {
                inner.state = State::Runnable;
                true
            } else {
                false
            }
        });
        if woke {
            enqueue(p.clone());
        }
    });
}

impl sync::Task for Process {
    fn wake(&self) {
        if let Some(me) = self.this.get().and_then(Weak::upgrade) {
            wake(&me);
        }
    }
    fn kill_pending(&self) -> bool {
        self.is_killed()
    }
    fn signal_pending(&self) -> bool {
        self.is_killed() || self.with(|i| i.signals.has_deliverable())
    }
}

/// Plug the scheduler into `sync`, so sleeping locks and wait queues can block and wake
/// processes.
fn register_with_sync() {
    sync::set_scheduler(sync::Scheduler {
        current: || try_current().map(|p| p as Arc<dyn sync::Task>),
        block_current,
        yield_now,
    });
}

/// Work the scheduler loop does between two processes (set by a driver; see
/// `drivers::hmm`: releasing frames whose test hold time is over must not depend on a
/// thread that may itself be waiting for one of them).
static POLL: spin::Once<fn()> = spin::Once::new();

/// Install the between-processes work function (once).
pub fn set_poll(f: fn()) {
    POLL.call_once(|| f);
}

/// The scheduler loop. Never returns.
pub fn run() -> ! {
    register_with_sync();
    loop {
        // Let pending interrupts in between two processes: a process that yields with
        // interrupts off (waiting for a frame lock inside the page-fault handler) must
        // not keep the timer, and so every sleeper's wake-up, out forever. (`nop`: an
        // interrupt is only taken after the instruction that follows `sti`.)
        interrupts::enable();
        x86_64::instructions::nop();
        interrupts::disable();
        if let Some(poll) = POLL.get() {
            poll();
        }
        let next = locked(&RUN_QUEUE, |q| q.pop_front());
        let Some(p) = next else {
            if super::power_off_requested() {
                super::power_off_step();
            }
            // Nothing to run: sleep until the next interrupt (which may wake someone).
            interrupts::enable_and_hlt();
            continue;
        };
        let (aspace, fs_base) = p.with(|inner| {
            inner.state = State::Running;
            (inner.aspace.clone(), inner.fs_base)
        });
        trap::set_kernel_stack(p.kstack.top());
        crate::vm::switch_to(aspace);
        FsBase::write(VirtAddr::new(fs_base));
        p.fpu.lock().restore();
        gfp::switch_in(&p.faults);
        SLICE_START.store(crate::arch::x86_64::interrupts::ticks(), Ordering::Relaxed);
        locked(&CURRENT, |c| *c = Some(p.clone()));
        // CURRENT keeps the process (and so its stack and context) alive meanwhile.
        context::switch(&SCHEDULER, &p.context);
        drop(p);
        // The process gave the CPU back (yield, sleep or exit).
        let prev = locked(&CURRENT, |c| c.take());
        drop(prev);
        if super::power_off_requested() {
            super::power_off_step();
        }
    }
}

/// Give the CPU back to the scheduler loop. Interrupts must be off. The caller has set
/// the process state (Runnable and queued, Sleeping, or Zombie).
fn switch_to_scheduler(p: &Process) {
    p.with(|inner| inner.fs_base = FsBase::read().as_u64());
    p.fpu.lock().save();
    gfp::switch_out(&p.faults);
    // The process lives in CURRENT until the loop takes it back.
    context::switch(&p.context, &SCHEDULER);
}

/// Let another process run; this one stays runnable.
pub fn yield_now() {
    sync::might_sleep("yield_now");
    let was_enabled = interrupts::are_enabled();
    interrupts::disable();
    let p = current();
    let requeue = p.with(|inner| {
        if inner.state == State::Running {
            inner.state = State::Runnable;
            true
        } else {
            false
        }
    });
    if requeue {
        enqueue(p.clone());
    }
    switch_to_scheduler(&p);
    drop(p);
    if was_enabled {
        interrupts::enable();
    }
}

/// Block the current process until someone calls [`wake`] on it. Interrupts must be
/// off, and the caller must have checked its wake-up condition with interrupts off, so
/// no wake-up can be lost in between. `at` is what /proc/ps shows it waiting on.
pub fn block_current(at: super::WaitChannel) {
    debug_assert!(!interrupts::are_enabled());
    sync::might_sleep("block_current");
    let p = current();
    p.with(|inner| inner.state = State::Sleeping(at));
    switch_to_scheduler(&p);
}

/// Sleep for at least `ticks` timer ticks (woken early by [`wake`], e.g. on kill).
#[track_caller]
pub fn sleep_ticks(ticks: u64) {
    let at = core::panic::Location::caller();
    let deadline = crate::arch::x86_64::interrupts::ticks().saturating_add(ticks.max(1));
    interrupts::without_interrupts(|| {
        let p = current();
        locked(&SLEEPERS, |s| {
            debug_assert!(s.len() < s.capacity(), "sleepers full: more than MAX_PROCS");
            s.push((deadline, p.clone()));
        });
        block_current(at);
        // Woken early? Leave the sleepers list anyway.
        locked(&SLEEPERS, |s| s.retain(|(_, q)| !Arc::ptr_eq(q, &p)));
    });
}

/// Set by the timer when the running process has used up its slice; the way back to
/// user mode (`trap::exit_to_user`) then yields (Linux `TIF_NEED_RESCHED`).
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);

/// Whether the running process should give the CPU away now (clears the request).
pub fn take_need_resched() -> bool {
    NEED_RESCHED.swap(false, Ordering::Relaxed)
}

/// Called by the timer interrupt on every tick (interrupts off): wake sleepers whose
/// deadline passed, and ask for a reschedule when the running slice is over.
///
/// Allocates nothing (an interrupt has nobody to report ENOMEM to): sleepers are woken in
/// place. Lock order: the sleepers list, then a process's lock and the run queue.
pub fn on_tick(now: u64) {
    locked(&SLEEPERS, |s| {
        s.retain(|(deadline, p)| {
            if *deadline <= now {
                wake(p);
                false
            } else {
                true
            }
        })
    });
    super::signal::on_tick(now);
    if now.saturating_sub(SLICE_START.load(Ordering::Relaxed)) >= TIME_SLICE_TICKS {
        NEED_RESCHED.store(true, Ordering::Relaxed);
    }
}

/// Forget every process (power-off teardown).
pub(super) fn clear_all() {
    locked(&RUN_QUEUE, |q| q.clear());
    locked(&SLEEPERS, |s| s.clear());
    locked(&CURRENT, |c| *c = None);
}

/// Number of runnable processes waiting (for `ps`).
pub fn queued() -> usize {
    locked(&RUN_QUEUE, |q| q.len())
}

/// Switch away for good: used by exit after the process became a zombie.
pub(super) fn leave_forever(p: Arc<Process>) -> ! {
    interrupts::disable();
    gfp::task_gone();
    // Drop our reference: nothing of this stack runs again (CURRENT still holds the
    // process until the loop takes it out).
    drop(p);
    context::switch_final(&SCHEDULER)
}
