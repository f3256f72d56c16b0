//! MMU notifiers: how a device that mirrors an address space hears that its
//! translations must go (Linux `include/linux/mmu_notifier.h`).
//!
//! A device driver subscribes to an address space. Before every change that can lower
//! what the device may do with a range (unmap, protection change, copy-on-write break,
//! device-exclusive conversion, exit) the address space calls
//! [`MmuNotifier::invalidate_range_start`]; the device must drop its translations for
//! the range before returning, except when `owner` is its own cookie (the change was
//! its own request: reacting would make it ask again forever).
//!
//! Contract for implementors: the callback runs with the address-space lock (a sleeping
//! lock) held, so it may sleep but must not call back into the address space.
//!
//! Changes that remove or replace pages do not call the notifiers themselves: they go
//! through `mm::gather::Gather`, whose `begin` sends the invalidation (see
//! [`Invalidation`]), so no such change can forget it.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::VirtAddr;

use crate::mm::gather::RangeInvalidator;
use crate::mm::MmError;
use crate::sync::SpinLock;

/// Why a range is being invalidated (Linux `enum mmu_notifier_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyEvent {
    /// A page becomes device-exclusive (`MMU_NOTIFY_EXCLUSIVE`); carries the requester.
    Exclusive,
    /// Pages are zapped or a CPU fault restores an exclusive entry (`MMU_NOTIFY_CLEAR`).
    Clear,
    /// The range is unmapped (`MMU_NOTIFY_UNMAP`).
    Unmap,
    /// fork write-protects a private writable VMA (`MMU_NOTIFY_PROTECTION_PAGE`).
    ProtectionPage,
    /// mprotect changes a VMA's protection (`MMU_NOTIFY_PROTECTION_VMA`).
    ProtectionVma,
    /// The address space is going away (`MMU_NOTIFY_RELEASE`).
    Release,
}

/// The cookie of a requester (one per device subscription).
pub type Owner = u64;

/// A subscriber to an address space's invalidations.
pub trait MmuNotifier: Send + Sync {
    /// Drop every translation of [start, end) unless `owner` is this subscriber's own.
    fn invalidate_range_start(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        event: NotifyEvent,
        owner: Option<Owner>,
    );
}

/// Handle of a subscription, for `unsubscribe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionId(pub u64);

/// The subscribers of one address space, and how they are told (Linux
/// `struct mmu_notifier_subscriptions`).
pub(super) struct Subscribers {
    list: SpinLock<Vec<(SubscriptionId, Arc<dyn MmuNotifier>)>>,
    next: AtomicU64,
}

impl Subscribers {
    pub(super) const fn new() -> Self {
        Subscribers {
            list: SpinLock::new("mmu notifier list", Vec::new()),
            next: AtomicU64::new(1),
        }
    }

    /// Add `notifier`; ENOMEM-style failure if the list cannot grow.
    pub(super) fn subscribe(
        &self,
        notifier: Arc<dyn MmuNotifier>,
    ) -> Result<SubscriptionId, MmError> {
        let id = SubscriptionId(self.next.fetch_add(1, Ordering::Relaxed));
        let mut list = self.list.lock();
        list.try_reserve(1).map_err(|_| MmError::NoMemory)?;
        list.push((id, notifier));
        Ok(id)
    }

    /// Remove a subscription. Returns it, so the caller drops it outside the list lock.
    pub(super) fn unsubscribe(&self, id: SubscriptionId) -> Option<Arc<dyn MmuNotifier>> {
        let mut list = self.list.lock();
        let i = list.iter().position(|(s, _)| *s == id)?;
        Some(list.swap_remove(i).1)
    }

    /// A snapshot of the subscribers, so they are called without the list lock (a
    /// callback may sleep). Empty if there is no memory for the snapshot: then the
    /// callbacks go one by one under a fresh look-up each (see `notify`).
    fn snapshot(&self) -> Option<Vec<Arc<dyn MmuNotifier>>> {
        let list = self.list.lock();
        let mut out = Vec::new();
        out.try_reserve_exact(list.len()).ok()?;
        out.extend(list.iter().map(|(_, n)| n.clone()));
        Some(out)
    }

    /// Tell every subscriber that [start, end) is being invalidated. Subscribers are
    /// called without the list lock held.
    pub(super) fn notify(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        event: NotifyEvent,
        owner: Option<Owner>,
    ) {
        match self.snapshot() {
            Some(subs) => {
                for n in subs {
                    n.invalidate_range_start(start, end, event, owner);
                }
            }
            None => {
                // Out of memory for a snapshot: walk the list by index (a subscriber
                // added or removed meanwhile is a new open or a close: either way it
                // holds no translation of this range that it could use afterwards).
                let mut i = 0;
                loop {
                    let Some(n) = self.list.lock().get(i).map(|(_, n)| n.clone()) else {
                        break;
                    };
                    n.invalidate_range_start(start, end, event, owner);
                    i += 1;
                }
            }
        }
    }
}

/// One invalidation of a range for a given reason: what [`Gather::begin`] calls to tell
/// the devices (see `mm::gather`).
///
/// [`Gather::begin`]: crate::mm::gather::Gather::begin
pub(super) struct Invalidation<'a> {
    pub(super) subscribers: &'a Subscribers,
    pub(super) event: NotifyEvent,
    pub(super) owner: Option<Owner>,
}

impl RangeInvalidator for Invalidation<'_> {
    fn invalidate_start(&self, start: VirtAddr, end: VirtAddr) {
        self.subscribers.notify(start, end, self.event, self.owner);
    }
    fn invalidate_end(&self, _start: VirtAddr, _end: VirtAddr) {
        // Nothing yet: the devices' sequence counts (Linux `mmu_interval_read_retry`)
        // will be advanced here.
    }
}
