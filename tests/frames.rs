//! The physical frame allocator: O(1) alloc/free, zeroing, reference counting, the
//! free-frame counter, exhaustion as an ordinary error.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use kernel::mm::frame::{free_frames, total_frames, Frame};
use kernel::mm::{gfp, MmError};
use kernel::serial_println;

kernel::test_kernel!();

#[test_case]
fn zeroed_frames_are_zero_and_distinct() {
    let base = free_frames();
    {
        let a = Frame::alloc_zeroed().expect("a frame");
        let b = Frame::alloc_zeroed().expect("a frame");
        assert_ne!(a.start_address(), b.start_address());
        let bytes = contents(&a);
        assert!(
            bytes.iter().all(|&x| x == 0),
            "alloc_zeroed gave a dirty frame"
        );
        assert_eq!(free_frames(), base - 2);
    }
    assert_eq!(free_frames(), base, "frames not returned on drop");
}

/// A frame's contents, read through the physical-memory window.
fn contents(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let ptr = frame.as_mut_ptr() as *const u8;
    for i in 0..4096 {
        // SAFETY: `frame` is allocated and mapped in the physical-memory window for 4 KiB.
        out.push(unsafe { ptr.add(i).read_volatile() });
    }
    out
}

#[test_case]
fn clone_shares_and_last_drop_frees() {
    let base = free_frames();
    let a = Frame::alloc().expect("a frame");
    let b = a.clone();
    assert_eq!(a.meta().refcount(), 2);
    assert_eq!(a.start_address(), b.start_address());
    drop(a);
    assert_eq!(b.meta().refcount(), 1);
    assert_eq!(
        free_frames(),
        base - 1,
        "frame freed while still referenced"
    );
    drop(b);
    assert_eq!(free_frames(), base);
}

#[test_case]
fn copy_from_copies_contents() {
    let base = free_frames();
    {
        let src = Frame::alloc_zeroed().unwrap();
        // SAFETY: the frame is ours and 4 KiB long in the window.
        unsafe { src.as_mut_ptr().add(100).write_volatile(0xab) };
        let dst = Frame::alloc().unwrap();
        dst.copy_from(&src);
        assert_eq!(contents(&dst)[100], 0xab);
    }
    assert_eq!(free_frames(), base);
}

/// Hundreds of thousands of alloc/free pairs, then batches: the count must come back,
/// and with a free list the freed frame is the next one handed out (O(1) reuse).
#[test_case]
fn stress_alloc_free() {
    let base = free_frames();
    let first = Frame::alloc().unwrap().start_address();
    for i in 0..300_000 {
        let f = Frame::alloc().expect("allocation failed during stress");
        assert_eq!(
            f.start_address(),
            first,
            "iteration {i}: free list did not reuse the frame"
        );
    }
    let mut batch = Vec::new();
    for round in 0..20 {
        batch.clear();
        for _ in 0..5_000 {
            batch.push(Frame::alloc().expect("allocation failed in batch"));
        }
        assert_eq!(free_frames(), base - 5_000, "round {round}");
    }
    drop(batch);
    serial_println!("(300000 pairs + 20 x 5000 batches)");
    assert_eq!(free_frames(), base);
}

/// Take every free frame: the next allocation is `NoMemory`, not a panic, and all come
/// back afterwards.
#[test_case]
fn exhaustion_is_an_error_and_keeps_the_reserve() {
    // The list first: at this size it takes frames of its own (a large allocation).
    let mut all = Vec::with_capacity(free_frames() + 16);
    let base = free_frames();
    let drain = |all: &mut Vec<Frame>| loop {
        match Frame::alloc() {
            Ok(f) => all.push(f),
            Err(MmError::NoMemory) => break,
            Err(e) => panic!("unexpected {e:?}"),
        }
    };
    drain(&mut all);
    serial_println!(
        "(ordinary allocations: {} of {} frames before NoMemory, {} left as the reserve)",
        all.len(),
        total_frames(),
        free_frames()
    );
    assert_eq!(all.len(), base - gfp::RESERVE_FRAMES);
    assert_eq!(free_frames(), gfp::RESERVE_FRAMES);
    // The reserve is there for allocations that may use it, down to the last frame.
    gfp::with_reserve(|| drain(&mut all));
    serial_println!("(with the reserve: {} frames, then NoMemory)", all.len());
    assert_eq!(all.len(), base);
    assert_eq!(free_frames(), 0);
    assert_eq!(Frame::alloc_zeroed().unwrap_err(), MmError::NoMemory);
    all.clear(); // the frames go; the list's own pages stay until it does
    assert_eq!(free_frames(), base);
}
