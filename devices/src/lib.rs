//! The emulated PCIe accelerator (docs chapter 7 describes it at work).
//!
//! A software model of the device, written the way a hardware team describes one, with no `unsafe`
//! and no knowledge of the kernel; it is tested on the host (`cargo test` from outside the repo).
//!
//! - [`pci`]: its configuration space, and the tools a driver uses to read one.
//! - [`accel`]: the device behind it: BAR0 registers, contexts with device page tables, the
//!   command engine, page requests and invalidations.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod accel;
pub mod pci;
