//! Memory syscalls: mmap (anonymous only), munmap, mprotect, madvise, brk.
#![deny(unsafe_code)]

use x86_64::VirtAddr;

use super::errno::Errno;
use super::{uaccess, Args, SysResult};
use crate::mm::{MmError, PAGE_SIZE};
use crate::proc::sched;
use crate::vm::{Placement, Prot, Sharing};

const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_POPULATE: u64 = 0x8000;
const MAP_STACK: u64 = 0x2_0000;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
/// Flags we accept (the ones without an effect here are hints Linux may also ignore).
const MAP_KNOWN: u64 = MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_STACK
    | MAP_FIXED_NOREPLACE;

const MADV_NORMAL: u64 = 0;
const MADV_RANDOM: u64 = 1;
const MADV_SEQUENTIAL: u64 = 2;
const MADV_WILLNEED: u64 = 3;
const MADV_DONTNEED: u64 = 4;

fn prot(bits: u64) -> Result<Prot, Errno> {
    u32::try_from(bits)
        .ok()
        .and_then(Prot::from_bits)
        .ok_or(Errno::EINVAL)
}

fn mm_errno(e: MmError) -> Errno {
    match e {
        MmError::AlreadyMapped => Errno::EEXIST,
        other => other.into(),
    }
}

/// mmap(addr, length, prot, flags, fd, offset): anonymous memory only; a file mapping
/// is ENODEV.
pub fn mmap(args: Args) -> SysResult {
    let (addr, len, flags) = (args.a0, args.a1, args.a3);
    let prot = prot(args.a2)?;
    if flags & !MAP_KNOWN != 0 || len == 0 {
        return Err(Errno::EINVAL);
    }
    let sharing = match flags & (MAP_SHARED | MAP_PRIVATE) {
        MAP_SHARED => Sharing::Shared,
        MAP_PRIVATE => Sharing::Private,
        _ => return Err(Errno::EINVAL),
    };
    if flags & MAP_ANONYMOUS == 0 {
        return Err(Errno::ENODEV);
    }
    let at = uaccess::user_addr(addr).map_err(|_| Errno::EINVAL)?;
    let placement = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace(at)
    } else if flags & MAP_FIXED != 0 {
        Placement::Fixed(at)
    } else if addr != 0 {
        Placement::Hint(at.align_down(PAGE_SIZE))
    } else {
        Placement::Anywhere
    };
    if matches!(
        placement,
        Placement::Fixed(_) | Placement::FixedNoReplace(_)
    ) && addr.saturating_add(len) > crate::mm::page_table::USER_END
    {
        return Err(Errno::ENOMEM); // Linux: a fixed range beyond user space
    }
    let aspace = sched::current().aspace();
    let start = aspace
        .map_anonymous(placement, len, prot, sharing)
        .map_err(mm_errno)?;
    Ok(start.as_u64())
}

/// munmap(addr, length)
pub fn munmap(args: Args) -> SysResult {
    let at = uaccess::user_addr(args.a0).map_err(|_| Errno::EINVAL)?;
    sched::current()
        .aspace()
        .munmap(at, args.a1)
        .map_err(mm_errno)?;
    Ok(0)
}

/// mprotect(addr, length, prot)
pub fn mprotect(args: Args) -> SysResult {
    let at = uaccess::user_addr(args.a0).map_err(|_| Errno::EINVAL)?;
    let prot = prot(args.a2)?;
    if args.a1 == 0 {
        return if at.is_aligned(PAGE_SIZE) {
            Ok(0)
        } else {
            Err(Errno::EINVAL)
        };
    }
    if at.is_aligned(PAGE_SIZE) && args.a0.saturating_add(args.a1) > crate::mm::page_table::USER_END
    {
        return Err(Errno::ENOMEM); // Linux: beyond user space is "not mapped"
    }
    sched::current()
        .aspace()
        .mprotect(at, args.a1, prot)
        .map_err(mm_errno)?;
    Ok(0)
}

/// madvise(addr, length, advice): MADV_DONTNEED drops the pages; the other classic
/// hints are accepted and ignored; anything else is EINVAL.
pub fn madvise(args: Args) -> SysResult {
    let at = uaccess::user_addr(args.a0).map_err(|_| Errno::EINVAL)?;
    if !at.is_aligned(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    match args.a2 {
        MADV_DONTNEED => {
            if args.a1 == 0 {
                return Ok(0);
            }
            sched::current()
                .aspace()
                .zap(at, args.a1)
                .map_err(mm_errno)?;
            Ok(0)
        }
        MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// brk(addr): move the program break; returns the new break, or the old one if it
/// cannot move (Linux semantics: brk never returns an error code).
pub fn brk(args: Args) -> SysResult {
    let p = sched::current();
    let aspace = p.aspace();
    let brk = p.with(|i| i.brk);
    let want = args.a0;
    if want < brk.start {
        return Ok(brk.current);
    }
    let old_end = brk.current.next_multiple_of(PAGE_SIZE);
    let new_end = match want.checked_next_multiple_of(PAGE_SIZE) {
        Some(e) if e <= crate::proc::elf::STACK_TOP - crate::proc::elf::STACK_SIZE => e,
        _ => return Ok(brk.current),
    };
    let moved = if new_end > old_end {
        aspace
            .map_anonymous(
                Placement::FixedNoReplace(VirtAddr::new(old_end)),
                new_end - old_end,
                Prot::READ | Prot::WRITE,
                Sharing::Private,
            )
            .map(|_| ())
    } else if new_end < old_end {
        aspace.munmap(VirtAddr::new(new_end), old_end - new_end)
    } else {
        Ok(())
    };
    match moved {
        Ok(()) => {
            p.with(|i| i.brk.current = want);
            Ok(want)
        }
        Err(_) => Ok(brk.current),
    }
}
