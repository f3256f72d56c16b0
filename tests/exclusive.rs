//! Device-exclusive entries inside the kernel: the PTE kinds after each step, refcount
//! and mapcount, notifier events and owner filtering, and the invariants. The scenario
//! ids (S-R4, S-F1, ...) and invariants (I1-I6) are those of docs chapter 9
//! (docs/09-device-exclusive-spec.md), whose table lists these tests. The device itself
//! is played by a test notifier that records events.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use kernel::mm::frame::{self, free_frames, FrameFlags};
use kernel::mm::pte::Pte;
use kernel::serial_println;
use kernel::vm::{
    Access, AddressSpace, ExclusiveError, FaultOutcome, Fix, MmuNotifier, NotifyEvent, Owner,
    Placement, Privilege, Prot, Sharing,
};
use spin::Mutex;
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::VirtAddr;

kernel::test_kernel!();

const RW: Prot = Prot::READ.union(Prot::WRITE);
const PAGE: u64 = 4096;
const OWNER_A: Owner = 0xa;
const OWNER_B: Owner = 0xb;

/// A pretend device: records every invalidation it was told about and, like a real
/// one, ignores those caused by its own requests (owner filtering).
struct Recorder {
    me: Owner,
    seen: Mutex<Vec<(u64, NotifyEvent, Option<Owner>)>>,
}

impl MmuNotifier for Recorder {
    fn invalidate_range_start(
        &self,
        start: VirtAddr,
        _end: VirtAddr,
        event: NotifyEvent,
        owner: Option<Owner>,
    ) {
        if owner == Some(self.me) {
            return;
        }
        self.seen.lock().push((start.as_u64(), event, owner));
    }
}

fn recorder(me: Owner) -> Arc<Recorder> {
    Arc::new(Recorder {
        me,
        seen: Mutex::new(Vec::new()),
    })
}

fn events(r: &Recorder) -> Vec<NotifyEvent> {
    r.seen.lock().iter().map(|e| e.1).collect()
}

fn census(a: &AddressSpace) -> kernel::vm::Census {
    let c = a
        .check_invariants()
        .unwrap_or_else(|v| panic!("invariant broken: {v}"));
    serial_println!(
        "(invariants hold: {} present, {} exclusive)",
        c.present,
        c.exclusive
    );
    c
}

/// S-R4 + the basic cycle: a never-touched page becomes a zero-filled exclusive entry;
/// a CPU read fault restores it (device told `Clear`), writable since the frame is
/// anon-exclusive.
#[test_case]
fn exclusive_then_cpu_fault_restores() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let dev = recorder(OWNER_A);
        a.subscribe(dev.clone()).unwrap();
        let p = a
            .map_anonymous(Placement::Anywhere, PAGE, RW, Sharing::Private)
            .unwrap();
        let guard = a.make_device_exclusive(p, OWNER_A).unwrap();
        let phys = guard.frame().phys_frame();
        assert!(
            guard.frame().meta().is_locked(),
            "returned locked for the driver"
        );
        drop(guard);
        assert_eq!(a.query(p), Pte::DeviceExclusive { frame: phys });
        let m = frame::meta(phys);
        assert_eq!(
            (m.refcount(), m.mapcount()),
            (1, 1),
            "entry keeps its ref and mapping"
        );
        assert!(!m.is_locked());
        assert!(
            events(&dev).is_empty(),
            "the requester ignores its own Exclusive event"
        );
        assert_eq!(census(&a).exclusive, 1);

        assert_eq!(
            a.handle_fault(p, Access::Read, Privilege::User),
            FaultOutcome::Fixed(Fix::ExclusiveRestored)
        );
        match a.query(p) {
            Pte::Present { frame, flags } => {
                assert_eq!(frame, phys, "same frame comes back");
                assert!(
                    flags.contains(F::WRITABLE),
                    "anon-exclusive frame restores writable"
                );
            }
            other => panic!("expected present, got {other:?}"),
        }
        assert_eq!(
            events(&dev),
            [NotifyEvent::Clear],
            "the restore revoked the device"
        );
        let mut b = [1u8; 8];
        a.copy_from_user(p, &mut b).unwrap();
        assert_eq!(b, [0; 8], "zero-filled");
    }
    assert_eq!(free_frames(), base);
}

/// S-K1 in the kernel: copy_from_user (what write(1, buf, n) does) restores the entry.
#[test_case]
fn kernel_access_restores() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let dev = recorder(OWNER_A);
        a.subscribe(dev.clone()).unwrap();
        let p = a
            .map_anonymous(Placement::Anywhere, PAGE, RW, Sharing::Private)
            .unwrap();
        a.copy_to_user(p, b"device!").unwrap();
        drop(a.make_device_exclusive(p, OWNER_A).unwrap());
        let mut b = [0u8; 7];
        a.copy_from_user(p, &mut b).unwrap();
        assert_eq!(&b, b"device!");
        assert!(matches!(a.query(p), Pte::Present { .. }));
        assert_eq!(events(&dev), [NotifyEvent::Clear]);
    }
    assert_eq!(free_frames(), base);
}

/// S-R3: refusals for read-only, shared and unmapped memory.
#[test_case]
fn refusals() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let ro = a
            .map_anonymous(Placement::Anywhere, PAGE, Prot::READ, Sharing::Private)
            .unwrap();
        let shared = a
            .map_anonymous(Placement::Anywhere, PAGE, RW, Sharing::Shared)
            .unwrap();
        assert_eq!(
            a.make_device_exclusive(ro, OWNER_A).err(),
            Some(ExclusiveError::ReadOnly)
        );
        assert_eq!(
            a.make_device_exclusive(shared, OWNER_A).err(),
            Some(ExclusiveError::NotAnonymousPrivate)
        );
        assert_eq!(
            a.make_device_exclusive(VirtAddr::new(0x10_0000), OWNER_A)
                .err(),
            Some(ExclusiveError::BadAddress)
        );
        assert_eq!(census(&a).exclusive, 0);
    }
    assert_eq!(free_frames(), base);
}

/// S-F1: fork while exclusive: the parent's entry is restored and both get read-only
/// COW entries, refcount/mapcount 2/2; the child never holds an exclusive entry (I2).
#[test_case]
fn fork_while_exclusive() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let dev = recorder(OWNER_A);
        a.subscribe(dev.clone()).unwrap();
        let p = a
            .map_anonymous(Placement::Anywhere, 2 * PAGE, RW, Sharing::Private)
            .unwrap();
        a.copy_to_user(p, &[5; 16]).unwrap();
        let phys = a
            .make_device_exclusive(p, OWNER_A)
            .unwrap()
            .frame()
            .phys_frame();
        let child = a.fork().unwrap();
        for (who, s) in [("parent", &a), ("child", &child)] {
            match s.query(p) {
                Pte::Present { frame, flags } => {
                    assert_eq!(frame, phys, "{who} maps the shared frame");
                    assert!(!flags.contains(F::WRITABLE), "{who} is read-only (COW)");
                }
                other => panic!("{who}: expected present, got {other:?}"),
            }
        }
        let m = frame::meta(phys);
        assert_eq!((m.refcount(), m.mapcount()), (2, 2));
        assert!(!m.flags().contains(FrameFlags::ANON_EXCLUSIVE));
        assert_eq!(
            census(&child).exclusive,
            0,
            "I2: no exclusive entry in the child"
        );
        assert!(
            events(&dev).contains(&NotifyEvent::ProtectionPage),
            "device told about fork"
        );
        // Each side writes independently.
        child.copy_to_user(p, &[6; 16]).unwrap();
        let mut b = [0u8; 16];
        a.copy_from_user(p, &mut b).unwrap();
        assert_eq!(b, [5; 16]);
        census(&a);
    }
    assert_eq!(free_frames(), base);
}

/// S-R1: a second requester takes the page: the first is revoked (its recorder sees
/// `Clear`), the entry is exclusive again, and nothing loops.
#[test_case]
fn second_requester_takes_over() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let dev_a = recorder(OWNER_A);
        let dev_b = recorder(OWNER_B);
        a.subscribe(dev_a.clone()).unwrap();
        a.subscribe(dev_b.clone()).unwrap();
        let p = a
            .map_anonymous(Placement::Anywhere, PAGE, RW, Sharing::Private)
            .unwrap();
        drop(a.make_device_exclusive(p, OWNER_A).unwrap());
        assert_eq!(
            events(&dev_b),
            [NotifyEvent::Exclusive],
            "B hears about A's request"
        );
        drop(a.make_device_exclusive(p, OWNER_B).unwrap());
        assert!(events(&dev_a).contains(&NotifyEvent::Clear), "A revoked");
        assert!(matches!(a.query(p), Pte::DeviceExclusive { .. }));
        assert_eq!(census(&a).exclusive, 1);
    }
    assert_eq!(free_frames(), base);
}

/// S-M1 + S-EX2 internals: mprotect leaves the exclusive entry; after RO -> RW a write
/// restores it writable (anon-exclusive); under RO a write is a bad access and a read
/// restores read-only.
#[test_case]
fn mprotect_and_exclusive() {
    let base = free_frames();
    {
        let a = AddressSpace::new().unwrap();
        let dev = recorder(OWNER_A);
        a.subscribe(dev.clone()).unwrap();
        let p = a
            .map_anonymous(Placement::Anywhere, 2 * PAGE, RW, Sharing::Private)
            .unwrap();
        drop(a.make_device_exclusive(p, OWNER_A).unwrap());
        drop(a.make_device_exclusive(p + PAGE, OWNER_A).unwrap());
        a.mprotect(p, 2 * PAGE, Prot::READ).unwrap();
        assert!(
            matches!(a.query(p), Pte::DeviceExclusive { .. }),
            "mprotect leaves it"
        );
        assert!(events(&dev).contains(&NotifyEvent::ProtectionVma));
        assert!(matches!(
            a.handle_fault(p, Access::Write, Privilege::User),
            FaultOutcome::BadAccess(_)
        ));
        assert_eq!(
            a.handle_fault(p, Access::Read, Privilege::User),
            FaultOutcome::Fixed(Fix::ExclusiveRestored)
        );
        match a.query(p) {
            Pte::Present { flags, .. } => {
                assert!(!flags.contains(F::WRITABLE), "RO VMA restores RO")
            }
            other => panic!("{other:?}"),
        }
        a.mprotect(p, 2 * PAGE, RW).unwrap();
        assert_eq!(
            a.handle_fault(p + PAGE, Access::Write, Privilege::User),
            FaultOutcome::Fixed(Fix::ExclusiveRestored)
        );
        match a.query(p + PAGE) {
            Pte::Present { flags, .. } => {
                assert!(flags.contains(F::WRITABLE), "S-M1: writable again")
            }
            other => panic!("{other:?}"),
        }
        census(&a);
    }
    assert_eq!(free_frames(), base);
}

/// S-Z1 / S-Z2: munmap, MADV_DONTNEED and dropping the address space with exclusive
/// entries tell the device and free every frame.
#[test_case]
fn zap_unmap_and_exit_with_exclusive_pages() {
    let base = free_frames();
    let dev = recorder(OWNER_A);
    {
        let a = AddressSpace::new().unwrap();
        a.subscribe(dev.clone()).unwrap();
        let p = a
            .map_anonymous(Placement::Anywhere, 8 * PAGE, RW, Sharing::Private)
            .unwrap();
        for i in 0..8 {
            drop(a.make_device_exclusive(p + i * PAGE, OWNER_A).unwrap());
        }
        assert_eq!(census(&a).exclusive, 8);
        let before = free_frames();
        a.zap(p, 2 * PAGE).unwrap();
        assert_eq!(free_frames(), before + 2, "MADV_DONTNEED freed two frames");
        a.munmap(p + 2 * PAGE, 2 * PAGE).unwrap();
        assert_eq!(free_frames(), before + 4, "munmap freed two more");
        assert_eq!(census(&a).exclusive, 4);
    }
    let seen = events(&dev);
    assert!(seen.contains(&NotifyEvent::Clear) && seen.contains(&NotifyEvent::Unmap));
    assert_eq!(
        seen.last(),
        Some(&NotifyEvent::Release),
        "exit tells the device last"
    );
    assert_eq!(free_frames(), base, "every frame back");
}
