//! x86-64: segment tables, interrupt tables, the legacy interrupt controller and timer,
//! the time-stamp counter, and QEMU's exit device.
pub mod gdt;
pub mod idt;
pub mod interrupts;
pub mod qemu;
pub mod tsc;
