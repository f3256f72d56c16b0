//! The kernel binary: what `cargo run` boots.
#![no_std]
#![no_main]

use bootloader_api::BootInfo;
use kernel::serial_println;

bootloader_api::entry_point!(kernel_main, config = &kernel::BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    serial_println!("Nothing else to run yet: the kernel idles, counting timer ticks.");
    serial_println!("Quit QEMU with Ctrl-A X.");
    kernel::hlt_loop()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::testing::panic_report(info);
    kernel::arch::x86_64::qemu::exit(kernel::arch::x86_64::qemu::ExitCode::Failed)
}
