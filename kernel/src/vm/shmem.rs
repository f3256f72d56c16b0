//! Shared anonymous memory: the object behind every `MAP_SHARED | MAP_ANONYMOUS`
//! mapping (Linux `shmem_zero_setup`, `shmem_get_folio`: a shmem file with no name).
//!
//! A shared mapping's pages must be the same frames in every process that shares it,
//! including pages nobody touched before a `fork`. So the frames do not belong to the
//! page tables but to a [`ShmObject`]: page index -> frame, refcounted (`Arc`) by every
//! address space whose VMAs use it. The fault path finds the object through the VMA
//! ([`ShmKey`]) and maps the object's frame, allocating it on first touch; `fork` only
//! shares the object (nothing is populated); `MADV_DONTNEED` only unmaps, and the next
//! touch finds the same contents. This is the shape a page cache needs too: a file's
//! pages by index, mapped into whoever maps the file.
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::VirtAddr;

use crate::mm::frame::{Frame, FrameFlags};
use crate::mm::{MmError, PAGE_SIZE};
use crate::sync::SpinLock;

/// Which object a shared VMA maps, and where page 0 of the object would be mapped
/// (a VMA split in two keeps the same key, so page indexes stay right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmKey {
    pub id: u64,
    pub origin: VirtAddr,
}

impl ShmKey {
    /// The object's page index for the page at `va`.
    pub fn index(&self, va: VirtAddr) -> u64 {
        (va - self.origin) / PAGE_SIZE
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The pages of one shared anonymous mapping (sorted by index).
pub struct ShmObject {
    id: u64,
    pages: SpinLock<Vec<(u64, Frame)>>,
}

impl ShmObject {
    /// A new, empty object (ENOMEM as `NoMemory`).
    pub fn new() -> Result<Arc<ShmObject>, MmError> {
        Arc::try_new(ShmObject {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pages: SpinLock::new("shmem pages", Vec::new()),
        })
        .map_err(|_| MmError::NoMemory)
    }

    /// Its id (what VMAs carry in their [`ShmKey`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A reference to page `index`, allocated zero-filled on first use (Linux
    /// `shmem_get_folio` with SGP_CACHE).
    pub fn page(&self, index: u64) -> Result<Frame, MmError> {
        if let Some(f) = self.lookup(index) {
            return Ok(f);
        }
        // Allocate outside the spinlock (zeroing a frame takes a while).
        let frame = Frame::alloc_zeroed()?;
        frame.meta().set_flags(FrameFlags::ANON);
        let mut pages = self.pages.lock();
        match pages.binary_search_by_key(&index, |(i, _)| *i) {
            // Someone else allocated it meanwhile: use theirs, ours is dropped.
            Ok(at) => Ok(pages[at].1.clone()),
            Err(at) => {
                pages.try_reserve(1).map_err(|_| MmError::NoMemory)?;
                pages.insert(at, (index, frame.clone()));
                Ok(frame)
            }
        }
    }

    /// A reference to page `index` if it exists.
    fn lookup(&self, index: u64) -> Option<Frame> {
        let pages = self.pages.lock();
        pages
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|at| pages[at].1.clone())
    }

    /// How many pages the object holds (for tests and the page-state dump).
    pub fn resident(&self) -> usize {
        self.pages.lock().len()
    }
}
