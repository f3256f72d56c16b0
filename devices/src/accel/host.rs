//! How the device reaches the host: memory ([`HostMemory`]) and the host's memory manager
//! ([`PageRequests`]). The device knows nothing else about the kernel.

use super::command::{ContextId, PageRequestError};
use super::page_table::{Access, Translation};

/// Physical memory as the device reaches it (DMA). The device only ever names frames the host
/// gave it in a [`Translation`], and never crosses a page: `offset + len <= 4096`.
pub trait HostMemory {
    /// Copies `buf.len()` bytes at byte `offset` of frame `pfn` into `buf`.
    fn read(&self, pfn: u64, offset: usize, buf: &mut [u8]);

    /// Copies `data` to byte `offset` of frame `pfn`.
    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]);

    /// Adds `value` (wrapping) to the little-endian 32-bit word at byte `offset` (a multiple of
    /// 4) of frame `pfn`, as one atomic read-modify-write: a CPU incrementing the same word at
    /// the same time loses neither update (x86 `lock xadd`; a PCIe AtomicOp FetchAdd, PCIe r5.0
    /// §6.15).
    fn atomic_add_u32(&mut self, pfn: u64, offset: usize, value: i32);
}

/// An invalidation the host could not deliver at once because the device was busy executing
/// (see [`PageRequests::take_invalidation`]): drop every translation of `[start, end)` in
/// context `ctx`, or in every context when `ctx` is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Invalidation {
    /// The context, or `None` for all of them.
    pub ctx: Option<ContextId>,
    /// First virtual address.
    pub start: u64,
    /// One past the last virtual address.
    pub end: u64,
}

/// The host side of page requests: PCIe PRI (PCIe r5.0 §10.4), collapsed into one call that
/// returns the translation the device then installs (a real device would follow a successful
/// PRG Response with an ATS Translation Request, §10.2).
///
/// The device calls these methods from inside
/// [`Accelerator::process`](super::Accelerator::process), in this order for each request:
/// `page_request`, then (after an `Ok` answer) `page_request_done`, then `take_invalidation`
/// until it returns `None`.
pub trait PageRequests {
    /// Context `ctx` needs to `access` virtual page `vpn` (`va >> 12`) and holds no translation
    /// that allows it. Make the page accessible and answer with its translation:
    ///
    /// - `Read`/`Write`: fault the page in as `hmm_range_fault()` does (dmirror:
    ///   `dmirror_fault()`), writable for `Write`. The answer may allow more than asked
    ///   (`Write` for a `Read` request on a writable page), but never `Atomic`.
    /// - `Atomic`: make the page device-exclusive (`make_device_exclusive()`, dmirror:
    ///   `dmirror_exclusive()`) and answer `Atomic`. Keep the frame locked until
    ///   [`page_request_done`](Self::page_request_done): the device has then installed the
    ///   translation, and a CPU fault waiting on the lock will invalidate it (the device-exclusive conversion, docs chapter 7).
    ///
    /// An answer that does not allow `access`, or an `Atomic` answer to another access, fails
    /// the command with [`DeviceError::InvalidResponse`](super::DeviceError::InvalidResponse).
    fn page_request(
        &mut self,
        ctx: ContextId,
        vpn: u64,
        access: Access,
    ) -> Result<Translation, PageRequestError>;

    /// The device has finished with the answer to the last page request for (`ctx`, `vpn`):
    /// installed it, or rejected it as invalid. Release what was held for it (the frame lock
    /// and reference of `make_device_exclusive`). Called after every `Ok` answer, never after
    /// an `Err`. The default does nothing.
    fn page_request_done(&mut self, ctx: ContextId, vpn: u64) {
        let _ = (ctx, vpn);
    }

    /// The next invalidation the host queued while the device was busy, oldest first.
    ///
    /// Serving a page request can itself invalidate translations (breaking COW, restoring
    /// another device's exclusive entry, another thread unmapping): the host's MMU notifier
    /// then runs while the device is inside [`process`](super::Accelerator::process), so it
    /// cannot call [`invalidate`](super::Accelerator::invalidate). It queues the invalidation
    /// instead, and the device drains the queue after installing each answer and before
    /// looking up each page, so it never uses a translation invalidated before that point.
    /// (Installing first and draining after is what makes an answer that raced with an
    /// invalidation harmless: the device drops it and asks again.) The default queues nothing.
    fn take_invalidation(&mut self) -> Option<Invalidation> {
        None
    }
}
