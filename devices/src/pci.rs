//! The accelerator's PCI face: its configuration space, and the tools a driver uses to read one.
//!
//! - [`ConfigSpace`]: the 4096-byte PCIe configuration space of our accelerator, a type-0 endpoint
//!   with one 64-bit BAR, the PCI Express and MSI capabilities and the ATS and PRI extended
//!   capabilities. Reads and writes follow the hardware rules (read-only, RW, RW1C bits, BAR sizing).
//! - [`ConfigRead`], [`capabilities`], [`find_capability`], ...: capability-list walks that work on
//!   any function, ours or QEMU's.
//! - [`regs`]: register offsets and bits by their spec names; [`ids`]: every id of our device.
//!
//! References: PCI Express Base Specification r5.0 ("PCIe r5.0") chapter 7 and §10.5, PCI Local Bus
//! Specification 3.0 ("PCI 3.0") chapter 6.

mod config;
mod flags;
pub mod ids;
pub mod regs;
mod walk;

#[cfg(test)]
mod tests;

pub use config::{
    layout, AccessError, AtsControl, BarSize, ConfigSpace, MsiMessage, PriState, Width,
    COMMAND_IMPLEMENTED,
};
pub use flags::{Command, Status};
pub use regs::{cap_id, ext_cap_id};
pub use walk::{
    capabilities, extended_capabilities, find_capability, find_extended_capability, Capabilities,
    Capability, ConfigRead, ExtendedCapabilities, ExtendedCapability,
};
