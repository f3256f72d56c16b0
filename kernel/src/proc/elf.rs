//! Loading a static x86-64 ELF executable into a new address space, and building the
//! Linux initial stack (Linux `load_elf_binary`, `create_elf_tables`).
//!
//! The ELF file is parsed with the `xmas-elf` crate. Each `PT_LOAD` segment becomes an
//! anonymous private VMA whose pages are filled from the file (the rest, .bss, stays
//! demand-zero); then each VMA gets the segment's protection. The stack gets, from the
//! top down: the strings of argv and envp, 16 random bytes, then (16-byte aligned)
//! argc, the argv pointers, NULL, the envp pointers, NULL, and the auxiliary vector.

use alloc::sync::Arc;
use alloc::vec::Vec;
use x86_64::VirtAddr;
use xmas_elf::header::{Class, Machine, Type as ElfType};
use xmas_elf::program::Type as PhType;
use xmas_elf::ElfFile;

use super::Brk;
use crate::error::Errno;
use crate::mm::heap::AlignedBytes;
use crate::mm::{MmError, PAGE_SIZE};
use crate::vm::{AddressSpace, Placement, Prot, Sharing};

/// Top of the user stack (just below the last user page, like Linux without ASLR).
pub const STACK_TOP: u64 = 0x7fff_ffff_0000;
/// Size of the stack VMA. Pages are allocated on first touch.
pub const STACK_SIZE: u64 = 8 * 1024 * 1024;
/// Most bytes of argv + envp strings (Linux allows more; this bounds kernel work).
pub const MAX_ARG_BYTES: usize = 128 * 1024;

/// Auxiliary-vector keys (Linux `include/uapi/linux/auxvec.h`).
const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;

/// A loaded program, ready to run.
pub struct Image {
    pub aspace: Arc<AddressSpace>,
    pub entry: u64,
    pub stack_pointer: u64,
    pub brk: Brk,
}

/// Load the executable `data` with `argv` and `envp` into a new address space. Any
/// problem gives an error and leaves nothing behind (the new address space is dropped).
pub fn load(data: &[u8], argv: &[&str], envp: &[&str]) -> Result<Image, Errno> {
    // xmas-elf reads the headers in place and needs them 8-byte aligned; cpio `newc`
    // only aligns file data to 4 bytes. Copy the file into an aligned buffer if needed.
    let aligned;
    let data: &[u8] = if data.as_ptr().align_offset(8) == 0 {
        data
    } else {
        aligned = AlignedBytes::copy_from(data).ok_or(Errno::ENOMEM)?;
        aligned.as_bytes()
    };
    let elf = ElfFile::new(data).map_err(|_| Errno::ENOEXEC)?;
    let h = &elf.header;
    if h.pt1.class() != Class::SixtyFour
        || h.pt2.machine().as_machine() != Machine::X86_64
        || h.pt2.type_().as_type() != ElfType::Executable
    {
        // Only static, non-PIE x86-64 executables (what musl-gcc -static produces).
        return Err(Errno::ENOEXEC);
    }
    let aspace = AddressSpace::new()?;
    let (segments, phdr_addr) = map_segments(&elf, data, &aspace)?;
    apply_protections(&aspace, &segments)?;
    let image_end = segments.iter().map(|s| s.end).max().unwrap_or(0);
    // AT_PHDR: from PT_PHDR, or where the headers lie in the first segment's image.
    let phdr = match phdr_addr {
        Some(a) => a,
        None => {
            let first = elf
                .program_iter()
                .find(|ph| ph.get_type() == Ok(PhType::Load) && ph.offset() == 0)
                .ok_or(Errno::ENOEXEC)?;
            first.virtual_addr() + h.pt2.ph_offset()
        }
    };
    aspace.map_anonymous(
        Placement::Fixed(VirtAddr::new(STACK_TOP - STACK_SIZE)),
        STACK_SIZE,
        Prot::READ | Prot::WRITE,
        Sharing::Private,
    )?;
    let entry = h.pt2.entry_point();
    let auxv = [
        (AT_PHDR, phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, h.pt2.ph_count() as u64),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_ENTRY, entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_SECURE, 0),
    ];
    let stack_pointer = build_stack(&aspace, argv, envp, &auxv)?;
    Ok(Image {
        aspace,
        entry,
        stack_pointer,
        brk: Brk {
            start: image_end,
            current: image_end,
        },
    })
}

/// One loaded segment: its page range and final protection.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: u64,
    end: u64,
    prot: Prot,
}

/// Map every PT_LOAD segment of `elf` read-write into `aspace` and copy its file bytes
/// in; returns the segments (page ranges, final protections) and the PT_PHDR address if
/// there is one. ENOEXEC for a malformed or out-of-range segment.
fn map_segments(
    elf: &ElfFile,
    data: &[u8],
    aspace: &AddressSpace,
) -> Result<(Vec<Segment>, Option<u64>), Errno> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut phdr_addr = None;
    for ph in elf.program_iter() {
        let kind = ph.get_type().map_err(|_| Errno::ENOEXEC)?;
        if kind == PhType::Phdr {
            phdr_addr = Some(ph.virtual_addr());
        }
        if kind != PhType::Load || ph.mem_size() == 0 {
            continue;
        }
        let (vaddr, memsz, filesz, offset) = (
            ph.virtual_addr(),
            ph.mem_size(),
            ph.file_size(),
            ph.offset(),
        );
        let file_end = offset.checked_add(filesz).ok_or(Errno::ENOEXEC)?;
        let mem_end = vaddr.checked_add(memsz).ok_or(Errno::ENOEXEC)?;
        if filesz > memsz || file_end > data.len() as u64 || mem_end > STACK_TOP - STACK_SIZE {
            return Err(Errno::ENOEXEC);
        }
        // A page shared with the previous segment is already mapped: start after it.
        let mut start = vaddr & !(PAGE_SIZE - 1);
        let end = mem_end.next_multiple_of(PAGE_SIZE);
        if let Some(prev) = segments.last() {
            start = start.max(prev.end);
        }
        if start < end {
            aspace
                .map_anonymous(
                    Placement::FixedNoReplace(VirtAddr::new(start)),
                    end - start,
                    Prot::READ | Prot::WRITE,
                    Sharing::Private,
                )
                .map_err(|e| match e {
                    MmError::NoMemory => Errno::ENOMEM,
                    _ => Errno::ENOEXEC,
                })?;
        }
        aspace.copy_to_user(
            VirtAddr::new(vaddr),
            &data[offset as usize..file_end as usize],
        )?;
        let flags = ph.flags();
        let mut prot = Prot::empty();
        prot.set(Prot::READ, flags.is_read());
        prot.set(Prot::WRITE, flags.is_write());
        prot.set(Prot::EXEC, flags.is_execute());
        segments.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        segments.push(Segment {
            start: vaddr & !(PAGE_SIZE - 1),
            end,
            prot,
        });
    }
    if segments.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    Ok((segments, phdr_addr))
}

/// Give each segment its final protection, in order; a page shared with the previous
/// segment gets both segments' rights.
fn apply_protections(aspace: &AddressSpace, segments: &[Segment]) -> Result<(), Errno> {
    let mut prev: Option<Segment> = None;
    for &seg in segments {
        match prev {
            Some(p) if seg.start < p.end => {
                aspace.mprotect(VirtAddr::new(seg.start), PAGE_SIZE, seg.prot | p.prot)?;
                if seg.start + PAGE_SIZE < seg.end {
                    let rest = seg.start + PAGE_SIZE;
                    aspace.mprotect(VirtAddr::new(rest), seg.end - rest, seg.prot)?;
                }
            }
            _ => aspace.mprotect(VirtAddr::new(seg.start), seg.end - seg.start, seg.prot)?,
        }
        prev = Some(seg);
    }
    Ok(())
}

/// Write the initial stack; returns the stack pointer (pointing at argc).
fn build_stack(
    aspace: &AddressSpace,
    argv: &[&str],
    envp: &[&str],
    auxv: &[(u64, u64)],
) -> Result<u64, Errno> {
    let bytes: usize = argv.iter().chain(envp).map(|s| s.len() + 1).sum();
    if bytes > MAX_ARG_BYTES {
        return Err(Errno::E2BIG);
    }
    let mut sp = STACK_TOP;
    let push_bytes = |sp: &mut u64, data: &[u8]| -> Result<u64, Errno> {
        *sp -= data.len() as u64;
        aspace.copy_to_user(VirtAddr::new(*sp), data)?;
        Ok(*sp)
    };
    // Strings, each NUL-terminated.
    let string_addrs = |sp: &mut u64, list: &[&str]| -> Result<Vec<u64>, Errno> {
        let mut addrs = Vec::new();
        addrs
            .try_reserve_exact(list.len())
            .map_err(|_| Errno::ENOMEM)?;
        for s in list {
            push_bytes(sp, &[0])?;
            addrs.push(push_bytes(sp, s.as_bytes())?);
        }
        Ok(addrs)
    };
    let env_addrs = string_addrs(&mut sp, envp)?;
    let arg_addrs = string_addrs(&mut sp, argv)?;
    let random = random_bytes();
    sp -= 16;
    aspace.copy_to_user(VirtAddr::new(sp), &random)?;
    let random_addr = sp;

    // The table of words: argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL pair.
    // Room for every word is taken first, so the pushes below never allocate.
    let count = 1 + argv.len() + 1 + envp.len() + 1 + 2 * (auxv.len() + 1) + 2;
    let mut words: Vec<u64> = Vec::new();
    words.try_reserve_exact(count).map_err(|_| Errno::ENOMEM)?;
    words.push(argv.len() as u64);
    words.extend(&arg_addrs);
    words.push(0);
    words.extend(&env_addrs);
    words.push(0);
    for &(k, v) in auxv.iter().chain(&[(AT_RANDOM, random_addr)]) {
        words.push(k);
        words.push(v);
    }
    words.push(AT_NULL);
    words.push(0);
    debug_assert_eq!(words.len(), count);
    // rsp must be 16-byte aligned at argc (the x86-64 psABI process entry state).
    sp = (sp - words.len() as u64 * 8) & !0xf;
    let mut raw = Vec::new();
    raw.try_reserve_exact(words.len() * 8)
        .map_err(|_| Errno::ENOMEM)?;
    for w in &words {
        raw.extend_from_slice(&w.to_le_bytes());
    }
    aspace.copy_to_user(VirtAddr::new(sp), &raw)?;
    Ok(sp)
}

/// 16 bytes for AT_RANDOM (musl seeds its stack protector with them). From the TSC
/// through a xorshift: unpredictable enough for a teaching kernel, not cryptographic.
fn random_bytes() -> [u8; 16] {
    let mut x = crate::arch::x86_64::tsc::read() | 1;
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    out
}
