//! Memory management.
//!
//! At boot the bootloader hands us a memory map (which physical ranges are RAM that we
//! may use) and maps *all* physical memory at a fixed virtual offset in the upper half,
//! the "physical-memory window" (Linux calls it the direct map). Physical address `p` is
//! then readable at virtual address `window + p`.
//!
//! The kernel heap is a contiguous run of physical RAM taken from the memory map at
//! boot and used through that window, so it needs no page-table changes.

pub mod fallible;
pub mod frame;
pub mod gather;
pub mod gfp;
pub mod heap;
pub mod kstack;
pub mod page_table;
pub mod pte;
pub mod tlb;

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use bootloader_api::BootInfo;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::{PhysAddr, VirtAddr};

use crate::serial_println;

/// Size of a page / frame.
pub const PAGE_SIZE: u64 = 4096;

/// Why a memory-management operation failed. Mapped to errno at the syscall boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmError {
    /// Out of physical memory (or of kernel heap for bookkeeping). Linux: ENOMEM.
    NoMemory,
    /// An address or length that is not page-aligned. Linux: EINVAL.
    Unaligned,
    /// A range that is empty where it may not be, wraps, or leaves the user half. EINVAL.
    InvalidRange,
    /// Something is already mapped there.
    AlreadyMapped,
    /// Nothing is mapped there.
    NotMapped,
    /// No VMA covers the address, or the VMA forbids the access. Linux: EFAULT/SIGSEGV.
    BadAddress,
    /// A wait was cut short because the process was sent SIGKILL (it is about to exit;
    /// the errno it sees, EINTR, never reaches user code).
    Killed,
}

/// Lowest physical address we hand out: the first MiB holds BIOS data and is left alone.
const LOW_MEMORY_END: u64 = 0x10_0000;

/// Virtual address of physical address 0 in the physical-memory window.
static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Where physical address `phys` can be accessed in the physical-memory window.
pub fn phys_to_virt(phys: PhysAddr) -> VirtAddr {
    VirtAddr::new(PHYS_OFFSET.load(Ordering::Relaxed) + phys.as_u64())
}

/// What the boot banner prints about memory.
pub struct MemorySummary {
    pub usable_bytes: u64,
    pub regions: [RegionCount; 4],
    pub phys_offset: u64,
    pub heap_bytes: u64,
    pub meta_bytes: u64,
    pub free_frames: usize,
    pub cleared_root_entries: usize,
}

/// Number and total size of memory-map regions of one kind.
#[derive(Clone, Copy)]
pub struct RegionCount {
    pub label: &'static str,
    pub count: usize,
    pub bytes: u64,
}

impl MemorySummary {
    /// Print the summary as part of the boot banner.
    pub fn print(&self) {
        serial_println!(
            " memory: {} MiB usable RAM; physical-memory window at {:#x}",
            self.usable_bytes >> 20,
            self.phys_offset
        );
        for r in &self.regions {
            if r.count > 0 {
                serial_println!(
                    "   {:<28} {:>3} regions {:>9} KiB",
                    r.label,
                    r.count,
                    r.bytes >> 10
                );
            }
        }
        serial_println!(
            " kernel heap: {} KiB at {:#x} (grows to {} MiB); frame metadata: {} KiB",
            self.heap_bytes >> 10,
            page_table::HEAP_AREA_START,
            heap::HEAP_MAX >> 20,
            self.meta_bytes >> 10
        );
        serial_println!(
            " frame allocator: {} free frames ({} MiB); lower half emptied ({} bootloader root entries removed)",
            self.free_frames,
            (self.free_frames * PAGE_SIZE as usize) >> 20,
            self.cleared_root_entries
        );
    }
}

/// Read the memory map, set up the physical-memory window and the kernel heap.
pub fn init(boot_info: &'static mut BootInfo) -> MemorySummary {
    let offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("mm::init: bootloader did not map physical memory (BOOTLOADER_CONFIG)");
    PHYS_OFFSET.store(offset, Ordering::Relaxed);
    let regions: &'static MemoryRegions = &boot_info.memory_regions;

    let mut summary = MemorySummary {
        usable_bytes: 0,
        regions: [
            RegionCount {
                label: "usable",
                count: 0,
                bytes: 0,
            },
            RegionCount {
                label: "bootloader (kernel, tables)",
                count: 0,
                bytes: 0,
            },
            RegionCount {
                label: "firmware: UEFI",
                count: 0,
                bytes: 0,
            },
            RegionCount {
                label: "reserved (BIOS e820)",
                count: 0,
                bytes: 0,
            },
        ],
        phys_offset: offset,
        heap_bytes: 0,
        meta_bytes: 0,
        free_frames: 0,
        cleared_root_entries: 0,
    };
    for region in regions.iter() {
        let slot = match region.kind {
            MemoryRegionKind::Usable => 0,
            MemoryRegionKind::Bootloader => 1,
            MemoryRegionKind::UnknownUefi(_) => 2,
            MemoryRegionKind::UnknownBios(_) => 3,
            _ => 3,
        };
        summary.regions[slot].count += 1;
        summary.regions[slot].bytes += region.end - region.start;
    }
    summary.usable_bytes = summary.regions[0].bytes;

    // Carve the heap and the frame-metadata array out of usable RAM, then give every
    // other usable frame to the frame allocator.
    let mut carver = Carver::new(regions);
    let max_pfn = regions
        .iter()
        .filter(|r| r.kind == MemoryRegionKind::Usable)
        .map(|r| r.end / PAGE_SIZE)
        .max()
        .unwrap_or(0) as usize;
    let meta_bytes = (max_pfn * core::mem::size_of::<frame::FrameMeta>()) as u64;
    let meta_start = carver
        .take(meta_bytes.next_multiple_of(PAGE_SIZE))
        .expect("mm::init: no usable region can hold the frame metadata");
    // SAFETY: the metadata range and the usable ranges come from the memory map's usable
    // regions, minus what the carver handed out (heap, metadata), minus low memory;
    // nothing else uses them. init runs once.
    unsafe { frame::init(meta_start, max_pfn, carver.remaining()) };
    let cleared = page_table::init_kernel_root()
        .expect("mm::init: no frame for the kernel-stack area's table");
    heap::init().expect("mm::init: no frames for the kernel heap");

    summary.heap_bytes = heap::size();
    summary.meta_bytes = meta_bytes;
    summary.free_frames = frame::free_frames();
    summary.cleared_root_entries = cleared;
    summary
}

/// Hands out contiguous physical ranges from the usable regions at boot, before the
/// frame allocator exists, and remembers them so the allocator skips them.
struct Carver {
    regions: &'static MemoryRegions,
    taken: [(u64, u64); 2],
    count: usize,
}

impl Carver {
    fn new(regions: &'static MemoryRegions) -> Self {
        Carver {
            regions,
            taken: [(0, 0); 2],
            count: 0,
        }
    }

    /// Take `bytes` (page-aligned) from the first usable range that still has room.
    fn take(&mut self, bytes: u64) -> Option<PhysAddr> {
        assert!(
            self.count < self.taken.len(),
            "Carver::take: too many carve-outs"
        );
        let (start, _) = self
            .remaining()
            .find(|r| r.end - r.start >= bytes)
            .map(|r| (r.start, r.end))?;
        self.taken[self.count] = (start, start + bytes);
        self.count += 1;
        Some(PhysAddr::new(start))
    }

    /// Usable, page-aligned ranges above 1 MiB minus what was taken.
    fn remaining(&self) -> impl Iterator<Item = core::ops::Range<u64>> + Clone + '_ {
        let taken = &self.taken[..self.count];
        self.regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
            .flat_map(move |r| {
                let start = r.start.max(LOW_MEMORY_END).next_multiple_of(PAGE_SIZE);
                let end = r.end & !(PAGE_SIZE - 1);
                // Cut out each taken range (at most 2, so at most 3 pieces).
                let mut pieces = [(start, end), (0, 0), (0, 0)];
                for &(ts, te) in taken {
                    for i in 0..3 {
                        let (ps, pe) = pieces[i];
                        if ps < pe && ts < pe && te > ps {
                            pieces[i] = (ps, ts.max(ps));
                            if let Some(free) = pieces.iter_mut().find(|p| p.0 >= p.1) {
                                *free = (te.min(pe), pe);
                            }
                        }
                    }
                }
                pieces
                    .into_iter()
                    .filter(|&(s, e)| s < e)
                    .map(|(s, e)| s..e)
            })
    }
}
