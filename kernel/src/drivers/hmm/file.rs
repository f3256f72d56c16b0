//! The device files /dev/hmm_dmirror0 and /dev/hmm_dmirror1: one [`Mirror`] per open,
//! its MMU notifier, and one function per ioctl (Linux `dmirror_fops`,
//! `dmirror_read`, `dmirror_write`, `dmirror_exclusive`, ...).
#![forbid(unsafe_code)]

use super::*;
use crate::proc::procfs::ViewIncomplete;

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
            // An invalidation cannot be dropped and has nobody to report ENOMEM to:
            // the queue's slot may come from the memory reserve (mm::gfp).
            None => crate::mm::gfp::with_reserve(|| {
                locked(&self.accel.pending, |q| q.push_back((inv, event)))
            }),
        }
    }
}

/// Open /dev/hmm_dmirror`minor` for the current process (Linux `dmirror_fops_open`).
pub fn open(minor: u32) -> Result<Arc<Mirror>, Errno> {
    let accel = accel()?;
    let aspace = sched::current().aspace();
    let mut dev = accel.lock_device_killable()?;
    // The device model keeps its context table in our heap, where hardware has memory of
    // its own: a bounded entry (at most MAX_CONTEXTS), so it may use the reserve
    // (mm::gfp) rather than abort (a BTreeMap insert cannot fail).
    let ctx = crate::mm::gfp::with_reserve(|| dev.create_context()).map_err(|_| Errno::ENOMEM)?;
    drop(dev);
    let owner = NEXT_OWNER.fetch_add(1, Ordering::Relaxed);
    let fail = |e: Errno| {
        // A context that is never destroyed is lost for good: its slot comes from the
        // reserve if need be (one per open file, bounded by MAX_CONTEXTS).
        crate::mm::gfp::with_reserve(|| locked(&accel.closed, |c| c.push(ctx)));
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
    let registered = locked(&accel.mirrors, |m| {
        m.try_insert(ctx.0, (Arc::downgrade(&aspace), owner))
    });
    match registered {
        Ok(_) => Ok(mirror),
        // Dropping the mirror unsubscribes and hands the context to the engine.
        Err(NoMemory) => Err(Errno::ENOMEM),
    }
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
        // Like every invalidation, it cannot be dropped: from the reserve if need be.
        crate::mm::gfp::with_reserve(|| {
            locked(&accel.pending, |q| {
                q.push_back((everything, NotifyEvent::Release))
            })
        });
        crate::mm::gfp::with_reserve(|| locked(&accel.closed, |c| c.push(self.ctx)));
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
        // Room for the waiter and its completion first, while the device is ours (so no
        // other submitter takes it): once submitted, a command must have its waiter, or
        // its completion would stay in the device forever and fill its queue; and the
        // engine must never fail to file a completion.
        let room = locked(&accel.waiters, |w| {
            w.try_reserve(1)?;
            // Every command still waited for may finish before any is picked up.
            let outstanding = w.len() + 1;
            locked(&accel.done, |d| d.try_reserve(outstanding))
        });
        room.map_err(|NoMemory| Errno::ENOMEM)?;
        let id = dev.submit(command).map_err(|e| {
            static LIMIT: crate::klog::RateLimit =
                crate::klog::RateLimit::new("accelerator refusals", 5000, 10);
            if LIMIT.allow() {
                log::warn!("accelerator refused a command: {e:?}");
            }
            Errno::EBUSY
        })?;
        let filed = locked(&accel.waiters, |w| w.try_insert(id.0, Waiter::Waiting));
        debug_assert!(filed.is_ok(), "the room was taken before the submit");
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
    // In chunks on the stack: the heap is not needed, whatever npages is.
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < cmd.npages {
        let n = (cmd.npages - done).min(chunk.len() as u64);
        for (i, byte) in chunk[..n as usize].iter_mut().enumerate() {
            let va = VirtAddr::new(cmd.addr + (done + i as u64) * PAGE_SIZE);
            *byte = snapshot_byte(&aspace, va);
        }
        uaccess::write_bytes(cmd.ptr + done, &chunk[..n as usize])?;
        done += n;
    }
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

/// One SNAPSHOT byte for the page at `va`: the CPU's view (Linux reports the same
/// through `hmm_range_fault` without faulting), plus ours for exclusive entries.
fn snapshot_byte(aspace: &AddressSpace, va: VirtAddr) -> u8 {
    use x86_64::structures::paging::PageTableFlags as F;
    if aspace.vma_find(va).is_none() {
        return snapshot::ERROR;
    }
    match aspace.query(va) {
        Pte::None => snapshot::NONE,
        Pte::Present { flags, .. } if flags.contains(F::WRITABLE) => snapshot::WRITE,
        Pte::Present { .. } => snapshot::READ,
        Pte::DeviceExclusive { .. } => snapshot::EXCLUSIVE,
    }
}

/// What every mirror of `aspace` holds for `va`: (device context, permission) pairs,
/// for the page-state dump (`proc::procfs`).
pub(super) fn device_view(
    aspace: &Arc<AddressSpace>,
    va: u64,
    show: &mut dyn FnMut(u32, Option<Perm>),
) -> Result<(), ViewIncomplete> {
    let Some(accel) = ACCEL.get() else {
        return Ok(());
    };
    let ctxs = locked(&accel.mirrors, |m| {
        try_collect(
            m.iter()
                .filter(|(_, (w, _))| w.upgrade().is_some_and(|a| Arc::ptr_eq(&a, aspace)))
                .map(|(c, _)| *c),
        )
    })
    .map_err(|NoMemory| ViewIncomplete::NoMemory)?;
    let mut dev = accel
        .lock_device_killable()
        .map_err(|_| ViewIncomplete::Killed)?;
    accel.drain(&mut dev);
    for c in ctxs {
        show(c, dev.snapshot(ContextId(c), va));
    }
    Ok(())
}

impl Mirror {
    /// The device context of this open.
    pub fn context(&self) -> ContextId {
        self.ctx
    }
}
