//! The kernel heap: `alloc::boxed::Box`, `Vec` and friends.
//!
//! A `linked_list_allocator` over the kernel-heap area (`page_table::HEAP_AREA_START`,
//! root entry 509), which starts with [`HEAP_INITIAL`] bytes of frames mapped and grows
//! on demand: when an allocation does not fit, frames from the frame allocator are
//! mapped at the heap's top and handed to the allocator (`Heap::extend`), up to
//! [`HEAP_MAX`]. So the heap is not a fixed 16 MiB any more: it runs out only when
//! physical memory does, and then an allocation fails (a caller that can fail answers
//! ENOMEM) instead of the heap being exhausted first.
//!
//! **Large allocations** (at least [`LARGE`], 64 KiB: a process's VMA list with
//! thousands of entries, a pipe's ring, a copied ELF image) do not come from the heap but
//! from pages of their own, mapped in slots above the heap in the same area and unmapped,
//! their frames back with the frame allocator, when freed (Linux `kvmalloc` falling back
//! to `vmalloc`). The heap cannot shrink (`linked_list_allocator` has no way to give
//! its top back), so without this a program could move hundreds of MiB into it for good.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};
use linked_list_allocator::LockedHeap;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use super::frame::Frame;
use super::gather::Gather;
use super::page_table::{PageTable, HEAP_AREA_START};
use super::{gfp, MmError, PAGE_SIZE};

/// Bytes mapped at boot.
pub const HEAP_INITIAL: u64 = 16 * 1024 * 1024;
/// The most the heap may grow to.
pub const HEAP_MAX: u64 = 256 * 1024 * 1024;
/// Growth step: at least this much is mapped at once.
const GROW_MIN: u64 = 1024 * 1024;
/// Allocations of at least this many bytes get pages of their own (see the module
/// comment).
pub const LARGE: usize = 64 * 1024;
/// Where the large allocations' slots start: 256 GiB into the heap area (whose first
/// [`HEAP_MAX`] the heap uses).
const LARGE_START: u64 = HEAP_AREA_START + (256 << 30);
/// One slot: the most one large allocation may be (256 MiB).
const SLOT_BYTES: u64 = 256 << 20;
/// Slots (256 GiB of address space; the area has 512).
const SLOTS: usize = 1024;

/// Which slots are in use, and how many pages each maps.
struct Slots {
    used: [u64; SLOTS / 64],
    pages: [u32; SLOTS],
}

static LARGE_SLOTS: spin::Mutex<Slots> = spin::Mutex::new(Slots {
    used: [0; SLOTS / 64],
    pages: [0; SLOTS],
});

/// The heap's lock is a spin lock; an interrupt handler that allocates (the timer wakes
/// sleepers into a `Vec`) while the interrupted code holds it would spin forever. So
/// every allocation and free runs with interrupts off.
struct InterruptSafeHeap(LockedHeap);

// SAFETY: forwards to LockedHeap's GlobalAlloc, which upholds the contract; disabling
// interrupts around the calls and growing the heap (mapping fresh frames above its top
// and extending it) change nothing about the memory already handed out.
unsafe impl GlobalAlloc for InterruptSafeHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let kind = gfp::current_kind();
        if gfp::should_fail(kind) {
            return core::ptr::null_mut();
        }
        if layout.size() >= LARGE {
            return without_interrupts(|| alloc_large(layout, kind));
        }
        without_interrupts(|| {
            // SAFETY: same contract as ours (caller's layout is valid).
            let p = unsafe { self.0.alloc(layout) };
            if !p.is_null() {
                return p;
            }
            // Does not fit: grow (for the size, its alignment, and the allocator's
            // bookkeeping) and try once more. A reserved allocation grows by just what it
            // needs: whatever it maps from the reserve, ordinary allocations may use next.
            // The page-table pages of the growth are not injected again (the allocation
            // was already asked, above).
            let want = (layout.size() + layout.align() + 64) as u64;
            let step = match kind {
                gfp::Kind::Ordinary => want.max(GROW_MIN),
                gfp::Kind::Reserved => want,
            };
            match gfp::without_injection(|| grow(step, kind)) {
                // SAFETY: as above.
                Ok(()) => unsafe { self.0.alloc(layout) },
                Err(_) => core::ptr::null_mut(),
            }
        })
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE {
            return without_interrupts(|| free_large(ptr as u64));
        }
        // SAFETY: same contract as ours (ptr came from alloc with this layout).
        without_interrupts(|| unsafe { self.0.dealloc(ptr, layout) })
    }
}

#[global_allocator]
static ALLOCATOR: InterruptSafeHeap = InterruptSafeHeap(LockedHeap::empty());

/// Bytes of the heap area mapped so far (the heap's current size).
static MAPPED: AtomicU64 = AtomicU64::new(0);
/// Frames the heap took from the frame allocator: its pages and the page-table pages
/// that map them (the power-off leak check counts both as the heap's).
static FRAMES: AtomicU64 = AtomicU64::new(0);

/// The heap area's table (the kernel's root, limited to the area), behind a spinlock:
/// growing runs with interrupts off, inside an allocation.
static AREA: spin::Once<spin::Mutex<PageTable>> = spin::Once::new();

/// Map `bytes` (rounded up to pages) of fresh frames at the heap's top. Allocates
/// nothing from the heap (frames and page-table pages come from the frame allocator).
fn map_more(bytes: u64, kind: gfp::Kind) -> Result<u64, MmError> {
    let bytes = bytes.next_multiple_of(PAGE_SIZE);
    let area = AREA.get().ok_or(MmError::NoMemory)?;
    let mut table = area.lock();
    let top = MAPPED.load(Ordering::Relaxed);
    if top + bytes > HEAP_MAX {
        return Err(MmError::NoMemory);
    }
    let start = VirtAddr::new(HEAP_AREA_START + top);
    let free_before = super::frame::free_frames();
    let mut cursor = table.cursor(start, start + bytes)?;
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let mut done = 0;
    while done < bytes {
        let mapped = Frame::alloc_of(kind).and_then(|f| cursor.map(start + done, f, flags));
        if let Err(e) = mapped {
            // Keep what was mapped (whole pages): the heap grows by that much only.
            if done == 0 {
                return Err(e);
            }
            break;
        }
        done += PAGE_SIZE;
    }
    MAPPED.store(top + done, Ordering::Relaxed);
    // Interrupts are off and there is one CPU: every frame that left the allocator in
    // between went to the heap, data or page tables.
    let taken = free_before.saturating_sub(super::frame::free_frames());
    FRAMES.fetch_add(taken as u64, Ordering::Relaxed);
    Ok(done)
}

/// A large allocation: a free slot with `layout.size()` bytes of fresh frames mapped at
/// its start (slots are 256 MiB-aligned, so any alignment up to that holds); null if
/// there is no slot or not enough frames (an allocation of `kind`).
fn alloc_large(layout: Layout, kind: gfp::Kind) -> *mut u8 {
    let bytes = (layout.size() as u64).next_multiple_of(PAGE_SIZE);
    if bytes > SLOT_BYTES || layout.align() as u64 > SLOT_BYTES {
        return core::ptr::null_mut();
    }
    let slot = {
        let mut slots = LARGE_SLOTS.lock();
        let Some((word, bits)) = slots
            .used
            .iter_mut()
            .enumerate()
            .find(|(_, w)| **w != u64::MAX)
        else {
            return core::ptr::null_mut();
        };
        let bit = bits.trailing_ones() as usize;
        *bits |= 1 << bit;
        let slot = word * 64 + bit;
        slots.pages[slot] = (bytes / PAGE_SIZE) as u32;
        slot
    };
    let start = LARGE_START + slot as u64 * SLOT_BYTES;
    // The allocation was asked already: its frames and page tables are not injected again.
    match gfp::without_injection(|| map_large(start, bytes, kind)) {
        Ok(()) => start as *mut u8,
        Err(_) => {
            release_slot(slot);
            core::ptr::null_mut()
        }
    }
}

/// Map `bytes` of fresh frames at `start`; on failure nothing stays mapped.
fn map_large(start: u64, bytes: u64, kind: gfp::Kind) -> Result<(), MmError> {
    let area = AREA.get().ok_or(MmError::NoMemory)?;
    let mut table = area.lock();
    let (from, to) = (VirtAddr::new(start), VirtAddr::new(start + bytes));
    let mut cursor = table.cursor(from, to)?;
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let mut done = 0;
    while done < bytes {
        let mapped = Frame::alloc_of(kind).and_then(|f| cursor.map(from + done, f, flags));
        if let Err(e) = mapped {
            cursor.unmap_all(&mut Gather::begin_kernel_unbatched(from, to));
            return Err(e);
        }
        done += PAGE_SIZE;
    }
    Ok(())
}

/// Give a large allocation's frames back and free its slot.
fn free_large(ptr: u64) {
    let slot = ((ptr - LARGE_START) / SLOT_BYTES) as usize;
    debug_assert!(slot < SLOTS && ptr == LARGE_START + slot as u64 * SLOT_BYTES);
    let pages = u64::from(LARGE_SLOTS.lock().pages[slot]);
    if let Some(area) = AREA.get() {
        let mut table = area.lock();
        let (from, to) = (VirtAddr::new(ptr), VirtAddr::new(ptr + pages * PAGE_SIZE));
        let mut cursor = table
            .cursor(from, to)
            .expect("a large allocation lies in the heap area");
        cursor.unmap_all(&mut Gather::begin_kernel_unbatched(from, to));
    }
    release_slot(slot);
}

fn release_slot(slot: usize) {
    let mut slots = LARGE_SLOTS.lock();
    slots.used[slot / 64] &= !(1 << (slot % 64));
    slots.pages[slot] = 0;
}

/// Grow the heap by at least `bytes` (Linux has no such thing: its allocators take pages
/// as they go; this is the same idea for one contiguous region).
fn grow(bytes: u64, kind: gfp::Kind) -> Result<(), MmError> {
    let added = map_more(bytes, kind)?;
    // SAFETY: the `added` bytes right above the heap's top were just mapped writable,
    // for the heap alone.
    unsafe { ALLOCATOR.0.lock().extend(added as usize) };
    Ok(())
}

/// Map the first [`HEAP_INITIAL`] bytes and hand them to the allocator. Call once,
/// after the frame allocator and the kernel areas exist, before any allocation.
pub fn init() -> Result<(), MmError> {
    AREA.call_once(|| spin::Mutex::new(PageTable::kernel_heap_area()));
    let mapped = map_more(HEAP_INITIAL, gfp::Kind::Ordinary)?;
    // SAFETY: [HEAP_AREA_START, + mapped) was just mapped writable for the heap alone;
    // init runs once, before any allocation.
    unsafe {
        ALLOCATOR
            .0
            .lock()
            .init(HEAP_AREA_START as *mut u8, mapped as usize);
    }
    Ok(())
}

/// The heap's current size in bytes (mapped).
pub fn size() -> u64 {
    MAPPED.load(Ordering::Relaxed)
}

/// Frames the heap holds: its pages and the page tables mapping them. The heap never
/// gives frames back, so what it took is not a leak of whoever made it grow.
pub fn frames() -> usize {
    FRAMES.load(Ordering::Relaxed) as usize
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
