//! A test that must panic: passes only if the assertion fires and the panic handler
//! runs. `harness = false` (see Cargo.toml): one check, run by hand.
#![no_std]
#![no_main]

use bootloader_api::BootInfo;
use kernel::arch::x86_64::qemu::ExitCode;
use kernel::{serial_println, testing};

bootloader_api::entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    serial_println!("running 1 tests");
    testing::begin_test("should_panic::failing_assertion_panics");
    assert_eq!(1 + 1, 3, "this assertion is meant to fail");
    serial_println!("[test did not panic]");
    testing::finish(ExitCode::Failed)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    serial_println!("(panicked as expected: {})", info.message());
    testing::end_test_ok("should_panic::failing_assertion_panics");
    testing::finish(ExitCode::Success)
}
