//! Locks and waiting: the two kinds of lock, and wait queues.
//!
//! A kernel has two kinds of lock, and choosing the right one is a rule, not a taste
//! (Linux `Documentation/locking/locktypes.rst`):
//!
//! | kind | type | holder may sleep? | waiter | use it for |
//! |---|---|---|---|---|
//! | spinlock | [`SpinLock`] | **no** | spins, interrupts off | data an interrupt handler touches (run queue, sleepers, process state, frame free list, device queues touched by notifiers) and short sections that never sleep |
//! | sleeping lock | [`Mutex`] | yes | sleeps on a [`WaitQueue`] | everything held across a possible sleep: an address space (faults, mmap, fork), a device that serves page requests |
//!
//! The rule: take a [`SpinLock`] only for data that an interrupt handler (or the
//! scheduler loop, which runs with no process) touches, or for a few instructions that
//! cannot sleep; everything else gets a [`Mutex`]. Never sleep while a spinlock is held:
//! the holder runs with interrupts off, so on one CPU nothing else can run to release
//! what the sleeper waits for, and the machine hangs. Debug builds check this:
//! [`might_sleep`] (called by every function that can sleep) panics, naming the
//! spinlocks held, when a sleep is attempted under one (Linux `might_sleep()` and
//! `CONFIG_DEBUG_ATOMIC_SLEEP`).
//!
//! Waits a user can cause are killable: [`Mutex::lock_killable`] and
//! [`WaitQueue::wait_killable`] give up with [`Killed`] when the waiting process has
//! been sent SIGKILL, so it can exit instead of waiting for ever.
//!
//! The scheduler sits above this module (it uses spinlocks itself), so it plugs in
//! through [`set_scheduler`]: this module knows a task only as a [`Task`].

mod mutex;
mod spin;
mod wait;

pub use mutex::{Mutex, MutexGuard};
pub use spin::{might_sleep, spinlocks_held, SpinGuard, SpinLock};
pub use wait::{set_scheduler, Interrupted, Killed, Scheduler, Task, WaitQueue};
