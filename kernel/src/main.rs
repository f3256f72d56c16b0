//! The kernel binary: what `cargo run` boots. After the machine is up it starts `/init`
//! from the initramfs as process 1 and runs the scheduler; when init exits, the kernel
//! powers off and run-qemu.sh exits with init's status.
#![no_std]
#![no_main]

use bootloader_api::BootInfo;
use kernel::serial_println;

bootloader_api::entry_point!(kernel_main, config = &kernel::BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    // The emulated accelerator plugs into the software PCI segment; enumeration lists
    // QEMU's real bus and it, and the driver binds by vendor/device id.
    kernel::drivers::hmm::register();
    kernel::drivers::pci::print_lspci();
    kernel::drivers::pci::bind_drivers(&[kernel::drivers::hmm::PCI_DRIVER]);
    match kernel::proc::spawn_init("/init", &["/init"]) {
        Ok(()) => kernel::proc::sched::run(),
        Err(e) => {
            serial_println!("[kernel] cannot start /init from the initramfs: {e:?}");
            serial_println!("[kernel] (build one with `make user`, or pass --init PROGRAM)");
            serial_println!("Nothing to run: the kernel idles. Quit QEMU with Ctrl-A X.");
            kernel::hlt_loop()
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kernel::testing::panic_report(info);
    kernel::arch::x86_64::qemu::exit(kernel::arch::x86_64::qemu::ExitCode::Failed)
}
