//! [`SpinLock`]: a lock whose holder never sleeps, taken with interrupts off (Linux
//! `spin_lock_irqsave`), and the bookkeeping behind [`might_sleep`].
//!
//! Every held spinlock is counted (with its name, for the report) while its guard
//! lives. One CPU, so one count; an SMP kernel keeps it per CPU (Linux's
//! `preempt_count`).

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};
use x86_64::instructions::interrupts;

/// How many spinlocks are held right now.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// The names of the innermost few, for the might_sleep report.
const NAMES: usize = 8;
static HELD_NAMES: ::spin::Mutex<[&str; NAMES]> = ::spin::Mutex::new([""; NAMES]);

/// A spinlock that disables interrupts while held. Its holder must not sleep (see the
/// module docs of [`crate::sync`]).
pub struct SpinLock<T> {
    name: &'static str,
    inner: ::spin::Mutex<T>,
}

/// Proof that a [`SpinLock`] is held; dropping it releases the lock and restores the
/// interrupt flag as it was.
pub struct SpinGuard<'a, T> {
    guard: Option<::spin::MutexGuard<'a, T>>,
    irq_were_enabled: bool,
}

impl<T> SpinLock<T> {
    /// A lock named `name` (the name appears in might_sleep reports).
    pub const fn new(name: &'static str, value: T) -> Self {
        SpinLock {
            name,
            inner: ::spin::Mutex::new(value),
        }
    }

    /// Disable interrupts and take the lock.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let irq_were_enabled = interrupts::are_enabled();
        interrupts::disable();
        let guard = self.inner.lock();
        let depth = HELD.fetch_add(1, Ordering::Relaxed);
        if depth < NAMES {
            HELD_NAMES.lock()[depth] = self.name;
        }
        SpinGuard {
            guard: Some(guard),
            irq_were_enabled,
        }
    }

    /// Run `f` with the lock held.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock())
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard present until drop")
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard present until drop")
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
        drop(self.guard.take());
        if self.irq_were_enabled {
            interrupts::enable();
        }
    }
}

/// How many spinlocks the running code holds.
pub fn spinlocks_held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// Say "the caller is about to sleep" (Linux `might_sleep()`): in debug builds, panic
/// naming the spinlocks held if there are any, since sleeping under one hangs the
/// machine. `what` names the sleeping operation for the report.
#[track_caller]
pub fn might_sleep(what: &str) {
    if cfg!(debug_assertions) {
        assert!(
            !crate::mm::gfp::in_reserve_scope(),
            "might_sleep: {what} would sleep inside a memory-reserve scope (mm::gfp)"
        );
        let held = spinlocks_held();
        if held > 0 {
            let names = *HELD_NAMES.lock();
            panic!(
                "might_sleep: {what} would sleep while holding {held} spinlock(s): {:?}",
                &names[..held.min(NAMES)]
            );
        }
    }
}
