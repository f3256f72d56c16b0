//! The kernel heap: `alloc::boxed::Box`, `Vec` and friends.
//!
//! A `linked_list_allocator` over [`HEAP_SIZE`] bytes of contiguous physical RAM,
//! reached through the physical-memory window. The range is chosen at boot from the
//! memory map and is never handed to the frame allocator.

use linked_list_allocator::LockedHeap;
use x86_64::PhysAddr;

use super::phys_to_virt;

/// Size of the kernel heap.
pub const HEAP_SIZE: u64 = 16 * 1024 * 1024;

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// The physical range backing the heap.
#[derive(Debug, Clone, Copy)]
pub struct HeapRange {
    pub start: PhysAddr,
    pub len: u64,
}

static HEAP_RANGE: spin::Once<HeapRange> = spin::Once::new();

/// Where the heap lives (so the frame allocator can leave it alone).
/// Panics if called before [`init`].
pub fn range() -> HeapRange {
    *HEAP_RANGE.get().expect("heap::range: heap not initialised")
}

/// Hand [start, start + HEAP_SIZE) to the allocator. Call once, before any allocation.
pub fn init(start: PhysAddr) {
    let virt = phys_to_virt(start);
    // SAFETY: mm::init carved this range out of usable RAM for the heap alone; it is
    // mapped writable in the physical-memory window. init runs once, before any
    // allocation.
    unsafe {
        ALLOCATOR
            .lock()
            .init(virt.as_mut_ptr::<u8>(), HEAP_SIZE as usize);
    }
    HEAP_RANGE.call_once(|| HeapRange {
        start,
        len: HEAP_SIZE,
    });
}

/// Bytes currently allocated on the heap and bytes free (for tests and the shell).
pub fn usage() -> (usize, usize) {
    let heap = ALLOCATOR.lock();
    (heap.used(), heap.free())
}
