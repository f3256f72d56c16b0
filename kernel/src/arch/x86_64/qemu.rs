//! QEMU's `isa-debug-exit` device (I/O port 0xf4): writing `v` ends QEMU with exit
//! status `(v << 1) | 1`. The host runner (boot/) reads that status.

use x86_64::instructions::port::Port;

/// I/O port of the `isa-debug-exit` device, as configured by run-qemu.sh.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// What a kernel tells the host runner when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Every test passed: QEMU exits with status 33.
    Success = 0x10,
    /// A test failed or the kernel panicked: QEMU exits with status 35.
    Failed = 0x11,
    /// Init ended (or called reboot(POWER_OFF)): QEMU exits with status 37; the status
    /// itself is on the serial line `[kernel] power off: init exited with status S`.
    PowerOff = 0x12,
}

/// Leave QEMU with `code`. If the exit device is missing (not QEMU, or not configured),
/// say so and halt.
pub fn exit(code: ExitCode) -> ! {
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 is the isa-debug-exit device on our QEMU command line; on a
    // machine without it the write goes nowhere and has no side effects.
    unsafe { port.write(code as u32) };
    crate::serial_println!("[kernel] QEMU did not exit (no isa-debug-exit device); halting.");
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}
