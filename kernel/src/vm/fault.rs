//! The page-fault path (Linux `handle_mm_fault`, `do_anonymous_page`, `do_wp_page`)
//! and the kernel's checked copies to and from user memory, which go through it.
#![forbid(unsafe_code)]

use core::fmt;
use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::VirtAddr;

use super::address_space::{AddressSpace, Inner};
use super::notifier::{Invalidation, NotifyEvent, Subscribers};
use super::vma::{FrameUse, Prot, Sharing, Vma, HW_BITS};
use crate::mm::frame::{self, Frame, FrameFlags};
use crate::mm::gather::Gather;
use crate::mm::page_table::USER_END;
use crate::mm::pte::Pte;
use crate::mm::{MmError, PAGE_SIZE};
use crate::sync::Killed;

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
    /// A shared mapping's page was mapped from its shared-memory object.
    SharedPage,
    /// A shared frame was copied for a write (copy-on-write, copy case).
    CowCopy,
    /// A write to a read-only entry whose frame had no other user: made writable.
    CowReuse,
    /// A device-exclusive entry was made present again.
    ExclusiveRestored,
    /// The entry already allowed the access (stale TLB entry); flushed.
    Spurious,
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

impl AddressSpace {
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
                // An injected allocation failure (mm::gfp) is retried, as a user fault
                // is (Linux retries the fault after `pagefault_out_of_memory`): the
                // kernel's copy, a signal frame above all, must not fail for it. Bounded,
                // for failslab failing every try.
                let mut injected_retries = 0;
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
                                Err(FixError::Mm(MmError::NoMemory))
                                    if injected_retries < 8 && crate::mm::gfp::take_injected() =>
                                {
                                    injected_retries += 1;
                                }
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
}

impl Inner {
    /// Make the entry at `page` allow `access`, per `vma` (already checked).
    pub(super) fn fix_entry(
        &mut self,
        subscribers: &Subscribers,
        vma: &Vma,
        page: VirtAddr,
        access: Access,
    ) -> Result<Fix, FixError> {
        // A shared mapping's page lives in its object (`vm::shmem`), found before the
        // cursor borrows the table.
        let shared_page = vma.shm.map(|k| (self.shm_object(k).clone(), k.index(page)));
        let mut cursor = self.table.cursor(page, page + PAGE_SIZE)?;
        match cursor.query(page)? {
            // Linux `do_anonymous_page`. (Linux maps a shared zero page for a read fault;
            // we always allocate, which keeps every anonymous frame anon-exclusive.)
            // Linux `shmem_fault`: the object's page, allocated on first touch by any
            // process that shares it.
            Pte::None if shared_page.is_some() => {
                let (object, index) = shared_page.expect("checked by the guard");
                cursor.map(
                    page,
                    object.page(index)?,
                    vma.pte_flags(FrameUse::Exclusive),
                )?;
                Ok(Fix::SharedPage)
            }
            Pte::None => {
                let frame = Frame::alloc_zeroed()?;
                frame
                    .meta()
                    .set_flags(FrameFlags::ANON | FrameFlags::ANON_EXCLUSIVE);
                cursor.map(page, frame, vma.pte_flags(FrameUse::Exclusive))?;
                Ok(Fix::DemandZero)
            }
            Pte::Present { frame, flags } => {
                let writable = flags.contains(PageTableFlags::WRITABLE);
                if access != Access::Write || writable || vma.sharing == Sharing::Shared {
                    if access == Access::Write && !writable {
                        // Shared mapping made read-only by an old mprotect: re-flag.
                        let keep = flags & HW_BITS;
                        cursor.protect(page, vma.pte_flags(FrameUse::Exclusive) | keep)?;
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
                            flags: vma.pte_flags(FrameUse::Exclusive) | (flags & HW_BITS),
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
                cursor.exchange(page, copy, vma.pte_flags(FrameUse::Exclusive), &mut gather)?;
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
