//! [`Gather`]: the one way user pages leave a page table (Linux `struct mmu_gather`,
//! mm/mmu_gather.c, and the `mmu_notifier_invalidate_range_start/end` pair around it).
//!
//! A device that mirrors an address space (the accelerator) holds translations to its
//! frames. If a frame were freed while a device still held a translation to it, the
//! device would read and write whatever the frame is used for next: another process's
//! memory, or a page-table page (and from there, all of physical memory). So every
//! change that removes or replaces a user page is shaped the same way:
//!
//! ```text
//!   Gather::begin(invalidator, range)   -> devices are told first ("range start"),
//!   cursor.unmap(va, &mut gather) ...   -> entries go; their frames are *collected*,
//!   gather.finish()                     -> TLB flushed, "range end", then frames freed
//! ```
//!
//! The page-table cursor's operations that take a frame out of an entry
//! ([`super::page_table::Cursor::unmap`], `unmap_all`, `exchange`) need a `&mut Gather`,
//! and the only way to get one is [`Gather::begin`], which sends the invalidation. So a
//! caller cannot forget to notify: the compiler asks for the gather. The notifier's
//! "end", the sequence counts devices check, and remote TLB flushes (with several CPUs)
//! all go in [`Gather::begin`] / [`Gather::finish`], not in the callers.
//!
//! Debug builds check, for every frame about to be freed, that no device translation
//! still names it (see [`set_device_check`]).

use alloc::vec::Vec;
use spin::Once;
use x86_64::structures::paging::PhysFrame;
use x86_64::VirtAddr;

use super::frame::Frame;
use super::tlb;

/// Who must hear that a range of user pages is going (implemented by the address
/// space, which forwards to its MMU notifiers). mm sits below vm and cannot name them.
pub trait RangeInvalidator {
    /// Before any entry of [start, end) changes: every device drops its translations
    /// of the range (Linux `mmu_notifier_invalidate_range_start`). May sleep.
    fn invalidate_start(&self, start: VirtAddr, end: VirtAddr);
    /// After the change and the TLB flush (Linux `mmu_notifier_invalidate_range_end`).
    fn invalidate_end(&self, start: VirtAddr, end: VirtAddr);
}

/// An invalidator for page tables that no device mirrors (the kernel's own tables,
/// such as the kernel-stack area, and test tables): nothing to tell.
pub struct NoDevices;

impl RangeInvalidator for NoDevices {
    fn invalidate_start(&self, _start: VirtAddr, _end: VirtAddr) {}
    fn invalidate_end(&self, _start: VirtAddr, _end: VirtAddr) {}
}

/// Frames taken out of a page table during one change of [start, end), freed by
/// [`Gather::finish`] (or on drop) after the TLB flush and the invalidation's end.
pub struct Gather<'a> {
    invalidator: &'a dyn RangeInvalidator,
    start: VirtAddr,
    end: VirtAddr,
    frames: Vec<Frame>,
    finished: bool,
    batch: Batch,
}

/// Whether a gather collects its frames or frees each at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    Collect,
    /// For kernel-only mappings inside the allocator, where collecting would allocate.
    FreeAtOnce,
}

impl<'a> Gather<'a> {
    /// Start changing [start, end): tell `invalidator` first (devices drop the range).
    pub fn begin(invalidator: &'a dyn RangeInvalidator, start: VirtAddr, end: VirtAddr) -> Self {
        invalidator.invalidate_start(start, end);
        Gather {
            invalidator,
            start,
            end,
            frames: Vec::new(),
            finished: false,
            batch: Batch::Collect,
        }
    }

    /// Start changing [start, end) of a kernel-only mapping that no device can mirror
    /// (the heap's large allocations): each frame is freed as soon as its entry is gone
    /// (the cursor flushed this CPU's TLB entry; with several CPUs this needs the
    /// shootdown first). Allocates nothing, so the heap itself can use it.
    pub fn begin_kernel_unbatched(start: VirtAddr, end: VirtAddr) -> Gather<'static> {
        let mut gather = Gather::begin(&NoDevices, start, end);
        gather.batch = Batch::FreeAtOnce;
        gather
    }

    /// The range this change covers.
    pub fn range(&self) -> (VirtAddr, VirtAddr) {
        (self.start, self.end)
    }

    /// Keep `frame` (just taken out of the entry for `va`) until [`Gather::finish`].
    /// `va` must lie in the announced range: devices were told about that range only.
    pub(super) fn add(&mut self, va: VirtAddr, frame: Frame) {
        assert!(
            va >= self.start && va < self.end,
            "Gather::add: {va:?} lies outside the invalidated range {:?}..{:?}",
            self.start,
            self.end
        );
        if self.batch == Batch::FreeAtOnce {
            drop(frame); // kernel memory: no device translation can name it
        } else if self.frames.try_reserve(1).is_ok() {
            self.frames.push(frame);
        } else {
            // No memory to batch: the devices were told already (begin) and the cursor
            // flushed this CPU's TLB entry, so the frame can go now.
            free_checked(frame);
        }
    }

    /// End the change: flush the TLB for the range, tell the invalidator the change
    /// is over, then free the collected frames.
    pub fn finish(mut self) {
        self.complete();
    }

    fn complete(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        // The cursor flushed each removed entry of an active table already; with several
        // CPUs this is where the other CPUs of the address space get their shootdown.
        if !self.frames.is_empty() {
            tlb::flush_range(self.start, self.end);
        }
        self.invalidator.invalidate_end(self.start, self.end);
        for frame in core::mem::take(&mut self.frames) {
            free_checked(frame);
        }
    }
}

impl Drop for Gather<'_> {
    /// A gather dropped without `finish` (an early return) still ends properly.
    fn drop(&mut self) {
        self.complete();
    }
}

/// Drop one reference; in debug builds, first check that no device still maps the
/// frame if this is the last reference.
fn free_checked(frame: Frame) {
    if cfg!(debug_assertions) && frame.meta().refcount() == 1 {
        if let Some(check) = DEVICE_CHECK.get() {
            if let Some(who) = check(frame.phys_frame()) {
                panic!(
                    "Gather: freeing {frame:?} while {who} still holds a translation to it \
                     (a change skipped the MMU-notifier invalidation)"
                );
            }
        }
    }
    drop(frame);
}

/// Debug check installed by a device driver: `Some(device name)` if a device still
/// holds a translation to the frame.
type DeviceCheck = fn(PhysFrame) -> Option<&'static str>;
static DEVICE_CHECK: Once<DeviceCheck> = Once::new();

/// Install the debug-build check that no device translation names a frame being freed.
pub fn set_device_check(check: DeviceCheck) {
    DEVICE_CHECK.call_once(|| check);
}
