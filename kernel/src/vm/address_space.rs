//! Address spaces: a page table plus the VMAs that say what may be mapped in it.
//!
//! This is where the user half of memory is managed: `mmap`-like mapping of anonymous
//! memory, `munmap`, `mprotect` (with VMA splitting and merging), the page-fault path
//! (demand-zero fill and copy-on-write), and an invariant checker. Linux: `struct
//! mm_struct`, `do_mmap`, `do_munmap`, `mprotect_fixup`, `handle_mm_fault`.

use alloc::sync::Arc;
use alloc::vec::Vec;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use super::notifier::{Invalidation, MmuNotifier, NotifyEvent, Owner, Subscribers, SubscriptionId};
use super::shmem::{ShmKey, ShmObject};
use super::vma::{FrameUse, Prot, Sharing, SplitFor, Vma, VmaList, HW_BITS, MAX_MAP_COUNT};
use crate::mm::frame::{self, FrameFlags};
use crate::mm::gather::Gather;
use crate::mm::page_table::{PageTable, RootRef, USER_END};
use crate::mm::pte::Pte;
use crate::mm::{MmError, PAGE_SIZE};
use crate::sync::Mutex;
use core::ops::ControlFlow;
use x86_64::structures::paging::PhysFrame;

/// Lowest address `mmap` hands out (Linux `mmap_min_addr` is 64 KiB; we keep the first
/// 64 KiB free too, so a null-pointer dereference always faults).
pub const MMAP_MIN: u64 = 0x1_0000;
/// Top of the area where "anywhere" mappings go, searched downwards.
pub const MMAP_TOP: u64 = 0x7f00_0000_0000;

/// Where a new mapping goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Wherever there is room.
    Anywhere,
    /// At this address if it is free, else anywhere (Linux: a non-`MAP_FIXED` hint).
    Hint(VirtAddr),
    /// Exactly here, replacing whatever was mapped (Linux `MAP_FIXED`).
    Fixed(VirtAddr),
    /// Exactly here, or `AlreadyMapped` if anything is mapped there (Linux
    /// `MAP_FIXED_NOREPLACE`; also what `brk` needs).
    FixedNoReplace(VirtAddr),
}

pub(super) struct Inner {
    pub(super) table: PageTable,
    pub(super) vmas: VmaList,
    /// The shared-memory objects the VMAs use (by id; see `vm::shmem`).
    pub(super) shm: Vec<Arc<ShmObject>>,
}

impl Inner {
    /// The object behind a shared VMA.
    pub(super) fn shm_object(&self, key: ShmKey) -> &Arc<ShmObject> {
        self.shm
            .iter()
            .find(|o| o.id() == key.id)
            .expect("vm: a shared VMA names an object its address space does not hold")
    }

    /// Forget objects no VMA uses any more (their frames go with the last user).
    fn drop_unused_shm(&mut self) {
        let vmas = &self.vmas;
        self.shm
            .retain(|o| vmas.iter().any(|v| v.shm.is_some_and(|k| k.id == o.id())));
    }
}

/// One address space: the lower half of a page table and its VMAs, behind a lock, and
/// the devices that mirror it.
///
/// The lock is a sleeping [`Mutex`] (Linux `mmap_lock`): its holder may sleep (wait for
/// memory, call notifiers that wait for a device). The fault path takes it too, with
/// interrupts on. Frame locks are taken *before* it, never while holding it (except
/// with `try_lock`), so the two cannot deadlock.
pub struct AddressSpace {
    pub(super) inner: Mutex<Inner>,
    pub(super) subscribers: Subscribers,
    /// The root table's frame, referenced (it never changes; read without the lock,
    /// e.g. by the scheduler loop, which cannot sleep).
    root: RootRef,
}

impl AddressSpace {
    /// An empty address space (its page table shares the kernel's upper half).
    pub fn new() -> Result<Arc<AddressSpace>, MmError> {
        let table = PageTable::new()?;
        let root = table
            .root_ref()
            .expect("a new address space's table owns its root");
        let aspace = AddressSpace {
            inner: Mutex::new(
                "address space",
                Inner {
                    table,
                    vmas: VmaList::new(),
                    shm: Vec::new(),
                },
            ),
            subscribers: Subscribers::new(),
            root,
        };
        Arc::try_new(aspace).map_err(|_| MmError::NoMemory)
    }

    /// Run `f` with the address-space lock held (sleeping for it if needed).
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock())
    }

    /// Subscribe `notifier` to this address space's invalidations.
    pub fn subscribe(&self, notifier: Arc<dyn MmuNotifier>) -> Result<SubscriptionId, MmError> {
        self.subscribers.subscribe(notifier)
    }

    /// End a subscription (closing the device file). Holds the address-space lock so no
    /// invalidation is half-delivered to it; the subscription is dropped after.
    pub fn unsubscribe(&self, id: SubscriptionId) {
        let gone = self.with(|_| self.subscribers.unsubscribe(id));
        drop(gone);
    }

    /// Tell every subscriber about a change of [start, end) that removes no page
    /// (protection changes, device-exclusive conversion and restore). Changes that
    /// remove or replace pages use a [`Gather`] instead, which notifies by itself.
    pub(super) fn notify(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        event: NotifyEvent,
        owner: Option<Owner>,
    ) {
        self.subscribers.notify(start, end, event, owner);
    }

    /// The root page table frame (for CR3).
    pub(super) fn root(&self) -> &RootRef {
        &self.root
    }

    /// Map `len` bytes of zero-filled anonymous memory (Linux `do_mmap` with
    /// `MAP_ANONYMOUS`). Nothing is allocated until first touch. Returns the start.
    ///
    /// All or nothing, as Linux 6.12's `mmap_region` (which restores the old VMAs when a
    /// later step fails): everything that can fail (the VMA-count check, room in the VMA
    /// list, a shared-memory object) is done before `MAP_FIXED` unmaps what was there,
    /// so a failed `MAP_FIXED` leaves the old mapping in place.
    pub fn map_anonymous(
        &self,
        placement: Placement,
        len: u64,
        prot: Prot,
        sharing: Sharing,
    ) -> Result<VirtAddr, MmError> {
        if len == 0 {
            return Err(MmError::InvalidRange);
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::InvalidRange)?;
        self.with(|inner| {
            let start = inner.place(placement, len)?;
            // Shared anonymous memory gets its object now (Linux `shmem_zero_setup`).
            let object = match sharing {
                Sharing::Shared => {
                    inner.shm.try_reserve(1).map_err(|_| MmError::NoMemory)?;
                    Some(ShmObject::new()?)
                }
                Sharing::Private => None,
            };
            let slack = if let Placement::Fixed(_) = placement {
                // Linux `do_mmap` -> `do_vmi_munmap`: the old pages go through the one
                // unmap path, devices told first. Cannot fail for want of memory: the
                // room was taken by `place`.
                inner.unmap_range(&self.subscribers, start, start + len)?;
                2 // past the limit by what the unmap split (Linux lets it go just above)
            } else {
                0
            };
            let shm = object.map(|object| {
                let key = ShmKey {
                    id: object.id(),
                    origin: start,
                };
                inner.shm.push(object);
                key
            });
            let vma = Vma {
                start,
                end: start + len,
                prot,
                sharing,
                shm,
            };
            let inserted = inner.vmas.insert_with_slack(vma, slack);
            if inserted.is_err() {
                inner.drop_unused_shm();
            }
            inserted.map(|()| start)
        })
    }

    /// Remove [start, start + len): VMAs are cut at the edges, every entry inside is
    /// unmapped and its frame released (Linux `do_munmap`). Unmapped holes are fine.
    pub fn munmap(&self, start: VirtAddr, len: u64) -> Result<(), MmError> {
        let end = checked_range(start, len)?;
        self.with(|inner| inner.unmap_range(&self.subscribers, start, end))
    }

    /// Change the protection of [start, start + len), which must be fully mapped (Linux
    /// `mprotect`: ENOMEM otherwise). Present entries get the new rights at once; a
    /// frame shared copy-on-write stays read-only until its first write.
    pub fn mprotect(&self, start: VirtAddr, len: u64, prot: Prot) -> Result<(), MmError> {
        let end = checked_range(start, len)?;
        self.with(|inner| {
            if !inner.vmas.covers(start, end) {
                return Err(MmError::NoMemory);
            }
            self.notify(start, end, NotifyEvent::ProtectionVma, None);
            inner.vmas.split_range(start, end, SplitFor::Change)?;
            inner.vmas.set_prot(start, end, prot);
            // One pass over the entries of each VMA in the range.
            let Inner { table, vmas, .. } = inner;
            // (set_prot may have merged them with neighbours: clamp to the range.)
            for vma in vmas.iter().filter(|v| v.start < end && v.end > start) {
                let mut cursor = table.cursor(vma.start.max(start), vma.end.min(end))?;
                cursor.update_each(vma.start.max(start), |_, pte| match pte {
                    Pte::Present { frame, flags } => {
                        let exclusive = frame::meta(frame)
                            .flags()
                            .contains(FrameFlags::ANON_EXCLUSIVE);
                        ControlFlow::Continue(Some(Pte::Present {
                            frame,
                            flags: vma.pte_flags(FrameUse::of(exclusive)) | (flags & HW_BITS),
                        }))
                    }
                    // Writability of an exclusive entry is decided when it is restored.
                    Pte::DeviceExclusive { .. } | Pte::None => ControlFlow::Continue(None),
                });
            }
            Ok(())
        })
    }

    /// Drop the pages of [start, start + len) but keep the VMAs: the next touch gets
    /// zero-filled pages again (Linux `madvise(MADV_DONTNEED)`, `zap_page_range`).
    /// `NoMemory` (ENOMEM) if part of the range is not mapped, as Linux.
    pub fn zap(&self, start: VirtAddr, len: u64) -> Result<(), MmError> {
        let end = checked_range(start, len)?;
        self.with(|inner| {
            if !inner.vmas.covers(start, end) {
                return Err(MmError::NoMemory);
            }
            inner.zap_entries(&self.subscribers, start, end, NotifyEvent::Clear)
        })
    }

    /// The entry for `va` (for tests and the page-state dump).
    pub fn query(&self, va: VirtAddr) -> Pte {
        self.with(|inner| {
            let page = va.align_down(PAGE_SIZE);
            match inner.table.cursor(page, page + PAGE_SIZE) {
                Ok(c) => c.query(page).unwrap_or(Pte::None),
                Err(_) => Pte::None,
            }
        })
    }

    /// The `i`-th VMA in address order (for files that list VMAs piecewise).
    pub fn vma_at(&self, i: usize) -> Option<Vma> {
        self.with(|inner| inner.vmas.iter().nth(i).copied())
    }

    /// The first non-`None` entry in [from, end), if any (one at a time: no allocation).
    pub fn next_mapped(&self, from: VirtAddr, end: VirtAddr) -> Option<(VirtAddr, Pte)> {
        self.with(|inner| inner.table.cursor(from, end).ok()?.next_mapped(from))
    }

    /// How many entries of [start, end) are not `None`.
    pub fn count_mapped(&self, start: VirtAddr, end: VirtAddr) -> usize {
        self.with(|inner| {
            let Ok(cursor) = inner.table.cursor(start, end) else {
                return 0;
            };
            let (mut n, mut from) = (0, start);
            while let Some((va, _)) = cursor.next_mapped(from) {
                n += 1;
                from = va + PAGE_SIZE;
            }
            n
        })
    }

    /// The VMA that contains `va`, if any.
    pub fn vma_find(&self, va: VirtAddr) -> Option<Vma> {
        self.with(|inner| inner.vmas.find(va).copied())
    }

    /// A copy of the VMA list, for tests (it allocates without failing: no path a user
    /// drives calls it).
    pub fn vmas(&self) -> Vec<Vma> {
        self.with(|inner| inner.vmas.iter().copied().collect())
    }

    /// Number of page-table pages (root included).
    pub fn table_pages(&self) -> usize {
        self.with(|inner| inner.table.table_pages())
    }
}

/// The flags of a present entry that replaces a device-exclusive one: writable iff the
/// VMA is writable and the frame is anon-exclusive; dirty iff the frame is dirty.
pub(super) fn restored_flags(vma: &Vma, frame: PhysFrame, anon_exclusive: bool) -> PageTableFlags {
    let mut flags = vma.pte_flags(FrameUse::of(anon_exclusive));
    if frame::meta(frame).flags().contains(FrameFlags::DIRTY) {
        flags |= PageTableFlags::DIRTY;
    }
    flags
}

impl Drop for AddressSpace {
    /// Tell the devices the whole address space is going away (Linux `exit_mmap` ->
    /// `mmu_notifier_release`); the page table's own drop frees everything.
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        if let Err(v) = self.check_invariants() {
            panic!("AddressSpace::drop: invariant broken: {v}");
        }
        // Every page goes through the one unmap path: devices hear `Release` first.
        let (start, end) = (VirtAddr::new(0), VirtAddr::new(USER_END));
        let subscribers = &self.subscribers;
        self.inner
            .get_mut()
            .zap_entries(subscribers, start, end, NotifyEvent::Release)
            .expect("the whole user half is a valid range");
    }
}

impl Inner {
    /// Where a new mapping of `len` bytes goes (Linux `get_unmapped_area`, or the fixed
    /// address), checked. For `MAP_FIXED` also the up-front checks of Linux `do_mmap`
    /// (the VMA count) and room for two more VMAs (a split at an edge of the unmap, and
    /// the new one), so nothing after the unmap can fail.
    fn place(&mut self, placement: Placement, len: u64) -> Result<VirtAddr, MmError> {
        let fits = |start: VirtAddr| {
            start.is_aligned(PAGE_SIZE)
                && start.as_u64() >= MMAP_MIN
                && start
                    .as_u64()
                    .checked_add(len)
                    .is_some_and(|end| end <= USER_END)
        };
        match placement {
            Placement::Fixed(at) | Placement::FixedNoReplace(at) => {
                if !at.is_aligned(PAGE_SIZE) {
                    return Err(MmError::Unaligned);
                }
                if !fits(at) {
                    return Err(MmError::InvalidRange);
                }
                if let Placement::FixedNoReplace(_) = placement {
                    if self.vmas.overlaps(at, at + len) {
                        return Err(MmError::AlreadyMapped);
                    }
                } else {
                    // Linux `do_mmap`: `map_count > sysctl_max_map_count`.
                    if self.vmas.len() > MAX_MAP_COUNT {
                        return Err(MmError::NoMemory);
                    }
                    self.vmas.reserve(2)?;
                }
                Ok(at)
            }
            Placement::Hint(at) if fits(at) && !self.vmas.overlaps(at, at + len) => Ok(at),
            Placement::Hint(_) | Placement::Anywhere => self
                .vmas
                .find_gap(len, VirtAddr::new(MMAP_MIN), VirtAddr::new(MMAP_TOP))
                .ok_or(MmError::NoMemory),
        }
    }

    /// Cut VMAs at the edges of [start, end), drop those inside, unmap their entries
    /// (Linux `do_vmi_munmap`): devices are told (`Unmap`) before any entry goes, and
    /// the frames are freed after the TLB flush.
    fn unmap_range(
        &mut self,
        subscribers: &Subscribers,
        start: VirtAddr,
        end: VirtAddr,
    ) -> Result<(), MmError> {
        self.vmas.split_range(start, end, SplitFor::Removal)?;
        self.vmas.remove_range(start, end);
        let zapped = self.zap_entries(subscribers, start, end, NotifyEvent::Unmap);
        // After the entries: an object's frames go only once nothing maps them.
        self.drop_unused_shm();
        zapped
    }

    /// Remove every entry of [start, end) through the one unmap path (`mm::gather`):
    /// devices hear `event` first, the frames are freed after the TLB flush (Linux
    /// `zap_page_range_single` inside `mmu_notifier_invalidate_range_start/end`).
    fn zap_entries(
        &mut self,
        subscribers: &Subscribers,
        start: VirtAddr,
        end: VirtAddr,
        event: NotifyEvent,
    ) -> Result<(), MmError> {
        let mut cursor = self.table.cursor(start, end)?;
        let invalidation = Invalidation {
            subscribers,
            event,
            owner: None,
        };
        let mut gather = Gather::begin(&invalidation, start, end);
        cursor.unmap_all(&mut gather);
        drop(cursor);
        gather.finish();
        Ok(())
    }
}

/// [start, start + len) as an end address; page-aligned start, non-zero length, inside
/// the user half. The length is rounded up to whole pages.
fn checked_range(start: VirtAddr, len: u64) -> Result<VirtAddr, MmError> {
    if !start.is_aligned(PAGE_SIZE) {
        return Err(MmError::Unaligned);
    }
    let len = len
        .checked_next_multiple_of(PAGE_SIZE)
        .ok_or(MmError::InvalidRange)?;
    let end = start
        .as_u64()
        .checked_add(len)
        .ok_or(MmError::InvalidRange)?;
    if len == 0 || end > USER_END {
        return Err(MmError::InvalidRange);
    }
    Ok(VirtAddr::new(end))
}
