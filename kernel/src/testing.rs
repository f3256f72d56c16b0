//! The custom test framework: how `cargo test` runs tests inside a kernel.
//!
//! `cargo test` builds each test crate (the kernel library, each file in tests/) as a
//! kernel of its own; the runner (run-qemu.sh -> boot/) boots it in QEMU. Inside, the
//! compiler collects every `#[test_case]` function into a slice and calls
//! [`test_runner`], which runs them one by one and prints, on the serial console:
//!
//! ```text
//! running 3 tests
//! heap::tests::boxed_value ... ok
//! ...
//! 3 passed, 0 failed
//! ```
//!
//! and then exits QEMU with the success code. A test fails by panicking: the panic
//! handler prints `<name> ... FAILED` with the message and location, the summary line,
//! and exits QEMU with the failure code. The host runner checks both the exit code and
//! that the number of `... ok` lines equals the announced count, so a test kernel that
//! stops early (crash, hang -> timeout, reset) can never pass.

use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

use crate::arch::x86_64::qemu::{self, ExitCode};
use crate::{serial_print, serial_println};

/// A test the runner can run: any `fn()`, named by its path.
pub trait Testable {
    fn run(&self);
}

impl<T: Fn()> Testable for T {
    fn run(&self) {
        let name = core::any::type_name::<T>().trim_start_matches("kernel::");
        begin_test(name);
        self();
        end_test_ok(name);
    }
}

/// Name of the test that is running, for the panic handler.
static CURRENT: Mutex<Option<&'static str>> = Mutex::new(None);
static PASSED: AtomicUsize = AtomicUsize::new(0);

/// Announce and remember the test `name` (used by [`Testable`] and by the
/// `harness = false` tests that run their single check by hand).
pub fn begin_test(name: &'static str) {
    *CURRENT.lock() = Some(name);
    serial_print!("{} ... ", name);
    crate::drivers::serial::take_wrote_flag();
}

/// Mark the current test passed: `ok` after the header, or, if the test printed
/// something, a fresh `name ... ok` line (the runner counts `... ok` lines).
pub fn end_test_ok(name: &'static str) {
    if crate::drivers::serial::take_wrote_flag() {
        serial_println!("{} ... ok", name);
    } else {
        serial_println!("ok");
    }
    PASSED.fetch_add(1, Ordering::Relaxed);
    *CURRENT.lock() = None;
}

/// Run every collected test, print the summary, exit QEMU.
pub fn test_runner(tests: &[&dyn Testable]) {
    serial_println!("running {} tests", tests.len());
    for test in tests {
        test.run();
    }
    finish(ExitCode::Success)
}

/// Print the summary line and exit QEMU with `code`.
pub fn finish(code: ExitCode) -> ! {
    let failed = usize::from(code != ExitCode::Success);
    serial_println!(
        "{} passed, {} failed",
        PASSED.load(Ordering::Relaxed),
        failed
    );
    qemu::exit(code)
}

/// Print a panic: which test (if any), the message and where.
pub fn panic_report(info: &core::panic::PanicInfo) {
    // The panic may have happened while the console lock was held by the interrupted
    // code on this CPU; printing would then deadlock. There is one CPU and the lock is
    // taken with interrupts off, so a panic while it is held means the console itself
    // panicked; we accept that risk to keep the console simple.
    match CURRENT.try_lock().and_then(|c| *c) {
        Some(name) => serial_println!("\n{} ... FAILED", name),
        None => serial_println!(),
    }
    serial_println!("[kernel panic] {}", info.message());
    if let Some(loc) = info.location() {
        serial_println!("  at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    // Debug builds keep frame pointers (Cargo.toml, profile.dev); without them rbp may
    // hold anything, and following it could fault inside the panic handler.
    if cfg!(debug_assertions) {
        crate::serial_print!("  backtrace:");
        crate::arch::x86_64::backtrace::walk(|ret| crate::serial_print!(" {ret:#x}"));
        serial_println!();
    } else {
        serial_println!("  (no backtrace: release builds have no frame pointers)");
    }
}

/// The panic handler of test kernels: report, count one failure, exit QEMU.
pub fn test_panic_handler(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    panic_report(info);
    finish(ExitCode::Failed)
}

/// The boilerplate of a test kernel in tests/: entry point, boot, run the collected
/// `#[test_case]`s, panic handler. A test file starts with the crate attributes
///
/// ```ignore
/// #![no_std]
/// #![no_main]
/// #![feature(custom_test_frameworks)]
/// #![test_runner(kernel::testing::test_runner)]
/// #![reexport_test_harness_main = "test_main"]
/// kernel::test_kernel!();
/// ```
#[macro_export]
macro_rules! test_kernel {
    () => {
        bootloader_api::entry_point!(__test_kernel_main, config = &$crate::BOOTLOADER_CONFIG);

        fn __test_kernel_main(boot_info: &'static mut bootloader_api::BootInfo) -> ! {
            $crate::init(boot_info);
            test_main();
            $crate::hlt_loop()
        }

        #[panic_handler]
        fn __test_kernel_panic(info: &core::panic::PanicInfo) -> ! {
            $crate::testing::test_panic_handler(info)
        }
    };
}
