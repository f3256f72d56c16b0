//! Virtual memory: address spaces, VMAs, and the page-fault path.
//!
//! The CPU translates through the address space in CR3. [`switch_to`] changes it and
//! remembers which [`AddressSpace`] is current, so the page-fault handler can find the
//! VMAs of the faulting address.
#![forbid(unsafe_code)]

pub mod address_space;
pub mod exclusive;
mod fault;
mod fork;
mod invariants;
pub mod notifier;
pub mod shmem;
pub mod uaccess;
pub mod vma;

pub use address_space::{AddressSpace, Placement};
pub use exclusive::{ExclusiveError, ExclusiveFrame};
pub use fault::{Access, BadAccessReason, FaultOutcome, Fix, KernelBug, Privilege};
pub use invariants::{Census, InvariantViolation};
pub use notifier::{MmuNotifier, NotifyEvent, Owner, SubscriptionId};
pub use vma::{Prot, Sharing, Vma};

use crate::sync::SpinLock;
use alloc::sync::Arc;
use x86_64::VirtAddr;

use crate::mm::page_table::KERNEL_START;

static CURRENT: SpinLock<Option<Arc<AddressSpace>>> = SpinLock::new("current address space", None);

/// Nothing to do at boot any more (the kernel's root is known to mm); kept as the
/// place vm's boot-time setup goes.
pub fn init() {}

/// The current address space, if any.
pub fn current() -> Option<Arc<AddressSpace>> {
    CURRENT.with(|c| c.clone())
}

/// Make `aspace` the one the CPU translates through (`None`: the kernel-only table).
/// The previous one stays alive as long as someone else holds it.
pub fn switch_to(aspace: Option<Arc<AddressSpace>>) {
    let mut current = CURRENT.lock();
    crate::mm::page_table::load_root(aspace.as_ref().map(|a| a.root()));
    // Drop the old one only after CR3 no longer points at it, and outside the lock (its
    // drop unmaps everything and tells the devices, which may sleep).
    let old = core::mem::replace(&mut *current, aspace);
    drop(current);
    drop(old);
}

/// Entry from the page-fault exception: hand a user-half address to the current
/// address space; anything else is a kernel bug.
pub fn page_fault(addr: VirtAddr, access: Access, who: Privilege) -> FaultOutcome {
    if addr.as_u64() >= KERNEL_START {
        return FaultOutcome::KernelBug(KernelBug::KernelAddress);
    }
    let Some(aspace) = current() else {
        return FaultOutcome::KernelBug(KernelBug::NoAddressSpace);
    };
    aspace.handle_fault(addr, access, who)
}
