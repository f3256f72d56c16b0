//! The page-table cursor: map, query, unmap, protect, replace, next_mapped, with table
//! boundaries, empty ranges and bad arguments; and proof with the real MMU that a
//! mapping is what the CPU uses.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use kernel::mm::frame::{free_frames, Frame};
use kernel::mm::gather::{Gather, NoDevices};
use kernel::mm::page_table::{PageTable, USER_END};
use kernel::mm::pte::Pte;
use kernel::mm::MmError;
use kernel::serial_println;
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::VirtAddr;

kernel::test_kernel!();

const RW: F = F::PRESENT
    .union(F::WRITABLE)
    .union(F::USER_ACCESSIBLE)
    .union(F::NO_EXECUTE);

fn va(x: u64) -> VirtAddr {
    VirtAddr::new(x)
}

#[test_case]
fn map_query_unmap_one_page() {
    let base = free_frames();
    {
        let mut pt = PageTable::new().unwrap();
        let page = va(0x40_0000);
        let mut c = pt.cursor(page, page + 4096u64).unwrap();
        assert_eq!(c.query(page), Ok(Pte::None));
        let frame = Frame::alloc_zeroed().unwrap();
        let phys = frame.phys_frame();
        c.map(page, frame, RW).unwrap();
        match c.query(page).unwrap() {
            Pte::Present { frame, flags } => {
                assert_eq!(frame, phys);
                assert!(flags.contains(RW));
            }
            other => panic!("expected present, got {other:?}"),
        }
        let meta = kernel::mm::frame::meta(phys);
        assert_eq!(
            (meta.refcount(), meta.mapcount()),
            (1, 1),
            "entry owns one ref + one map"
        );
        let mut gather = Gather::begin(&NoDevices, page, page + 4096u64);
        let unmapped = c.unmap(page, &mut gather).unwrap().expect("was mapped");
        assert_eq!(unmapped.frame(), Some(phys));
        assert_eq!(meta.mapcount(), 0);
        assert_eq!(
            meta.refcount(),
            1,
            "the gather keeps the frame until it finishes"
        );
        assert_eq!(c.query(page), Ok(Pte::None));
        assert!(
            c.unmap(page, &mut gather).unwrap().is_none(),
            "second unmap finds nothing"
        );
        drop(c);
        gather.finish();
        assert_eq!(meta.refcount(), 0, "finish freed the frame");
        assert_eq!(pt.table_pages(), 1, "empty tables were not freed");
    }
    assert_eq!(free_frames(), base, "frames leaked");
}

/// A range crossing a 2 MiB (L1), a 1 GiB (L2) and a 512 GiB (L3) boundary needs new
/// tables at every level; unmapping everything frees them all again.
#[test_case]
fn ranges_crossing_table_boundaries() {
    let base = free_frames();
    {
        let mut pt = PageTable::new().unwrap();
        let boundary = 512u64 << 30; // 512 GiB: L4 index 0 -> 1
        let start = va(boundary - 4 * 4096);
        let end = va(boundary + 4 * 4096);
        let mut c = pt.cursor(start, end).unwrap();
        let mut at = start;
        while at < end {
            c.map(at, Frame::alloc_zeroed().unwrap(), RW).unwrap();
            at += 4096u64;
        }
        drop(c);
        // root + (L3, L2, L1) on each side of the boundary
        assert_eq!(pt.table_pages(), 7, "tables on both sides of the boundary");
        let mut c = pt.cursor(start, end).unwrap();
        let mut gather = Gather::begin(&NoDevices, start, end);
        assert_eq!(c.unmap_all(&mut gather), 8);
        drop(c);
        gather.finish();
        assert_eq!(pt.table_pages(), 1);
    }
    assert_eq!(free_frames(), base);
}

#[test_case]
fn empty_and_bad_ranges() {
    let base = free_frames();
    check_bad_ranges();
    assert_eq!(free_frames(), base);
}

fn check_bad_ranges() {
    let mut pt = PageTable::new().unwrap();
    let a = va(0x1000_0000);
    let c = pt.cursor(a, a).unwrap();
    assert_eq!(
        c.query(a),
        Err(MmError::InvalidRange),
        "0-length cursor covers nothing"
    );
    assert!(c.next_mapped(a).is_none());
    drop(c);
    assert_eq!(
        pt.cursor(va(0x1001), va(0x3000)).err(),
        Some(MmError::Unaligned)
    );
    assert_eq!(
        pt.cursor(va(0x1000), va(0x2001)).err(),
        Some(MmError::Unaligned)
    );
    assert_eq!(
        pt.cursor(va(0x3000), va(0x1000)).err(),
        Some(MmError::InvalidRange)
    );
    assert_eq!(
        pt.cursor(va(USER_END - 4096), va(0xffff_8000_0000_1000))
            .err(),
        Some(MmError::InvalidRange),
        "the upper half is not a cursor's business"
    );
    let mut c = pt.cursor(va(0x1000), va(0x3000)).unwrap();
    assert_eq!(c.query(va(0x1800)), Err(MmError::Unaligned));
    assert_eq!(
        c.query(va(0x3000)),
        Err(MmError::InvalidRange),
        "end is exclusive"
    );
    let f = Frame::alloc().unwrap();
    assert_eq!(c.map(va(0x4000), f, RW), Err(MmError::InvalidRange));
}

#[test_case]
fn double_map_is_refused_and_frees_the_frame() {
    let base = free_frames();
    {
        let mut pt = PageTable::new().unwrap();
        let p = va(0x2000);
        let mut c = pt.cursor(p, p + 4096u64).unwrap();
        c.map(p, Frame::alloc().unwrap(), RW).unwrap();
        assert_eq!(
            c.map(p, Frame::alloc().unwrap(), RW),
            Err(MmError::AlreadyMapped)
        );
    }
    assert_eq!(
        free_frames(),
        base,
        "dropping the page table released everything"
    );
}

#[test_case]
fn protect_replace_exchange() {
    let base = free_frames();
    {
        let mut pt = PageTable::new().unwrap();
        let p = va(0x5000);
        let mut c = pt.cursor(p, p + 4096u64).unwrap();
        let f = Frame::alloc_zeroed().unwrap();
        let phys = f.phys_frame();
        c.map(p, f, RW).unwrap();
        let ro = RW - F::WRITABLE;
        c.protect(p, ro).unwrap();
        assert_eq!(
            c.query(p),
            Ok(Pte::Present {
                frame: phys,
                flags: ro
            })
        );
        // present -> device-exclusive -> present keeps refcount and mapcount
        c.replace(p, Pte::DeviceExclusive { frame: phys }).unwrap();
        assert_eq!(c.query(p), Ok(Pte::DeviceExclusive { frame: phys }));
        let m = kernel::mm::frame::meta(phys);
        assert_eq!((m.refcount(), m.mapcount()), (1, 1));
        c.replace(
            p,
            Pte::Present {
                frame: phys,
                flags: RW,
            },
        )
        .unwrap();
        // exchange: the entry moves to a new frame; the old one comes back unmapped
        let new = Frame::alloc_zeroed().unwrap();
        let new_phys = new.phys_frame();
        let mut gather = Gather::begin(&NoDevices, p, p + 4096u64);
        let old = c.exchange(p, new, RW, &mut gather).unwrap();
        assert_eq!(old.frame(), Some(phys));
        assert_eq!(m.mapcount(), 0);
        assert_eq!(c.query(p).unwrap().frame(), Some(new_phys));
        gather.finish();
    }
    assert_eq!(free_frames(), base);
}

#[test_case]
fn next_mapped_skips_holes() {
    let base = free_frames();
    find_spots();
    assert_eq!(free_frames(), base);
}

fn find_spots() {
    let mut pt = PageTable::new().unwrap();
    let start = va(0);
    let end = va(1 << 40);
    let mut c = pt.cursor(start, end).unwrap();
    let spots = [0x7000u64, 0x20_0000, 0x4000_0000, 0x80_0000_0000];
    for s in spots {
        c.map(va(s), Frame::alloc().unwrap(), RW).unwrap();
    }
    let mut found = alloc::vec::Vec::new();
    let mut from = start;
    while let Some((at, _)) = c.next_mapped(from) {
        found.push(at.as_u64());
        from = at + 4096u64;
    }
    assert_eq!(
        found, spots,
        "next_mapped must find exactly the mapped pages, in order"
    );
}

/// The real MMU: activate the table, write through the virtual address, read the frame
/// through the physical-memory window.
#[test_case]
fn the_cpu_uses_the_mapping() {
    let base = free_frames();
    {
        let mut pt = PageTable::new().unwrap();
        let p = va(0x1234_5000);
        let frame = Frame::alloc_zeroed().unwrap();
        let window = frame.as_mut_ptr() as *const u64;
        pt.cursor(p, p + 4096u64)
            .unwrap()
            .map(p, frame, RW)
            .unwrap();
        kernel::vm::switch_to(None); // make sure the cursor state is not relied upon
                                     // SAFETY: the table maps the kernel's upper half, so code and stack stay valid;
                                     // we switch back before it is dropped.
        unsafe { pt.activate() };
        // SAFETY: p is mapped writable to a frame we own.
        unsafe {
            (p.as_mut_ptr::<u64>())
                .add(3)
                .write_volatile(0x1122_3344_5566_7788)
        };
        kernel::vm::switch_to(None);
        // SAFETY: the frame is still mapped (and owned) by pt; the window maps it.
        let seen = unsafe { window.add(3).read_volatile() };
        serial_println!(
            "(wrote through {:#x}, read {seen:#x} through the window)",
            p.as_u64()
        );
        assert_eq!(seen, 0x1122_3344_5566_7788);
    }
    assert_eq!(free_frames(), base);
}
