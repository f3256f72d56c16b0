//! The engine thread and the driver's side of the device's page requests: the kernel
//! thread `accel-engine` runs queued commands on the device model, answers its page
//! requests (Linux `dmirror_fault`, `dmirror_exclusive`), and gives it host memory
//! through the physical-memory window.
#![forbid(unsafe_code)]

use crate::mm::frame::{Frame, FrameFlags};

use super::*;

pub(super) extern "C" fn engine_main() -> ! {
    interrupts::enable();
    let accel = ACCEL.get().expect("engine started before the driver");
    loop {
        release_held(accel);
        destroy_closed(accel);
        let holding = locked(&accel.held, |h| !h.is_empty());
        if holding {
            // Test hook only: poll so held frames are released on time.
            sched::sleep_ticks(1);
        } else {
            accel.kick.wait(|| accel.work.swap(false, Ordering::AcqRel));
        }
        {
            let mut dev = accel.lock_device();
            if dev.queued() == 0 {
                continue;
            }
            accel.drain(&mut dev);
            let mut host = HostPages {
                accel,
                held: Vec::new(),
            };
            dev.process(&mut PhysMemory, &mut host);
            // File each finished command's completion for its waiter (abandoned ones
            // are dropped). Allocates nothing: `run` took the room in `done`.
            locked(&accel.waiters, |w| {
                w.retain(|id, waiter| match dev.take_completion(CommandId(*id)) {
                    None => true,
                    Some(completion) => {
                        if *waiter == Waiter::Waiting {
                            let filed =
                                locked(&accel.done, |d| d.try_insert(*id, completion).is_ok());
                            debug_assert!(filed, "no room for a completion");
                        }
                        false
                    }
                })
            });
        }
        accel.completed.wake_all();
        // Let the CPU side run between batches: this is where faults and device work
        // interleave.
        sched::yield_now();
    }
}

/// Destroy the device contexts of closed files (Linux `dmirror_fops_release`). Done by
/// the engine so that closing a file never waits for the device.
fn destroy_closed(accel: &Accel) {
    let closed: Vec<ContextId> = locked(&accel.closed, core::mem::take);
    if closed.is_empty() {
        return;
    }
    let mut dev = accel.lock_device();
    for ctx in closed {
        dev.destroy_context(ctx);
    }
}

/// The scheduler's between-processes hook: release held frames whose time is over.
pub(super) fn release_held_frames() {
    if let Some(accel) = ACCEL.get() {
        release_held(accel);
    }
}

/// Drop frames whose hold time is over (the S-F2/S-C2 test hook).
fn release_held(accel: &Accel) {
    let now = crate::arch::x86_64::interrupts::ticks();
    let expired: Vec<Vec<ExclusiveFrame>> = locked(&accel.held, |h| {
        // Room first (the scheduler loop has nobody to report ENOMEM to): without it,
        // the frames stay held until the next call.
        let mut out = Vec::new();
        if out.try_reserve(h.len()).is_err() {
            return out;
        }
        h.retain_mut(|(until, frames)| {
            if *until <= now {
                out.push(core::mem::take(frames));
                false
            } else {
                true
            }
        });
        out
    });
    drop(expired);
}

/// Host memory as the device sees it: frames, through mm's safe frame accessors.
struct PhysMemory;

impl HostMemory for PhysMemory {
    fn read(&self, pfn: u64, offset: usize, buf: &mut [u8]) {
        user_frame(pfn).read_at(offset, buf);
    }

    /// A device write dirties the frame, as a CPU write sets the entry's dirty bit
    /// (the flag travels back into the entry when an exclusive entry is restored).
    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) {
        let frame = user_frame(pfn);
        frame.write_at(offset, data);
        frame.meta().set_flags(FrameFlags::DIRTY);
    }

    fn atomic_add_u32(&mut self, pfn: u64, offset: usize, value: i32) {
        // An atomic add, so a concurrent CPU increment is never lost.
        let frame = user_frame(pfn);
        frame.atomic_add_u32(offset, value as u32);
        frame.meta().set_flags(FrameFlags::DIRTY);
    }
}

/// A reference to frame `pfn`, which the device may only ever touch while some process
/// maps it as anonymous memory: a translation to anything else is a missed
/// invalidation (use-after-free). Checked on every device access; a violation is a
/// kernel bug.
fn user_frame(pfn: u64) -> Frame {
    let Ok(addr) = x86_64::PhysAddr::try_new(pfn * PAGE_SIZE) else {
        panic!("accelerator: access to pfn {pfn:#x}, not a physical address");
    };
    let phys = PhysFrame::containing_address(addr);
    let meta = crate::mm::frame::meta(phys);
    assert!(
        meta.mapcount() > 0 && meta.flags().contains(crate::mm::frame::FrameFlags::ANON),
        "accelerator: access to pfn {pfn:#x}, which no process maps (refcount {}, mapcount {}): \
         a stale translation survived an invalidation",
        meta.refcount(),
        meta.mapcount()
    );
    Frame::try_get(phys).unwrap_or_else(|| panic!("accelerator: pfn {pfn:#x} is free"))
}

/// Debug check for `mm::gather` (installed at probe): does the accelerator still hold a
/// translation to `frame`, one that no queued invalidation will remove? When the engine
/// holds the device, it cannot be looked at; the per-access check above still guards.
pub(super) fn device_maps_frame(frame: PhysFrame) -> Option<&'static str> {
    let accel = ACCEL.get()?;
    let dev = accel.device.try_lock()?;
    let pfn = frame.start_address().as_u64() / PAGE_SIZE;
    let pending = accel.pending.lock();
    for ctx in dev.contexts() {
        let Some(table) = dev.page_table(ctx) else {
            continue;
        };
        for (vpn, t) in table.iter() {
            let va = vpn * PAGE_SIZE;
            let covered = pending.iter().any(|(inv, _)| {
                inv.ctx.is_none_or(|c| c == ctx) && inv.start <= va && va < inv.end
            });
            if t.pfn == pfn && !covered {
                return Some("the accelerator");
            }
        }
    }
    None
}

/// How many times a page request is retried while its entry keeps changing.
const BUSY_RETRIES: usize = 64;

/// Fault the page at `va` in for the device's access (Linux `hmm_range_fault` with
/// HMM_PFN_REQ_FAULT), mapping refusals to the device's errors as Linux's dmirror does.
fn fault_in(
    aspace: &AddressSpace,
    va: VirtAddr,
    access: CpuAccess,
) -> Result<(), PageRequestError> {
    match aspace.handle_fault(va, access, Privilege::Kernel) {
        FaultOutcome::Fixed(_) => Ok(()),
        FaultOutcome::OutOfMemory => Err(PageRequestError::NoMemory),
        FaultOutcome::Killed => Err(PageRequestError::Fault),
        FaultOutcome::BadAccess(crate::vm::BadAccessReason::NotMapped) => {
            Err(PageRequestError::Fault)
        }
        // Linux `hmm_vma_walk_test`: a VMA without read permission (PROT_NONE) is
        // -EFAULT for any access; a write to a readable, read-only VMA is -EPERM.
        FaultOutcome::BadAccess(crate::vm::BadAccessReason::Protection { prot })
            if !prot.contains(crate::vm::Prot::READ) =>
        {
            Err(PageRequestError::Fault)
        }
        FaultOutcome::BadAccess(_) => Err(PageRequestError::Permission),
        FaultOutcome::KernelBug(_) => Err(PageRequestError::Fault),
    }
}

/// The translation the device may install for `va`, if the entry (just faulted in)
/// still allows `access`; `None` if it changed meanwhile.
fn translation(aspace: &AddressSpace, va: VirtAddr, access: Access) -> Option<Translation> {
    match aspace.query(va) {
        Pte::Present { frame, flags } => {
            let writable = flags.contains(x86_64::structures::paging::PageTableFlags::WRITABLE);
            if access == Access::Write && !writable {
                return None;
            }
            Some(Translation {
                pfn: frame.start_address().as_u64() / PAGE_SIZE,
                perm: if writable { Perm::Write } else { Perm::Read },
            })
        }
        Pte::None | Pte::DeviceExclusive { .. } => None,
    }
}

/// The driver's answers to the device's page requests (Linux `dmirror_fault` and
/// `dmirror_exclusive`).
struct HostPages<'a> {
    accel: &'a Accel,
    /// Exclusive frames kept locked until the device installed their translation.
    held: Vec<(u32, u64, ExclusiveFrame)>,
}

impl PageRequests for HostPages<'_> {
    fn page_request(
        &mut self,
        ctx: ContextId,
        vpn: u64,
        access: Access,
    ) -> Result<Translation, PageRequestError> {
        let answer = self.serve(ctx, vpn, access)?;
        // Serving the request may itself have invalidated this very page for this
        // context (`Clear`: restoring another device's exclusive entry, breaking COW).
        // Those invalidations were queued because the device is busy, but they happened
        // before the answer existed, and the answer (read from the page table after
        // them) replaces that translation anyway: drop them, or the device would throw
        // the fresh answer away and ask forever. Other events (fork, munmap, mprotect)
        // stay queued.
        let (start, end) = (vpn * PAGE_SIZE, (vpn + 1) * PAGE_SIZE);
        locked(&self.accel.pending, |q| {
            q.retain(|(inv, event)| {
                !(*event == NotifyEvent::Clear
                    && inv.ctx == Some(ctx)
                    && inv.start >= start
                    && inv.end <= end)
            })
        });
        Ok(answer)
    }

    fn page_request_done(&mut self, ctx: ContextId, vpn: u64) {
        self.done(ctx, vpn);
    }

    fn take_invalidation(&mut self) -> Option<Invalidation> {
        locked(&self.accel.pending, |q| q.pop_front()).map(|(inv, _)| inv)
    }
}

impl HostPages<'_> {
    /// Make the page accessible as asked and answer with its translation.
    fn serve(
        &mut self,
        ctx: ContextId,
        vpn: u64,
        access: Access,
    ) -> Result<Translation, PageRequestError> {
        let (aspace, owner) = locked(&self.accel.mirrors, |m| m.get(&ctx.0).cloned())
            .ok_or(PageRequestError::Fault)?;
        let aspace = aspace.upgrade().ok_or(PageRequestError::Fault)?;
        let va = VirtAddr::try_new(vpn * PAGE_SIZE).map_err(|_| PageRequestError::Fault)?;
        if access == Access::Atomic {
            let guard = aspace
                .make_device_exclusive(va, owner)
                .map_err(|e| match e {
                    ExclusiveError::BadAddress => PageRequestError::Fault,
                    ExclusiveError::ReadOnly => PageRequestError::Permission,
                    ExclusiveError::NotAnonymousPrivate => PageRequestError::NotSupported,
                    ExclusiveError::NoMemory => PageRequestError::NoMemory,
                    ExclusiveError::Killed => PageRequestError::Fault,
                })?;
            let pfn = guard.frame().start_address().as_u64() / PAGE_SIZE;
            // No memory to remember the guard: dropping it unlocks the frame now, which
            // only lets a waiting CPU fault in a little early (it revokes us anyway).
            if self.held.try_reserve(1).is_err() {
                return Err(PageRequestError::NoMemory);
            }
            self.held.push((ctx.0, vpn, guard));
            return Ok(Translation {
                pfn,
                perm: Perm::Atomic,
            });
        }
        let cpu_access = if access == Access::Write {
            CpuAccess::Write
        } else {
            CpuAccess::Read
        };
        // Linux `hmm_range_fault` retries while the range keeps changing (-EBUSY): the
        // entry may change between the fault-in and the look-up (another process, a
        // CPU fault restoring it). Retry a bounded number of times, letting the racer
        // run in between; only a range that never settles is Busy for the device.
        for _ in 0..BUSY_RETRIES {
            fault_in(&aspace, va, cpu_access)?;
            if let Some(t) = translation(&aspace, va, access) {
                return Ok(t);
            }
            sched::yield_now();
        }
        Err(PageRequestError::Busy)
    }

    /// The device installed the answer for (ctx, vpn): unlock the frame (or keep it
    /// locked a while, for the hold test hook).
    fn done(&mut self, ctx: ContextId, vpn: u64) {
        let Some(i) = self
            .held
            .iter()
            .position(|(c, v, _)| *c == ctx.0 && *v == vpn)
        else {
            return;
        };
        let (_, _, guard) = self.held.swap_remove(i);
        let hold = self.accel.hold_ms.load(Ordering::Relaxed);
        if hold > 0 {
            // Test hook: keep the frame locked for a while, as a slow device would.
            let until = crate::arch::x86_64::interrupts::ticks().saturating_add(hold);
            let mut frames = Vec::new();
            if frames.try_reserve(1).is_ok() {
                frames.push(guard);
                locked(&self.accel.held, |h| {
                    if h.try_reserve(1).is_ok() {
                        h.push((until, frames));
                    }
                });
            }
        }
        // else: dropping the guard unlocks the frame and drops the reference.
    }
}
