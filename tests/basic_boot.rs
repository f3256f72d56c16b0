//! The kernel boots, prints, and survives a breakpoint exception.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]

use kernel::serial_println;

kernel::test_kernel!();

#[test_case]
fn serial_println_works() {
    serial_println!("(printing from a test)");
}

#[test_case]
fn breakpoint_exception_returns() {
    x86_64::instructions::interrupts::int3();
    serial_println!("(came back from int3)");
}

#[test_case]
fn timer_ticks_advance() {
    let start = kernel::arch::x86_64::interrupts::ticks();
    while kernel::arch::x86_64::interrupts::ticks() < start + 5 {
        x86_64::instructions::hlt();
    }
    let after = kernel::arch::x86_64::interrupts::ticks();
    assert!(after >= start + 5, "ticks went from {start} to {after}");
}

#[test_case]
fn tsc_is_calibrated() {
    let mhz = kernel::arch::x86_64::tsc::mhz();
    serial_println!("(TSC {mhz} MHz)");
    assert!(mhz > 10, "TSC calibrated to {mhz} MHz");
}
