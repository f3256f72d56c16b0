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
//! Contract for implementors: the callback may run with the address-space lock held,
//! so it must not call back into the address space.
#![deny(unsafe_code)]

use x86_64::VirtAddr;

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
