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
//! Locking: the accelerator is behind a spin lock that is only ever taken with
//! `try_lock` + yield ([`Accel::lock_device`]), because the engine holds it while it
//! serves page requests, which can sleep (frame locks). A notifier that finds it held
//! (the engine's own page request triggered the invalidation) queues the invalidation;
//! the device drains that queue before it uses any translation.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use devices::accel::{
    Accelerator, Access, Command, CommandId, Completion, ContextId, DeviceError, HostMemory,
    Invalidation, PageRequestError, PageRequests, Perm, Translation,
};
use devices::pci::Width;
use spin::{Mutex, MutexGuard, Once};
use x86_64::instructions::interrupts;
use x86_64::VirtAddr;

use super::pci::{self, SoftwareFunction};
use crate::mm::pte::Pte;
use crate::mm::{phys_to_virt, PAGE_SIZE};
use crate::proc::{sched, Process};
use crate::syscall::errno::Errno;
use crate::syscall::uaccess;
use crate::vm::{
    Access as CpuAccess, AddressSpace, ExclusiveError, ExclusiveFrame, FaultOutcome, MmuNotifier,
    NotifyEvent, Owner, Privilege, SubscriptionId,
};

/// ioctl numbers (DESIGN.md section 4; Linux `test_hmm_uapi.h`).
pub mod ioctl {
    pub const READ: u64 = 0xC028_4800;
    pub const WRITE: u64 = 0xC028_4801;
    pub const SNAPSHOT: u64 = 0xC028_4804;
    pub const EXCLUSIVE: u64 = 0xC028_4805;
    pub const CHECK_EXCLUSIVE: u64 = 0xC028_4806;
    pub const ATOMIC_ADD: u64 = 0xC028_4840;
}

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

/// The accelerator and the driver's shared state.
pub struct Accel {
    device: Mutex<Accelerator>,
    /// Invalidations that arrived while the engine held the device.
    /// (and the event that caused each, see `HostPages::page_request`).
    pending: Mutex<VecDeque<(Invalidation, NotifyEvent)>>,
    /// Contexts -> (address space, owner cookie), for page requests.
    mirrors: Mutex<BTreeMap<u32, (Weak<AddressSpace>, Owner)>>,
    /// Finished commands, waiting for their ioctl to pick them up.
    done: Mutex<BTreeMap<u32, Completion>>,
    /// Processes sleeping in an ioctl, by command.
    waiters: Mutex<BTreeMap<u32, Arc<Process>>>,
    /// Frames a test asked to keep locked a while (S-F2/S-C2 hold hook): (until, frames).
    held: Mutex<Vec<(u64, Vec<ExclusiveFrame>)>>,
    /// How long (ms) the next EXCLUSIVE's page requests keep their frames locked.
    hold_ms: AtomicU64,
    engine: Once<Arc<Process>>,
}

static ACCEL: Once<Arc<Accel>> = Once::new();
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// Run `f` on `m` with interrupts off (the short driver locks).
fn locked<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
    interrupts::without_interrupts(|| f(&mut m.lock()))
}

impl Accel {
    /// The device, waiting (by yielding) while the engine holds it.
    fn lock_device(&self) -> MutexGuard<'_, Accelerator> {
        loop {
            if let Some(guard) = self.device.try_lock() {
                return guard;
            }
            sched::yield_now();
        }
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
        device: Mutex::new(Accelerator::new()),
        pending: Mutex::new(VecDeque::new()),
        mirrors: Mutex::new(BTreeMap::new()),
        done: Mutex::new(BTreeMap::new()),
        waiters: Mutex::new(BTreeMap::new()),
        held: Mutex::new(Vec::new()),
        hold_ms: AtomicU64::new(0),
        engine: Once::new(),
    });
    ACCEL.call_once(|| accel.clone());
    let (bus, device, function) = PCI_SLOT;
    pci::register_software_function(bus, device, function, Arc::new(ConfigPort(accel)));
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
    match crate::proc::spawn_kernel_thread("accel-engine", engine_main) {
        Ok(engine) => {
            accel.engine.call_once(|| engine);
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
        .filter(|a| a.engine.get().is_some())
        .ok_or(Errno::ENODEV)
}

// ---------------------------------------------------------------------------------
// The engine thread

extern "C" fn engine_main() -> ! {
    interrupts::enable();
    let accel = ACCEL.get().expect("engine started before the driver");
    loop {
        release_held(accel);
        let work = {
            let dev = accel.lock_device();
            dev.queued()
        };
        if work == 0 {
            let holding = locked(&accel.held, |h| !h.is_empty());
            if holding {
                sched::sleep_ticks(1);
            } else {
                interrupts::without_interrupts(|| {
                    // Re-check with interrupts off so a submit cannot slip in between.
                    if accel.device.try_lock().is_some_and(|d| d.queued() == 0) {
                        sched::block_current();
                    }
                });
            }
            continue;
        }
        let finished: Vec<(CommandId, Completion)> = {
            let mut dev = accel.lock_device();
            accel.drain(&mut dev);
            let mut host = HostPages {
                accel,
                held: Vec::new(),
            };
            dev.process(&mut PhysMemory, &mut host);
            let ids: Vec<u32> = locked(&accel.waiters, |w| w.keys().copied().collect());
            ids.into_iter()
                .filter_map(|id| {
                    dev.take_completion(CommandId(id))
                        .map(|c| (CommandId(id), c))
                })
                .collect()
        };
        for (id, completion) in finished {
            locked(&accel.done, |d| d.insert(id.0, completion));
            if let Some(waiter) = locked(&accel.waiters, |w| w.remove(&id.0)) {
                sched::wake(&waiter);
            }
        }
        // Let the CPU side run between batches: this is where faults and device work
        // interleave.
        sched::yield_now();
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
        let src = frame_ptr(pfn, offset, buf.len());
        // SAFETY: `src..+len` lies inside frame `pfn`, which the device holds a
        // translation for (the frame is mapped by the process and referenced).
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
    }

    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) {
        let dst = frame_ptr(pfn, offset, data.len());
        // SAFETY: as in `read`, for a frame the device may write.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
    }

    fn atomic_add_u32(&mut self, pfn: u64, offset: usize, value: i32) {
        let ptr = frame_ptr(pfn, offset, 4).cast::<AtomicU32>();
        // SAFETY: 4 aligned bytes inside the frame (offset is a multiple of 4); used as
        // an atomic so a concurrent CPU increment is never lost.
        unsafe { (*ptr).fetch_add(value as u32, Ordering::SeqCst) };
    }
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
            FaultOutcome::BadAccess(crate::vm::BadAccessReason::NotMapped) => {
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
            let until = crate::arch::x86_64::interrupts::ticks() + hold;
            locked(&self.accel.held, |h| h.push((until, alloc::vec![guard])));
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
        .lock_device()
        .create_context()
        .map_err(|_| Errno::ENOMEM)?;
    let owner = NEXT_OWNER.fetch_add(1, Ordering::Relaxed);
    let notifier = Arc::new(MirrorNotifier {
        accel: accel.clone(),
        ctx,
        owner,
    });
    let subscription = match aspace.subscribe(notifier) {
        Ok(s) => s,
        Err(_) => {
            accel.lock_device().destroy_context(ctx);
            return Err(Errno::ENOMEM);
        }
    };
    locked(&accel.mirrors, |m| {
        m.insert(ctx.0, (Arc::downgrade(&aspace), owner))
    });
    Ok(Arc::new(Mirror {
        ctx,
        aspace: Arc::downgrade(&aspace),
        subscription,
        minor,
    }))
}

impl Drop for Mirror {
    /// Close (last reference, also on exit): unsubscribe and drop the device context.
    fn drop(&mut self) {
        let Some(accel) = ACCEL.get() else { return };
        if let Some(aspace) = self.aspace.upgrade() {
            aspace.unsubscribe(self.subscription);
        }
        locked(&accel.mirrors, |m| m.remove(&self.ctx.0));
        accel.lock_device().destroy_context(self.ctx);
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

/// Submit `command`, wake the engine, sleep until it completes.
fn run(accel: &Accel, command: Command) -> Result<Completion, Errno> {
    let me = sched::current();
    let id = accel.lock_device().submit(command).map_err(|e| {
        log::warn!("accelerator refused a command: {e:?}");
        Errno::EBUSY
    })?;
    locked(&accel.waiters, |w| w.insert(id.0, me.clone()));
    if let Some(engine) = accel.engine.get() {
        sched::wake(engine);
    }
    loop {
        let done = interrupts::without_interrupts(|| {
            let c = locked(&accel.done, |d| d.remove(&id.0));
            if c.is_none() {
                sched::block_current();
            }
            c
        });
        if let Some(c) = done {
            return Ok(c);
        }
    }
}

/// ioctl on a mirror (Linux `dmirror_fops_unlocked_ioctl`).
pub fn ioctl(mirror: &Mirror, request: u64, arg: u64) -> Result<u64, Errno> {
    let accel = accel()?;
    let mut cmd = read_cmd(arg)?;
    if mirror.aspace.upgrade().is_none() {
        return Err(Errno::EINVAL);
    }
    let known = [
        ioctl::READ,
        ioctl::WRITE,
        ioctl::SNAPSHOT,
        ioctl::EXCLUSIVE,
        ioctl::CHECK_EXCLUSIVE,
        ioctl::ATOMIC_ADD,
    ];
    if !known.contains(&request) {
        return Err(Errno::ENOTTY);
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
    let len = (cmd.npages * PAGE_SIZE) as usize;
    let ctx = mirror.ctx;
    let result = match request {
        ioctl::READ => {
            let c = run(
                accel,
                Command::Read {
                    ctx,
                    va: cmd.addr,
                    len,
                },
            )?;
            finish(&mut cmd, &c)?;
            uaccess::write_bytes(cmd.ptr, &c.data)?;
            Ok(0)
        }
        ioctl::WRITE => {
            let mut data = Vec::new();
            data.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
            data.resize(len, 0);
            uaccess::read_bytes(cmd.ptr, &mut data)?;
            let c = run(
                accel,
                Command::Write {
                    ctx,
                    va: cmd.addr,
                    data,
                },
            )?;
            finish(&mut cmd, &c)?;
            Ok(0)
        }
        ioctl::EXCLUSIVE => {
            // Linux dmirror_exclusive: make every page exclusive (atomic-mapped in the
            // device), then read them through the device into ptr.
            accel.hold_ms.store(cmd.faults, Ordering::Relaxed); // test hook (S-F2/S-C2)
            let pre = run(
                accel,
                Command::Prefetch {
                    ctx,
                    va: cmd.addr,
                    npages: cmd.npages,
                    access: Access::Atomic,
                },
            );
            accel.hold_ms.store(0, Ordering::Relaxed);
            let pre = pre?;
            if let Err(e) = pre.result {
                return Err(match e {
                    DeviceError::Busy { .. } => Errno::EBUSY,
                    other => device_errno(other),
                });
            }
            let c = run(
                accel,
                Command::Read {
                    ctx,
                    va: cmd.addr,
                    len,
                },
            )?;
            finish(&mut cmd, &c)?;
            cmd.faults = u64::from(pre.faults);
            uaccess::write_bytes(cmd.ptr, &c.data)?;
            Ok(0)
        }
        ioctl::CHECK_EXCLUSIVE => {
            let mut dev = accel.lock_device();
            accel.drain(&mut dev);
            if dev.has_atomic(ctx, cmd.addr..end) {
                Err(Errno::EPERM)
            } else {
                Ok(0)
            }
        }
        ioctl::ATOMIC_ADD => {
            let c = run(
                accel,
                Command::AtomicAdd {
                    ctx,
                    va: cmd.addr,
                    npages: cmd.npages,
                    value: cmd.ptr as i32,
                },
            )?;
            finish(&mut cmd, &c)?;
            Ok(0)
        }
        ioctl::SNAPSHOT => {
            let aspace = mirror.aspace.upgrade().ok_or(Errno::EINVAL)?;
            let bytes = snapshot_bytes(&aspace, cmd.addr, cmd.npages);
            uaccess::write_bytes(cmd.ptr, &bytes)?;
            cmd.cpages = cmd.npages;
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    };
    let value = result?;
    write_back(arg, &cmd)?;
    Ok(value)
}

/// Copy a completion's counters into the command; its error becomes the ioctl's.
fn finish(cmd: &mut Cmd, c: &Completion) -> Result<(), Errno> {
    cmd.cpages = c.pages_done;
    cmd.faults = u64::from(c.faults);
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

/// What every mirror of `aspace` holds for `va`: (minor, permission) pairs, for the
/// page-state dump.
pub fn device_view(aspace: &Arc<AddressSpace>, va: u64) -> Vec<(ContextId, Option<Perm>)> {
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
        .map(|c| (ContextId(c), dev.snapshot(ContextId(c), va)))
        .collect()
}

impl Mirror {
    /// The device context of this open.
    pub fn context(&self) -> ContextId {
        self.ctx
    }
}
