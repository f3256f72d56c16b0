//! `make bench`: micro-benchmarks of the memory-management fast paths, measured inside
//! the kernel with the time-stamp counter.
//!
//! This is a benchmark, not a test: it asserts nothing about speed. It boots like the
//! normal kernel (`kernel::init`), measures, prints one `key=value` line per figure and
//! unit, and leaves QEMU with `ExitCode::Success` (status 33, which `run-qemu.sh` turns
//! into 0). The only thing that makes it fail is a leak: `free_frames_after` must equal
//! `free_frames_before`, otherwise it exits with `ExitCode::Failed`.
//!
//! # How a figure is measured
//!
//! Every figure is timed with `rdtsc` ([`tsc::read`]) around a loop of many operations,
//! with setup and teardown (creating page tables and address spaces, freeing their
//! frames) outside the timed region. Each figure runs once untimed as a warm-up (under
//! QEMU TCG the first run of any code also pays for translating it), then [`REPS`] timed
//! repetitions; the reported value is the median repetition divided by the number of
//! operations in it. Cycles are TSC cycles; nanoseconds come from the TSC frequency that
//! `kernel::init` calibrated against the PIT ([`tsc::cycles_to_ns`]). Interrupts stay
//! enabled, as in normal operation: the 1 kHz timer interrupt adds a little to every
//! figure, and the median keeps an unlucky repetition out.
//!
//! # The figures
//!
//! - `frame_alloc_free`: [`Frame::alloc`] then drop of the handle, per pair. The free
//!   list is LIFO, so the same frame comes back every time: this is the allocator's
//!   lock + list pop/push + metadata reset, with the frame's metadata hot in the cache.
//! - `frame_alloc_zeroed_free`: the same with [`Frame::alloc_zeroed`], i.e. plus filling
//!   4 KiB with zeroes through the physical-memory window.
//! - `pt_map_per_page`, `pt_unmap_per_page`, `pt_map_unmap_per_page`: a fresh
//!   [`PageTable`] (not active, so no TLB flushes) and one
//!   [`Cursor`](kernel::mm::page_table::Cursor) over a contiguous,
//!   2 MiB-aligned range of [`MAP_PAGES`] pages; `Cursor::map` of every page, then
//!   `Cursor::unmap` of every page, each loop timed separately; `pt_map_unmap_per_page`
//!   is the median of the per-repetition sums. The frames are allocated before the
//!   timed loops and the ones `unmap` hands back are kept for the next repetition, so
//!   frame allocation is *not* in these figures; allocating and freeing the
//!   intermediate tables (one level-1 table per 512 pages, plus one level-2 and one
//!   level-3 table) is, as is `unmap`'s pruning of empty tables.
//! - `fault_demand_zero_per_page`: a fresh [`AddressSpace`] with one anonymous private
//!   read-write mapping of [`FAULT_PAGES`] pages, made current with [`vm::switch_to`];
//!   a volatile write to each page. Each write takes a real #PF: the CPU's exception
//!   entry, the IDT handler, `vm::page_fault`, `AddressSpace::handle_fault` (VMA lookup,
//!   `Frame::alloc_zeroed`, `Cursor::map`), `iretq` and the retried write.
//! - `fault_handle_direct_per_page`: the same fix-ups by calling
//!   `AddressSpace::handle_fault(va, Access::Write, Privilege::User)` directly on an
//!   address space that is not current: no exception, no retried access.
//! - `fault_exception_overhead_per_page`: the difference of the two medians above, i.e.
//!   what the exception round trip (and the page walks of the faulting and retried
//!   access) adds to the work of the fault handler itself.
//!
//! Under QEMU TCG the CPU is emulated: absolute numbers are much slower than on real
//! hardware, and the ratios between figures differ too (an exception is relatively more
//! expensive to emulate than a loop of ordinary instructions). Compare runs of this
//! benchmark with each other, not with Linux on bare metal.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::BootInfo;
use core::hint::black_box;
use kernel::arch::x86_64::qemu::{self, ExitCode};
use kernel::arch::x86_64::tsc;
use kernel::mm::frame::{self, Frame};
use kernel::mm::gather::{Gather, NoDevices};
use kernel::mm::page_table::PageTable;
use kernel::mm::PAGE_SIZE;
use kernel::serial_println;
use kernel::vm::{
    self, Access, AddressSpace, FaultOutcome, Fix, Placement, Privilege, Prot, Sharing,
};
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

/// Timed repetitions per figure (after one untimed warm-up); the median is reported.
const REPS: usize = 5;
/// Alloc+free pairs per repetition.
const FRAME_ITERS: u64 = 200_000;
/// Alloc_zeroed+free pairs per repetition (each zeroes 4 KiB, so fewer).
const ZEROED_ITERS: u64 = 50_000;
/// Pages mapped and unmapped per repetition (16 MiB).
const MAP_PAGES: u64 = 4096;
/// Where the page-table benchmark maps: 1 GiB, so the range fills whole level-1 tables.
const MAP_BASE: u64 = 0x4000_0000;
/// Pages faulted in per repetition (16 MiB).
const FAULT_PAGES: u64 = 4096;

bootloader_api::entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    let free_before = frame::free_frames();

    serial_println!(
        "# bench: median of {REPS} timed runs (after 1 warm-up) per figure, per operation; \
         _ns = nanoseconds (TSC calibrated at {} MHz), _cycles = TSC cycles",
        tsc::mhz()
    );
    serial_println!(
        "# bench: runs under QEMU TCG (an emulated CPU): absolute numbers are far slower \
         than real hardware; compare runs with each other"
    );
    serial_println!("tsc_mhz={}", tsc::mhz());
    serial_println!("free_frames_before={free_before}");

    bench_frames();
    bench_map_unmap();
    bench_faults();

    let free_after = frame::free_frames();
    serial_println!("free_frames_after={free_after}");
    if free_after != free_before {
        serial_println!(
            "# bench: FAILED: free frames changed from {free_before} to {free_after} (leak)"
        );
        qemu::exit(ExitCode::Failed);
    }
    serial_println!("# bench: done");
    qemu::exit(ExitCode::Success)
}

/// Run `rep` once untimed, then [`REPS`] times; return the cycles of each timed run.
fn measure(mut rep: impl FnMut() -> u64) -> [u64; REPS] {
    rep();
    let mut samples = [0; REPS];
    for s in &mut samples {
        *s = rep();
    }
    samples
}

/// The median of `samples`.
fn median(mut samples: [u64; REPS]) -> u64 {
    samples.sort_unstable();
    samples[REPS / 2]
}

/// Print `name_ns` and `name_cycles` for `cycles` spent on `ops` operations.
fn report(name: &str, cycles: u64, ops: u64) {
    serial_println!("{name}_ns={}", tsc::cycles_to_ns(cycles) / ops);
    serial_println!("{name}_cycles={}", cycles / ops);
}

/// Frame allocator: alloc + drop, and alloc_zeroed + drop.
fn bench_frames() {
    let plain = measure(|| {
        let start = tsc::read();
        for _ in 0..FRAME_ITERS {
            drop(black_box(Frame::alloc().expect("bench: out of frames")));
        }
        tsc::read() - start
    });
    report("frame_alloc_free", median(plain), FRAME_ITERS);

    let zeroed = measure(|| {
        let start = tsc::read();
        for _ in 0..ZEROED_ITERS {
            drop(black_box(
                Frame::alloc_zeroed().expect("bench: out of frames"),
            ));
        }
        tsc::read() - start
    });
    report("frame_alloc_zeroed_free", median(zeroed), ZEROED_ITERS);
}

/// Page-table cursor: map every page of a range, then unmap every page.
fn bench_map_unmap() {
    // The leaf frames, allocated once; each repetition maps them all and gets them back.
    let mut frames: Vec<Frame> = Vec::with_capacity(MAP_PAGES as usize);
    for _ in 0..MAP_PAGES {
        frames.push(Frame::alloc().expect("bench: out of frames"));
    }
    let flags =
        PageTableFlags::WRITABLE | PageTableFlags::USER_ACCESSIBLE | PageTableFlags::NO_EXECUTE;
    let start = VirtAddr::new(MAP_BASE);
    let end = start + MAP_PAGES * PAGE_SIZE;

    let mut map = [0; REPS];
    let mut unmap = [0; REPS];
    let mut pair = [0; REPS];
    for rep in 0..=REPS {
        let mut table = PageTable::new().expect("bench: PageTable::new");
        let mut cursor = table.cursor(start, end).expect("bench: cursor");

        let t0 = tsc::read();
        for i in 0..MAP_PAGES {
            let frame = frames.pop().expect("bench: a frame per page");
            cursor
                .map(start + i * PAGE_SIZE, frame, flags)
                .expect("bench: map");
        }
        let t1 = tsc::read();
        // A kernel-only table: no device to tell, the gather only batches the frees.
        let mut gather = Gather::begin(&NoDevices, start, end);
        for i in 0..MAP_PAGES {
            cursor
                .unmap(start + i * PAGE_SIZE, &mut gather)
                .expect("bench: unmap")
                .expect("bench: page was mapped");
        }
        let t2 = tsc::read();

        drop(cursor);
        gather.finish();
        // The frames went back to the allocator: take MAP_PAGES again for the next round
        // (capacity is MAP_PAGES: this never reallocates).
        for _ in 0..MAP_PAGES {
            frames.push(Frame::alloc().expect("bench: frames for the next round"));
        }
        assert_eq!(
            table.table_pages(),
            1,
            "bench: unmapping everything left intermediate tables behind"
        );
        drop(table);
        // Repetition 0 is the warm-up.
        if rep > 0 {
            map[rep - 1] = t1 - t0;
            unmap[rep - 1] = t2 - t1;
            pair[rep - 1] = t2 - t0;
        }
    }
    report("pt_map_per_page", median(map), MAP_PAGES);
    report("pt_unmap_per_page", median(unmap), MAP_PAGES);
    report("pt_map_unmap_per_page", median(pair), MAP_PAGES);
    drop(frames);
}

/// A fresh address space with one anonymous read-write mapping of [`FAULT_PAGES`].
fn fresh_address_space() -> (alloc::sync::Arc<AddressSpace>, VirtAddr) {
    let aspace = AddressSpace::new().expect("bench: AddressSpace::new");
    let base = aspace
        .map_anonymous(
            Placement::Anywhere,
            FAULT_PAGES * PAGE_SIZE,
            Prot::READ | Prot::WRITE,
            Sharing::Private,
        )
        .expect("bench: map_anonymous");
    (aspace, base)
}

/// Every page of the mapping must be present now (outside the timed region).
fn check_all_present(aspace: &AddressSpace) {
    let census = aspace
        .check_invariants()
        .unwrap_or_else(|v| panic!("bench: invariant broken: {v}"));
    assert_eq!(
        census.present as u64, FAULT_PAGES,
        "bench: not every page was faulted in"
    );
}

/// Demand-zero faults: through the CPU exception, and by calling the handler directly.
fn bench_faults() {
    let via_exception = measure(|| {
        let (aspace, base) = fresh_address_space();
        vm::switch_to(Some(aspace.clone()));
        let start = tsc::read();
        for i in 0..FAULT_PAGES {
            let p = (base + i * PAGE_SIZE).as_mut_ptr::<u64>();
            // SAFETY: `p` is page-aligned, inside the anonymous read-write VMA of the
            // current address space; the write faults and the handler maps a zeroed
            // frame there, which nothing else uses.
            unsafe { p.write_volatile(i) };
        }
        let cycles = tsc::read() - start;
        vm::switch_to(None);
        check_all_present(&aspace);
        drop(aspace);
        cycles
    });
    let via_exception = median(via_exception);
    report("fault_demand_zero_per_page", via_exception, FAULT_PAGES);

    let direct = measure(|| {
        let (aspace, base) = fresh_address_space();
        let start = tsc::read();
        for i in 0..FAULT_PAGES {
            let outcome = aspace.handle_fault(base + i * PAGE_SIZE, Access::Write, Privilege::User);
            if outcome != FaultOutcome::Fixed(Fix::DemandZero) {
                panic!("bench: handle_fault returned {outcome:?}");
            }
        }
        let cycles = tsc::read() - start;
        check_all_present(&aspace);
        drop(aspace);
        cycles
    });
    let direct = median(direct);
    report("fault_handle_direct_per_page", direct, FAULT_PAGES);
    report(
        "fault_exception_overhead_per_page",
        via_exception.saturating_sub(direct),
        FAULT_PAGES,
    );
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    kernel::testing::panic_report(info);
    qemu::exit(ExitCode::Failed)
}
