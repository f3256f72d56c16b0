//! Wait queues (Linux `wait_queue_head_t`, `wait_event`, `wait_event_killable`).
//!
//! A waiter puts itself on the queue and sleeps until its condition holds; whoever
//! makes the condition true calls [`WaitQueue::wake_all`] (or `wake_one`). No
//! wake-up is lost: the condition is checked, the waiter queued and put to sleep with
//! interrupts off, and on this one CPU nothing else runs in between. (An SMP kernel
//! sets the task state before checking the condition and takes the queue lock around
//! both, which the same API allows.)

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::panic::Location;
use spin::Once;
use x86_64::instructions::interrupts;

use super::spin::{might_sleep, SpinLock};

/// A task that can sleep on a wait queue (implemented by the process type).
pub trait Task: Send + Sync {
    /// Make the task runnable again if it sleeps.
    fn wake(&self);
    /// Whether SIGKILL is pending: killable waits give up.
    fn kill_pending(&self) -> bool;
    /// Whether a signal is pending that the task would handle or die of (SIGKILL
    /// included): interruptible waits give up.
    fn signal_pending(&self) -> bool;
}

/// What this module needs from the scheduler, which sits above it.
pub struct Scheduler {
    /// The running task (`None` at boot and in the scheduler loop).
    pub current: fn() -> Option<Arc<dyn Task>>,
    /// Put the running task to sleep until someone wakes it. Called with interrupts off;
    /// the location is where the task waits (shown by /proc/ps).
    pub block_current: fn(&'static Location<'static>),
    /// Let other tasks run; the running one stays runnable.
    pub yield_now: fn(),
}

static SCHEDULER: Once<Scheduler> = Once::new();

/// Plug in the scheduler (once, at boot).
pub fn set_scheduler(s: Scheduler) {
    SCHEDULER.call_once(|| s);
}

/// A killable wait ended because the task was sent SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Killed;

/// An interruptible wait ended because a signal is pending (the caller returns
/// ERESTARTSYS: the syscall is restarted or fails with EINTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

/// What may cut a wait short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interruptible {
    /// Any pending signal (Linux `TASK_INTERRUPTIBLE`).
    Signal,
    /// SIGKILL (Linux `TASK_KILLABLE`).
    Killable,
    Uninterruptible,
}

/// Tasks waiting for something.
pub struct WaitQueue {
    waiters: SpinLock<VecDeque<Arc<dyn Task>>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        WaitQueue {
            waiters: SpinLock::new("wait queue", VecDeque::new()),
        }
    }

    /// Sleep until `cond()` returns true (Linux `wait_event`). `cond` runs with
    /// interrupts off and must not sleep. Use only where the task cannot be asked to
    /// die while waiting (kernel threads, waits bounded by kernel work).
    #[track_caller]
    pub fn wait(&self, cond: impl FnMut() -> bool) {
        let r = self.wait_inner(cond, Interruptible::Uninterruptible);
        debug_assert!(r.is_ok());
    }

    /// Sleep until `cond()` returns true or the task is sent SIGKILL (Linux
    /// `wait_event_killable`). Every wait a user can cause uses this.
    #[track_caller]
    pub fn wait_killable(&self, cond: impl FnMut() -> bool) -> Result<(), Killed> {
        self.wait_inner(cond, Interruptible::Killable)
    }

    /// Sleep until `cond()` returns true or a signal is pending (Linux
    /// `wait_event_interruptible`): for waits a signal handler should cut short, such as
    /// a read from an empty pipe.
    #[track_caller]
    pub fn wait_interruptible(&self, cond: impl FnMut() -> bool) -> Result<(), Interrupted> {
        self.wait_inner(cond, Interruptible::Signal)
            .map_err(|Killed| Interrupted)
    }

    #[track_caller]
    fn wait_inner(
        &self,
        mut cond: impl FnMut() -> bool,
        mode: Interruptible,
    ) -> Result<(), Killed> {
        might_sleep("WaitQueue::wait");
        let at = Location::caller();
        let was_enabled = interrupts::are_enabled();
        let result = loop {
            interrupts::disable();
            if cond() {
                break Ok(());
            }
            let sched = SCHEDULER
                .get()
                .expect("WaitQueue::wait before the scheduler is set");
            let me = (sched.current)()
                .expect("WaitQueue::wait outside a task: nothing could ever wake it");
            let cut_short = match mode {
                Interruptible::Signal => me.signal_pending(),
                Interruptible::Killable => me.kill_pending(),
                Interruptible::Uninterruptible => false,
            };
            if cut_short {
                break Err(Killed);
            }
            if self.waiters.lock().try_reserve(1).is_err() {
                // No memory for the queue entry: poll instead, letting others run.
                (sched.yield_now)();
                continue;
            }
            self.waiters.lock().push_back(me.clone());
            (sched.block_current)(at);
            // Woken (or killed, which wakes too): leave the queue if still on it.
            self.waiters
                .lock()
                .retain(|t| !core::ptr::addr_eq(Arc::as_ptr(t), Arc::as_ptr(&me)));
        };
        if was_enabled {
            interrupts::enable();
        }
        result
    }

    /// Wake every waiter; each re-checks its condition.
    pub fn wake_all(&self) {
        let woken: VecDeque<Arc<dyn Task>> = core::mem::take(&mut *self.waiters.lock());
        for t in woken {
            t.wake();
        }
    }

    /// Wake the longest waiter.
    pub fn wake_one(&self) {
        let first = self.waiters.lock().pop_front();
        if let Some(t) = first {
            t.wake();
        }
    }

    /// Whether anyone waits.
    pub fn has_waiters(&self) -> bool {
        !self.waiters.lock().is_empty()
    }
}
