//! The driver of the emulated accelerator and its device files `/dev/hmm_dmirror0` and
//! `/dev/hmm_dmirror1` (Linux `lib/test_hmm.c`, the "dmirror" test driver, same ioctls).
//!
//! ```text
//!  process --ioctl--> driver: submit Command, wake the engine, sleep until done
//!                     engine thread (kernel thread "accel"): Accelerator::process()
//!                        page request --> HostPages: fault in / make_device_exclusive
//!                        HostMemory   --> frames through the physical-memory window
//!  vm change --MMU notifier--> MirrorNotifier: invalidate the device's translations
//! ```
//!
//! Each open of a device file is a [`Mirror`]: a context (its own device page table) on
//! the accelerator, subscribed to the opener's address space with a unique owner cookie.
//! The device works concurrently with user processes: commands run in the engine thread,
//! which yields between commands, so CPU faults and device requests really interleave.
//!
//! Locking (see `crate::sync` for the rule): the accelerator is behind a sleeping
//! [`Mutex`], because the engine holds it while it serves page requests, which sleep
//! (address-space lock, frame locks). Everything else is a short [`SpinLock`]. A
//! notifier never waits for the device: if the device is held (the engine's own page
//! request triggered the invalidation, or the engine sleeps in one), it queues the
//! invalidation, and the device drains that queue before it uses any translation.
//! A process waits for its command on a wait queue, killably; the engine sleeps on
//! another while there is no work. Closing a device file never waits for the device:
//! the context is destroyed by the engine.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use devices::accel::{
    Accelerator, Access, Command, CommandId, Completion, ContextId, DeviceError, HostMemory,
    Invalidation, PageRequestError, PageRequests, Perm, Translation,
};
use devices::pci::Width;
use spin::Once;
use x86_64::instructions::interrupts;
use x86_64::structures::paging::PhysFrame;
use x86_64::VirtAddr;

use super::pci::{self, SoftwareFunction};
use crate::error::Errno;
use crate::fs::{self, FileOps, Stat};
use crate::mm::pte::Pte;
use crate::mm::{phys_to_virt, PAGE_SIZE};
use crate::proc::sched;
use crate::sync::{Killed, Mutex, MutexGuard, SpinLock, WaitQueue};
use crate::vm::uaccess;
use crate::vm::{
    Access as CpuAccess, AddressSpace, ExclusiveError, ExclusiveFrame, FaultOutcome, MmuNotifier,
    NotifyEvent, Owner, Privilege, SubscriptionId,
};
use alloc::boxed::Box;

/// ioctl numbers (Linux `test_hmm_uapi.h`; the request is an `unsigned int`).
pub mod ioctl {
    pub const READ: u32 = 0xC028_4800;
    pub const WRITE: u32 = 0xC028_4801;
    pub const SNAPSHOT: u32 = 0xC028_4804;
    pub const EXCLUSIVE: u32 = 0xC028_4805;
    pub const CHECK_EXCLUSIVE: u32 = 0xC028_4806;
    /// Ours: the device atomically adds `ptr` (as i32) to every 32-bit word.
    pub const ATOMIC_ADD: u32 = 0xC028_4840;
    /// Test kernels only (cargo feature `test-hooks`): EXCLUSIVE, then keep the frames
    /// locked for `faults` ms, as a slow device would. Not part of the user ABI: a
    /// normal kernel answers EINVAL, like any unknown request.
    pub const EXCLUSIVE_HOLD: u32 = 0xC028_4841;
}

/// Longest hold the test hook accepts (ms).
const MAX_HOLD_MS: u64 = 60_000;

/// SNAPSHOT bytes (Linux `HMM_DMIRROR_PROT_*`, plus ours for device-exclusive).
pub mod snapshot {
    pub const ERROR: u8 = 0xff;
    pub const NONE: u8 = 0x00;
    pub const READ: u8 = 0x01;
    pub const WRITE: u8 = 0x02;
    /// Ours: the CPU entry is device-exclusive (the device holds the page ATOMIC).
    pub const EXCLUSIVE: u8 = 0x04;
}

/// Most pages one ioctl may cover (the device's command limit).
const MAX_PAGES: u64 = devices::accel::MAX_COMMAND_PAGES;

/// Who waits for a submitted command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// An ioctl sleeps on `Accel::completed` for it.
    Waiting,
    /// The ioctl's process was killed: the engine throws the completion away.
    Abandoned,
}

/// The accelerator and the driver's shared state.
pub struct Accel {
    device: Mutex<Accelerator>,
    /// Invalidations that arrived while the engine held the device.
    /// (and the event that caused each, see `HostPages::page_request`).
    pending: SpinLock<VecDeque<(Invalidation, NotifyEvent)>>,
    /// Contexts -> (address space, owner cookie), for page requests.
    mirrors: SpinLock<BTreeMap<u32, (Weak<AddressSpace>, Owner)>>,
    /// Contexts of closed files, for the engine to destroy.
    closed: SpinLock<Vec<ContextId>>,
    /// Finished commands, waiting for their ioctl to pick them up.
    done: SpinLock<BTreeMap<u32, Completion>>,
    /// Submitted commands whose completion someone waits for (or abandoned).
    waiters: SpinLock<BTreeMap<u32, Waiter>>,
    /// Where ioctls sleep until their command is in `done`.
    completed: WaitQueue,
    /// Set (and `kick` woken) when there is work for the engine.
    work: AtomicBool,
    kick: WaitQueue,
    /// Frames a test asked to keep locked a while (the EXCLUSIVE_HOLD test hook):
    /// (until tick, frames).
    held: SpinLock<Vec<(u64, Vec<ExclusiveFrame>)>>,
    /// How long (ms) the current EXCLUSIVE_HOLD's page requests keep their frames locked.
    hold_ms: AtomicU64,
    engine_started: AtomicBool,
}

static ACCEL: Once<Arc<Accel>> = Once::new();
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// Run `f` on `m` with its (short) spinlock held.
fn locked<T, R>(m: &SpinLock<T>, f: impl FnOnce(&mut T) -> R) -> R {
    m.with(f)
}

impl Accel {
    /// The device, sleeping while the engine holds it (for kernel work that must finish).
    fn lock_device(&self) -> MutexGuard<'_, Accelerator> {
        self.device.lock()
    }

    /// The device for a process's request: a killable wait.
    fn lock_device_killable(&self) -> Result<MutexGuard<'_, Accelerator>, Errno> {
        self.device.lock_killable().map_err(|Killed| Errno::EINTR)
    }

    /// Tell the engine there is work.
    fn kick_engine(&self) {
        self.work.store(true, Ordering::Release);
        self.kick.wake_all();
    }

    /// Apply queued invalidations (call with the device locked).
    fn drain(&self, dev: &mut Accelerator) {
        while let Some((inv, _)) = locked(&self.pending, |q| q.pop_front()) {
            dev.invalidate(inv.ctx, inv.start, inv.end);
            if let Some(ctx) = inv.ctx {
                debug_assert!(!dev.has_atomic(ctx, inv.start..inv.end), "I3 broken");
            }
        }
    }
}

/// Where the accelerator sits on the software PCI segment.
const PCI_SLOT: (u8, u8, u8) = (0, 0, 0);

/// The accelerator's configuration space as the PCI layer sees it: reads and writes
/// go to the device model's `ConfigSpace`, exactly as config cycles reach a real device.
struct ConfigPort(Arc<Accel>);

impl SoftwareFunction for ConfigPort {
    fn config_read(&self, offset: u16) -> u32 {
        let dev = self.0.lock_device();
        dev.config()
            .read(offset as usize, Width::Dword)
            .unwrap_or(pci::ABSENT)
    }
    fn config_write(&self, offset: u16, value: u32) {
        let mut dev = self.0.lock_device();
        let _ = dev.config_mut().write(offset as usize, Width::Dword, value);
    }
}

/// Power on the emulated accelerator: create the device model and plug it into the
/// software PCI segment, where enumeration finds it and [`probe`] binds this driver.
pub fn register() {
    let accel = Arc::new(Accel {
        device: Mutex::new("accelerator", Accelerator::new()),
        pending: SpinLock::new("accelerator invalidations", VecDeque::new()),
        mirrors: SpinLock::new("accelerator mirrors", BTreeMap::new()),
        closed: SpinLock::new("accelerator closed contexts", Vec::new()),
        done: SpinLock::new("accelerator completions", BTreeMap::new()),
        waiters: SpinLock::new("accelerator waiters", BTreeMap::new()),
        completed: WaitQueue::new(),
        work: AtomicBool::new(false),
        kick: WaitQueue::new(),
        held: SpinLock::new("accelerator held frames", Vec::new()),
        hold_ms: AtomicU64::new(0),
        engine_started: AtomicBool::new(false),
    });
    ACCEL.call_once(|| accel.clone());
    let (bus, device, function) = PCI_SLOT;
    pci::register_software_function(bus, device, function, Arc::new(ConfigPort(accel)));
    // The device files (Linux `dmirror_fops`, one character device per minor).
    for (path, minor) in [("/dev/hmm_dmirror0", 0), ("/dev/hmm_dmirror1", 1)] {
        if let Err(e) = fs::register(path, open_file, minor, file_stat(minor)) {
            log::warn!("{path}: cannot register the device file: {e:?}");
        }
    }
    crate::proc::procfs::set_device_view(device_view);
}

/// What `stat` reports for /dev/hmm_dmirror`minor`: a character device (Linux gives
/// test_hmm a dynamic major; 240 is the first of the "local use" range).
fn file_stat(minor: u32) -> Stat {
    Stat {
        ino: 5,
        mode: fs::S_IFCHR | 0o600,
        rdev: fs::dev(240, u64::from(minor)),
        size: 0,
    }
}

/// An open /dev/hmm_dmirrorN as a file (Linux `dmirror_fops`).
struct MirrorFile(Arc<Mirror>);

fn open_file(minor: u32) -> Result<Box<dyn FileOps>, Errno> {
    Ok(Box::new(MirrorFile(open(minor)?)))
}

impl FileOps for MirrorFile {
    fn ioctl(&self, request: u32, arg: u64) -> Result<u64, Errno> {
        ioctl(&self.0, request, arg)
    }
    fn stat(&self) -> Stat {
        file_stat(self.0.minor)
    }
}

/// The PCI driver entry for the accelerator (bound by vendor/device id).
pub const PCI_DRIVER: pci::PciDriver = pci::PciDriver {
    name: "hmm_dmirror",
    vendor_id: devices::pci::ids::ACCEL_IDENTITY.vendor_id,
    device_id: devices::pci::ids::ACCEL_IDENTITY.device_id,
    probe,
};

/// Probe (Linux `pci_driver.probe`): enable memory space and bus mastering in COMMAND
/// and PRI in its extended capability, through ordinary config cycles, then start the
/// engine thread. Afterwards the device files work.
fn probe(f: &pci::PciFunction) {
    use devices::pci::{regs, Command as PciCommand};
    let addr = f.address;
    let command = pci::config_read(addr, regs::header::COMMAND as u16);
    let enable = (PciCommand::MEMORY_SPACE | PciCommand::BUS_MASTER).bits() as u32;
    pci::config_write(addr, regs::header::COMMAND as u16, command | enable);
    match devices::pci::find_extended_capability(&ConfigOf(addr), regs::ext_cap_id::PRI) {
        Some(pri) => {
            let at = (pri + regs::pri::CONTROL) & !3;
            let shift = ((pri + regs::pri::CONTROL) & 3) * 8;
            let v = pci::config_read(addr, at as u16);
            pci::config_write(
                addr,
                at as u16,
                v | ((regs::pri::CONTROL_ENABLE as u32) << shift),
            );
        }
        None => log::warn!("{addr}: no PRI capability; page requests will fail"),
    }
    let Some(accel) = ACCEL.get() else { return };
    sched::set_poll(release_held_frames);
    crate::mm::gather::set_device_check(device_maps_frame);
    match crate::proc::spawn_kernel_thread("accel-engine", engine_main) {
        Ok(_) => {
            accel.engine_started.store(true, Ordering::Release);
            log::info!("{addr}: accelerator enabled, engine thread started");
        }
        Err(e) => log::warn!("{addr}: cannot start the engine thread: {e:?}"),
    }
}

/// Config reads of one function, for the capability walkers of `devices::pci`.
struct ConfigOf(pci::PciAddress);

impl devices::pci::ConfigRead for ConfigOf {
    fn read_dword(&self, offset: usize) -> Result<u32, devices::pci::AccessError> {
        Ok(pci::config_read(self.0, offset as u16))
    }
}

/// The accelerator, once probed (ENODEV before: no device, or no driver bound).
fn accel() -> Result<&'static Arc<Accel>, Errno> {
    ACCEL
        .get()
        .filter(|a| a.engine_started.load(Ordering::Acquire))
        .ok_or(Errno::ENODEV)
}

// ---------------------------------------------------------------------------------
// The engine thread

extern "C" fn engine_main() -> ! {
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
        let finished: Vec<(u32, Waiter, Completion)> = {
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
            let ids: Vec<(u32, Waiter)> = locked(&accel.waiters, |w| {
                w.iter().map(|(id, w)| (*id, *w)).collect()
            });
            ids.into_iter()
                .filter_map(|(id, w)| dev.take_completion(CommandId(id)).map(|c| (id, w, c)))
                .collect()
        };
        for (id, waiter, completion) in finished {
            locked(&accel.waiters, |w| w.remove(&id));
            if waiter == Waiter::Waiting {
                locked(&accel.done, |d| d.insert(id, completion));
            }
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
fn release_held_frames() {
    if let Some(accel) = ACCEL.get() {
        release_held(accel);
    }
}

/// Drop frames whose hold time is over (the S-F2/S-C2 test hook).
fn release_held(accel: &Accel) {
    let now = crate::arch::x86_64::interrupts::ticks();
    let expired: Vec<Vec<ExclusiveFrame>> = locked(&accel.held, |h| {
        let mut out = Vec::new();
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

/// Host memory as the device sees it: frames through the physical-memory window.
struct PhysMemory;

impl HostMemory for PhysMemory {
    fn read(&self, pfn: u64, offset: usize, buf: &mut [u8]) {
        check_user_frame(pfn);
        let src = frame_ptr(pfn, offset, buf.len());
        // SAFETY: `src..+len` lies inside frame `pfn`, which the device holds a
        // translation for (the frame is mapped by the process and referenced).
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
    }

    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) {
        check_user_frame(pfn);
        let dst = frame_ptr(pfn, offset, data.len());
        // SAFETY: as in `read`, for a frame the device may write.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
    }

    fn atomic_add_u32(&mut self, pfn: u64, offset: usize, value: i32) {
        check_user_frame(pfn);
        let ptr = frame_ptr(pfn, offset, 4).cast::<AtomicU32>();
        // SAFETY: 4 aligned bytes inside the frame (offset is a multiple of 4); used as
        // an atomic so a concurrent CPU increment is never lost.
        unsafe { (*ptr).fetch_add(value as u32, Ordering::SeqCst) };
    }
}

/// The device may only ever touch a frame that some process maps as anonymous memory:
/// a translation to anything else is a missed invalidation (use-after-free). Checked
/// on every device access; a violation is a kernel bug.
fn check_user_frame(pfn: u64) {
    let Ok(addr) = x86_64::PhysAddr::try_new(pfn * PAGE_SIZE) else {
        panic!("accelerator: access to pfn {pfn:#x}, not a physical address");
    };
    let meta = crate::mm::frame::meta(PhysFrame::containing_address(addr));
    assert!(
        meta.mapcount() > 0 && meta.flags().contains(crate::mm::frame::FrameFlags::ANON),
        "accelerator: access to pfn {pfn:#x}, which no process maps (refcount {}, mapcount {}): \
         a stale translation survived an invalidation",
        meta.refcount(),
        meta.mapcount()
    );
}

/// Debug check for `mm::gather` (installed at probe): does the accelerator still hold a
/// translation to `frame`, one that no queued invalidation will remove? When the engine
/// holds the device, it cannot be looked at; the per-access check above still guards.
fn device_maps_frame(frame: PhysFrame) -> Option<&'static str> {
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

fn frame_ptr(pfn: u64, offset: usize, len: usize) -> *mut u8 {
    assert!(
        offset + len <= PAGE_SIZE as usize,
        "device access crosses a frame"
    );
    let base = phys_to_virt(x86_64::PhysAddr::new(pfn * PAGE_SIZE)).as_mut_ptr::<u8>();
    // SAFETY: offset + len <= 4096 (checked above), inside the frame.
    unsafe { base.add(offset) }
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
        match aspace.handle_fault(va, cpu_access, Privilege::Kernel) {
            FaultOutcome::Fixed(_) => {}
            FaultOutcome::OutOfMemory => return Err(PageRequestError::NoMemory),
            FaultOutcome::Killed => return Err(PageRequestError::Fault),
            FaultOutcome::BadAccess(crate::vm::BadAccessReason::NotMapped) => {
                return Err(PageRequestError::Fault)
            }
            // Linux `hmm_vma_walk_test`: a VMA without read permission (PROT_NONE) is
            // -EFAULT for any access; a write to a readable, read-only VMA is -EPERM.
            FaultOutcome::BadAccess(crate::vm::BadAccessReason::Protection { prot })
                if !prot.contains(crate::vm::Prot::READ) =>
            {
                return Err(PageRequestError::Fault)
            }
            FaultOutcome::BadAccess(_) => return Err(PageRequestError::Permission),
            FaultOutcome::KernelBug(_) => return Err(PageRequestError::Busy),
        }
        match aspace.query(va) {
            Pte::Present { frame, flags } => {
                let writable = flags.contains(x86_64::structures::paging::PageTableFlags::WRITABLE);
                if access == Access::Write && !writable {
                    return Err(PageRequestError::Busy); // changed under us: the device retries
                }
                Ok(Translation {
                    pfn: frame.start_address().as_u64() / PAGE_SIZE,
                    perm: if writable { Perm::Write } else { Perm::Read },
                })
            }
            Pte::None | Pte::DeviceExclusive { .. } => Err(PageRequestError::Busy),
        }
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

// ---------------------------------------------------------------------------------
// The device files

/// One open of /dev/hmm_dmirrorN: a device context mirroring the opener's memory.
pub struct Mirror {
    ctx: ContextId,
    aspace: Weak<AddressSpace>,
    subscription: SubscriptionId,
    /// Which device file (0 or 1), for the page-state dump.
    pub minor: u32,
}

impl core::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Mirror(dmirror{}, context {})", self.minor, self.ctx.0)
    }
}

/// Invalidations for one mirror (Linux `dmirror_interval_invalidate`).
struct MirrorNotifier {
    accel: Arc<Accel>,
    ctx: ContextId,
    owner: Owner,
}

impl MmuNotifier for MirrorNotifier {
    fn invalidate_range_start(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        event: NotifyEvent,
        owner: Option<Owner>,
    ) {
        // Our own exclusive request: reacting would make the device ask again forever.
        if event == NotifyEvent::Exclusive && owner == Some(self.owner) {
            return;
        }
        let inv = Invalidation {
            ctx: Some(self.ctx),
            start: start.as_u64(),
            end: end.as_u64(),
        };
        match self.accel.device.try_lock() {
            Some(mut dev) => {
                dev.invalidate(inv.ctx, inv.start, inv.end);
                // I3: after a notifier covering a page, no ATOMIC translation remains.
                debug_assert!(!dev.has_atomic(self.ctx, inv.start..inv.end), "I3 broken");
            }
            // The engine holds the device (its own page request caused this): queue it;
            // the device drains the queue before it uses any translation.
            None => locked(&self.accel.pending, |q| q.push_back((inv, event))),
        }
    }
}

/// Open /dev/hmm_dmirror`minor` for the current process (Linux `dmirror_fops_open`).
pub fn open(minor: u32) -> Result<Arc<Mirror>, Errno> {
    let accel = accel()?;
    let aspace = sched::current().aspace();
    let ctx = accel
        .lock_device_killable()?
        .create_context()
        .map_err(|_| Errno::ENOMEM)?;
    let owner = NEXT_OWNER.fetch_add(1, Ordering::Relaxed);
    let fail = |e: Errno| {
        locked(&accel.closed, |c| {
            if c.try_reserve(1).is_ok() {
                c.push(ctx);
            }
        });
        accel.kick_engine();
        e
    };
    let notifier = Arc::try_new(MirrorNotifier {
        accel: accel.clone(),
        ctx,
        owner,
    })
    .map_err(|_| fail(Errno::ENOMEM))?;
    let subscription = aspace
        .subscribe(notifier)
        .map_err(|_| fail(Errno::ENOMEM))?;
    let mirror = Arc::try_new(Mirror {
        ctx,
        aspace: Arc::downgrade(&aspace),
        subscription,
        minor,
    })
    .map_err(|_| {
        aspace.unsubscribe(subscription);
        fail(Errno::ENOMEM)
    })?;
    locked(&accel.mirrors, |m| {
        m.insert(ctx.0, (Arc::downgrade(&aspace), owner))
    });
    Ok(mirror)
}

impl Drop for Mirror {
    /// Close (last reference, also on exit; Linux `dmirror_fops_release`): unsubscribe
    /// and hand the device context to the engine to destroy. Never waits for the
    /// device; may sleep for the address-space lock, so it must not run under a
    /// spinlock (debug builds check: `sync::might_sleep`).
    fn drop(&mut self) {
        let Some(accel) = ACCEL.get() else { return };
        if let Some(aspace) = self.aspace.upgrade() {
            aspace.unsubscribe(self.subscription);
        }
        locked(&accel.mirrors, |m| m.remove(&self.ctx.0));
        // Unsubscribed: from now on no invalidation reaches this context, so it must
        // hold no translation. Destroy it now if the device is free; else queue an
        // invalidation of everything (drained before the device uses any translation)
        // and let the engine destroy it.
        if let Some(mut dev) = accel.device.try_lock() {
            dev.destroy_context(self.ctx);
            return;
        }
        let everything = Invalidation {
            ctx: Some(self.ctx),
            start: 0,
            end: crate::mm::page_table::USER_END,
        };
        locked(&accel.pending, |q| {
            // No memory to queue it: the engine destroys the context before its next
            // command anyway (see engine_main); the debug check may then complain.
            if q.try_reserve(1).is_ok() {
                q.push_back((everything, NotifyEvent::Release));
            }
        });
        locked(&accel.closed, |c| {
            if c.try_reserve(1).is_ok() {
                c.push(self.ctx);
            }
        });
        accel.kick_engine();
    }
}

/// `struct hmm_dmirror_cmd`.
#[derive(Debug, Clone, Copy, Default)]
struct Cmd {
    addr: u64,
    ptr: u64,
    npages: u64,
    cpages: u64,
    faults: u64,
}

fn read_cmd(arg: u64) -> Result<Cmd, Errno> {
    let mut raw = [0u8; 40];
    uaccess::read_bytes(arg, &mut raw)?;
    let w = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    Ok(Cmd {
        addr: w(0),
        ptr: w(1),
        npages: w(2),
        cpages: w(3),
        faults: w(4),
    })
}

fn write_back(arg: u64, cmd: &Cmd) -> Result<(), Errno> {
    uaccess::write_u64s(
        arg,
        &[cmd.addr, cmd.ptr, cmd.npages, cmd.cpages, cmd.faults],
    )
}

fn device_errno(e: DeviceError) -> Errno {
    match e {
        DeviceError::Fault { .. } => Errno::EFAULT,
        DeviceError::Permission { .. } => Errno::EPERM,
        DeviceError::NotSupported { .. } => Errno::EOPNOTSUPP,
        DeviceError::NoMemory { .. } => Errno::ENOMEM,
        DeviceError::Busy { .. } => Errno::EBUSY,
        _ => Errno::EIO,
    }
}

/// Submit `command`, wake the engine, sleep until it completes. Killable: a process
/// sent SIGKILL stops waiting (EINTR, which it never sees) and the engine throws the
/// completion away when it comes.
fn run(accel: &Accel, command: Command) -> Result<Completion, Errno> {
    let id = {
        let mut dev = accel.lock_device_killable()?;
        let id = dev.submit(command).map_err(|e| {
            log::warn!("accelerator refused a command: {e:?}");
            Errno::EBUSY
        })?;
        locked(&accel.waiters, |w| w.insert(id.0, Waiter::Waiting));
        id
    };
    accel.kick_engine();
    let mut completion = None;
    let waited = accel.completed.wait_killable(|| {
        completion = locked(&accel.done, |d| d.remove(&id.0));
        completion.is_some()
    });
    match (waited, completion) {
        (Ok(()), Some(c)) => Ok(c),
        _ => {
            // Killed. The completion may have arrived meanwhile: drop it, or mark the
            // command abandoned so the engine drops it.
            locked(&accel.waiters, |w| {
                if let Some(state) = w.get_mut(&id.0) {
                    *state = Waiter::Abandoned;
                }
            });
            locked(&accel.done, |d| d.remove(&id.0));
            Err(Errno::EINTR)
        }
    }
}

/// ioctl on a mirror (Linux `dmirror_fops_unlocked_ioctl`): read the command, check the
/// range as Linux does, zero the outputs (`cpages`, `faults`), dispatch, write back.
/// An unknown request is EINVAL, as in Linux's driver.
pub fn ioctl(mirror: &Mirror, request: u32, arg: u64) -> Result<u64, Errno> {
    let accel = accel()?;
    let mut cmd = read_cmd(arg)?;
    if mirror.aspace.upgrade().is_none() {
        return Err(Errno::EINVAL);
    }
    if cmd.addr % PAGE_SIZE != 0 || cmd.npages == 0 || cmd.npages > MAX_PAGES {
        return Err(Errno::EINVAL);
    }
    let end = cmd
        .addr
        .checked_add(cmd.npages * PAGE_SIZE)
        .ok_or(Errno::EINVAL)?;
    if end > crate::mm::page_table::USER_END {
        return Err(Errno::EINVAL);
    }
    // Outputs only: whatever the caller left there means nothing (Linux zeroes them).
    let hold_ms = cmd.faults;
    cmd.cpages = 0;
    cmd.faults = 0;
    match request {
        ioctl::READ => dmirror_read(accel, mirror, &mut cmd)?,
        ioctl::WRITE => dmirror_write(accel, mirror, &mut cmd)?,
        ioctl::EXCLUSIVE => dmirror_exclusive(accel, mirror, &mut cmd)?,
        ioctl::EXCLUSIVE_HOLD if cfg!(feature = "test-hooks") => {
            accel
                .hold_ms
                .store(hold_ms.min(MAX_HOLD_MS), Ordering::Relaxed);
            let r = dmirror_exclusive(accel, mirror, &mut cmd);
            accel.hold_ms.store(0, Ordering::Relaxed);
            r?
        }
        ioctl::CHECK_EXCLUSIVE => dmirror_check_atomic(accel, mirror, cmd.addr, end)?,
        ioctl::ATOMIC_ADD => dmirror_atomic_add(accel, mirror, &mut cmd)?,
        ioctl::SNAPSHOT => dmirror_snapshot(mirror, &mut cmd)?,
        _ => return Err(Errno::EINVAL),
    }
    write_back(arg, &cmd)?;
    Ok(0)
}

/// HMM_DMIRROR_READ: the device reads the range into `ptr` (Linux `dmirror_read`).
fn dmirror_read(accel: &Accel, mirror: &Mirror, cmd: &mut Cmd) -> Result<(), Errno> {
    let c = run(
        accel,
        Command::Read {
            ctx: mirror.ctx,
            va: cmd.addr,
            len: (cmd.npages * PAGE_SIZE) as usize,
        },
    )?;
    finish(cmd, &c)?;
    uaccess::write_bytes(cmd.ptr, &c.data)
}

/// HMM_DMIRROR_WRITE: the device writes `ptr` into the range (Linux `dmirror_write`).
fn dmirror_write(accel: &Accel, mirror: &Mirror, cmd: &mut Cmd) -> Result<(), Errno> {
    let len = (cmd.npages * PAGE_SIZE) as usize;
    let mut data = Vec::new();
    data.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    data.resize(len, 0);
    uaccess::read_bytes(cmd.ptr, &mut data)?;
    let c = run(
        accel,
        Command::Write {
            ctx: mirror.ctx,
            va: cmd.addr,
            data,
        },
    )?;
    finish(cmd, &c)
}

/// HMM_DMIRROR_EXCLUSIVE (Linux `dmirror_exclusive`): make every page exclusive
/// (atomic-mapped in the device), then read them through the device into `ptr`.
fn dmirror_exclusive(accel: &Accel, mirror: &Mirror, cmd: &mut Cmd) -> Result<(), Errno> {
    let pre = run(
        accel,
        Command::Prefetch {
            ctx: mirror.ctx,
            va: cmd.addr,
            npages: cmd.npages,
            access: Access::Atomic,
        },
    )?;
    pre.result.map_err(device_errno)?;
    dmirror_read(accel, mirror, cmd)?;
    // Linux's dmirror_exclusive reports cpages only; faults stays 0.
    cmd.faults = 0;
    Ok(())
}

/// HMM_DMIRROR_CHECK_EXCLUSIVE: EPERM while the device still holds any page of
/// [addr, end) atomic (Linux `dmirror_check_atomic`).
fn dmirror_check_atomic(accel: &Accel, mirror: &Mirror, addr: u64, end: u64) -> Result<(), Errno> {
    let mut dev = accel.lock_device_killable()?;
    accel.drain(&mut dev);
    if dev.has_atomic(mirror.ctx, addr..end) {
        Err(Errno::EPERM)
    } else {
        Ok(())
    }
}

/// HMM_DMIRROR_ATOMIC_ADD (ours): the device adds `ptr` (as i32) to every word.
fn dmirror_atomic_add(accel: &Accel, mirror: &Mirror, cmd: &mut Cmd) -> Result<(), Errno> {
    let c = run(
        accel,
        Command::AtomicAdd {
            ctx: mirror.ctx,
            va: cmd.addr,
            npages: cmd.npages,
            value: cmd.ptr as i32,
        },
    )?;
    finish(cmd, &c)?;
    // Ours: ATOMIC_ADD reports every page request (the demo counts revocations).
    cmd.faults = u64::from(c.faults);
    Ok(())
}

/// HMM_DMIRROR_SNAPSHOT: one protection byte per page into `ptr` (Linux
/// `dmirror_snapshot`).
fn dmirror_snapshot(mirror: &Mirror, cmd: &mut Cmd) -> Result<(), Errno> {
    let aspace = mirror.aspace.upgrade().ok_or(Errno::EINVAL)?;
    let bytes = snapshot_bytes(&aspace, cmd.addr, cmd.npages);
    uaccess::write_bytes(cmd.ptr, &bytes)?;
    cmd.cpages = cmd.npages;
    Ok(())
}

/// Copy a completion's counters into the command as Linux's dmirror counts them; its
/// error becomes the ioctl's. `faults` counts fault *calls*: Linux's `dmirror_read` /
/// `dmirror_write` fault the whole rest of the range in one `hmm_range_fault` call,
/// where our device asks page by page, so any number of page requests is one call.
fn finish(cmd: &mut Cmd, c: &Completion) -> Result<(), Errno> {
    cmd.cpages = c.pages_done;
    cmd.faults = u64::from(c.faults.min(1));
    c.result.map_err(device_errno)
}

/// One SNAPSHOT byte per page: the CPU's view of each page (Linux reports the same
/// through `hmm_range_fault` without faulting), plus ours for exclusive entries.
fn snapshot_bytes(aspace: &AddressSpace, addr: u64, npages: u64) -> Vec<u8> {
    use x86_64::structures::paging::PageTableFlags as F;
    let vmas = aspace.vmas();
    (0..npages)
        .map(|i| {
            let va = VirtAddr::new(addr + i * PAGE_SIZE);
            if !vmas.iter().any(|v| v.contains(va)) {
                return snapshot::ERROR;
            }
            match aspace.query(va) {
                Pte::None => snapshot::NONE,
                Pte::Present { flags, .. } if flags.contains(F::WRITABLE) => snapshot::WRITE,
                Pte::Present { .. } => snapshot::READ,
                Pte::DeviceExclusive { .. } => snapshot::EXCLUSIVE,
            }
        })
        .collect()
}

/// What every mirror of `aspace` holds for `va`: (device context, permission) pairs,
/// for the page-state dump (`proc::procfs`).
fn device_view(aspace: &Arc<AddressSpace>, va: u64) -> Vec<(u32, Option<Perm>)> {
    let Some(accel) = ACCEL.get() else {
        return Vec::new();
    };
    let ctxs: Vec<u32> = locked(&accel.mirrors, |m| {
        m.iter()
            .filter(|(_, (w, _))| w.upgrade().is_some_and(|a| Arc::ptr_eq(&a, aspace)))
            .map(|(c, _)| *c)
            .collect()
    });
    let mut dev = accel.lock_device();
    accel.drain(&mut dev);
    ctxs.into_iter()
        .map(|c| (c, dev.snapshot(ContextId(c), va)))
        .collect()
}

impl Mirror {
    /// The device context of this open.
    pub fn context(&self) -> ContextId {
        self.ctx
    }
}
