//! The driver of the emulated accelerator and its device files `/dev/hmm_dmirror0` and
//! `/dev/hmm_dmirror1` (Linux `lib/test_hmm.c`, the "dmirror" test driver, same ioctls).
//!
//! Files: `mod.rs` (the accelerator, PCI binding, device-file registration),
//! `engine.rs` (the engine thread and page requests), `file.rs` (open files and the
//! ioctls).
//!
//! ```text
//!  process --ioctl--> driver: submit Command, wake the engine, sleep until done
//!                     engine thread (kernel thread "accel-engine"): Accelerator::process()
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
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use crate::mm::fallible::{try_collect, NoMemory, VecMap};
use crate::mm::pte::Pte;
use crate::mm::PAGE_SIZE;
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
    mirrors: SpinLock<VecMap<u32, (Weak<AddressSpace>, Owner)>>,
    /// Contexts of closed files, for the engine to destroy.
    closed: SpinLock<Vec<ContextId>>,
    /// Finished commands, waiting for their ioctl to pick them up. Its room is taken
    /// when a command is submitted (`file::run`), so the engine's insert never allocates.
    done: SpinLock<VecMap<u32, Completion>>,
    /// Submitted commands whose completion someone waits for (or abandoned).
    waiters: SpinLock<VecMap<u32, Waiter>>,
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
        mirrors: SpinLock::new("accelerator mirrors", VecMap::new()),
        closed: SpinLock::new("accelerator closed contexts", Vec::new()),
        done: SpinLock::new("accelerator completions", VecMap::new()),
        waiters: SpinLock::new("accelerator waiters", VecMap::new()),
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
    fs::boxed(MirrorFile(open(minor)?))
}

impl FileOps for MirrorFile {
    fn ioctl(&self, request: u32, arg: u64) -> Result<u64, Errno> {
        ioctl(&self.0, request, arg)
    }
    /// A stream: lseek and pread64 answer ESPIPE (Linux `no_llseek`).
    fn seekable(&self) -> bool {
        false
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

mod engine;
mod file;

use engine::{device_maps_frame, engine_main, release_held_frames};
use file::device_view;
pub use file::{ioctl, open, Mirror};
