//! A teaching kernel for x86-64: real paging, processes and device-exclusive memory.
//!
//! Read it top to bottom in this order (the chapters of `docs/` follow it):
//! 1. [`init`] below: what happens at boot, step by step (docs chapter 1).
//! 2. [`arch::x86_64`]: the CPU tables (GDT, TSS, IDT), the trap stubs and `TrapFrame`,
//!    interrupts and the timer, the context switch.
//! 3. [`mm`]: physical frames, the page-table cursor, `Gather` (chapters 2, 3, 8).
//! 4. [`sync`]: spinlocks, sleeping mutexes, wait queues (chapter 8).
//! 5. [`vm`]: address spaces, the fault path, fork, device-exclusive, notifiers
//!    (chapters 4, 6, 7, and chapter 9, the device-exclusive specification).
//! 6. [`fs`], [`proc`], [`trap`], [`syscall`]: files, processes and signals, the one
//!    trap path, the system calls (chapter 5).
//! 7. [`drivers`]: the console, PCI, the accelerator's driver (chapter 7).
//! 8. [`testing`]: how `cargo test` runs kernels in QEMU.
#![no_std]
#![cfg_attr(test, no_main)]
#![feature(custom_test_frameworks, abi_x86_interrupt, allocator_api)]
#![test_runner(crate::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

pub mod arch;
pub mod drivers;
pub mod error;
pub mod fs;
pub mod klog;
pub mod mm;
pub mod proc;
pub mod sync;
pub mod syscall;
pub mod testing;
pub mod trap;
pub mod vm;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::BootInfo;

/// Where the bootloader puts things: everything it maps for us (the physical-memory
/// window, boot info, kernel stack, ramdisk) goes to the upper half, so the lower half
/// stays empty and can belong to user processes. The kernel image itself is linked at
/// -2 GiB (see x86_64-target.json).
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.dynamic_range_start = Some(0xffff_8000_0000_0000);
    // Root entries 509 and 510 are the kernel-heap and kernel-stack areas
    // (mm::page_table::HEAP_AREA_START, KSTACK_AREA_START): the bootloader stays below.
    config.mappings.dynamic_range_end = Some(0xffff_fe7f_ffff_ffff);
    config.kernel_stack_size = 256 * 1024;
    config
};

/// Bring the machine up, in dependency order: console first (so everything after can
/// report), then CPU tables, then memory, then interrupts. Ends with the boot banner.
pub fn init(boot_info: &'static mut BootInfo) {
    let entry_tsc = arch::x86_64::tsc::read();
    drivers::serial::init();
    klog::init();
    arch::x86_64::gdt::init();
    arch::x86_64::idt::init();
    arch::x86_64::syscall::init();
    arch::x86_64::fpu::init();
    let ramdisk = boot_info
        .ramdisk_addr
        .into_option()
        .map(|addr| (addr, boot_info.ramdisk_len));
    let summary = mm::init(boot_info);
    if let Some((addr, len)) = ramdisk {
        // SAFETY: the bootloader mapped the ramdisk at `addr` for `len` bytes, in memory
        // it reported as used (never handed to our frame allocator), and nothing writes it.
        fs::initramfs::init(unsafe {
            core::slice::from_raw_parts(addr as *const u8, len as usize)
        });
    }
    vm::init();
    trap::init();
    proc::init().expect("init: no heap for the process table");
    // Named files whose owners are not drivers bound later: the console and /proc.
    drivers::console::register().expect("init: cannot register /dev/console");
    proc::procfs::register().expect("init: cannot register /proc files");
    arch::x86_64::interrupts::init();
    arch::x86_64::tsc::calibrate();
    print_banner(&summary, entry_tsc);
}

fn print_banner(summary: &mm::MemorySummary, entry_tsc: u64) {
    let tsc = arch::x86_64::tsc::read();
    let since_reset_ms = arch::x86_64::tsc::cycles_to_ns(tsc) / 1_000_000;
    let kernel_init_ms = arch::x86_64::tsc::cycles_to_ns(tsc - entry_tsc) / 1_000_000;
    serial_println!("");
    serial_println!("==================================================================");
    serial_println!(
        " memkernel {} - a teaching kernel for x86-64",
        env!("CARGO_PKG_VERSION")
    );
    serial_println!("==================================================================");
    summary.print();
    serial_println!(" initramfs: {} KiB", fs::initramfs::size() / 1024);
    serial_println!(
        " TSC {} MHz; boot took {} ms since CPU reset ({} ms in kernel init)",
        arch::x86_64::tsc::mhz(),
        since_reset_ms,
        kernel_init_ms
    );
    serial_println!("==================================================================");
}

/// Halt the CPU until the next interrupt, forever.
pub fn hlt_loop() -> ! {
    loop {
        x86_64::instructions::hlt();
    }
}

#[cfg(test)]
bootloader_api::entry_point!(test_kernel_main, config = &BOOTLOADER_CONFIG);

/// Entry point of the library's own unit-test kernel (`cargo test --lib`).
#[cfg(test)]
fn test_kernel_main(boot_info: &'static mut BootInfo) -> ! {
    init(boot_info);
    test_main();
    hlt_loop()
}

#[cfg(test)]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    testing::test_panic_handler(info)
}
