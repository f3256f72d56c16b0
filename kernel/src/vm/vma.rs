//! Virtual memory areas: the ranges of an address space a process may use, and how.
//!
//! A VMA says "from start to end, anonymous memory, readable and writable, private".
//! Page-table entries appear inside VMAs lazily, on the first touch (demand paging);
//! an access outside every VMA, or one the VMA's protection forbids, is a bad access.
//! Linux: `struct vm_area_struct`, `vma_merge`, `split_vma`.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use bitflags::bitflags;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use crate::mm::MmError;

bitflags! {
    /// Access rights of a mapping (Linux `PROT_*`, same bit values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Prot: u32 {
        const READ = 0x1;
        const WRITE = 0x2;
        const EXEC = 0x4;
    }
}

/// Whether a mapping's pages are private to the process (copied on write after fork) or
/// shared with its children (Linux `MAP_PRIVATE` / `MAP_SHARED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Private,
    Shared,
}

/// One virtual memory area. Only anonymous memory exists for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vma {
    pub start: VirtAddr,
    pub end: VirtAddr,
    pub prot: Prot,
    pub sharing: Sharing,
    /// Shared mappings: the shared-memory object behind the pages (`vm::shmem`).
    pub shm: Option<super::shmem::ShmKey>,
}

impl Vma {
    /// Whether `va` lies inside.
    pub fn contains(&self, va: VirtAddr) -> bool {
        self.start <= va && va < self.end
    }

    /// Whether the VMA's protection allows `access`. x86 pages are readable whenever
    /// present, so READ is implied by WRITE or EXEC.
    pub fn allows(&self, access: super::Access) -> bool {
        let needed = match access {
            super::Access::Read => Prot::READ,
            super::Access::Write => Prot::WRITE,
            super::Access::Execute => Prot::EXEC,
        };
        self.prot.contains(needed)
            || (needed == Prot::READ && self.prot.intersects(Prot::WRITE | Prot::EXEC))
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the VMA is empty (never true for a VMA in a list).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Leaf flags for a page of this VMA. `writable_ok` says whether the frame may be
    /// written without a copy (it is ours alone); a writable VMA whose frame is shared
    /// gets a read-only entry, and the first write breaks copy-on-write.
    pub fn pte_flags(&self, frame: FrameUse) -> PageTableFlags {
        if self.prot.is_empty() {
            // x86 has no "present but inaccessible" for ring 3 other than leaving out the
            // USER bit: any user access then faults, and the fault path refuses it.
            return PageTableFlags::PRESENT | PageTableFlags::NO_EXECUTE;
        }
        let mut flags = PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE;
        if self.prot.contains(Prot::WRITE) && frame == FrameUse::Exclusive {
            flags |= PageTableFlags::WRITABLE;
        }
        if !self.prot.contains(Prot::EXEC) {
            flags |= PageTableFlags::NO_EXECUTE;
        }
        // x86 cannot express write-only or exec-only pages: they are also readable.
        flags
    }

    /// Whether two VMAs side by side may become one.
    fn can_merge(&self, next: &Vma) -> bool {
        self.end == next.start
            && self.prot == next.prot
            && self.sharing == next.sharing
            && self.shm == next.shm
    }
}

/// Most VMAs one address space may have (Linux `vm.max_map_count`, default 65530):
/// past it, mmap, munmap and mprotect that would add one fail with ENOMEM. Each VMA costs
/// kernel heap, so without a limit a user could exhaust the heap with one-page mappings.
pub const MAX_MAP_COUNT: usize = 65530;

/// Why a range is cut out of the VMAs, which decides how the VMA limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitFor {
    /// The range stays mapped with other properties (mprotect): every split must fit
    /// under the limit (Linux `split_vma`).
    Change,
    /// The range is removed right after (munmap, MAP_FIXED): only a hole in the middle
    /// of a VMA adds one.
    Removal,
}

/// Whether the frame behind an entry belongs to this mapping alone (anon-exclusive:
/// the entry may be writable) or is shared copy-on-write (read-only until a write
/// fault copies or reuses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameUse {
    Exclusive,
    Shared,
}

impl FrameUse {
    /// From the frame's anon-exclusive flag.
    pub fn of(anon_exclusive: bool) -> FrameUse {
        if anon_exclusive {
            FrameUse::Exclusive
        } else {
            FrameUse::Shared
        }
    }
}

/// The hardware's accessed and dirty bits: kept across every rewrite of an entry
/// (Linux rebuilds entries with `pte_modify`, which keeps them), because they are the
/// only record that a page was used or written.
pub const HW_BITS: PageTableFlags = PageTableFlags::ACCESSED.union(PageTableFlags::DIRTY);

/// The sorted, non-overlapping VMAs of one address space.
///
/// A sorted `Vec` with binary search: simple to read, and every insertion reserves
/// heap space first with `try_reserve`, so running out of kernel heap is a `NoMemory`
/// error instead of a panic.
#[derive(Debug, Default)]
pub struct VmaList {
    vmas: Vec<Vma>,
}

impl VmaList {
    /// An empty list.
    pub const fn new() -> Self {
        VmaList { vmas: Vec::new() }
    }

    /// A copy, or `NoMemory` if the heap cannot hold it.
    pub fn try_clone(&self) -> Result<VmaList, MmError> {
        let mut vmas = Vec::new();
        vmas.try_reserve(self.vmas.len())
            .map_err(|_| MmError::NoMemory)?;
        vmas.extend_from_slice(&self.vmas);
        Ok(VmaList { vmas })
    }

    /// All VMAs in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.iter()
    }

    /// The VMA containing `va`.
    pub fn find(&self, va: VirtAddr) -> Option<&Vma> {
        let i = self.vmas.partition_point(|v| v.end <= va);
        self.vmas.get(i).filter(|v| v.contains(va))
    }

    /// Whether any VMA overlaps [start, end).
    pub fn overlaps(&self, start: VirtAddr, end: VirtAddr) -> bool {
        let i = self.vmas.partition_point(|v| v.end <= start);
        self.vmas.get(i).is_some_and(|v| v.start < end)
    }

    /// Whether [start, end) is entirely covered by VMAs, without holes.
    pub fn covers(&self, start: VirtAddr, end: VirtAddr) -> bool {
        let mut at = start;
        let i = self.vmas.partition_point(|v| v.end <= start);
        for v in &self.vmas[i..] {
            if at >= end {
                break;
            }
            if v.start > at {
                return false;
            }
            at = v.end;
        }
        at >= end
    }

    /// Room for one more VMA: `NoMemory` (ENOMEM) past [`MAX_MAP_COUNT`] (plus `slack`,
    /// see [`SplitFor`]) or when the kernel heap cannot grow the list.
    fn reserve_one_with(&mut self, slack: usize) -> Result<(), MmError> {
        if self.vmas.len() >= MAX_MAP_COUNT + slack {
            return Err(MmError::NoMemory);
        }
        self.vmas.try_reserve(1).map_err(|_| MmError::NoMemory)
    }

    /// How many VMAs there are.
    pub fn len(&self) -> usize {
        self.vmas.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.vmas.is_empty()
    }

    /// Heap room for `n` more VMAs (no count check): for a caller that must not fail
    /// later (`MAP_FIXED` after its unmap).
    pub fn reserve(&mut self, n: usize) -> Result<(), MmError> {
        self.vmas.try_reserve(n).map_err(|_| MmError::NoMemory)
    }

    /// Insert a VMA that overlaps none (caller checked), then merge with neighbours.
    pub fn insert(&mut self, vma: Vma) -> Result<(), MmError> {
        self.insert_with_slack(vma, 0)
    }

    /// [`insert`](Self::insert), allowing `slack` VMAs past [`MAX_MAP_COUNT`] (MAP_FIXED,
    /// which checked the count before its unmap could split a VMA in three).
    pub fn insert_with_slack(&mut self, vma: Vma, slack: usize) -> Result<(), MmError> {
        self.reserve_one_with(slack)?;
        let i = self.vmas.partition_point(|v| v.end <= vma.start);
        debug_assert!(self.vmas.get(i).is_none_or(|v| v.start >= vma.end));
        self.vmas.insert(i, vma);
        self.merge_around(i);
        Ok(())
    }

    /// Make `at` a VMA boundary if it falls inside a VMA (Linux `split_vma`). `slack`
    /// VMAs beyond the limit are allowed (see [`SplitFor`]).
    fn split_at(&mut self, at: VirtAddr, slack: usize) -> Result<(), MmError> {
        let Some(i) = self.vmas.iter().position(|v| v.start < at && at < v.end) else {
            return Ok(());
        };
        self.reserve_one_with(slack)?;
        let mut right = self.vmas[i];
        right.start = at;
        self.vmas[i].end = at;
        self.vmas.insert(i + 1, right);
        Ok(())
    }

    /// Make both `start` and `end` VMA boundaries, or neither: if the second split fails
    /// (no memory, or the VMA limit), the first is merged back, so a failed munmap or
    /// mprotect leaves no mergeable VMAs behind.
    pub fn split_range(
        &mut self,
        start: VirtAddr,
        end: VirtAddr,
        why: SplitFor,
    ) -> Result<(), MmError> {
        let slack = match why {
            SplitFor::Change => 0,
            // The first split is undone by the removal unless the range is a hole punched
            // in the middle of one VMA, which the second split then refuses (Linux
            // `vms_gather_munmap_vmas`).
            SplitFor::Removal => 1,
        };
        self.split_at(start, slack)?;
        if let Err(e) = self.split_at(end, 0) {
            self.merge_all();
            return Err(e);
        }
        Ok(())
    }

    /// Remove every VMA inside [start, end) (boundaries must already be split there).
    pub fn remove_range(&mut self, start: VirtAddr, end: VirtAddr) {
        self.vmas.retain(|v| v.end <= start || v.start >= end);
    }

    /// Set `prot` on every VMA inside [start, end) (boundaries already split), then
    /// merge what became equal.
    pub fn set_prot(&mut self, start: VirtAddr, end: VirtAddr, prot: Prot) {
        for v in self
            .vmas
            .iter_mut()
            .filter(|v| v.start >= start && v.end <= end)
        {
            v.prot = prot;
        }
        self.merge_all();
    }

    /// A free gap of `len` bytes in [low, high), as high as possible (Linux's top-down
    /// `unmapped_area_topdown`).
    pub fn find_gap(&self, len: u64, low: VirtAddr, high: VirtAddr) -> Option<VirtAddr> {
        let mut top = high;
        for v in self.vmas.iter().rev() {
            if v.start >= top {
                continue;
            }
            if v.end <= top && top - v.end >= len && top - len >= low {
                return Some(top - len);
            }
            top = top.min(v.start);
        }
        (top >= low && top - low >= len).then(|| top - len)
    }

    fn merge_around(&mut self, i: usize) {
        if i + 1 < self.vmas.len() && self.vmas[i].can_merge(&self.vmas[i + 1]) {
            self.vmas[i].end = self.vmas[i + 1].end;
            self.vmas.remove(i + 1);
        }
        if i > 0 && self.vmas[i - 1].can_merge(&self.vmas[i]) {
            self.vmas[i - 1].end = self.vmas[i].end;
            self.vmas.remove(i);
        }
    }

    fn merge_all(&mut self) {
        let mut i = 0;
        while i + 1 < self.vmas.len() {
            if self.vmas[i].can_merge(&self.vmas[i + 1]) {
                self.vmas[i].end = self.vmas[i + 1].end;
                self.vmas.remove(i + 1);
            } else {
                i += 1;
            }
        }
    }

    /// Check sortedness, alignment, non-emptiness, no overlap, no mergeable neighbours.
    pub fn check(&self) -> Result<(), &'static str> {
        for v in &self.vmas {
            if v.is_empty() || !v.start.is_aligned(4096u64) || !v.end.is_aligned(4096u64) {
                return Err("empty or unaligned VMA");
            }
        }
        for w in self.vmas.windows(2) {
            if w[0].end > w[1].start {
                return Err("VMAs overlap or are out of order");
            }
            if w[0].can_merge(&w[1]) {
                return Err("adjacent VMAs that should have been merged");
            }
        }
        Ok(())
    }
}
