//! Memory syscalls: mmap (anonymous only), munmap, mprotect, madvise, brk.
#![deny(unsafe_code)]

use x86_64::VirtAddr;

use super::{Args, SysResult};
use crate::error::Errno;
use crate::mm::{MmError, PAGE_SIZE};
use crate::proc::sched;
use crate::vm::uaccess;
use crate::vm::{Placement, Prot, Sharing};

const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
/// The map type: the low four bits of the flags.
const MAP_TYPE: u64 = 0x0f;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_32BIT: u64 = 0x40;
const MAP_ABOVE4G: u64 = 0x80;
const MAP_GROWSDOWN: u64 = 0x100;
const MAP_DENYWRITE: u64 = 0x800;
const MAP_EXECUTABLE: u64 = 0x1000;
const MAP_LOCKED: u64 = 0x2000;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_POPULATE: u64 = 0x8000;
const MAP_NONBLOCK: u64 = 0x1_0000;
const MAP_STACK: u64 = 0x2_0000;
const MAP_HUGETLB: u64 = 0x4_0000;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MAP_UNINITIALIZED: u64 = 0x400_0000;
const MAP_HUGE_2MB: u64 = 21 << 26;
const MAP_HUGE_1GB: u64 = 30 << 26;
/// Linux's `LEGACY_MAP_MASK`: the flags every file accepts. With `MAP_SHARED_VALIDATE`
/// any other flag is EOPNOTSUPP; with the other map types unknown flags are ignored.
const LEGACY_MAP_MASK: u64 = MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_UNINITIALIZED
    | MAP_GROWSDOWN
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
    | MAP_32BIT
    | MAP_ABOVE4G
    | MAP_HUGE_2MB
    | MAP_HUGE_1GB;
/// Flags Linux honours and we cannot (huge pages, a stack that grows down, an address
/// range): EINVAL, rather than a mapping that is silently not what was asked for.
const MAP_UNSUPPORTED: u64 = MAP_32BIT | MAP_ABOVE4G | MAP_GROWSDOWN | MAP_HUGETLB;

const MADV_NORMAL: i32 = 0;
const MADV_RANDOM: i32 = 1;
const MADV_SEQUENTIAL: i32 = 2;
const MADV_WILLNEED: i32 = 3;
const MADV_DONTNEED: i32 = 4;

/// mmap's prot (`unsigned long`): as Linux (`calc_vm_prot_bits`), bits it does not
/// know, above 32 included, are ignored.
fn mmap_prot(bits: u64) -> Prot {
    Prot::from_bits_truncate((bits & u64::from(Prot::all().bits())) as u32)
}

/// mprotect's prot (`unsigned long`): as Linux (`arch_validate_prot`), an unknown bit,
/// above 32 included, is EINVAL; PROT_SEM is accepted and means nothing on x86.
fn mprotect_prot(bits: u64) -> Result<Prot, Errno> {
    const PROT_SEM: u64 = 0x8;
    u32::try_from(bits & !PROT_SEM)
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

/// mmap(addr, length, prot, flags, fd, offset): anonymous memory only. As Linux
/// (`sys_mmap`, `ksys_mmap_pgoff`, `do_mmap`): an offset that is not page aligned is
/// EINVAL; unknown prot and flag bits are ignored; the map type must be MAP_SHARED or
/// MAP_PRIVATE (MAP_SHARED_VALIDATE is for files). Flags we cannot honour
/// ([`MAP_UNSUPPORTED`]) are EINVAL. A file mapping is ENODEV, after Linux's checks (see
/// [`file_mapping_error`]).
pub fn mmap(args: Args) -> SysResult {
    let (addr, len, flags, offset) = (args.ulong(0), args.ulong(1), args.ulong(3), args.ulong(5));
    if offset % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MAP_ANONYMOUS == 0 {
        return Err(file_mapping_error(args.fd(4), len, flags));
    }
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let sharing = match flags & MAP_TYPE {
        MAP_SHARED => Sharing::Shared,
        MAP_PRIVATE => Sharing::Private,
        _ => return Err(Errno::EINVAL),
    };
    if flags & MAP_UNSUPPORTED != 0 {
        return Err(Errno::EINVAL);
    }
    let prot = mmap_prot(args.ulong(2));
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

/// Why a file mapping fails, in Linux's order: EBADF if `fd` is not open (the fd is 32
/// bits: `fget(unsigned int)`), EINVAL for MAP_HUGETLB or a length of 0, EOPNOTSUPP for
/// a flag MAP_SHARED_VALIDATE does not know, EINVAL for a bad map type, and then
/// ENODEV: no file here can be mapped (Linux's answer for a file without `mmap`).
fn file_mapping_error(fd: i32, len: u64, flags: u64) -> Errno {
    if let Err(e) = super::files::file(fd) {
        return e;
    }
    if flags & MAP_HUGETLB != 0 || len == 0 {
        return Errno::EINVAL;
    }
    match flags & MAP_TYPE {
        MAP_SHARED_VALIDATE if flags & !LEGACY_MAP_MASK != 0 => Errno::EOPNOTSUPP,
        MAP_SHARED | MAP_SHARED_VALIDATE | MAP_PRIVATE => Errno::ENODEV,
        _ => Errno::EINVAL,
    }
}

/// munmap(addr, length)
pub fn munmap(args: Args) -> SysResult {
    let at = uaccess::user_addr(args.ulong(0)).map_err(|_| Errno::EINVAL)?;
    sched::current()
        .aspace()
        .munmap(at, args.ulong(1))
        .map_err(mm_errno)?;
    Ok(0)
}

/// mprotect(addr, length, prot): Linux's order of checks (`do_mprotect_pkey`): an
/// unaligned address is EINVAL, then a length of 0 succeeds, then prot is checked.
pub fn mprotect(args: Args) -> SysResult {
    let (start, len) = (args.ulong(0), args.ulong(1));
    let at = uaccess::user_addr(start).map_err(|_| Errno::EINVAL)?;
    if !at.is_aligned(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let prot = mprotect_prot(args.ulong(2))?;
    if start.saturating_add(len) > crate::mm::page_table::USER_END {
        return Err(Errno::ENOMEM); // Linux: beyond user space is "not mapped"
    }
    sched::current()
        .aspace()
        .mprotect(at, len, prot)
        .map_err(mm_errno)?;
    Ok(0)
}

/// madvise(addr, length, advice): MADV_DONTNEED drops the pages; the other classic
/// hints are accepted and ignored; anything else is EINVAL.
pub fn madvise(args: Args) -> SysResult {
    let (start, len) = (args.ulong(0), args.ulong(1));
    let at = uaccess::user_addr(start).map_err(|_| Errno::EINVAL)?;
    if !at.is_aligned(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    match args.int(2) {
        MADV_DONTNEED => {
            if len == 0 {
                return Ok(0);
            }
            sched::current().aspace().zap(at, len).map_err(mm_errno)?;
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
    let want = args.ulong(0);
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
