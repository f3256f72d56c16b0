//! The serial console (COM1, a 16550 UART): the kernel's only output device.
//!
//! Everything goes through one lock, taken with interrupts disabled, so an interrupt
//! handler that prints can never deadlock against the code it interrupted.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use uart_16550::SerialPort;
use x86_64::instructions::interrupts;

/// I/O port base of COM1.
const COM1: u16 = 0x3f8;

// SAFETY: 0x3f8 is COM1 on every PC and QEMU machine; nothing else drives it.
static SERIAL1: Mutex<SerialPort> = Mutex::new(unsafe { SerialPort::new(COM1) });

/// Program the UART (baud rate, 8N1, FIFOs). Call once, before any output.
pub fn init() {
    SERIAL1.lock().init();
}

/// Set by every write; lets the test framework notice that a test printed something
/// after its `name ... ` header (see `testing::end_test_ok`).
static WROTE: AtomicBool = AtomicBool::new(false);

/// Return whether anything was written since the last call, and reset the flag.
pub fn take_wrote_flag() -> bool {
    WROTE.swap(false, Ordering::Relaxed)
}

/// Write formatted text to COM1, atomically with respect to other writers and interrupts.
#[doc(hidden)]
pub fn _print(args: core::fmt::Arguments) {
    WROTE.store(true, Ordering::Relaxed);
    interrupts::without_interrupts(|| {
        // Writing to a UART cannot fail; SerialPort's fmt::Write never returns Err.
        let _ = SERIAL1.lock().write_fmt(args);
    });
}

/// Write raw bytes (from a user program) to COM1.
pub fn write_bytes(bytes: &[u8]) {
    WROTE.store(true, Ordering::Relaxed);
    interrupts::without_interrupts(|| {
        let mut port = SERIAL1.lock();
        for &b in bytes {
            port.send_raw(b);
        }
    });
}

/// A received byte, if one is waiting (never blocks).
pub fn try_read_byte() -> Option<u8> {
    interrupts::without_interrupts(|| SERIAL1.lock().try_receive().ok())
}

/// Write the formatted text to the serial console.
#[macro_export]
macro_rules! serial_print {
    ($($arg:tt)*) => {
        $crate::drivers::serial::_print(format_args!($($arg)*))
    };
}

/// Write the formatted text and a newline to the serial console.
#[macro_export]
macro_rules! serial_println {
    () => ($crate::serial_print!("\n"));
    ($($arg:tt)*) => ($crate::serial_print!("{}\n", format_args!($($arg)*)));
}
