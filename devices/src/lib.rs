//! The emulated PCIe accelerator (see DESIGN.md section 5).
//!
//! A software model of the device, written the way a hardware team describes one, with no `unsafe`
//! and no knowledge of the kernel; it is tested on the host (`cargo test` from outside the repo).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod pci;
