//! x86-64: segment tables, interrupt tables, the legacy interrupt controller and timer,
//! the time-stamp counter, and QEMU's exit device.
pub mod backtrace;
pub mod context;
pub mod fpu;
pub mod gdt;
pub mod idt;
pub mod interrupts;
pub mod qemu;
pub mod rng;
pub mod rtc;
pub mod syscall;
pub mod trap;
pub mod tsc;
