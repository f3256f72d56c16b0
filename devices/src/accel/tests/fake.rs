//! A fake host for the accelerator's tests: memory as a map of frames, and a page-request
//! handler that answers from fake "process page tables" (vpn -> frame, writable).

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::super::{
    Access, ContextId, HostMemory, Invalidation, PageRequestError, PageRequests, Perm, Translation,
    PAGE_SHIFT, PAGE_SIZE,
};

/// A tiny deterministic PRNG (xorshift64), so every test run is the same run.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero-ish seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// Host memory: frames by pfn. Touching a frame that was never allocated is a device bug.
#[derive(Default)]
pub struct FakeMemory {
    frames: BTreeMap<u64, Box<[u8; PAGE_SIZE]>>,
    next_pfn: u64,
    /// How many atomic adds the device made.
    pub atomic_adds: u64,
}

impl FakeMemory {
    /// A new zeroed frame.
    pub fn alloc(&mut self) -> u64 {
        self.next_pfn += 1;
        let pfn = 0x1000 + self.next_pfn;
        self.frames.insert(pfn, Box::new([0; PAGE_SIZE]));
        pfn
    }

    /// A new frame holding `fill(i)` at byte i.
    pub fn alloc_filled(&mut self, fill: impl Fn(usize) -> u8) -> u64 {
        let pfn = self.alloc();
        for (i, b) in self.frame_mut(pfn).iter_mut().enumerate() {
            *b = fill(i);
        }
        pfn
    }

    /// The bytes of a frame.
    pub fn frame(&self, pfn: u64) -> &[u8; PAGE_SIZE] {
        self.frames
            .get(&pfn)
            .unwrap_or_else(|| panic!("FakeMemory: pfn {pfn:#x} was never allocated"))
    }

    /// The bytes of a frame, writable.
    pub fn frame_mut(&mut self, pfn: u64) -> &mut [u8; PAGE_SIZE] {
        self.frames
            .get_mut(&pfn)
            .unwrap_or_else(|| panic!("FakeMemory: pfn {pfn:#x} was never allocated"))
    }

    /// The little-endian 32-bit word `index` of a frame.
    pub fn word(&self, pfn: u64, index: usize) -> u32 {
        let b = &self.frame(pfn)[4 * index..4 * index + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Stores the 32-bit word `index` of a frame.
    pub fn set_word(&mut self, pfn: u64, index: usize, value: u32) {
        self.frame_mut(pfn)[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes());
    }
}

impl HostMemory for FakeMemory {
    fn read(&self, pfn: u64, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= PAGE_SIZE, "read crosses a page");
        buf.copy_from_slice(&self.frame(pfn)[offset..offset + buf.len()]);
    }

    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= PAGE_SIZE, "write crosses a page");
        self.frame_mut(pfn)[offset..offset + data.len()].copy_from_slice(data);
    }

    fn atomic_add_u32(&mut self, pfn: u64, offset: usize, value: i32) {
        assert!(
            offset.is_multiple_of(4) && offset < PAGE_SIZE,
            "bad atomic offset"
        );
        let index = offset / 4;
        let old = self.word(pfn, index);
        self.set_word(pfn, index, old.wrapping_add(value as u32));
        self.atomic_adds += 1;
    }
}

/// One entry of a fake process page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pte {
    /// The frame.
    pub pfn: u64,
    /// Whether the process may write it.
    pub writable: bool,
    /// Copy-on-write: read-only now, and a write request breaks COW into this frame (the
    /// test prepared it with a copy of the page).
    pub cow_copy: Option<u64>,
}

/// The page-request side of the fake host.
#[derive(Default)]
pub struct FakeHost {
    /// Which process each context mirrors.
    pub binding: BTreeMap<ContextId, usize>,
    /// Each process's page table: vpn -> entry.
    pub processes: Vec<BTreeMap<u64, Pte>>,
    /// Every page request received, in order.
    pub requests: Vec<(ContextId, u64, Access)>,
    /// Every `page_request_done`, in order.
    pub done: Vec<(ContextId, u64)>,
    /// Invalidations queued for the device (as an MMU notifier would while it is busy).
    pub queued: VecDeque<Invalidation>,
    /// If set, every request is answered with this instead.
    pub forced: Option<Result<Translation, PageRequestError>>,
    /// If set, every answer is followed by queuing an invalidation of the page it answered.
    pub always_invalidate: bool,
    /// If set, spurious invalidations are queued at random during page requests.
    pub noise: Option<XorShift>,
    /// If set, the next answer races with an unmap: after computing it, the host unmaps the
    /// page and queues its invalidation (another thread's munmap while this one returns).
    pub unmap_after_answer: bool,
}

impl FakeHost {
    /// A host with `n` empty processes.
    pub fn with_processes(n: usize) -> Self {
        Self {
            processes: alloc::vec![BTreeMap::new(); n],
            ..Self::default()
        }
    }

    /// Makes `ctx` mirror process `process`.
    pub fn bind(&mut self, ctx: ContextId, process: usize) {
        self.binding.insert(ctx, process);
    }

    /// Maps `vpn` in `process` to `pfn`.
    pub fn map(&mut self, process: usize, vpn: u64, pfn: u64, writable: bool) {
        let pte = Pte {
            pfn,
            writable,
            cow_copy: None,
        };
        self.processes[process].insert(vpn, pte);
    }

    /// Queues an invalidation of page `vpn` in every context.
    fn queue_page(&mut self, vpn: u64) {
        self.queued.push_back(Invalidation {
            ctx: None,
            start: vpn << PAGE_SHIFT,
            end: (vpn + 1) << PAGE_SHIFT,
        });
    }

    /// The honest answer: hmm_range_fault for Read/Write, make_device_exclusive for Atomic.
    fn answer(
        &mut self,
        ctx: ContextId,
        vpn: u64,
        access: Access,
    ) -> Result<Translation, PageRequestError> {
        let process = *self.binding.get(&ctx).expect("context bound to a process");
        let pte = *self.processes[process]
            .get(&vpn)
            .ok_or(PageRequestError::Fault)?;
        if access == Access::Read {
            let perm = if pte.writable {
                Perm::Write
            } else {
                Perm::Read
            };
            return Ok(Translation { pfn: pte.pfn, perm });
        }
        let pfn = if pte.writable {
            pte.pfn
        } else if let Some(copy) = pte.cow_copy {
            // Break COW: the process now maps the copy; every device loses the old page.
            let entry = Pte {
                pfn: copy,
                writable: true,
                cow_copy: None,
            };
            self.processes[process].insert(vpn, entry);
            self.queue_page(vpn);
            copy
        } else {
            return Err(PageRequestError::Permission);
        };
        let perm = if access == Access::Atomic {
            Perm::Atomic
        } else {
            Perm::Write
        };
        Ok(Translation { pfn, perm })
    }
}

impl PageRequests for FakeHost {
    fn page_request(
        &mut self,
        ctx: ContextId,
        vpn: u64,
        access: Access,
    ) -> Result<Translation, PageRequestError> {
        self.requests.push((ctx, vpn, access));
        let answer = match self.forced {
            Some(forced) => forced,
            None => self.answer(ctx, vpn, access),
        };
        if self.always_invalidate {
            self.queue_page(vpn);
        }
        if core::mem::take(&mut self.unmap_after_answer) {
            let process = self.binding[&ctx];
            self.processes[process].remove(&vpn);
            self.queue_page(vpn);
        }
        if let Some(rng) = self.noise.as_mut() {
            if rng.one_in(3) {
                // Either the page just answered or some nearby pages, in one or all contexts.
                let start = if rng.one_in(2) {
                    vpn
                } else {
                    vpn.saturating_sub(rng.below(4))
                };
                let len = 1 + rng.below(4);
                let ctx = if rng.one_in(2) { None } else { Some(ctx) };
                self.queued.push_back(Invalidation {
                    ctx,
                    start: start << PAGE_SHIFT,
                    end: (start + len) << PAGE_SHIFT,
                });
            }
        }
        answer
    }

    fn page_request_done(&mut self, ctx: ContextId, vpn: u64) {
        self.done.push((ctx, vpn));
    }

    fn take_invalidation(&mut self) -> Option<Invalidation> {
        self.queued.pop_front()
    }
}
