//! Sleeping under a spinlock must be caught (debug builds): taking a sleeping `Mutex`
//! while a `SpinLock` is held panics in `sync::might_sleep`, naming the spinlock.
//! `harness = false` (see Cargo.toml): one check, run by hand; the panic handler passes
//! the test only if the panic came from might_sleep and named the lock.
#![no_std]
#![no_main]

use bootloader_api::BootInfo;
use kernel::arch::x86_64::qemu::ExitCode;
use kernel::sync::{Mutex, SpinLock};
use kernel::{serial_println, testing};

bootloader_api::entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

static SPIN: SpinLock<u32> = SpinLock::new("test spinlock", 0);
static SLEEPING: Mutex<u32> = Mutex::new("test mutex", 0);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    serial_println!("running 1 tests");
    testing::begin_test("might_sleep::mutex_under_spinlock_panics");
    // Allowed: a mutex alone, a spinlock alone.
    *SLEEPING.lock() += 1;
    *SPIN.lock() += 1;
    serial_println!("# mutex alone and spinlock alone: fine; now the mutex under the spinlock");
    let _spin = SPIN.lock();
    let _m = SLEEPING.lock();
    serial_println!("[might_sleep did not fire]");
    testing::finish(ExitCode::Failed)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut text = Buf {
        bytes: [0; 256],
        len: 0,
    };
    let _ = core::fmt::write(&mut text, format_args!("{}", info.message()));
    let text = text.as_str();
    serial_println!("(panicked: {text})");
    if text.contains("might_sleep") && text.contains("test spinlock") && text.contains("test mutex")
    {
        testing::end_test_ok("might_sleep::mutex_under_spinlock_panics");
        testing::finish(ExitCode::Success)
    }
    serial_println!("[the panic was not might_sleep's report naming both locks]");
    testing::finish(ExitCode::Failed)
}

/// A small fixed buffer to format the panic message into (no heap in a panic handler).
struct Buf {
    bytes: [u8; 256],
    len: usize,
}

impl Buf {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("(not utf-8)")
    }
}

impl core::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
