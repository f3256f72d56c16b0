//! Physical frames: the allocator, the per-frame metadata, and the RAII handle [`Frame`].
//!
//! Every 4 KiB frame of RAM has a metadata slot, [`FrameMeta`] (Linux: `struct page` /
//! `struct folio`): a reference count, a map count, flags and a lock. Free frames are
//! chained through their metadata in one free list, so allocating and freeing are O(1)
//! (a pop and a push; Linux's buddy allocator does the same per order).
//!
//! A [`Frame`] is one counted reference to an allocated frame. Cloning it takes another
//! reference; dropping the last one puts the frame back on the free list. A page-table
//! entry that maps a frame owns one such reference (see `mm::page_table`), which is how a
//! frame shared by copy-on-write stays alive exactly as long as some mapping uses it.
//!
//! (Why one file of ~500 lines: the metadata, the free list and the handle are one
//! mechanism: dropping the last handle *is* the allocator's free, and the handle's
//! accessors are the only `unsafe` way into a frame's bytes. Split, each part would need
//! the others' private fields.)

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use spin::{Mutex, Once};

use crate::sync::{Killed, WaitQueue};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

use super::{gfp, phys_to_virt, MmError, PAGE_SIZE};

/// Frame number: physical address / 4096.
pub type Pfn = u32;
const NO_FRAME: Pfn = Pfn::MAX;

/// Per-frame flags (Linux: `PG_anon`, `PageAnonExclusive`, `PG_dirty`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFlags(u32);

impl FrameFlags {
    /// Holds anonymous (process) memory.
    pub const ANON: Self = Self(1 << 0);
    /// Anonymous and known to belong to exactly one process: a write fault may simply make
    /// the mapping writable instead of copying (Linux `PageAnonExclusive`).
    pub const ANON_EXCLUSIVE: Self = Self(1 << 1);
    /// Written to since it was last cleaned (carried over from a PTE's dirty bit).
    pub const DIRTY: Self = Self(1 << 2);
    /// Used as a page-table page.
    pub const PAGE_TABLE: Self = Self(1 << 3);

    /// No flags.
    pub const fn empty() -> Self {
        Self(0)
    }
    /// Every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    /// Raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl core::ops::BitOr for FrameFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// The metadata slot of one frame.
pub struct FrameMeta {
    /// References: [`Frame`] handles, including those owned by page-table entries.
    /// 0 means free.
    refcount: AtomicU32,
    /// How many page-table entries map this frame (present or device-exclusive).
    /// Always <= refcount.
    mapcount: AtomicU32,
    /// [`FrameFlags`] bits.
    flags: AtomicU32,
    /// The frame lock (Linux `folio_lock`): 0 unlocked, 1 locked. Held by whoever
    /// changes how the frame is mapped in ways that must not race (device-exclusive).
    lock: AtomicU32,
    /// For page-table pages: how many of the 512 entries are in use, so an empty table
    /// can be freed without scanning it.
    pt_used: AtomicU32,
    /// Next frame in the free list (only meaningful while free; guarded by the
    /// allocator's lock).
    next_free: AtomicU32,
}

impl FrameMeta {
    const fn new() -> Self {
        Self {
            refcount: AtomicU32::new(0),
            mapcount: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            lock: AtomicU32::new(0),
            pt_used: AtomicU32::new(0),
            next_free: AtomicU32::new(NO_FRAME),
        }
    }

    /// Current reference count.
    pub fn refcount(&self) -> u32 {
        self.refcount.load(Ordering::Acquire)
    }
    /// Current map count.
    pub fn mapcount(&self) -> u32 {
        self.mapcount.load(Ordering::Acquire)
    }
    /// One more page-table entry maps the frame.
    pub fn inc_mapcount(&self) {
        self.mapcount.fetch_add(1, Ordering::AcqRel);
    }
    /// One page-table entry fewer maps the frame. Panics on underflow (a kernel bug).
    pub fn dec_mapcount(&self) {
        let old = self.mapcount.fetch_sub(1, Ordering::AcqRel);
        assert!(old > 0, "FrameMeta::dec_mapcount: mapcount underflow");
    }
    /// Current flags.
    pub fn flags(&self) -> FrameFlags {
        FrameFlags(self.flags.load(Ordering::Acquire))
    }
    /// Set `flags` (in addition to those already set).
    pub fn set_flags(&self, flags: FrameFlags) {
        self.flags.fetch_or(flags.0, Ordering::AcqRel);
    }
    /// Clear `flags`.
    pub fn clear_flags(&self, flags: FrameFlags) {
        self.flags.fetch_and(!flags.0, Ordering::AcqRel);
    }
    /// Try to take the frame lock without waiting.
    pub fn try_lock(&self) -> bool {
        self.lock
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
    /// Take the frame lock, sleeping while it is busy (Linux `folio_lock`). For waits no
    /// user can prolong (the driver's engine); user-caused waits use
    /// [`FrameMeta::lock_killable`].
    pub fn lock(&self) {
        if !self.try_lock() {
            self.waiters().wait(|| self.try_lock());
        }
    }
    /// Take the frame lock, sleeping while it is busy, unless the task is sent SIGKILL
    /// first (Linux `folio_lock_killable`).
    pub fn lock_killable(&self) -> Result<(), Killed> {
        if self.try_lock() {
            return Ok(());
        }
        self.waiters().wait_killable(|| self.try_lock())
    }
    /// Release the frame lock and wake its waiters. Panics if it was not held (a
    /// kernel bug).
    pub fn unlock(&self) {
        let was = self.lock.swap(0, Ordering::Release);
        assert_eq!(was, 1, "FrameMeta::unlock: frame was not locked");
        let q = self.waiters();
        if q.has_waiters() {
            q.wake_all();
        }
    }
    /// The wait queue of this frame's lock: one of a few shared queues, chosen by the
    /// slot's address (Linux hashes folios onto `folio_wait_table` the same way), so a
    /// frame's metadata stays small.
    fn waiters(&self) -> &'static WaitQueue {
        let slot = core::ptr::from_ref(self) as usize / core::mem::size_of::<FrameMeta>();
        &FRAME_WAITERS[slot % FRAME_WAITERS.len()]
    }
    /// Whether the frame lock is held.
    pub fn is_locked(&self) -> bool {
        self.lock.load(Ordering::Acquire) != 0
    }
    /// Page-table pages: entries in use.
    pub fn pt_used(&self) -> u32 {
        self.pt_used.load(Ordering::Acquire)
    }
    /// Page-table pages: one more entry in use.
    pub fn pt_inc(&self) {
        self.pt_used.fetch_add(1, Ordering::AcqRel);
    }
    /// Page-table pages: one entry fewer in use; returns the new count.
    pub fn pt_dec(&self) -> u32 {
        let old = self.pt_used.fetch_sub(1, Ordering::AcqRel);
        assert!(
            old > 0,
            "FrameMeta::pt_dec: page-table entry count underflow"
        );
        old - 1
    }
}

/// The wait queues of frame locks (see `FrameMeta::waiters`).
static FRAME_WAITERS: [WaitQueue; 64] = [const { WaitQueue::new() }; 64];

/// The allocator's state: the free list and its length.
struct FreeList {
    head: Pfn,
}

/// All frame metadata, indexed by frame number, and the free list.
struct FrameTable {
    meta: &'static [FrameMeta],
    free: Mutex<FreeList>,
    free_count: AtomicUsize,
    total_count: usize,
}

static FRAMES: Once<FrameTable> = Once::new();

fn table() -> &'static FrameTable {
    FRAMES.get().expect("frame allocator used before mm::init")
}

/// A physical range carved out of the memory map at boot (heap, metadata array).
#[derive(Debug, Clone, Copy)]
pub struct Reserved {
    pub start: u64,
    pub end: u64,
}

/// Build the frame table. `meta_storage` is physical memory (reached through the
/// window) big enough for `max_pfn` slots; `usable` yields every usable frame range
/// (already minus `Reserved` ranges).
///
/// # Safety
/// `meta_storage` must be unused RAM of at least `max_pfn * size_of::<FrameMeta>()`
/// bytes that nothing else will ever use, and the ranges in `usable` must be RAM that
/// nothing else uses. Call once.
pub unsafe fn init(
    meta_storage: PhysAddr,
    max_pfn: usize,
    usable: impl Iterator<Item = core::ops::Range<u64>> + Clone,
) {
    let ptr = phys_to_virt(meta_storage).as_mut_ptr::<FrameMeta>();
    for i in 0..max_pfn {
        // SAFETY: ptr..ptr+max_pfn lies in meta_storage (caller's contract); writing
        // initialises each slot before the slice below is formed.
        unsafe { ptr.add(i).write(FrameMeta::new()) };
    }
    // SAFETY: every slot was initialised above; the memory is ours forever.
    let meta: &'static [FrameMeta] = unsafe { core::slice::from_raw_parts(ptr, max_pfn) };
    let mut head = NO_FRAME;
    let mut count = 0;
    // Push in descending order so allocation hands out ascending addresses. (A fixed
    // array: this runs before the kernel heap exists, which is built from frames.)
    const MAX_RANGES: usize = 128;
    let mut ranges: [core::ops::Range<u64>; MAX_RANGES] = core::array::from_fn(|_| 0..0);
    let mut n = 0;
    for r in usable {
        assert!(
            n < MAX_RANGES,
            "frame::init: more than {MAX_RANGES} usable ranges"
        );
        ranges[n] = r;
        n += 1;
    }
    let ranges = &mut ranges[..n];
    ranges.sort_unstable_by_key(|r| r.start);
    for range in ranges.iter().rev() {
        let first = range.start.div_ceil(PAGE_SIZE);
        let last = range.end / PAGE_SIZE; // exclusive
        for pfn in (first..last).rev() {
            meta[pfn as usize].next_free.store(head, Ordering::Relaxed);
            head = pfn as Pfn;
            count += 1;
        }
    }
    FRAMES.call_once(|| FrameTable {
        meta,
        free: Mutex::new(FreeList { head }),
        free_count: AtomicUsize::new(count),
        total_count: count,
    });
}

/// Frames on the free list right now. Tests compare it before and after to prove that
/// nothing leaked.
pub fn free_frames() -> usize {
    table().free_count.load(Ordering::Acquire)
}

/// Frames the allocator manages in all.
pub fn total_frames() -> usize {
    table().total_count
}

/// Metadata of the frame at `frame`. Panics if it is not RAM we manage.
pub fn meta(frame: PhysFrame) -> &'static FrameMeta {
    let pfn = (frame.start_address().as_u64() / PAGE_SIZE) as usize;
    table()
        .meta
        .get(pfn)
        .unwrap_or_else(|| panic!("frame::meta: {:#x} is not managed RAM", pfn * 4096))
}

/// One counted reference to an allocated frame. Dropping the last reference frees it.
pub struct Frame {
    pfn: Pfn,
}

impl Frame {
    /// Allocate a frame with unspecified contents (refcount 1, no flags). An ordinary
    /// allocation (see [`super::gfp`]) fails when only the reserve is left, or when
    /// failure injection says so.
    pub fn alloc() -> Result<Frame, MmError> {
        let kind = gfp::current_kind();
        if gfp::should_fail(kind) {
            return Err(MmError::NoMemory);
        }
        Self::alloc_of(kind)
    }

    /// Allocate a frame as an allocation of `kind` (the reserve only for
    /// [`gfp::Kind::Reserved`]), without failure injection: for the heap, which
    /// injected already for the allocation that makes it grow.
    pub(super) fn alloc_of(kind: gfp::Kind) -> Result<Frame, MmError> {
        let t = table();
        let floor = match kind {
            gfp::Kind::Ordinary => gfp::RESERVE_FRAMES,
            gfp::Kind::Reserved => 0,
        };
        let pfn = x86_64::instructions::interrupts::without_interrupts(|| {
            let mut free = t.free.lock();
            let pfn = free.head;
            if pfn == NO_FRAME || t.free_count.load(Ordering::Relaxed) <= floor {
                return None;
            }
            free.head = t.meta[pfn as usize].next_free.load(Ordering::Relaxed);
            t.free_count.fetch_sub(1, Ordering::AcqRel);
            Some(pfn)
        })
        .ok_or(MmError::NoMemory)?;
        let m = &t.meta[pfn as usize];
        debug_assert_eq!(m.refcount(), 0, "Frame::alloc: free frame had references");
        m.flags.store(0, Ordering::Relaxed);
        m.mapcount.store(0, Ordering::Relaxed);
        m.pt_used.store(0, Ordering::Relaxed);
        m.refcount.store(1, Ordering::Release);
        Ok(Frame { pfn })
    }

    /// Allocate a frame filled with zeroes.
    pub fn alloc_zeroed() -> Result<Frame, MmError> {
        let frame = Self::alloc()?;
        frame.zero();
        Ok(frame)
    }

    /// Fill the frame with zeroes.
    pub fn zero(&self) {
        // SAFETY: we hold a reference, so the frame is allocated RAM; the window maps it.
        unsafe { core::ptr::write_bytes(self.as_mut_ptr(), 0, PAGE_SIZE as usize) };
    }

    /// Copy `buf.len()` bytes from offset `offset` of this frame into `buf` (panics if
    /// the range leaves the frame: a caller bug). Bytes the CPU or a device writes
    /// concurrently may be torn, never unsafe: the frame is plain RAM we hold.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) {
        assert!(
            offset + buf.len() <= PAGE_SIZE as usize,
            "Frame::read_at: beyond the frame"
        );
        // SAFETY: we hold a reference, so the frame is allocated RAM mapped by the
        // window; [offset, offset + len) lies inside it (checked above).
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.as_mut_ptr().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
    }

    /// Copy `data` into this frame at offset `offset` (panics if it leaves the frame).
    pub fn write_at(&self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= PAGE_SIZE as usize,
            "Frame::write_at: beyond the frame"
        );
        // SAFETY: as in `read_at`; `data` is kernel memory, not this frame.
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), self.as_mut_ptr().add(offset), data.len())
        };
    }

    /// Atomically add `value` to the 32-bit word at `offset` (a multiple of 4; panics
    /// otherwise), as a device's atomic operation on system memory would: a concurrent
    /// CPU increment of the same word is never lost.
    pub fn atomic_add_u32(&self, offset: usize, value: u32) {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= PAGE_SIZE as usize,
            "Frame::atomic_add_u32: offset {offset} is not a word of the frame"
        );
        // SAFETY: 4 aligned bytes inside a frame we hold (the window maps it); AtomicU32
        // has the layout of u32, and all accesses to the word are atomic or the CPU's.
        let word = unsafe {
            &*self
                .as_mut_ptr()
                .add(offset)
                .cast::<core::sync::atomic::AtomicU32>()
        };
        word.fetch_add(value, Ordering::SeqCst);
    }

    /// Copy the whole contents of `src` into this frame.
    pub fn copy_from(&self, src: &Frame) {
        // SAFETY: both frames are allocated RAM reached through the window; distinct
        // frames do not overlap (a frame copied onto itself is a no-op copy of equal
        // bytes, which `copy` allows).
        unsafe { core::ptr::copy(src.as_mut_ptr(), self.as_mut_ptr(), PAGE_SIZE as usize) };
    }

    /// The frame as the `x86_64` crate's type.
    pub fn phys_frame(&self) -> PhysFrame {
        PhysFrame::containing_address(self.start_address())
    }

    /// Physical address of the first byte.
    pub fn start_address(&self) -> PhysAddr {
        PhysAddr::new(self.pfn as u64 * PAGE_SIZE)
    }

    /// Its contents, through the physical-memory window.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        phys_to_virt(self.start_address()).as_mut_ptr()
    }

    /// Its metadata.
    pub fn meta(&self) -> &'static FrameMeta {
        &table().meta[self.pfn as usize]
    }

    /// Give up this handle without dropping the reference: the caller (a page-table
    /// entry) now owns it. Undo with [`Frame::from_raw`].
    pub fn into_raw(self) -> PhysFrame {
        let frame = self.phys_frame();
        core::mem::forget(self);
        frame
    }

    /// Take back a reference given away with [`Frame::into_raw`].
    ///
    /// # Safety
    /// `frame` must carry a reference that was given away with `into_raw` and not yet
    /// taken back: each `into_raw` is matched by exactly one `from_raw`.
    pub unsafe fn from_raw(frame: PhysFrame) -> Frame {
        let pfn = (frame.start_address().as_u64() / PAGE_SIZE) as Pfn;
        debug_assert!(table().meta[pfn as usize].refcount() > 0);
        Frame { pfn }
    }

    /// A new reference to `frame` if it is in use (refcount > 0), `None` if it is free
    /// (Linux `folio_try_get`). Safe: the reference count goes up only from a non-zero
    /// value, so a free frame is never resurrected, and while the returned handle lives
    /// the frame stays allocated. The safe way to keep the frame of a page-table entry
    /// alive beyond the entry.
    pub fn try_get(frame: PhysFrame) -> Option<Frame> {
        let pfn = Pfn::try_from(frame.start_address().as_u64() / PAGE_SIZE).ok()?;
        let meta = table().meta.get(pfn as usize)?;
        let mut n = meta.refcount.load(Ordering::Acquire);
        loop {
            if n == 0 {
                return None;
            }
            match meta
                .refcount
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Frame { pfn }),
                Err(now) => n = now,
            }
        }
    }

    /// A new reference to a frame that some page-table entry maps (and so holds
    /// referenced). Used by code that must keep the frame alive beyond the entry.
    ///
    /// # Safety
    /// `frame` must currently be referenced (refcount > 0) by something that cannot
    /// drop its reference concurrently (e.g. the caller holds the page-table lock).
    pub unsafe fn get_ref(frame: PhysFrame) -> Frame {
        // SAFETY: forwarded from the caller's contract.
        let f = unsafe { Self::from_raw(frame) };
        f.meta().refcount.fetch_add(1, Ordering::AcqRel);
        f
    }
}

impl Clone for Frame {
    fn clone(&self) -> Self {
        self.meta().refcount.fetch_add(1, Ordering::AcqRel);
        Frame { pfn: self.pfn }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let t = table();
        let m = &t.meta[self.pfn as usize];
        let old = m.refcount.fetch_sub(1, Ordering::AcqRel);
        assert!(
            old > 0,
            "Frame::drop: refcount underflow on pfn {:#x}",
            self.pfn
        );
        if old == 1 {
            assert_eq!(
                m.mapcount(),
                0,
                "Frame::drop: freeing pfn {:#x} that is still mapped",
                self.pfn
            );
            x86_64::instructions::interrupts::without_interrupts(|| {
                let mut free = t.free.lock();
                m.next_free.store(free.head, Ordering::Relaxed);
                free.head = self.pfn;
                t.free_count.fetch_add(1, Ordering::AcqRel);
            });
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:#x})", self.start_address().as_u64())
    }
}
