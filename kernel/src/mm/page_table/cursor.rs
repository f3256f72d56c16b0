//! [`Cursor`]: exclusive access to the entries of a [`PageTable`] in a virtual range, and
//! the only way to change them: map, query, unmap, exchange, replace, protect, find the
//! next mapped entry, update or unmap a run. It walks down through [`PageTable::leaf`]
//! (caching the last level-1 table), and frees tables that become empty through
//! [`PageTable::prune`].

use core::cell::Cell;
use core::ops::ControlFlow;
use core::sync::atomic::Ordering;
use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::VirtAddr;

use super::{entries, index, release_leaf, span, table_frame, Alloc, LeafSlot, PageTable};
use crate::mm::frame::{self, Frame};
use crate::mm::gather::Gather;
use crate::mm::pte::Pte;
use crate::mm::{tlb, MmError, PAGE_SIZE};

impl PageTable {
    /// A cursor over [start, end). Both must be page-aligned and in the lower half;
    /// `start == end` gives an empty cursor.
    pub fn cursor(&mut self, start: VirtAddr, end: VirtAddr) -> Result<Cursor<'_>, MmError> {
        if !start.is_aligned(PAGE_SIZE) || !end.is_aligned(PAGE_SIZE) {
            return Err(MmError::Unaligned);
        }
        if end < start || start.as_u64() < self.limits.0 || end.as_u64() > self.limits.1 {
            return Err(MmError::InvalidRange);
        }
        // Kernel-stack mappings are visible in every address space: always flush.
        let active = self.is_kernel() || self.is_active();
        Ok(Cursor {
            table: self,
            start,
            end,
            active,
            pending_flush: None,
            last_leaf_table: Cell::new(None),
        })
    }
}

/// Exclusive access to the entries of one page table in [start, end).
///
/// Every operation takes a page-aligned `va` inside the range. TLB entries of an active
/// table are flushed before an operation returns a frame (unmap), and at the latest
/// when the cursor is dropped (protect).
pub struct Cursor<'a> {
    table: &'a mut PageTable,
    start: VirtAddr,
    end: VirtAddr,
    active: bool,
    pending_flush: Option<(VirtAddr, VirtAddr)>,
    /// The level-1 table of the last 2 MiB region walked, so a run of operations on
    /// neighbouring pages walks the tree once per table instead of once per page.
    /// Cleared whenever a table may have been freed.
    last_leaf_table: Cell<Option<(u64, PhysFrame)>>,
}

impl Cursor<'_> {
    /// The leaf slot of `va`, through the one-entry cache of the last level-1 table.
    fn leaf(&self, va: VirtAddr, alloc: Alloc) -> Result<Option<LeafSlot>, MmError> {
        let region = va.as_u64() >> 21;
        if let Some((r, table)) = self.last_leaf_table.get() {
            if r == region {
                return Ok(Some(LeafSlot {
                    table,
                    index: index(va, 1),
                }));
            }
        }
        let slot = self.table.leaf(va, alloc)?;
        if let Some(s) = &slot {
            self.last_leaf_table.set(Some((region, s.table)));
        }
        Ok(slot)
    }

    fn check(&self, va: VirtAddr) -> Result<(), MmError> {
        if !va.is_aligned(PAGE_SIZE) {
            return Err(MmError::Unaligned);
        }
        if va < self.start || va >= self.end {
            return Err(MmError::InvalidRange);
        }
        Ok(())
    }

    /// The slot of `va` in an existing level-1 table (`NotMapped` if the tables on the
    /// way are missing).
    fn existing_slot(&self, va: VirtAddr) -> Result<LeafSlot, MmError> {
        self.check(va)?;
        self.leaf(va, Alloc::Never)?.ok_or(MmError::NotMapped)
    }

    /// The range this cursor covers.
    pub fn range(&self) -> (VirtAddr, VirtAddr) {
        (self.start, self.end)
    }

    /// What the entry for `va` is.
    pub fn query(&self, va: VirtAddr) -> Result<Pte, MmError> {
        self.check(va)?;
        Ok(match self.leaf(va, Alloc::Never)? {
            Some(slot) => slot.read(),
            None => Pte::None,
        })
    }

    /// Map `frame` at `va` with `flags` (PRESENT is implied). The entry takes over the
    /// reference `frame` holds and counts one more mapping. Fails with `AlreadyMapped`
    /// if the entry is not `None` (the frame reference is then dropped), and with
    /// `NoMemory` if a table could not be allocated (nothing changes).
    pub fn map(
        &mut self,
        va: VirtAddr,
        frame: Frame,
        flags: PageTableFlags,
    ) -> Result<(), MmError> {
        self.check(va)?;
        let slot = match self.leaf(va, Alloc::IfMissing) {
            Ok(slot) => slot.expect("Alloc::IfMissing always yields a slot"),
            Err(e) => {
                // Out of memory half-way down: free the tables this walk created.
                self.last_leaf_table.set(None);
                self.table.prune(va);
                return Err(e);
            }
        };
        if !slot.read().is_none() {
            return Err(MmError::AlreadyMapped);
        }
        frame.meta().inc_mapcount();
        let pte = Pte::Present {
            frame: frame.into_raw(),
            flags: flags | PageTableFlags::PRESENT,
        };
        slot.entry().store(pte.encode(), Ordering::Release);
        frame::meta(slot.table).pt_inc();
        // A None entry cannot be cached in the TLB: no flush needed.
        Ok(())
    }

    /// Remove the entry for `va`. Returns what it held (`None` if nothing was mapped);
    /// its frame reference goes to `gather`, which frees it after the devices and the
    /// TLB let go of it. Frees tables that become empty.
    pub fn unmap(&mut self, va: VirtAddr, gather: &mut Gather) -> Result<Option<Pte>, MmError> {
        self.check(va)?;
        let Some(slot) = self.leaf(va, Alloc::Never)? else {
            return Ok(None);
        };
        let pte = Pte::decode(slot.entry().swap(0, Ordering::AcqRel));
        let Some(frame) = release_leaf(pte) else {
            return Ok(None);
        };
        if self.active {
            tlb::flush_page(va);
        }
        gather.add(va, frame);
        if frame::meta(slot.table).pt_dec() == 0 {
            // The level-1 table is empty: free it (and emptied parents).
            self.last_leaf_table.set(None);
            self.table.prune(va);
        }
        Ok(Some(pte))
    }

    /// Point the existing entry at `va` to `frame` with `flags` instead of the frame it
    /// maps now (copy-on-write's copy case, Linux `wp_page_copy`). The entry takes over
    /// `frame`'s reference and mapping; the old frame's reference goes to `gather`.
    /// Needs no table allocation, so it cannot fail half-way. `NotMapped` if the entry
    /// is `None`. Returns the old entry.
    pub fn exchange(
        &mut self,
        va: VirtAddr,
        frame: Frame,
        flags: PageTableFlags,
        gather: &mut Gather,
    ) -> Result<Pte, MmError> {
        let slot = self.existing_slot(va)?;
        let old = slot.read();
        if old.is_none() {
            return Err(MmError::NotMapped);
        }
        frame.meta().inc_mapcount();
        let new = Pte::Present {
            frame: frame.into_raw(),
            flags: flags | PageTableFlags::PRESENT,
        };
        slot.entry().store(new.encode(), Ordering::Release);
        if self.active {
            tlb::flush_page(va);
        }
        let old_frame = release_leaf(old).expect("entry was not None");
        gather.add(va, old_frame);
        Ok(old)
    }

    /// Change a leaf entry in place to `new`, which must name the same frame as the
    /// current entry (present <-> device-exclusive, or other flags). Ownership of the
    /// frame reference and the mapcount stay with the entry. Returns the old entry.
    /// Panics if the frames differ or the entry is `None` (a caller bug).
    pub fn replace(&mut self, va: VirtAddr, new: Pte) -> Result<Pte, MmError> {
        let slot = self.existing_slot(va)?;
        let old = slot.read();
        match (old.frame(), new.frame()) {
            (Some(a), Some(b)) if a == b => {}
            _ => panic!("Cursor::replace: {old:?} -> {new:?} at {va:?} changes the frame"),
        }
        slot.entry().store(new.encode(), Ordering::Release);
        if self.active {
            self.note_flush(va);
        }
        Ok(old)
    }

    /// Set the flags of the present entry at `va` to `flags`; other kinds are left
    /// alone. Returns the entry as it was.
    pub fn protect(&mut self, va: VirtAddr, flags: PageTableFlags) -> Result<Pte, MmError> {
        let pte = self.query(va)?;
        match pte {
            Pte::None | Pte::DeviceExclusive { .. } => Ok(pte),
            Pte::Present { frame, .. } => self.replace(va, Pte::Present { frame, flags }),
        }
    }

    /// The first non-`None` entry at or after `from` (inside the range), skipping whole
    /// missing tables. `None` when there is no more.
    pub fn next_mapped(&self, from: VirtAddr) -> Option<(VirtAddr, Pte)> {
        let mut va = from.max(self.start).align_up(PAGE_SIZE);
        'outer: while va < self.end {
            // Find the level-1 table covering `va`: the cached one, or by walking.
            let region = va.as_u64() >> 21;
            let table = match self.last_leaf_table.get() {
                Some((r, table)) if r == region => table,
                _ => {
                    let mut table = self.table.root();
                    for level in (2..=4).rev() {
                        let raw = entries(table)[index(va, level)].load(Ordering::Acquire);
                        if raw == 0 {
                            // Skip the whole region this missing table would cover.
                            let next = (va.as_u64() / span(level) + 1) * span(level);
                            va = VirtAddr::new(next.min(self.end.as_u64()));
                            continue 'outer;
                        }
                        table = table_frame(raw);
                    }
                    self.last_leaf_table.set(Some((region, table)));
                    table
                }
            };
            // Scan the rest of that table.
            for entry in &entries(table)[index(va, 1)..] {
                if va >= self.end {
                    return None;
                }
                let pte = Pte::decode(entry.load(Ordering::Acquire));
                if !pte.is_none() {
                    return Some((va, pte));
                }
                va += PAGE_SIZE;
            }
        }
        None
    }

    /// Visit every non-`None` entry from `from` to the end of the range in address
    /// order, reading each level-1 table once. `f` returns `Continue(Some(new))` to
    /// change the entry in place (same frame, as [`Cursor::replace`]: the reference and
    /// the mapcount stay), `Continue(None)` to leave it, or `Break(())` to stop there
    /// (that entry unchanged). Returns where it stopped, or `None` at the end. The fast
    /// path of mprotect and fork. Panics if `f` changes an entry's frame (a caller bug).
    pub fn update_each(
        &mut self,
        from: VirtAddr,
        mut f: impl FnMut(VirtAddr, Pte) -> ControlFlow<(), Option<Pte>>,
    ) -> Option<VirtAddr> {
        let mut from = from;
        while let Some((first, _)) = self.next_mapped(from) {
            // next_mapped left the level-1 table of `first` in the cache.
            let (_, table) = self
                .last_leaf_table
                .get()
                .expect("next_mapped caches its table");
            let mut va = first;
            for entry in &entries(table)[index(first, 1)..] {
                if va >= self.end {
                    break;
                }
                let old = Pte::decode(entry.load(Ordering::Acquire));
                if !old.is_none() {
                    match f(va, old) {
                        ControlFlow::Break(()) => return Some(va),
                        ControlFlow::Continue(None) => {}
                        ControlFlow::Continue(Some(new)) => {
                            assert_eq!(
                                old.frame(),
                                new.frame(),
                                "Cursor::update_each changes a frame at {va:?}"
                            );
                            entry.store(new.encode(), Ordering::Release);
                            if self.active {
                                self.note_flush(va);
                            }
                        }
                    }
                }
                va += PAGE_SIZE;
            }
            from = va;
        }
        None
    }

    /// Unmap everything in the range; returns how many entries were removed. The frames
    /// go to `gather`.
    pub fn unmap_all(&mut self, gather: &mut Gather) -> usize {
        let mut n = 0;
        let mut from = self.start;
        while let Some((va, _)) = self.next_mapped(from) {
            let removed = self
                .unmap(va, gather)
                .expect("va comes from next_mapped, inside the range");
            n += usize::from(removed.is_some());
            from = va + PAGE_SIZE;
        }
        n
    }

    fn note_flush(&mut self, va: VirtAddr) {
        let end = va + PAGE_SIZE;
        self.pending_flush = Some(match self.pending_flush {
            None => (va, end),
            Some((s, e)) => (s.min(va), e.max(end)),
        });
    }

    /// Flush what [`Cursor::replace`]/[`Cursor::protect`] changed (also done on drop).
    pub fn flush(&mut self) {
        if let Some((s, e)) = self.pending_flush.take() {
            tlb::flush_range(s, e);
        }
    }
}

impl Drop for Cursor<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
