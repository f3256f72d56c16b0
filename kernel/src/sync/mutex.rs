//! [`Mutex`]: a sleeping lock (Linux `struct mutex`). Its holder may sleep (wait for a
//! frame lock, a device, memory); a task that finds it taken sleeps on its wait queue
//! instead of spinning, so the holder gets the CPU and can finish.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use super::wait::{Killed, WaitQueue};

/// A sleeping lock around a `T`. Never take it with a spinlock held or in an interrupt
/// handler (debug builds check the first: [`super::might_sleep`]).
pub struct Mutex<T> {
    name: &'static str,
    locked: AtomicBool,
    waiters: WaitQueue,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a MutexGuard, and `locked` admits one guard
// at a time (acquire/release ordering on `locked` orders the accesses).
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the value; no guard can exist then (it borrows it).
unsafe impl<T: Send> Send for Mutex<T> {}

/// Proof that a [`Mutex`] is held; dropping it releases the lock and wakes waiters.
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// A lock named `name`, unlocked.
    pub const fn new(name: &'static str, value: T) -> Self {
        Mutex {
            name,
            locked: AtomicBool::new(false),
            waiters: WaitQueue::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// The lock's name (for reports).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The value, through a unique borrow of the mutex (no locking needed: no guard can
    /// exist).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Take the lock if it is free, without sleeping.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then_some(MutexGuard { mutex: self })
    }

    /// Take the lock, sleeping while someone else holds it. Only for waits no user can
    /// prolong indefinitely; user-caused waits use [`Mutex::lock_killable`].
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        super::might_sleep(self.name);
        if let Some(g) = self.try_lock() {
            return g;
        }
        let mut guard = None;
        self.waiters.wait(|| {
            guard = self.try_lock();
            guard.is_some()
        });
        guard.expect("wait returns once the lock was taken")
    }

    /// Take the lock, sleeping while someone else holds it, unless the task is sent
    /// SIGKILL first (Linux `mutex_lock_killable`).
    #[track_caller]
    pub fn lock_killable(&self) -> Result<MutexGuard<'_, T>, Killed> {
        super::might_sleep(self.name);
        if let Some(g) = self.try_lock() {
            return Ok(g);
        }
        let mut guard = None;
        self.waiters.wait_killable(|| {
            guard = self.try_lock();
            guard.is_some()
        })?;
        Ok(guard.expect("wait returns once the lock was taken"))
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the one holder of the lock.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the one holder of the lock, and is borrowed mutably.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.locked.store(false, Ordering::Release);
        // Wake them all: one that was killed meanwhile gives up without taking the
        // lock, and must not swallow the wake-up of the others.
        if self.mutex.waiters.has_waiters() {
            self.mutex.waiters.wake_all();
        }
    }
}
