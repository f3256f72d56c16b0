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
//!
//! This file has the tree itself: its roots, the walk down to one leaf, and freeing
//! tables. The [`Cursor`] is in `cursor.rs`; `walk.rs` has the one walk that visits a
//! table after the tables below it, which teardown, [`PageTable::table_pages`],
//! [`PageTable::check_tables`] and `prune` share.

mod cursor;
mod walk;

use core::convert::Infallible;
use core::ops::ControlFlow;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::VirtAddr;

use self::walk::{walk, Entries, Visit};
use super::frame::{self, Frame, FrameFlags};
use super::pte::Pte;
use super::{phys_to_virt, tlb, MmError, PAGE_SIZE};

pub use self::cursor::Cursor;

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
/// The kernel-heap area: root entry 509, made at boot like the kernel-stack area, so
/// the heap can grow by mapping frames at its top (see `mm::heap`).
pub const HEAP_AREA_START: u64 = 0xffff_fe80_0000_0000;
/// End of the kernel-heap area.
pub const HEAP_AREA_END: u64 = 0xffff_feff_ffff_f000;
/// Entries per table.
const ENTRIES: usize = 512;
/// Flags of an entry that points to a lower-level table. The leaf decides the real
/// permissions; the levels above allow everything.
const TABLE_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::USER_ACCESSIBLE);
/// Bits 12-51 of an entry: the physical address it points to.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// The last page of the lower half: a walk from 0 to it covers root entries 0-255.
const LOWER_HALF_LAST_PAGE: u64 = 0x0000_7fff_ffff_f000;

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
    for area in [KSTACK_AREA_START, HEAP_AREA_START] {
        let entry = &table[index(VirtAddr::new(area), 4)];
        assert_eq!(
            entry.load(Ordering::Acquire),
            0,
            "init_kernel_root: the bootloader used the kernel area at {area:#x}"
        );
        let l3 = Frame::alloc_zeroed()?;
        l3.meta().set_flags(FrameFlags::PAGE_TABLE);
        let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        entry.store(
            l3.into_raw().start_address().as_u64() | flags.bits(),
            Ordering::Release,
        );
    }
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
        Self::kernel_area(KSTACK_AREA_START, KSTACK_AREA_END)
    }

    /// The kernel's own table, limited to the kernel-heap area. Make one, once.
    pub(in crate::mm) fn kernel_heap_area() -> PageTable {
        Self::kernel_area(HEAP_AREA_START, HEAP_AREA_END)
    }

    fn kernel_area(start: u64, end: u64) -> PageTable {
        PageTable {
            root: Root::Kernel(*KERNEL_ROOT.get().expect("kernel area before mm::init")),
            limits: (start, end),
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

    /// Number of page-table pages in the lower half plus the root (for the invariant
    /// checker and tests).
    pub fn table_pages(&self) -> usize {
        let mut n = 0;
        let ControlFlow::Continue(()) = self.walk_lower_half(Entries::Keep, |visit| {
            if let Visit::Leave { .. } = visit {
                n += 1;
            }
            ControlFlow::<Infallible>::Continue(())
        });
        n
    }

    /// Check the bookkeeping of every lower-half table page: it is flagged PAGE_TABLE,
    /// its `pt_used` equals its non-empty entries, and no table but the root is empty
    /// (empty ones must have been freed). Returns the number of table pages.
    pub fn check_tables(&self) -> Result<usize, &'static str> {
        let mut pages = 0;
        let checked = self.walk_lower_half(Entries::Keep, |visit| match visit {
            // Checked before its entries are read: they may not be entries at all.
            Visit::Enter { table, .. } => {
                if frame::meta(table).flags().contains(FrameFlags::PAGE_TABLE) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break("page-table page without the PAGE_TABLE flag")
                }
            }
            Visit::Leaf(_) => ControlFlow::Continue(()),
            Visit::Leave {
                table, level, used, ..
            } => {
                if used != frame::meta(table).pt_used() {
                    return ControlFlow::Break(
                        "page-table page: pt_used differs from its non-empty entries",
                    );
                }
                if used == 0 && level != 4 {
                    return ControlFlow::Break("empty page-table page was not freed");
                }
                pages += 1;
                ControlFlow::Continue(())
            }
        });
        match checked {
            ControlFlow::Continue(()) => Ok(pages),
            ControlFlow::Break(error) => Err(error),
        }
    }

    /// [`walk()`] the whole lower half of this tree (root entries 0-255).
    fn walk_lower_half<B>(
        &self,
        mode: Entries,
        visit: impl FnMut(Visit) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let last = VirtAddr::new(LOWER_HALF_LAST_PAGE);
        walk(self.root(), VirtAddr::zero(), last, mode, visit)
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
        // The walk of `va`'s path leaves the deepest table first.
        let _ = walk(self.root(), va, va, Entries::Keep, |visit| {
            let Visit::Leave {
                table,
                level,
                parent: Some((parent, entry)),
                ..
            } = visit
            else {
                // Nothing to do before a table is left; the root (no parent) is never freed.
                return ControlFlow::Continue(());
            };
            if frame::meta(table).pt_used() != 0 {
                // Not empty, and neither are the tables above it.
                return ControlFlow::Break(());
            }
            if level == 3 && self.is_kernel() {
                // Upper-half root entries are copied into every address space: keep.
                return ControlFlow::Break(());
            }
            entry.store(0, Ordering::Release);
            frame::meta(parent).pt_dec();
            frame::meta(table).clear_flags(FrameFlags::PAGE_TABLE);
            // SAFETY: the parent entry we just cleared owned this table's reference.
            drop(unsafe { Frame::from_raw(table) });
            if self.is_active() || self.is_kernel() {
                // The paging-structure caches may still hold the freed table (kernel-
                // stack tables are in every address space, so always for those).
                tlb::flush_all();
            }
            ControlFlow::Continue(())
        });
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
        // Every entry is taken as it is read; a table is freed once the walk has left it.
        let ControlFlow::Continue(()) = self.walk_lower_half(Entries::Take, |visit| {
            match visit {
                Visit::Leaf(raw) => {
                    release_leaf(Pte::decode(raw));
                }
                Visit::Leave {
                    table,
                    parent: Some(_),
                    ..
                } => {
                    frame::meta(table).clear_flags(FrameFlags::PAGE_TABLE);
                    // SAFETY: the entry that pointed to this table, taken by the walk
                    // before it went down, owned the table's reference.
                    drop(unsafe { Frame::from_raw(table) });
                }
                // The root is not the walk's to free: see below.
                Visit::Enter { .. } | Visit::Leave { parent: None, .. } => {}
            }
            ControlFlow::<Infallible>::Continue(())
        });
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
