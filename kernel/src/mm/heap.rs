//! The kernel heap: `alloc::boxed::Box`, `Vec` and friends.
//!
//! A `linked_list_allocator` over [`HEAP_SIZE`] bytes of contiguous physical RAM,
//! reached through the physical-memory window. The range is chosen at boot from the
//! memory map and is never handed to the frame allocator.

use core::alloc::{GlobalAlloc, Layout};
use linked_list_allocator::LockedHeap;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::PhysAddr;

use super::phys_to_virt;

/// Size of the kernel heap.
pub const HEAP_SIZE: u64 = 16 * 1024 * 1024;

/// The heap's lock is a spin lock; an interrupt handler that allocates (the timer wakes
/// sleepers into a `Vec`) while the interrupted code holds it would spin forever. So
/// every allocation and free runs with interrupts off.
struct InterruptSafeHeap(LockedHeap);

// SAFETY: forwards to LockedHeap's GlobalAlloc, which upholds the contract; disabling
// interrupts around the calls changes nothing about the memory handed out.
unsafe impl GlobalAlloc for InterruptSafeHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours (caller's layout is valid).
        without_interrupts(|| unsafe { self.0.alloc(layout) })
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours (ptr came from alloc with this layout).
        without_interrupts(|| unsafe { self.0.dealloc(ptr, layout) })
    }
}

#[global_allocator]
static ALLOCATOR: InterruptSafeHeap = InterruptSafeHeap(LockedHeap::empty());

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
            .0
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
    without_interrupts(|| {
        let heap = ALLOCATOR.0.lock();
        (heap.used(), heap.free())
    })
}

/// A heap copy of some bytes that starts 8-byte aligned (parsers such as xmas-elf read
/// headers in place and need that; cpio `newc` aligns file data to 4 bytes only).
pub struct AlignedBytes {
    words: alloc::vec::Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// Copy `data`; `None` if the heap cannot hold it.
    pub fn copy_from(data: &[u8]) -> Option<AlignedBytes> {
        let mut words = alloc::vec::Vec::new();
        words.try_reserve_exact(data.len().div_ceil(8)).ok()?;
        words.extend(data.chunks(8).map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        }));
        Some(AlignedBytes {
            words,
            len: data.len(),
        })
    }

    /// The bytes, in their original order, 8-byte aligned.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: u64 has no padding and every byte pattern is a valid u8; u8 needs no
        // alignment; the words hold at least `len` bytes (little-endian, so in the
        // original order), borrowed for as long as `self` is.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}
