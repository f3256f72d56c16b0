//! Address spaces: a page table plus the VMAs that say what may be mapped in it.
//!
//! This is where the user half of memory is managed: `mmap`-like mapping of anonymous
//! memory, `munmap`, `mprotect` (with VMA splitting and merging), the page-fault path
//! (demand-zero fill and copy-on-write), and an invariant checker. Linux: `struct
//! mm_struct`, `do_mmap`, `do_munmap`, `mprotect_fixup`, `handle_mm_fault`.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use super::notifier::{Invalidation, MmuNotifier, NotifyEvent, Owner, Subscribers, SubscriptionId};
use super::vma::{Prot, Sharing, SplitFor, Vma, VmaList};
use crate::mm::frame::{self, Frame, FrameFlags};
use crate::mm::gather::Gather;
use crate::mm::page_table::{PageTable, RootRef, USER_END};
use crate::mm::pte::Pte;
use crate::mm::{MmError, PAGE_SIZE};
use crate::sync::{Killed, Mutex};
use core::ops::ControlFlow;
use x86_64::structures::paging::PhysFrame;

/// Lowest address `mmap` hands out (Linux `mmap_min_addr` is 64 KiB; we keep the first
/// 64 KiB free too, so a null-pointer dereference always faults).
pub const MMAP_MIN: u64 = 0x1_0000;
/// Top of the area where "anywhere" mappings go, searched downwards.
pub const MMAP_TOP: u64 = 0x7f00_0000_0000;

/// Where a new mapping goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Wherever there is room.
    Anywhere,
    /// At this address if it is free, else anywhere (Linux: a non-`MAP_FIXED` hint).
    Hint(VirtAddr),
    /// Exactly here, replacing whatever was mapped (Linux `MAP_FIXED`).
    Fixed(VirtAddr),
    /// Exactly here, or `AlreadyMapped` if anything is mapped there (Linux
    /// `MAP_FIXED_NOREPLACE`; also what `brk` needs).
    FixedNoReplace(VirtAddr),
}

/// The kind of access that faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

/// Who made the access: user code, or the kernel touching user memory for a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    User,
    Kernel,
}

/// Why an access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadAccessReason {
    /// No VMA contains the address.
    NotMapped,
    /// The VMA forbids this kind of access (e.g. a write to a read-only mapping, any
    /// access to PROT_NONE).
    Protection { prot: Prot },
}

impl fmt::Display for BadAccessReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadAccessReason::NotMapped => write!(f, "address not mapped"),
            BadAccessReason::Protection { prot } if prot.is_empty() => {
                write!(f, "mapping is PROT_NONE")
            }
            BadAccessReason::Protection { prot } => {
                write!(f, "not allowed by the mapping's protection {prot:?}")
            }
        }
    }
}

/// What the fault path did. The caller turns it into "retry the access", "kill the
/// process", or "kernel bug".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Fixed: retry the access.
    Fixed(Fix),
    /// The access is not allowed: the process gets SIGSEGV (a syscall gets -EFAULT).
    BadAccess(BadAccessReason),
    /// A frame was needed and none was free: the faulting process is killed.
    OutOfMemory,
    /// A wait inside the fault (for a frame lock) was cut short by SIGKILL: the process
    /// exits on its way back to user mode.
    Killed,
    /// The fault cannot be a user's doing: the kernel is broken.
    KernelBug(KernelBug),
}

/// Faults that only a kernel bug can cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelBug {
    /// A fault on a kernel (upper-half) address.
    KernelAddress,
    /// A fault on a user address while no address space is current.
    NoAddressSpace,
}

/// How a fault was fixed (tests and the page-state dump print this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// A zero-filled frame was mapped (first touch).
    DemandZero,
    /// A shared frame was copied for a write (copy-on-write, copy case).
    CowCopy,
    /// A write to a read-only entry whose frame had no other user: made writable.
    CowReuse,
    /// A device-exclusive entry was made present again.
    ExclusiveRestored,
    /// The entry already allowed the access (stale TLB entry); flushed.
    Spurious,
}

/// A broken invariant, found by [`AddressSpace::check_invariants`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvariantViolation {
    pub va: Option<VirtAddr>,
    pub what: &'static str,
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.va {
            Some(va) => write!(f, "at {:#x}: {}", va.as_u64(), self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

/// What the invariant checker counted, for tests to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Census {
    pub present: usize,
    pub exclusive: usize,
    pub table_pages: usize,
}

pub(super) struct Inner {
    pub(super) table: PageTable,
    pub(super) vmas: VmaList,
}

/// Why `fix_entry` could not finish under the lock.
pub(super) enum FixError {
    /// An ordinary failure (out of memory).
    Mm(MmError),
    /// The entry is device-exclusive: restoring it may sleep on the frame lock, which
    /// must happen without the address-space lock (see `restore_exclusive`).
    Exclusive(PhysFrame),
}

impl From<MmError> for FixError {
    fn from(e: MmError) -> Self {
        FixError::Mm(e)
    }
}

/// One address space: the lower half of a page table and its VMAs, behind a lock, and
/// the devices that mirror it.
///
/// The lock is a sleeping [`Mutex`] (Linux `mmap_lock`): its holder may sleep (wait for
/// memory, call notifiers that wait for a device). The fault path takes it too, with
/// interrupts on. Frame locks are taken *before* it, never while holding it (except
/// with `try_lock`), so the two cannot deadlock.
pub struct AddressSpace {
    pub(super) inner: Mutex<Inner>,
    pub(super) subscribers: Subscribers,
    /// The root table's frame, referenced (it never changes; read without the lock,
    /// e.g. by the scheduler loop, which cannot sleep).
    root: RootRef,
}

impl AddressSpace {
    /// An empty address space (its page table shares the kernel's upper half).
    pub fn new() -> Result<Arc<AddressSpace>, MmError> {
        let table = PageTable::new()?;
        let root = table
            .root_ref()
            .expect("a new address space's table owns its root");
        let aspace = AddressSpace {
            inner: Mutex::new(
                "address space",
                Inner {
                    table,
                    vmas: VmaList::new(),
                },
            ),
            subscribers: Subscribers::new(),
            root,
        };
        Arc::try_new(aspace).map_err(|_| MmError::NoMemory)
    }

    /// Run `f` with the address-space lock held (sleeping for it if needed).
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock())
    }

    /// Subscribe `notifier` to this address space's invalidations.
    pub fn subscribe(&self, notifier: Arc<dyn MmuNotifier>) -> Result<SubscriptionId, MmError> {
        self.subscribers.subscribe(notifier)
    }

    /// End a subscription (closing the device file). Holds the address-space lock so no
    /// invalidation is half-delivered to it; the subscription is dropped after.
    pub fn unsubscribe(&self, id: SubscriptionId) {
        let gone = self.with(|_| self.subscribers.unsubscribe(id));
        drop(gone);
    }

    /// Tell every subscriber about a change of [start, end) that removes no page
    /// (protection changes, device-exclusive conversion and restore). Changes that
    /// remove or replace pages use a [`Gather`] instead, which notifies by itself.
    pub(super) fn notify(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        event: NotifyEvent,
        owner: Option<Owner>,
    ) {
        self.subscribers.notify(start, end, event, owner);
    }

    /// The root page table frame (for CR3).
    pub(super) fn root(&self) -> &RootRef {
        &self.root
    }

    /// Map `len` bytes of zero-filled anonymous memory (Linux `do_mmap` with
    /// `MAP_ANONYMOUS`). Nothing is allocated until first touch. Returns the start.
    pub fn map_anonymous(
        &self,
        placement: Placement,
        len: u64,
        prot: Prot,
        sharing: Sharing,
    ) -> Result<VirtAddr, MmError> {
        if len == 0 {
            return Err(MmError::InvalidRange);
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::InvalidRange)?;
        self.with(|inner| {
            let fits = |start: VirtAddr| {
                start.is_aligned(PAGE_SIZE)
                    && start.as_u64() >= MMAP_MIN
                    && start
                        .as_u64()
                        .checked_add(len)
                        .is_some_and(|end| end <= USER_END)
            };
            let start = match placement {
                Placement::Fixed(at) => {
                    if !at.is_aligned(PAGE_SIZE) {
                        return Err(MmError::Unaligned);
                    }
                    if !fits(at) {
                        return Err(MmError::InvalidRange);
                    }
                    // Linux `do_mmap` -> `do_vmi_munmap`: the old pages go through the
                    // one unmap path, devices told first.
                    inner.unmap_range(&self.subscribers, at, at + len)?;
                    at
                }
                Placement::FixedNoReplace(at) => {
                    if !at.is_aligned(PAGE_SIZE) {
                        return Err(MmError::Unaligned);
                    }
                    if !fits(at) {
                        return Err(MmError::InvalidRange);
                    }
                    if inner.vmas.overlaps(at, at + len) {
                        return Err(MmError::AlreadyMapped);
                    }
                    at
                }
                Placement::Hint(at) if fits(at) && !inner.vmas.overlaps(at, at + len) => at,
                Placement::Hint(_) | Placement::Anywhere => inner
                    .vmas
                    .find_gap(len, VirtAddr::new(MMAP_MIN), VirtAddr::new(MMAP_TOP))
                    .ok_or(MmError::NoMemory)?,
            };
            inner.vmas.insert(Vma {
                start,
                end: start + len,
                prot,
                sharing,
            })?;
            Ok(start)
        })
    }

    /// Remove [start, start + len): VMAs are cut at the edges, every entry inside is
    /// unmapped and its frame released (Linux `do_munmap`). Unmapped holes are fine.
    pub fn munmap(&self, start: VirtAddr, len: u64) -> Result<(), MmError> {
        let end = checked_range(start, len)?;
        self.with(|inner| inner.unmap_range(&self.subscribers, start, end))
    }

    /// Change the protection of [start, start + len), which must be fully mapped (Linux
    /// `mprotect`: ENOMEM otherwise). Present entries get the new rights at once; a
    /// frame shared copy-on-write stays read-only until its first write.
    pub fn mprotect(&self, start: VirtAddr, len: u64, prot: Prot) -> Result<(), MmError> {
        let end = checked_range(start, len)?;
        self.with(|inner| {
            if !inner.vmas.covers(start, end) {
                return Err(MmError::NoMemory);
            }
            self.notify(start, end, NotifyEvent::ProtectionVma, None);
            inner.vmas.split_range(start, end, SplitFor::Change)?;
            inner.vmas.set_prot(start, end, prot);
            // One pass over the entries of each VMA in the range.
            let Inner { table, vmas } = inner;
            // (set_prot may have merged them with neighbours: clamp to the range.)
            for vma in vmas.iter().filter(|v| v.start < end && v.end > start) {
                let mut cursor = table.cursor(vma.start.max(start), vma.end.min(end))?;
                cursor.update_each(vma.start.max(start), |_, pte| match pte {
                    Pte::Present { frame, .. } => {
                        let exclusive = frame::meta(frame)
                            .flags()
                            .contains(FrameFlags::ANON_EXCLUSIVE);
                        ControlFlow::Continue(Some(Pte::Present {
                            frame,
                            flags: vma.pte_flags(exclusive),
                        }))
                    }
                    // Writability of an exclusive entry is decided when it is restored.
                    Pte::DeviceExclusive { .. } | Pte::None => ControlFlow::Continue(None),
                });
            }
            Ok(())
        })
    }

    /// Handle a page fault at `addr` (Linux `handle_mm_fault`): find the VMA, check the
    /// access against it, then fix the entry: demand-zero on first touch, copy-on-write
    /// on a write to a shared frame, restore a device-exclusive entry.
    pub fn handle_fault(&self, addr: VirtAddr, access: Access, _who: Privilege) -> FaultOutcome {
        let page = addr.align_down(PAGE_SIZE);
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let Some(vma) = inner.vmas.find(addr).copied() else {
            return FaultOutcome::BadAccess(BadAccessReason::NotMapped);
        };
        if !vma.allows(access) {
            return FaultOutcome::BadAccess(BadAccessReason::Protection { prot: vma.prot });
        }
        match inner.fix_entry(&self.subscribers, &vma, page, access) {
            Ok(fix) => FaultOutcome::Fixed(fix),
            Err(FixError::Mm(MmError::NoMemory)) => FaultOutcome::OutOfMemory,
            Err(FixError::Mm(e)) => panic!("handle_fault: unexpected {e:?} at {addr:?}"),
            Err(FixError::Exclusive(frame)) => {
                let reference = mapped(frame);
                drop(guard);
                match self.restore_exclusive(page, reference) {
                    Ok(fix) => FaultOutcome::Fixed(fix),
                    Err(Killed) => FaultOutcome::Killed,
                }
            }
        }
    }

    /// Copy `buf.len()` bytes from user memory at `va` into `buf`, as the kernel does for
    /// a syscall argument (Linux `copy_from_user`). Pages are faulted in through the same
    /// path as a CPU fault (demand-zero, device-exclusive restore); an address outside
    /// every VMA, or one without read permission, is `BadAddress` (-EFAULT).
    pub fn copy_from_user(&self, va: VirtAddr, buf: &mut [u8]) -> Result<(), MmError> {
        self.access_user(va, buf.len(), Access::Read, |frame, offset, at, n| {
            frame.read_at(offset, &mut buf[at..at + n]);
        })
    }

    /// Copy `data` into user memory at `va` (Linux `copy_to_user`): like
    /// [`AddressSpace::copy_from_user`], and a write breaks copy-on-write first.
    pub fn copy_to_user(&self, va: VirtAddr, data: &[u8]) -> Result<(), MmError> {
        self.access_user(va, data.len(), Access::Write, |frame, offset, at, n| {
            frame.write_at(offset, &data[at..at + n]);
        })
    }

    /// Walk [va, va + len) page by page with the lock held, making each page allow
    /// `access` through the fault path, and call `f(frame, offset in the frame, offset
    /// in the range, bytes)` for each piece.
    fn access_user(
        &self,
        va: VirtAddr,
        len: usize,
        access: Access,
        mut f: impl FnMut(&Frame, usize, usize, usize),
    ) -> Result<(), MmError> {
        let start = va.as_u64();
        let end = start.checked_add(len as u64).ok_or(MmError::BadAddress)?;
        if end > USER_END {
            return Err(MmError::BadAddress);
        }
        let mut at = start;
        while at < end {
            let page = VirtAddr::new(at).align_down(PAGE_SIZE);
            let n = ((page.as_u64() + PAGE_SIZE).min(end) - at) as usize;
            // Under the lock: make the page allow the access, then copy. A device-
            // exclusive entry is restored outside the lock, then the page is retried.
            let step = self.with(|inner| -> Result<Option<Frame>, MmError> {
                let vma = *inner.vmas.find(page).ok_or(MmError::BadAddress)?;
                if !vma.allows(access) {
                    return Err(MmError::BadAddress);
                }
                loop {
                    let pte = inner.table.cursor(page, page + PAGE_SIZE)?.query(page)?;
                    match pte {
                        Pte::Present { frame, flags }
                            if access != Access::Write
                                || flags.contains(PageTableFlags::WRITABLE) =>
                        {
                            let offset = (at - page.as_u64()) as usize;
                            f(&mapped(frame), offset, (at - start) as usize, n);
                            return Ok(None);
                        }
                        Pte::Present { .. } | Pte::None | Pte::DeviceExclusive { .. } => {
                            match inner.fix_entry(&self.subscribers, &vma, page, access) {
                                Ok(_) => {}
                                Err(FixError::Mm(e)) => return Err(e),
                                Err(FixError::Exclusive(frame)) => {
                                    return Ok(Some(mapped(frame)));
                                }
                            }
                        }
                    }
                }
            })?;
            match step {
                None => at += n as u64,
                Some(frame) => {
                    self.restore_exclusive(page, frame)
                        .map_err(|Killed| MmError::Killed)?;
                }
            }
        }
        Ok(())
    }

    /// Drop the pages of [start, start + len) but keep the VMAs: the next touch gets
    /// zero-filled pages again (Linux `madvise(MADV_DONTNEED)`, `zap_page_range`).
    /// `NoMemory` (ENOMEM) if part of the range is not mapped, as Linux.
    pub fn zap(&self, start: VirtAddr, len: u64) -> Result<(), MmError> {
        let end = checked_range(start, len)?;
        self.with(|inner| {
            if !inner.vmas.covers(start, end) {
                return Err(MmError::NoMemory);
            }
            inner.zap_entries(&self.subscribers, start, end, NotifyEvent::Clear)
        })
    }

    /// The entry for `va` (for tests and the page-state dump).
    pub fn query(&self, va: VirtAddr) -> Pte {
        self.with(|inner| {
            let page = va.align_down(PAGE_SIZE);
            match inner.table.cursor(page, page + PAGE_SIZE) {
                Ok(c) => c.query(page).unwrap_or(Pte::None),
                Err(_) => Pte::None,
            }
        })
    }

    /// Every non-`None` entry in [start, end) (for the page-state dump).
    pub fn mapped_entries(&self, start: VirtAddr, end: VirtAddr) -> Vec<(VirtAddr, Pte)> {
        self.with(|inner| {
            let mut out = Vec::new();
            let Ok(cursor) = inner.table.cursor(start, end) else {
                return out;
            };
            let mut from = start;
            while let Some((va, pte)) = cursor.next_mapped(from) {
                out.push((va, pte));
                from = va + PAGE_SIZE;
            }
            out
        })
    }

    /// A copy of the VMA list.
    pub fn vmas(&self) -> Vec<Vma> {
        self.with(|inner| inner.vmas.iter().copied().collect())
    }

    /// Number of page-table pages (root included).
    pub fn table_pages(&self) -> usize {
        self.with(|inner| inner.table.table_pages())
    }

    /// Check the invariants of DESIGN.md section 6 and the SPEC (I1, I4, I5) on every
    /// entry: refcount >= mapcount >= 1; a writable anonymous entry's frame is
    /// anon-exclusive; a device-exclusive entry maps an anonymous frame with mapcount 1;
    /// no entry outside a VMA; VMAs well formed; every page-table page accounted. Returns
    /// what it counted.
    pub fn check_invariants(&self) -> Result<Census, InvariantViolation> {
        self.with(|inner| {
            let bad = |va, what| InvariantViolation { va: Some(va), what };
            inner
                .vmas
                .check()
                .map_err(|what| InvariantViolation { va: None, what })?;
            let table_pages = inner
                .table
                .check_tables()
                .map_err(|what| InvariantViolation { va: None, what })?;
            let mut census = Census {
                table_pages,
                ..Census::default()
            };
            let cursor = inner
                .table
                .cursor(VirtAddr::new(0), VirtAddr::new(USER_END))
                .expect("the whole user half is a valid range");
            let mut from = VirtAddr::new(0);
            while let Some((va, pte)) = cursor.next_mapped(from) {
                let Some(vma) = inner.vmas.find(va) else {
                    return Err(bad(va, "entry outside every VMA"));
                };
                match pte {
                    Pte::None => unreachable!("next_mapped never yields None entries"),
                    Pte::Present { frame, flags } => {
                        census.present += 1;
                        let m = frame::meta(frame);
                        if m.mapcount() == 0 || m.refcount() < m.mapcount() {
                            return Err(bad(va, "present entry: refcount >= mapcount >= 1 broken"));
                        }
                        if flags.contains(PageTableFlags::WRITABLE)
                            && vma.sharing == Sharing::Private
                            && !m.flags().contains(FrameFlags::ANON_EXCLUSIVE)
                        {
                            return Err(bad(
                                va,
                                "writable anonymous entry whose frame is not anon-exclusive (I4)",
                            ));
                        }
                        if flags.contains(PageTableFlags::WRITABLE)
                            && !vma.prot.contains(Prot::WRITE)
                        {
                            return Err(bad(va, "writable entry in a VMA without PROT_WRITE"));
                        }
                    }
                    Pte::DeviceExclusive { frame } => {
                        census.exclusive += 1;
                        let m = frame::meta(frame);
                        if m.mapcount() != 1 || !m.flags().contains(FrameFlags::ANON) {
                            return Err(bad(
                                va,
                                "exclusive entry must map an anonymous frame with mapcount 1 (I1)",
                            ));
                        }
                        if m.refcount() < m.mapcount() {
                            return Err(bad(va, "exclusive entry: refcount < mapcount (I5)"));
                        }
                    }
                }
                from = va + PAGE_SIZE;
            }
            Ok(census)
        })
    }
}

/// The flags of a present entry that replaces a device-exclusive one: writable iff the
/// VMA is writable and the frame is anon-exclusive; dirty iff the frame is dirty.
pub(super) fn restored_flags(vma: &Vma, frame: PhysFrame, anon_exclusive: bool) -> PageTableFlags {
    let mut flags = vma.pte_flags(anon_exclusive);
    if frame::meta(frame).flags().contains(FrameFlags::DIRTY) {
        flags |= PageTableFlags::DIRTY;
    }
    flags
}

impl Drop for AddressSpace {
    /// Tell the devices the whole address space is going away (Linux `exit_mmap` ->
    /// `mmu_notifier_release`); the page table's own drop frees everything.
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        if let Err(v) = self.check_invariants() {
            panic!("AddressSpace::drop: invariant broken: {v}");
        }
        // Every page goes through the one unmap path: devices hear `Release` first.
        let (start, end) = (VirtAddr::new(0), VirtAddr::new(USER_END));
        let subscribers = &self.subscribers;
        self.inner
            .get_mut()
            .zap_entries(subscribers, start, end, NotifyEvent::Release)
            .expect("the whole user half is a valid range");
    }
}

impl Inner {
    /// Cut VMAs at the edges of [start, end), drop those inside, unmap their entries
    /// (Linux `do_vmi_munmap`): devices are told (`Unmap`) before any entry goes, and
    /// the frames are freed after the TLB flush.
    fn unmap_range(
        &mut self,
        subscribers: &Subscribers,
        start: VirtAddr,
        end: VirtAddr,
    ) -> Result<(), MmError> {
        self.vmas.split_range(start, end, SplitFor::Removal)?;
        self.vmas.remove_range(start, end);
        self.zap_entries(subscribers, start, end, NotifyEvent::Unmap)
    }

    /// Remove every entry of [start, end) through the one unmap path (`mm::gather`):
    /// devices hear `event` first, the frames are freed after the TLB flush (Linux
    /// `zap_page_range_single` inside `mmu_notifier_invalidate_range_start/end`).
    fn zap_entries(
        &mut self,
        subscribers: &Subscribers,
        start: VirtAddr,
        end: VirtAddr,
        event: NotifyEvent,
    ) -> Result<(), MmError> {
        let mut cursor = self.table.cursor(start, end)?;
        let invalidation = Invalidation {
            subscribers,
            event,
            owner: None,
        };
        let mut gather = Gather::begin(&invalidation, start, end);
        cursor.unmap_all(&mut gather);
        drop(cursor);
        gather.finish();
        Ok(())
    }

    /// Make the entry at `page` allow `access`, per `vma` (already checked).
    pub(super) fn fix_entry(
        &mut self,
        subscribers: &Subscribers,
        vma: &Vma,
        page: VirtAddr,
        access: Access,
    ) -> Result<Fix, FixError> {
        let mut cursor = self.table.cursor(page, page + PAGE_SIZE)?;
        match cursor.query(page)? {
            // Linux `do_anonymous_page`. (Linux maps a shared zero page for a read fault;
            // we always allocate, which keeps every anonymous frame anon-exclusive.)
            Pte::None => {
                let frame = Frame::alloc_zeroed()?;
                frame
                    .meta()
                    .set_flags(FrameFlags::ANON | FrameFlags::ANON_EXCLUSIVE);
                cursor.map(page, frame, vma.pte_flags(true))?;
                Ok(Fix::DemandZero)
            }
            Pte::Present { frame, flags } => {
                let writable = flags.contains(PageTableFlags::WRITABLE);
                if access != Access::Write || writable || vma.sharing == Sharing::Shared {
                    if access == Access::Write && !writable {
                        // Shared mapping made read-only by an old mprotect: re-flag.
                        cursor.protect(page, vma.pte_flags(true))?;
                    }
                    // The entry already allows it: a stale TLB entry.
                    crate::mm::tlb::flush_page(page);
                    return Ok(Fix::Spurious);
                }
                // Linux `do_wp_page`: reuse if we are the only user, else copy.
                let meta = frame::meta(frame);
                if meta.mapcount() == 1 && meta.refcount() == 1 {
                    meta.set_flags(FrameFlags::ANON_EXCLUSIVE);
                    cursor.replace(
                        page,
                        Pte::Present {
                            frame,
                            flags: vma.pte_flags(true),
                        },
                    )?;
                    return Ok(Fix::CowReuse);
                }
                // Allocate first: if that fails, nothing has changed.
                let copy = Frame::alloc()?;
                let old = mapped(frame);
                copy.copy_from(&old);
                copy.meta()
                    .set_flags(FrameFlags::ANON | FrameFlags::ANON_EXCLUSIVE);
                // The old frame loses one mapping; its other users keep it.
                // Devices must drop the old frame before the entry moves to the copy
                // (Linux `wp_page_copy` sends MMU_NOTIFY_CLEAR): the gather does that.
                let clear = Invalidation {
                    subscribers,
                    event: NotifyEvent::Clear,
                    owner: None,
                };
                let mut gather = Gather::begin(&clear, page, page + PAGE_SIZE);
                cursor.exchange(page, copy, vma.pte_flags(true), &mut gather)?;
                drop(cursor);
                gather.finish();
                Ok(Fix::CowCopy)
            }
            // Linux `remove_device_exclusive_entry`: may sleep, so the caller does it.
            Pte::DeviceExclusive { frame } => Err(FixError::Exclusive(frame)),
        }
    }
}

/// A new reference to the frame of an entry we just read under the address-space lock.
/// The entry holds a reference, so the frame is in use: `try_get` cannot fail unless
/// the page tables are corrupt (a kernel bug, reported by name).
pub(super) fn mapped(frame: PhysFrame) -> Frame {
    Frame::try_get(frame).unwrap_or_else(|| {
        panic!("vm: a page-table entry maps {frame:?}, whose reference count is 0")
    })
}

/// [start, start + len) as an end address; page-aligned start, non-zero length, inside
/// the user half. The length is rounded up to whole pages.
fn checked_range(start: VirtAddr, len: u64) -> Result<VirtAddr, MmError> {
    if !start.is_aligned(PAGE_SIZE) {
        return Err(MmError::Unaligned);
    }
    let len = len
        .checked_next_multiple_of(PAGE_SIZE)
        .ok_or(MmError::InvalidRange)?;
    let end = start
        .as_u64()
        .checked_add(len)
        .ok_or(MmError::InvalidRange)?;
    if len == 0 || end > USER_END {
        return Err(MmError::InvalidRange);
    }
    Ok(VirtAddr::new(end))
}
