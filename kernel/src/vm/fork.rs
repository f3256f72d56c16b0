//! fork of an address space: copy-on-write (Linux `dup_mmap`, `copy_page_range`,
//! `copy_pte_range`, `copy_present_pte`, `copy_nonpresent_pte`).
//!
//! Private pages become read-only in both processes and shared (refcount and mapcount
//! +1, anon-exclusive cleared): the first write on either side copies or reuses the
//! frame. Shared mappings stay shared and writable.
//!
//! Shared mappings share their `vm::shmem` object: the child's first touch of a page
//! finds the same frame as the parent's, so nothing needs populating here.
//!
//! A device-exclusive entry is restored in place in the parent first (Linux
//! `copy_nonpresent_pte` + `try_restore_exclusive_pte`), so the child never gets one
//! (invariant I2). That needs the frame lock; if a driver holds it, fork drops the
//! address-space lock, sleeps until the frame is unlocked (killably), and goes on from
//! that entry: fork never fails because a lock is busy (docs, chapter 7.8).
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use core::ops::ControlFlow;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use super::address_space::{restored_flags, AddressSpace, Inner};
use super::fault::mapped;
use super::notifier::NotifyEvent;
use super::vma::{Prot, Sharing, Vma};
use crate::mm::frame::{self, Frame, FrameFlags};
use crate::mm::page_table::{Cursor, USER_END};
use crate::mm::pte::Pte;
use crate::mm::{MmError, PAGE_SIZE};
use crate::sync::Killed;

/// Whether a copy pass is the first (which also copies the VMA list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    First,
    Again,
}

impl AddressSpace {
    /// A copy-on-write copy of this address space for a forked child. If memory runs out
    /// half-way the child is dropped (freeing all it got) and the parent is left valid;
    /// `Killed` if the caller was sent SIGKILL while waiting for a frame lock.
    pub fn fork(&self) -> Result<Arc<AddressSpace>, MmError> {
        let child = AddressSpace::new()?;
        let mut resume = VirtAddr::new(0);
        let mut pass = Pass::First;
        while let Some(busy) = self.copy_pass(&child, &mut resume, pass)? {
            // Sleep until the driver unlocks the frame, then go on from that entry.
            busy.meta()
                .lock_killable()
                .map_err(|Killed| MmError::Killed)?;
            busy.meta().unlock();
            pass = Pass::Again;
        }
        #[cfg(debug_assertions)]
        self.check_after_fork(&child);
        Ok(child)
    }

    /// One pass under the parent's lock, from `resume` on: devices lose write access to
    /// private writable VMAs (they become COW; sent under the lock, so no device can get
    /// it back before the entries change), then every entry is copied. Returns the
    /// frame of an exclusive entry whose lock a driver holds (`resume` is left there),
    /// or `None` when everything is copied.
    fn copy_pass(
        &self,
        child: &AddressSpace,
        resume: &mut VirtAddr,
        pass: Pass,
    ) -> Result<Option<Frame>, MmError> {
        self.with(|parent| {
            for vma in parent.vmas.iter() {
                if vma.sharing == Sharing::Private
                    && vma.prot.contains(Prot::WRITE)
                    && vma.end > *resume
                {
                    let start = vma.start.max(*resume);
                    self.notify(start, vma.end, NotifyEvent::ProtectionPage, None);
                }
            }
            let mut guard = child.inner.lock();
            let kid = &mut *guard;
            if pass == Pass::First {
                kid.vmas = parent.vmas.try_clone()?;
                // Shared memory: the child maps the same objects (nothing populated).
                kid.shm
                    .try_reserve_exact(parent.shm.len())
                    .map_err(|_| MmError::NoMemory)?;
                kid.shm.extend(parent.shm.iter().cloned());
            }
            let Inner { table, vmas, .. } = parent;
            let mut pc = table.cursor(VirtAddr::new(0), VirtAddr::new(USER_END))?;
            let mut cc = kid
                .table
                .cursor(VirtAddr::new(0), VirtAddr::new(USER_END))?;
            let mut outcome: Result<Option<Frame>, MmError> = Ok(None);
            let mut vma_here: Option<Vma> = None;
            let stopped = pc.update_each(*resume, |va, pte| {
                let vma = match vma_here {
                    Some(v) if v.contains(va) => v,
                    _ => *vmas.find(va).expect("fork: every entry lies in a VMA"),
                };
                vma_here = Some(vma);
                match self.copy_entry(&mut cc, &vma, va, pte) {
                    Ok(new) => ControlFlow::Continue(new),
                    Err(stop) => {
                        outcome = stop;
                        ControlFlow::Break(())
                    }
                }
            });
            if let Some(va) = stopped {
                *resume = va;
            }
            outcome
        })
    }

    /// Copy one parent entry into the child (Linux `copy_present_pte` /
    /// `copy_nonpresent_pte`); returns the parent's new entry if it changes. `Err` stops
    /// the pass: `Ok(Some(frame))` for a busy exclusive entry, `Err(e)` for no memory.
    fn copy_entry(
        &self,
        cc: &mut Cursor,
        vma: &Vma,
        va: VirtAddr,
        pte: Pte,
    ) -> Result<Option<Pte>, Result<Option<Frame>, MmError>> {
        let (frame, flags) = match pte {
            Pte::None => unreachable!("update_each never yields None entries"),
            Pte::Present { frame, flags } => (frame, flags),
            Pte::DeviceExclusive { frame } => {
                let meta = frame::meta(frame);
                if !meta.try_lock() {
                    return Err(Ok(Some(mapped(frame))));
                }
                // Every device drops the page (a device that took it while fork slept
                // is not covered by the ProtectionPage of an earlier pass).
                self.notify(va, va + PAGE_SIZE, NotifyEvent::Clear, None);
                let exclusive = meta.flags().contains(FrameFlags::ANON_EXCLUSIVE);
                let flags = restored_flags(vma, frame, exclusive);
                // We hold the address-space lock until the entry is written.
                meta.unlock();
                (frame, flags)
            }
        };
        let child_flags = match vma.sharing {
            Sharing::Shared => flags,
            Sharing::Private => flags - PageTableFlags::WRITABLE,
        };
        cc.map(va, mapped(frame), child_flags).map_err(Err)?;
        if vma.sharing == Sharing::Private {
            // Shared now: the next write on either side copies or reuses.
            frame::meta(frame).clear_flags(FrameFlags::ANON_EXCLUSIVE);
        }
        let parent = Pte::Present {
            frame,
            flags: child_flags,
        };
        Ok((parent != pte).then_some(parent))
    }

    /// Debug builds check the invariants of both sides after every fork (I1, I4, I5;
    /// I2: the child has no exclusive entry at all).
    #[cfg(debug_assertions)]
    fn check_after_fork(&self, child: &AddressSpace) {
        let kid = child
            .check_invariants()
            .unwrap_or_else(|v| panic!("fork: child: {v}"));
        assert_eq!(
            kid.exclusive, 0,
            "fork: I2 broken: the child got an exclusive entry"
        );
        if let Err(v) = self.check_invariants() {
            panic!("fork: parent: {v}");
        }
    }
}
