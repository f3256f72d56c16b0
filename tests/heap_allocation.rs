//! The kernel heap: Box, Vec, and reuse of freed memory.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::{boxed::Box, vec::Vec};
use kernel::mm::heap::{self, HEAP_INITIAL as HEAP_SIZE};
use kernel::serial_println;

kernel::test_kernel!();

#[test_case]
fn boxed_values() {
    let a = Box::new(41);
    let b = Box::new(1);
    assert_eq!(*a + *b, 42);
}

#[test_case]
fn large_vec() {
    let n = 100_000u64;
    let v: Vec<u64> = (0..n).collect();
    assert_eq!(v.iter().sum::<u64>(), (n - 1) * n / 2);
}

/// Allocates, in total, many times the heap's size: only passes if freed memory is
/// reused.
#[test_case]
fn many_boxes_reuse_memory() {
    let (used_before, _) = heap::usage();
    let rounds = 4 * HEAP_SIZE / 1024; // 4x the heap, in 1 KiB blocks
    for i in 0..rounds {
        let block = Box::new([i as u8; 1024]);
        assert_eq!(core::hint::black_box(&block)[1023], i as u8);
    }
    let (used_after, _) = heap::usage();
    serial_println!(
        "({rounds} x 1 KiB allocated and freed; heap used {used_before} -> {used_after} bytes)"
    );
    assert_eq!(
        used_before, used_after,
        "heap usage did not return to its baseline"
    );
}

/// A long-lived allocation survives while many short-lived ones come and go.
#[test_case]
fn long_lived_survives() {
    let long_lived = Box::new(0xdead_beef_u64);
    for i in 0..(2 * HEAP_SIZE / 4096) {
        let x = Box::new([i; 64]);
        assert_eq!(x[0], i);
    }
    assert_eq!(*long_lived, 0xdead_beef);
}

/// The heap grows on demand: one allocation bigger than the whole initial heap succeeds
/// (frames are mapped at the heap's top), its contents are what was written, and the
/// heap's size went up by at least that much.
#[test_case]
fn heap_grows_past_its_initial_size() {
    let before = heap::size();
    let n = (HEAP_SIZE as usize) + 4 * 1024 * 1024; // 20 MiB > the 16 MiB we start with
    let mut v: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
    v.try_reserve_exact(n)
        .expect("a 20 MiB allocation did not fit: the heap did not grow");
    v.resize(n, 0xa5);
    assert!(v.iter().step_by(4096).all(|&b| b == 0xa5));
    let after = heap::size();
    kernel::serial_println!(
        "(heap {} KiB -> {} KiB for a {} KiB allocation)",
        before / 1024,
        after / 1024,
        n / 1024
    );
    assert!(
        after >= before + n as u64 - HEAP_SIZE,
        "the heap did not grow"
    );
}

/// What the heap took to grow is all counted as the heap's (`heap::frames`, which the
/// power-off leak check subtracts): its pages and the page tables that map them. Before
/// this was counted, a run that grew the heap by ~16 MiB (8 page tables) ended with a
/// false "LEAK: ... 8 frames".
#[test_case]
fn heap_growth_counts_its_page_tables() {
    let (free0, heap0, size0) = (
        kernel::mm::frame::free_frames(),
        heap::frames(),
        heap::size(),
    );
    let n = 64 * 1024 * 1024; // more than the heap holds free: it must grow
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(n)
        .expect("the heap did not grow to 64 MiB");
    drop(v);
    let (free1, heap1, size1) = (
        kernel::mm::frame::free_frames(),
        heap::frames(),
        heap::size(),
    );
    let pages = ((size1 - size0) / 4096) as usize;
    serial_println!(
        "(the heap grew by {pages} pages and holds {} more frames: {} page tables; {} frames left the allocator)",
        heap1 - heap0,
        heap1 - heap0 - pages,
        free0 - free1
    );
    assert!(pages > 0, "the heap did not grow");
    assert_eq!(
        free0 - free1,
        heap1 - heap0,
        "frames left the allocator that the heap does not account for"
    );
    assert!(
        heap1 - heap0 > pages,
        "the page tables mapping the growth are not counted"
    );
}
