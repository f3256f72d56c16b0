//! Device-exclusive access (docs chapter 7; its states, invariants and scenarios are in
//! chapter 9;
//! Linux `make_device_exclusive` in
//! mm/rmap.c and `remove_device_exclusive_entry` in mm/memory.c, v6.15+).
//!
//! A device that wants to do atomic operations on a page of process memory asks for
//! *exclusive* access: the CPU's entry for the page is replaced by a non-present
//! "device-exclusive" entry that still names the frame (so the frame stays mapped and
//! referenced), and the device maps the frame with ATOMIC permission. Any CPU access
//! then faults; the fault handler tells every device to drop the page (notifier event
//! `Clear`) and puts a present entry back. The frame lock orders the two: the driver
//! holds it from the conversion until its device mapping is programmed, and the
//! restore waits for it.
//!
//! ```text
//!            make_device_exclusive                  CPU fault (any access)
//!  present ------------------------> exclusive ------------------------------> present
//!  (RW)      notify Exclusive(owner)  (P = 0)    lock frame, notify Clear(None)
//! ```

use alloc::sync::Arc;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use super::address_space::{restored_flags, AddressSpace};
use super::fault::{mapped, Fix};
use super::notifier::{NotifyEvent, Owner};
use super::vma::{Prot, Sharing};
use super::{Access, FaultOutcome, Privilege};
use crate::mm::frame::{self, Frame, FrameFlags};
use crate::mm::pte::Pte;
use crate::mm::PAGE_SIZE;
use crate::sync::Killed;

/// Why a page could not be made device-exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExclusiveError {
    /// No VMA there, or it forbids writing (Linux: the write fault fails -> EFAULT).
    BadAddress,
    /// A read-only VMA (the driver reports EPERM).
    ReadOnly,
    /// A shared or non-anonymous mapping (Linux: EOPNOTSUPP).
    NotAnonymousPrivate,
    /// No memory to fault the page in.
    NoMemory,
    /// The requester was sent SIGKILL while waiting (only a process can be; the
    /// driver's engine thread never is).
    Killed,
}

/// A frame just made device-exclusive, still locked and referenced: the driver maps it
/// into the device with ATOMIC permission, then drops this guard, which unlocks the
/// frame (letting a waiting CPU fault proceed) and drops the reference.
pub struct ExclusiveFrame {
    frame: Frame,
}

impl ExclusiveFrame {
    /// The frame.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }
}

impl Drop for ExclusiveFrame {
    fn drop(&mut self) {
        self.frame.meta().unlock();
    }
}

impl AddressSpace {
    /// Make the page at `va` device-exclusive for `owner` (Linux `make_device_exclusive`).
    ///
    /// 1. Fault the page in writable (allocates a never-touched page, breaks COW,
    ///    restores an exclusive entry held by another device, which revokes that one).
    /// 2. Take a reference and the frame lock (sleeping if a driver holds it).
    /// 3. Notify `Exclusive` with `owner` (so the requester ignores it).
    /// 4. Under the lock, check the entry still maps the same frame, present and
    ///    writable (else undo and start over); carry the dirty bit into the frame,
    ///    write the exclusive entry, flush the TLB entry.
    ///
    /// Returns the frame locked and referenced (see [`ExclusiveFrame`]).
    pub fn make_device_exclusive(
        self: &Arc<Self>,
        va: VirtAddr,
        owner: Owner,
    ) -> Result<ExclusiveFrame, ExclusiveError> {
        let page = va.align_down(PAGE_SIZE);
        loop {
            let vma = self
                .with(|inner| inner.vmas.find(page).copied())
                .ok_or(ExclusiveError::BadAddress)?;
            if vma.sharing != Sharing::Private {
                return Err(ExclusiveError::NotAnonymousPrivate);
            }
            if !vma.prot.contains(Prot::WRITE) {
                return Err(ExclusiveError::ReadOnly);
            }
            // 1. Fault in writable, as a write from the kernel would.
            match self.handle_fault(page, Access::Write, Privilege::Kernel) {
                FaultOutcome::Fixed(_) => {}
                FaultOutcome::OutOfMemory => return Err(ExclusiveError::NoMemory),
                FaultOutcome::Killed => return Err(ExclusiveError::Killed),
                FaultOutcome::BadAccess(_) | FaultOutcome::KernelBug(_) => {
                    return Err(ExclusiveError::BadAddress)
                }
            }
            // A restore only makes the entry present; it may still need a COW break.
            let Some(reference) = self.with(|inner| {
                let pte = inner
                    .table
                    .cursor(page, page + PAGE_SIZE)
                    .ok()?
                    .query(page)
                    .ok()?;
                match pte {
                    Pte::Present { frame, flags } if flags.contains(PageTableFlags::WRITABLE) => {
                        Some(mapped(frame))
                    }
                    Pte::Present { .. } | Pte::None | Pte::DeviceExclusive { .. } => None,
                }
            }) else {
                continue;
            };
            // 2. Sleep on the frame lock.
            reference.meta().lock();
            // 3. Devices drop the page, except the requester.
            self.notify(page, page + PAGE_SIZE, NotifyEvent::Exclusive, Some(owner));
            // 4. Re-check and convert.
            let converted = self.with(|inner| {
                let mut cursor = inner
                    .table
                    .cursor(page, page + PAGE_SIZE)
                    .expect("a page inside a VMA is a valid range");
                match cursor.query(page) {
                    Ok(Pte::Present { frame, flags })
                        if frame == reference.phys_frame()
                            && flags.contains(PageTableFlags::WRITABLE) =>
                    {
                        let meta = frame::meta(frame);
                        if flags.contains(PageTableFlags::DIRTY) {
                            meta.set_flags(FrameFlags::DIRTY);
                        }
                        cursor
                            .replace(page, Pte::DeviceExclusive { frame })
                            .expect("entry checked above");
                        cursor.flush();
                        true
                    }
                    // Changed meanwhile (unmapped, read-only again, another frame, or
                    // another device's exclusive entry): start over.
                    Ok(Pte::Present { .. } | Pte::None | Pte::DeviceExclusive { .. }) | Err(_) => {
                        false
                    }
                }
            });
            if converted {
                return Ok(ExclusiveFrame { frame: reference });
            }
            reference.meta().unlock();
        }
    }

    /// Put a present entry back for the device-exclusive entry at `page` whose frame
    /// `reference` the caller took (Linux `remove_device_exclusive_entry`). Called
    /// without the address-space lock: it sleeps on the frame lock (waiting for a driver
    /// still programming its device; killable: `Killed` if the process is sent SIGKILL
    /// meanwhile), tells every device to drop the page, then under the lock restores the
    /// entry if it is still the same exclusive entry: writable iff the VMA is writable
    /// and the frame anon-exclusive, dirty iff the frame is dirty.
    pub(super) fn restore_exclusive(
        &self,
        page: VirtAddr,
        reference: Frame,
    ) -> Result<Fix, Killed> {
        reference.meta().lock_killable()?;
        self.with(|inner| {
            self.notify(page, page + PAGE_SIZE, NotifyEvent::Clear, None);
            let Some(vma) = inner.vmas.find(page).copied() else {
                return; // unmapped meanwhile: nothing to restore
            };
            let mut cursor = inner
                .table
                .cursor(page, page + PAGE_SIZE)
                .expect("a page inside a VMA is a valid range");
            if cursor.query(page)
                == Ok(Pte::DeviceExclusive {
                    frame: reference.phys_frame(),
                })
            {
                let exclusive = reference
                    .meta()
                    .flags()
                    .contains(FrameFlags::ANON_EXCLUSIVE);
                let flags = restored_flags(&vma, reference.phys_frame(), exclusive);
                cursor
                    .replace(
                        page,
                        Pte::Present {
                            frame: reference.phys_frame(),
                            flags,
                        },
                    )
                    .expect("entry checked above");
            }
        });
        reference.meta().unlock();
        Ok(Fix::ExclusiveRestored)
    }
}
