//! Memory management.
//!
//! At boot the bootloader hands us a memory map (which physical ranges are RAM that we
//! may use) and maps *all* physical memory at a fixed virtual offset in the upper half,
//! the "physical-memory window" (Linux calls it the direct map). Physical address `p` is
//! then readable at virtual address `window + p`.
//!
//! The kernel heap is a contiguous run of physical RAM taken from the memory map at
//! boot and used through that window, so it needs no page-table changes.

pub mod heap;

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use bootloader_api::BootInfo;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::{PhysAddr, VirtAddr};

use crate::serial_println;

/// Size of a page / frame.
pub const PAGE_SIZE: u64 = 4096;

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
    pub heap_phys: PhysAddr,
    pub heap_bytes: u64,
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
            " kernel heap: {} KiB at physical {:#x}",
            self.heap_bytes >> 10,
            self.heap_phys.as_u64()
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
        heap_phys: PhysAddr::new(0),
        heap_bytes: 0,
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

    let heap = heap::init(regions);
    summary.heap_phys = heap.start;
    summary.heap_bytes = heap.len;
    summary
}
