//! Address spaces: anonymous mappings, demand-zero faults taken by the real CPU,
//! munmap and mprotect with VMA splitting and merging, bad accesses reported with their
//! reason, running out of memory, and the invariant checker. Every test checks that the
//! free-frame count returns to its baseline.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::sync::Arc;
use kernel::mm::frame::free_frames;
use kernel::mm::pte::Pte;
use kernel::mm::MmError;
use kernel::serial_println;
use kernel::vm::{
    self, Access, AddressSpace, BadAccessReason, FaultOutcome, Fix, Placement, Privilege, Prot,
    Sharing,
};
use x86_64::VirtAddr;

kernel::test_kernel!();

const RW: Prot = Prot::READ.union(Prot::WRITE);
const PAGE: u64 = 4096;

/// Run `f` with `aspace` active on the CPU, then switch back to the kernel table.
fn with_active<R>(aspace: &Arc<AddressSpace>, f: impl FnOnce() -> R) -> R {
    vm::switch_to(Some(aspace.clone()));
    let r = f();
    vm::switch_to(None);
    r
}

/// Check the invariants and print what the checker counted.
fn check(aspace: &AddressSpace) -> vm::Census {
    let census = aspace
        .check_invariants()
        .unwrap_or_else(|v| panic!("invariant broken: {v}"));
    serial_println!(
        "(invariants hold: {} present, {} exclusive, {} table pages)",
        census.present,
        census.exclusive,
        census.table_pages
    );
    census
}

/// First touches go through the real page-fault exception: reads see zeroes, writes
/// stick, and only touched pages get frames.
#[test_case]
fn demand_zero_on_first_touch() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let len = 64 * PAGE;
        let start = a
            .map_anonymous(Placement::Anywhere, len, RW, Sharing::Private)
            .unwrap();
        assert_eq!(
            check(&a).present,
            0,
            "nothing is allocated before the first touch"
        );
        let frames_before_touch = free_frames();
        let sum = with_active(&a, || {
            let mut sum = 0u64;
            for i in 0..64 {
                let p = (start + i * PAGE).as_mut_ptr::<u64>();
                // SAFETY: inside a RW anonymous VMA of the active address space; the
                // fault handler maps a zeroed frame on first touch.
                unsafe {
                    sum += p.read_volatile();
                    if i % 2 == 0 {
                        p.write_volatile(i);
                    }
                }
            }
            // SAFETY: as above, pages already present now.
            let back = unsafe { (start + 10 * PAGE).as_ptr::<u64>().read_volatile() };
            assert_eq!(back, 10, "a written value reads back");
            sum
        });
        assert_eq!(sum, 0, "demand-zero pages must read as zero");
        let census = check(&a);
        assert_eq!(census.present, 64);
        assert!(frames_before_touch - free_frames() >= 64);
    }
    assert_eq!(
        free_frames(),
        base,
        "dropping the address space frees everything"
    );
}

/// Placement: a hint is honoured when free, Fixed replaces, Anywhere finds room.
#[test_case]
fn placement_and_bad_arguments() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let hint = VirtAddr::new(0x5000_0000);
        assert_eq!(
            a.map_anonymous(Placement::Hint(hint), PAGE, RW, Sharing::Private),
            Ok(hint)
        );
        let other = a
            .map_anonymous(Placement::Hint(hint), PAGE, RW, Sharing::Private)
            .unwrap();
        assert_ne!(other, hint, "an occupied hint is not used");
        assert_eq!(
            a.map_anonymous(Placement::Anywhere, 0, RW, Sharing::Private),
            Err(MmError::InvalidRange)
        );
        assert_eq!(
            a.map_anonymous(
                Placement::Fixed(VirtAddr::new(0x5000_0800)),
                PAGE,
                RW,
                Sharing::Private
            ),
            Err(MmError::Unaligned)
        );
        assert_eq!(
            a.map_anonymous(
                Placement::Fixed(VirtAddr::new(0)),
                PAGE,
                RW,
                Sharing::Private
            ),
            Err(MmError::InvalidRange),
            "page 0 stays unmapped"
        );
        // Fixed over an existing, touched mapping replaces it (and frees its frame).
        assert!(matches!(
            a.handle_fault(hint, Access::Write, Privilege::User),
            FaultOutcome::Fixed(Fix::DemandZero)
        ));
        assert_eq!(
            a.map_anonymous(Placement::Fixed(hint), PAGE, Prot::READ, Sharing::Private),
            Ok(hint)
        );
        assert_eq!(a.query(hint), Pte::None, "MAP_FIXED dropped the old page");
        check(&a);
    }
    assert_eq!(free_frames(), base);
}

/// mprotect in the middle splits one VMA into three; restoring merges them back.
#[test_case]
fn mprotect_splits_and_merges() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let start = a
            .map_anonymous(Placement::Anywhere, 10 * PAGE, RW, Sharing::Private)
            .unwrap();
        for i in 0..10 {
            a.handle_fault(start + i * PAGE, Access::Write, Privilege::User);
        }
        a.mprotect(start + 3 * PAGE, 4 * PAGE, Prot::READ).unwrap();
        let vmas = a.vmas();
        assert_eq!(vmas.len(), 3, "split into three: {vmas:?}");
        assert_eq!(vmas[1].start, start + 3 * PAGE);
        assert_eq!(vmas[1].end, start + 7 * PAGE);
        assert_eq!(vmas[1].prot, Prot::READ);
        match a.query(start + 4 * PAGE) {
            Pte::Present { flags, .. } => {
                assert!(!flags.contains(x86_64::structures::paging::PageTableFlags::WRITABLE))
            }
            other => panic!("expected present, got {other:?}"),
        }
        assert_eq!(
            a.handle_fault(start + 4 * PAGE, Access::Write, Privilege::User),
            FaultOutcome::BadAccess(BadAccessReason::Protection { prot: Prot::READ }),
            "write to a read-only VMA is a bad access"
        );
        a.mprotect(start + 3 * PAGE, 4 * PAGE, RW).unwrap();
        assert_eq!(a.vmas().len(), 1, "equal neighbours merge back");
        match a.query(start + 4 * PAGE) {
            Pte::Present { flags, .. } => assert!(
                flags.contains(x86_64::structures::paging::PageTableFlags::WRITABLE),
                "anon-exclusive frame is writable again"
            ),
            other => panic!("expected present, got {other:?}"),
        }
        assert_eq!(
            a.mprotect(start + 9 * PAGE, 4 * PAGE, Prot::READ),
            Err(MmError::NoMemory),
            "a hole in the range is ENOMEM"
        );
        check(&a);
    }
    assert_eq!(free_frames(), base);
}

/// PROT_NONE: every access is a bad access, for present and absent pages; the CPU
/// really faults (user bit removed) - checked through the fault path's verdict.
#[test_case]
fn prot_none_is_a_bad_access() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let start = a
            .map_anonymous(Placement::Anywhere, 2 * PAGE, RW, Sharing::Private)
            .unwrap();
        a.handle_fault(start, Access::Write, Privilege::User);
        a.mprotect(start, 2 * PAGE, Prot::empty()).unwrap();
        for page in [start, start + PAGE] {
            for access in [Access::Read, Access::Write, Access::Execute] {
                assert_eq!(
                    a.handle_fault(page, access, Privilege::User),
                    FaultOutcome::BadAccess(BadAccessReason::Protection {
                        prot: Prot::empty()
                    }),
                    "{access:?} at {page:?}"
                );
            }
        }
        match a.query(start) {
            Pte::Present { flags, .. } => assert!(
                !flags.contains(x86_64::structures::paging::PageTableFlags::USER_ACCESSIBLE),
                "PROT_NONE page must not be user-accessible"
            ),
            other => panic!("expected the frame kept, got {other:?}"),
        }
        assert_eq!(
            a.handle_fault(VirtAddr::new(0x10), Access::Read, Privilege::User),
            FaultOutcome::BadAccess(BadAccessReason::NotMapped),
            "null pointer"
        );
        check(&a);
    }
    assert_eq!(free_frames(), base);
}

/// munmap of the middle of a touched mapping frees those frames and splits the VMA.
#[test_case]
fn munmap_middle() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let start = a
            .map_anonymous(Placement::Anywhere, 8 * PAGE, RW, Sharing::Private)
            .unwrap();
        for i in 0..8 {
            a.handle_fault(start + i * PAGE, Access::Write, Privilege::User);
        }
        let before = free_frames();
        a.munmap(start + 2 * PAGE, 3 * PAGE).unwrap();
        assert_eq!(free_frames(), before + 3, "three frames freed");
        assert_eq!(a.vmas().len(), 2);
        assert_eq!(
            a.handle_fault(start + 3 * PAGE, Access::Read, Privilege::User),
            FaultOutcome::BadAccess(BadAccessReason::NotMapped)
        );
        assert_eq!(a.munmap(start + 1, PAGE), Err(MmError::Unaligned));
        assert_eq!(a.check_invariants().unwrap().present, 5);
    }
    assert_eq!(free_frames(), base);
}

/// Exhaust physical memory through an address space: the fault path answers
/// OutOfMemory (no panic, nothing half-built), the invariants hold, and dropping the
/// address space gives every frame back.
#[test_case]
fn out_of_memory_is_an_error() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let len = (base as u64 + 1024) * PAGE; // more than there is
        let start = a
            .map_anonymous(Placement::Anywhere, len, RW, Sharing::Private)
            .unwrap();
        let mut touched = 0u64;
        let outcome = loop {
            match a.handle_fault(start + touched * PAGE, Access::Write, Privilege::User) {
                FaultOutcome::Fixed(_) => touched += 1,
                other => break other,
            }
        };
        serial_println!(
            "({touched} pages touched before {outcome:?}; {} frames free)",
            free_frames()
        );
        assert_eq!(outcome, FaultOutcome::OutOfMemory);
        assert!(
            free_frames() <= kernel::mm::gfp::RESERVE_FRAMES + 2,
            "memory ran out down to the reserve"
        );
        check(&a);
    }
    assert_eq!(free_frames(), base, "every frame came back");
}

/// Address spaces come and go; each one created, filled and dropped leaves nothing.
#[test_case]
fn create_fill_drop_many() {
    let base = free_frames();
    for round in 0..50u64 {
        let a = AddressSpace::new().unwrap();
        let start = a
            .map_anonymous(Placement::Anywhere, 32 * PAGE, RW, Sharing::Private)
            .unwrap();
        with_active(&a, || {
            for i in 0..32 {
                // SAFETY: inside a RW anonymous VMA of the active address space.
                unsafe { (start + i * PAGE).as_mut_ptr::<u64>().write_volatile(round) };
            }
        });
        assert_eq!(a.check_invariants().unwrap().present, 32);
    }
    assert_eq!(free_frames(), base);
}

/// fork of an address space: private pages become read-only and shared (refcount and
/// mapcount 2, anon-exclusive cleared), each side's first write copies, and the last
/// user of a frame just gets write access back (reuse).
#[test_case]
fn fork_is_copy_on_write() {
    use kernel::mm::frame;
    use x86_64::structures::paging::PageTableFlags as F;
    let base = free_frames();
    {
        let parent = AddressSpace::new().unwrap();
        let start = parent
            .map_anonymous(Placement::Anywhere, 4 * PAGE, RW, Sharing::Private)
            .unwrap();
        for i in 0..4u64 {
            parent
                .copy_to_user(start + i * PAGE, &[i as u8 + 1; 8])
                .unwrap();
        }
        let child = parent.fork().unwrap();
        let (
            Pte::Present {
                frame: pf,
                flags: pfl,
            },
            Pte::Present {
                frame: cf,
                flags: cfl,
            },
        ) = (parent.query(start), child.query(start))
        else {
            panic!("both must be present after fork")
        };
        assert_eq!(pf, cf, "the frame is shared, not copied");
        assert!(
            !pfl.contains(F::WRITABLE) && !cfl.contains(F::WRITABLE),
            "both read-only"
        );
        let m = frame::meta(pf);
        assert_eq!((m.refcount(), m.mapcount()), (2, 2));
        assert!(!m.flags().contains(frame::FrameFlags::ANON_EXCLUSIVE));
        check(&parent);
        check(&child);

        // The child writes: it gets a copy; the parent keeps the old contents.
        assert_eq!(
            child.handle_fault(start, Access::Write, Privilege::User),
            FaultOutcome::Fixed(Fix::CowCopy)
        );
        child.copy_to_user(start, &[0xee; 8]).unwrap();
        let mut buf = [0u8; 8];
        parent.copy_from_user(start, &mut buf).unwrap();
        assert_eq!(buf, [1; 8], "the parent must not see the child's write");
        child.copy_from_user(start, &mut buf).unwrap();
        assert_eq!(buf, [0xee; 8]);
        assert_eq!(
            (m.refcount(), m.mapcount()),
            (1, 1),
            "the old frame lost the child's mapping"
        );

        // The parent is now the frame's only user: a write reuses it (no copy).
        assert_eq!(
            parent.handle_fault(start, Access::Write, Privilege::User),
            FaultOutcome::Fixed(Fix::CowReuse)
        );
        assert_eq!(
            parent.query(start).frame(),
            Some(pf),
            "reuse keeps the frame"
        );

        // The parent writes page 1 through copy_to_user (kernel access breaks COW too).
        parent.copy_to_user(start + PAGE, &[0x55; 8]).unwrap();
        child.copy_from_user(start + PAGE, &mut buf).unwrap();
        assert_eq!(buf, [2; 8], "the child must not see the parent's write");
        check(&parent);
        check(&child);
        drop(child);
        // Pages 2 and 3 are now the parent's alone again: mapcount back to 1.
        let Pte::Present { frame: f2, .. } = parent.query(start + 2 * PAGE) else {
            panic!()
        };
        assert_eq!(frame::meta(f2).mapcount(), 1);
    }
    assert_eq!(free_frames(), base);
}

/// A fork that runs out of memory half-way fails with NoMemory, frees the half-built
/// child, and leaves the parent valid.
#[test_case]
fn fork_out_of_memory_leaves_parent_intact() {
    let base = free_frames();
    {
        let parent = AddressSpace::new().unwrap();
        // Spread pages 2 MiB apart so the child needs one page table per page.
        let n = 64u64;
        let start = parent
            .map_anonymous(Placement::Anywhere, n * 512 * PAGE, RW, Sharing::Private)
            .unwrap();
        for i in 0..n {
            parent.copy_to_user(start + i * 512 * PAGE, &[7]).unwrap();
        }
        // Leave only a few free frames above the reserve (mm::gfp).
        let mut hog = alloc::vec::Vec::new();
        while free_frames() > kernel::mm::gfp::RESERVE_FRAMES + 20 {
            hog.push(kernel::mm::frame::Frame::alloc().unwrap());
        }
        assert_eq!(parent.fork().err(), Some(MmError::NoMemory));
        drop(hog);
        let census = check(&parent);
        assert_eq!(census.present, n as usize);
        let mut b = [0u8; 1];
        parent
            .copy_from_user(start + 5 * 512 * PAGE, &mut b)
            .unwrap();
        assert_eq!(b[0], 7);
    }
    assert_eq!(free_frames(), base);
}

/// Linux's `vm.max_map_count`: at most 65530 VMAs. Mappings that cannot merge (the
/// protection alternates) fill the list; the next mmap is ENOMEM; a hole punched in the
/// middle of a VMA is ENOMEM too and leaves the VMAs as they were (no mergeable halves);
/// unmapping the tail of a VMA at the limit works (it adds none); all memory comes back.
#[test_case]
fn vma_limit_is_max_map_count() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let start = 0x1000_0000u64;
        let mut n = 0u64;
        let err = loop {
            let prot = if n.is_multiple_of(2) { RW } else { Prot::READ };
            let at = VirtAddr::new(start + n * PAGE);
            match a.map_anonymous(Placement::FixedNoReplace(at), PAGE, prot, Sharing::Private) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        serial_println!("# {n} one-page mappings of alternating protection, then {err:?}");
        assert_eq!(err, MmError::NoMemory);
        assert_eq!(n as usize, vm::vma::MAX_MAP_COUNT);
        assert_eq!(a.vmas().len(), vm::vma::MAX_MAP_COUNT);
        // Make the first VMA 3 pages long (unmap its neighbours: -2 VMAs, then map 2
        // pages of the same protection: merges, +0), so a hole can be punched in it.
        a.munmap(VirtAddr::new(start + PAGE), 2 * PAGE).unwrap();
        a.map_anonymous(
            Placement::FixedNoReplace(VirtAddr::new(start + PAGE)),
            2 * PAGE,
            RW,
            Sharing::Private,
        )
        .unwrap();
        let count = a.vmas().len();
        assert_eq!(count, vm::vma::MAX_MAP_COUNT - 2);
        // Fill up again, above everything.
        let top = start + n * PAGE;
        for i in 0..2u64 {
            let prot = if (n + i).is_multiple_of(2) {
                RW
            } else {
                Prot::READ
            };
            let at = VirtAddr::new(top + i * PAGE);
            a.map_anonymous(Placement::FixedNoReplace(at), PAGE, prot, Sharing::Private)
                .unwrap();
        }
        assert_eq!(a.vmas().len(), vm::vma::MAX_MAP_COUNT);
        let punch = a.munmap(VirtAddr::new(start + PAGE), PAGE);
        serial_println!("# punching a hole in a 3-page VMA at the limit: {punch:?}");
        assert_eq!(punch, Err(MmError::NoMemory));
        assert_eq!(
            a.vmas()[0].end,
            VirtAddr::new(start + 3 * PAGE),
            "the failed munmap left the VMA split"
        );
        assert_eq!(a.vmas().len(), vm::vma::MAX_MAP_COUNT);
        let tail = a.munmap(VirtAddr::new(start + 2 * PAGE), PAGE);
        serial_println!("# unmapping the tail of that VMA at the limit: {tail:?}");
        assert_eq!(tail, Ok(()));
        check(&a);
    }
    assert_eq!(free_frames(), base, "frames leaked");
}

/// The hardware's accessed and dirty bits survive every rewrite of an entry: mprotect
/// to read-only and back, and the copy-on-write reuse after fork (Linux `pte_modify`
/// keeps them). They are the only record that a page was used or written.
#[test_case]
fn accessed_and_dirty_bits_survive_rewrites() {
    use x86_64::structures::paging::PageTableFlags as F;
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let start = a
            .map_anonymous(Placement::Anywhere, PAGE, RW, Sharing::Private)
            .unwrap();
        with_active(&a, || {
            // SAFETY: inside a RW anonymous VMA of the active address space.
            unsafe { start.as_mut_ptr::<u64>().write_volatile(7) };
        });
        let bits = |a: &AddressSpace| match a.query(start) {
            Pte::Present { flags, .. } => flags & (F::ACCESSED | F::DIRTY),
            other => panic!("expected a present entry, got {other:?}"),
        };
        assert_eq!(
            bits(&a),
            F::ACCESSED | F::DIRTY,
            "the CPU's write set A and D"
        );
        a.mprotect(start, PAGE, Prot::READ).unwrap();
        serial_println!("# after mprotect(READ): {:?}", bits(&a));
        assert_eq!(
            bits(&a),
            F::ACCESSED | F::DIRTY,
            "mprotect(READ) dropped A/D"
        );
        a.mprotect(start, PAGE, RW).unwrap();
        assert_eq!(bits(&a), F::ACCESSED | F::DIRTY, "mprotect(RW) dropped A/D");
        // fork, the child goes away, the parent's write reuses the frame (CowReuse).
        drop(a.fork().unwrap());
        assert_eq!(
            a.handle_fault(start, Access::Write, Privilege::User),
            FaultOutcome::Fixed(Fix::CowReuse)
        );
        serial_println!("# after the copy-on-write reuse: {:?}", bits(&a));
        assert_eq!(
            bits(&a),
            F::ACCESSED | F::DIRTY,
            "the COW reuse dropped A/D"
        );
        check(&a);
    }
    assert_eq!(free_frames(), base, "frames leaked");
}
