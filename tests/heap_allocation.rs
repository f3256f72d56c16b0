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

/// The heap grows on demand: small allocations adding up to more than the whole initial
/// heap succeed (frames are mapped at the heap's top), their contents are what was
/// written, and the heap's size went up.
#[test_case]
fn heap_grows_past_its_initial_size() {
    let before = heap::size();
    let chunks = fill_heap(HEAP_SIZE as usize + 4 * 1024 * 1024, 0xa5);
    assert!(chunks
        .iter()
        .all(|c| c.iter().step_by(4096).all(|&b| b == 0xa5)));
    let after = heap::size();
    kernel::serial_println!(
        "(heap {} KiB -> {} KiB for {} chunks of {} KiB)",
        before / 1024,
        after / 1024,
        chunks.len(),
        CHUNK / 1024
    );
    assert!(after > before, "the heap did not grow");
}

/// Small enough for the heap (below `heap::LARGE`).
const CHUNK: usize = 32 * 1024;

/// `total` bytes in heap-sized chunks filled with `byte`.
fn fill_heap(total: usize, byte: u8) -> Vec<Box<[u8]>> {
    let mut chunks = Vec::new();
    chunks
        .try_reserve(total / CHUNK)
        .expect("room for the list");
    for _ in 0..total / CHUNK {
        let mut c = Vec::new();
        c.try_reserve_exact(CHUNK)
            .expect("a chunk did not fit: the heap did not grow");
        c.resize(CHUNK, byte);
        chunks.push(c.into_boxed_slice());
    }
    chunks
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
    // More than the heap holds free: it must grow.
    let chunks = fill_heap(64 * 1024 * 1024, 1);
    drop(chunks);
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

/// A large allocation (at least `heap::LARGE`) gets pages of its own and gives them back
/// when freed: free memory returns exactly, and the heap does not grow for it.
#[test_case]
fn large_allocations_give_their_frames_back() {
    let (free0, size0) = (kernel::mm::frame::free_frames(), heap::size());
    for round in 0..3 {
        let n = 48 * 1024 * 1024; // three times the initial heap
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(n).expect("a 48 MiB allocation failed");
        v.resize(n, round as u8 + 1);
        assert!(v.iter().step_by(4096).all(|&b| b == round as u8 + 1));
        let during = kernel::mm::frame::free_frames();
        drop(v);
        serial_println!(
            "(round {round}: 48 MiB took {} frames; after free: {} frames free, as before: {})",
            free0 - during,
            kernel::mm::frame::free_frames(),
            free0
        );
        assert!(free0 - during >= n / 4096, "the pages were not mapped");
    }
    assert_eq!(
        kernel::mm::frame::free_frames(),
        free0,
        "frames did not come back"
    );
    assert_eq!(heap::size(), size0, "the heap grew for a large allocation");
}
