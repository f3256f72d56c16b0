//! The one owner of the 4-level page-table walk.
//!
//! x86-64 translates a 48-bit virtual address through four tables of 512 entries:
//!
//! ```text
//!  47      39 38      30 29      21 20      12 11         0
//! | L4 index | L3 index | L2 index | L1 index | page offset |
//! ```
//!
//! A [`PageTable`] is one such tree, the lower half of which belongs to one address
//! space; its upper half (entries 256-511 of the root) is copied from the kernel's table
//! at creation, so every address space shares the kernel. Everything that changes the
//! lower half goes through a [`Cursor`] over a virtual range: map, query, unmap, protect,
//! find the next mapped entry. Intermediate tables are allocated on demand and freed
//! when their last entry goes, so an empty address space costs one page.
//!
//! The `x86_64` crate's `Mapper` treats every non-present entry as unmapped, which is
//! wrong for device-exclusive entries, so the walk is ours; leaf entries are decoded
//! only by [`Pte`].
//!
//! Linux equivalents: `pgd_alloc`, `walk_page_range`, `apply_to_page_range`,
//! `free_pgtables`.

use core::cell::Cell;
use core::ops::ControlFlow;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::VirtAddr;

use super::frame::{self, Frame, FrameFlags};
use super::gather::Gather;
use super::pte::Pte;
use super::{phys_to_virt, tlb, MmError, PAGE_SIZE};

/// End of the user half: the lower half minus its last page (Linux `TASK_SIZE_MAX`;
/// the last canonical lower-half page stays unmapped so that `sysret` can never return
/// to a non-canonical address). 0x8000_0000_0000 itself is not a canonical address.
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
/// First address of the upper (kernel) half.
pub const KERNEL_START: u64 = 0xffff_8000_0000_0000;
/// The kernel-stack area: the 512 GiB under root entry 510. Its level-3 table is made
/// at boot, before any address space copies the kernel's upper half, so stacks mapped
/// later are seen by every address space. (Root entry 511 holds the kernel image; the
/// bootloader's mappings stay below this area, see `BOOTLOADER_CONFIG`.)
pub const KSTACK_AREA_START: u64 = 0xffff_ff00_0000_0000;
/// End of the kernel-stack area.
pub const KSTACK_AREA_END: u64 = 0xffff_ff7f_ffff_f000;
/// Entries per table.
const ENTRIES: usize = 512;
/// Flags of an entry that points to a lower-level table. The leaf decides the real
/// permissions; the levels above allow everything.
const TABLE_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::USER_ACCESSIBLE);
/// Bits 12-51 of an entry: the physical address it points to.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The kernel's root table (the bootloader's), whose upper half every address space shares.
static KERNEL_ROOT: Once<PhysFrame> = Once::new();

/// The 512 entries of the table in `frame`, as atomics (the CPU reads them concurrently).
fn entries(frame: PhysFrame) -> &'static [AtomicU64; ENTRIES] {
    let ptr = phys_to_virt(frame.start_address()).as_ptr::<[AtomicU64; ENTRIES]>();
    // SAFETY: `frame` is a page-table page (the caller got it from a present table entry
    // or a root it owns), so it is 4 KiB of RAM in the physical-memory window, 8-byte
    // aligned, and only ever accessed as 512 atomically-updated u64 entries.
    unsafe { &*ptr }
}

/// Index into the table at `level` (4 = root .. 1 = leaf table) for `va`.
fn index(va: VirtAddr, level: u8) -> usize {
    ((va.as_u64() >> (12 + 9 * (level as u64 - 1))) & 0x1ff) as usize
}

/// Bytes covered by one entry at `level`.
fn span(level: u8) -> u64 {
    PAGE_SIZE << (9 * (level as u64 - 1))
}

fn table_frame(raw: u64) -> PhysFrame {
    PhysFrame::containing_address(x86_64::PhysAddr::new(raw & ADDR_MASK))
}

/// Remember the kernel's root table and empty its lower half: whatever the bootloader
/// left there (its identity-mapped trampoline) is not needed once our GDT and IDT are
/// loaded, and the lower half must be free for processes. Then create the level-3
/// table of the kernel-stack area. Returns how many root entries were cleared.
pub fn init_kernel_root() -> Result<usize, MmError> {
    let (root, _) = Cr3::read();
    KERNEL_ROOT.call_once(|| root);
    let table = entries(root);
    let mut cleared = 0;
    for entry in &table[..ENTRIES / 2] {
        if entry.swap(0, Ordering::AcqRel) != 0 {
            cleared += 1;
        }
    }
    let kstack_entry = &table[index(VirtAddr::new(KSTACK_AREA_START), 4)];
    assert_eq!(
        kstack_entry.load(Ordering::Acquire),
        0,
        "init_kernel_root: the bootloader used the kernel-stack area"
    );
    let l3 = Frame::alloc_zeroed()?;
    l3.meta().set_flags(FrameFlags::PAGE_TABLE);
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    kstack_entry.store(
        l3.into_raw().start_address().as_u64() | flags.bits(),
        Ordering::Release,
    );
    tlb::flush_all();
    Ok(cleared)
}

/// What a page table's root is: its own frame, or the kernel's (shared, never freed).
enum Root {
    Owned(Frame),
    Kernel(PhysFrame),
}

/// Whether the cursor may create missing intermediate tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alloc {
    IfMissing,
    Never,
}

/// A page-table tree. Owns its lower-half table pages and one reference (and one
/// mapcount) on every frame its leaf entries name; dropping it releases all of them.
///
/// The kernel-stack area is managed through a `PageTable` too (see
/// [`PageTable::kernel_stack_area`]), so there is one walker for both halves.
pub struct PageTable {
    root: Root,
    /// The range cursors may cover: the user half, or the kernel-stack area.
    limits: (u64, u64),
}

impl PageTable {
    /// A new tree with an empty lower half and the kernel's upper half.
    pub fn new() -> Result<PageTable, MmError> {
        let root = Frame::alloc_zeroed()?;
        root.meta().set_flags(FrameFlags::PAGE_TABLE);
        let kernel = entries(*KERNEL_ROOT.get().expect("PageTable::new before mm::init"));
        let ours = entries(root.phys_frame());
        for i in ENTRIES / 2..ENTRIES {
            ours[i].store(kernel[i].load(Ordering::Acquire), Ordering::Release);
        }
        Ok(PageTable {
            root: Root::Owned(root),
            limits: (0, USER_END),
        })
    }

    /// The kernel's own table, limited to the kernel-stack area. Make one, once.
    pub(super) fn kernel_stack_area() -> PageTable {
        PageTable {
            root: Root::Kernel(
                *KERNEL_ROOT
                    .get()
                    .expect("kernel_stack_area before mm::init"),
            ),
            limits: (KSTACK_AREA_START, KSTACK_AREA_END),
        }
    }

    /// The root frame (what CR3 holds while this tree is active).
    pub fn root(&self) -> PhysFrame {
        match &self.root {
            Root::Owned(frame) => frame.phys_frame(),
            Root::Kernel(frame) => *frame,
        }
    }

    /// Whether this is the kernel-stack area (mapped in every address space).
    fn is_kernel(&self) -> bool {
        matches!(self.root, Root::Kernel(_))
    }

    /// Whether the CPU is translating through this tree right now.
    pub fn is_active(&self) -> bool {
        Cr3::read().0 == self.root()
    }

    /// A reference to this tree's root frame, for [`load_root`] (the kernel's own table
    /// has none: use `load_root(None)`).
    pub fn root_ref(&self) -> Option<RootRef> {
        match &self.root {
            Root::Owned(frame) => Some(RootRef(frame.clone())),
            Root::Kernel(_) => None,
        }
    }

    /// Switch the CPU to this tree.
    ///
    /// # Safety
    /// The tree must stay alive while it is active (switch away before dropping it), and
    /// the code, stack and data in use must be mapped in it (the shared upper half
    /// guarantees that for kernel code).
    pub unsafe fn activate(&self) {
        // SAFETY: the root is a valid level-4 table whose upper half is the kernel's.
        unsafe { Cr3::write(self.root(), Cr3Flags::empty()) };
    }

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

    /// Number of page-table pages in the lower half plus the root (for the invariant
    /// checker and tests).
    pub fn table_pages(&self) -> usize {
        fn count(table: PhysFrame, level: u8) -> usize {
            let mut n = 1;
            if level > 1 {
                let limit = if level == 4 { ENTRIES / 2 } else { ENTRIES };
                for e in &entries(table)[..limit] {
                    let raw = e.load(Ordering::Acquire);
                    if raw != 0 {
                        n += count(table_frame(raw), level - 1);
                    }
                }
            }
            n
        }
        count(self.root(), 4)
    }

    /// Check the bookkeeping of every lower-half table page: it is flagged PAGE_TABLE,
    /// its `pt_used` equals its non-empty entries, and no table but the root is empty
    /// (empty ones must have been freed). Returns the number of table pages.
    pub fn check_tables(&self) -> Result<usize, &'static str> {
        fn check(table: PhysFrame, level: u8) -> Result<usize, &'static str> {
            let meta = frame::meta(table);
            if !meta.flags().contains(FrameFlags::PAGE_TABLE) {
                return Err("page-table page without the PAGE_TABLE flag");
            }
            let limit = if level == 4 { ENTRIES / 2 } else { ENTRIES };
            let mut used = 0;
            let mut pages = 1;
            for e in &entries(table)[..limit] {
                let raw = e.load(Ordering::Acquire);
                if raw == 0 {
                    continue;
                }
                used += 1;
                if level > 1 {
                    pages += check(table_frame(raw), level - 1)?;
                }
            }
            if used != meta.pt_used() {
                return Err("page-table page: pt_used differs from its non-empty entries");
            }
            if used == 0 && level != 4 {
                return Err("empty page-table page was not freed");
            }
            Ok(pages)
        }
        check(self.root(), 4)
    }

    /// Walk to the leaf entry for `va`, creating tables if `alloc` says so. Returns
    /// `None` if a table on the way is missing and may not be created.
    fn leaf(&self, va: VirtAddr, alloc: Alloc) -> Result<Option<LeafSlot>, MmError> {
        let mut table = self.root();
        for level in (2..=4).rev() {
            let entry = &entries(table)[index(va, level)];
            let raw = entry.load(Ordering::Acquire);
            if raw == 0 {
                if alloc == Alloc::Never {
                    return Ok(None);
                }
                let new = Frame::alloc_zeroed()?;
                new.meta().set_flags(FrameFlags::PAGE_TABLE);
                frame::meta(table).pt_inc();
                let new = new.into_raw();
                entry.store(
                    new.start_address().as_u64() | TABLE_FLAGS.bits(),
                    Ordering::Release,
                );
                table = new;
            } else {
                assert!(
                    raw & PageTableFlags::HUGE_PAGE.bits() == 0,
                    "PageTable::leaf: huge page in the user half at {va:?}"
                );
                table = table_frame(raw);
            }
        }
        Ok(Some(LeafSlot {
            table,
            index: index(va, 1),
        }))
    }

    /// After the leaf of `va` became empty, or a walk that created tables failed
    /// half-way: free every table on `va`'s path that is now empty, bottom up (Linux
    /// `free_pgtables`). The root is never freed.
    fn prune(&self, va: VirtAddr) {
        // path[i] = the table at level 4 - i (path[0] = root), as far as it exists.
        let mut path = [self.root(); 4];
        let mut depth = 1;
        while depth < 4 {
            let level = 4 - (depth as u8 - 1);
            let raw = entries(path[depth - 1])[index(va, level)].load(Ordering::Acquire);
            if raw == 0 {
                break;
            }
            path[depth] = table_frame(raw);
            depth += 1;
        }
        for d in (1..depth).rev() {
            let table = path[d];
            if frame::meta(table).pt_used() != 0 {
                return;
            }
            if d == 1 && self.is_kernel() {
                // Upper-half root entries are copied into every address space: keep.
                return;
            }
            let parent = path[d - 1];
            let parent_level = 4 - (d as u8 - 1);
            entries(parent)[index(va, parent_level)].store(0, Ordering::Release);
            frame::meta(parent).pt_dec();
            frame::meta(table).clear_flags(FrameFlags::PAGE_TABLE);
            // SAFETY: the parent entry we just cleared owned this table's reference.
            drop(unsafe { Frame::from_raw(table) });
            if self.is_active() || self.is_kernel() {
                // The paging-structure caches may still hold the freed table (kernel-
                // stack tables are in every address space, so always for those).
                tlb::flush_all();
            }
        }
    }
}

impl Drop for PageTable {
    /// Release every leaf reference and every lower-half table page. The tree must not
    /// be active (see [`PageTable::activate`]).
    fn drop(&mut self) {
        assert!(
            !self.is_active(),
            "PageTable::drop: dropping the active page table"
        );
        fn free(table: PhysFrame, level: u8) {
            let limit = if level == 4 { ENTRIES / 2 } else { ENTRIES };
            for e in &entries(table)[..limit] {
                let raw = e.swap(0, Ordering::AcqRel);
                if raw == 0 {
                    continue;
                }
                if level > 1 {
                    let child = table_frame(raw);
                    free(child, level - 1);
                    frame::meta(child).clear_flags(FrameFlags::PAGE_TABLE);
                    // SAFETY: the entry owned the child table's reference.
                    drop(unsafe { Frame::from_raw(child) });
                } else {
                    release_leaf(Pte::decode(raw));
                }
            }
        }
        free(self.root(), 4);
        if let Root::Owned(root) = &self.root {
            root.meta().clear_flags(FrameFlags::PAGE_TABLE);
        }
    }
}

/// The root frame of an address space's page table, held referenced: while a `RootRef`
/// lives the frame stays allocated, so CR3 may point at it. Even after its `PageTable`
/// is dropped the frame is harmless to translate through: the drop empties only the
/// lower half, and the upper half (the kernel's, shared by every table) stays.
pub struct RootRef(Frame);

impl RootRef {
    /// The physical frame.
    pub fn phys_frame(&self) -> PhysFrame {
        self.0.phys_frame()
    }
}

/// The one place that writes CR3: switch the CPU to `root`, or to the kernel's own
/// table (`None`). Safe: a `RootRef` keeps its frame alive (see there), and every root
/// maps the kernel half, where all kernel code, stacks and data live.
pub fn load_root(root: Option<&RootRef>) {
    let frame = match root {
        Some(r) => r.phys_frame(),
        None => *KERNEL_ROOT.get().expect("load_root before mm::init"),
    };
    // SAFETY: `frame` is a live level-4 table (held by the RootRef, or the kernel's,
    // which is never freed) whose upper half maps the whole kernel.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

/// Give back what a leaf entry owned: its mapcount and its frame reference.
fn release_leaf(pte: Pte) -> Option<Frame> {
    match pte {
        Pte::None => None,
        Pte::Present { frame, .. } | Pte::DeviceExclusive { frame } => {
            frame::meta(frame).dec_mapcount();
            // SAFETY: a leaf entry owns one reference on its frame (given by map()).
            Some(unsafe { Frame::from_raw(frame) })
        }
    }
}

/// Where a leaf entry lives: its level-1 table and the index in it.
struct LeafSlot {
    table: PhysFrame,
    index: usize,
}

impl LeafSlot {
    fn entry(&self) -> &'static AtomicU64 {
        &entries(self.table)[self.index]
    }
    fn read(&self) -> Pte {
        Pte::decode(self.entry().load(Ordering::Acquire))
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
