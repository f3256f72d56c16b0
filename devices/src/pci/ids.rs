//! Identity of a PCI function, and our accelerator's identity: every id lives here and nowhere else.

use super::config::BarSize;

/// The 24-bit Class Code register, split into its three bytes (PCIe r5.0 §7.5.1.1.6; the values are
/// listed in the PCI Code and ID Assignment Specification r1.11, §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassCode {
    /// Base class (offset 0x0B), e.g. 0x12 "processing accelerator".
    pub base: u8,
    /// Sub-class (offset 0x0A).
    pub sub: u8,
    /// Programming interface (offset 0x09).
    pub prog_if: u8,
}

/// Everything read-only that tells a driver which function it is looking at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceIdentity {
    /// Vendor ID (offset 0x00), assigned to the vendor by PCI-SIG.
    pub vendor_id: u16,
    /// Device ID (offset 0x02), chosen by the vendor.
    pub device_id: u16,
    /// Revision ID (offset 0x08).
    pub revision_id: u8,
    /// Class code (offsets 0x09..=0x0B).
    pub class: ClassCode,
    /// Subsystem Vendor ID (offset 0x2C): the vendor of the board the chip sits on.
    pub subsystem_vendor_id: u16,
    /// Subsystem ID (offset 0x2E).
    pub subsystem_id: u16,
}

/// Base class 0x12: processing accelerators (PCI Code and ID Assignment Spec r1.11, §1.19).
pub const CLASS_PROCESSING_ACCELERATOR: u8 = 0x12;

/// Our accelerator's vendor ID. MADE UP for this teaching project: it is not assigned to us by
/// PCI-SIG (it may well belong to some real vendor), and it only has to differ from every device on
/// QEMU's emulated bus (QEMU itself uses 0x8086, 0x1234, 0x1af4 and 0x1b36).
pub const ACCEL_VENDOR_ID: u16 = 0x7EAC;

/// Our accelerator's device ID, made up like the vendor ID.
pub const ACCEL_DEVICE_ID: u16 = 0x0001;

/// Our accelerator's revision; bump it when the model's programming interface changes.
pub const ACCEL_REVISION_ID: u8 = 0x01;

/// Our accelerator's class: processing accelerator, sub-class 0x00, programming interface 0x00
/// (both "vendor specific" for this base class).
pub const ACCEL_CLASS: ClassCode = ClassCode {
    base: CLASS_PROCESSING_ACCELERATOR,
    sub: 0x00,
    prog_if: 0x00,
};

/// The full identity our accelerator's configuration space reports. The board is "ours" too, so the
/// subsystem ids repeat the vendor and device ids.
pub const ACCEL_IDENTITY: DeviceIdentity = DeviceIdentity {
    vendor_id: ACCEL_VENDOR_ID,
    device_id: ACCEL_DEVICE_ID,
    revision_id: ACCEL_REVISION_ID,
    class: ACCEL_CLASS,
    subsystem_vendor_id: ACCEL_VENDOR_ID,
    subsystem_id: ACCEL_DEVICE_ID,
};

/// Size of our accelerator's BAR0 register window: 16 KiB, four pages, so each part of the register
/// file can be mapped on its own page.
pub const ACCEL_BAR0_SIZE: BarSize = match BarSize::new(16 * 1024) {
    Some(size) => size,
    None => panic!("ACCEL_BAR0_SIZE: not a valid BAR size"),
};

/// How many outstanding page requests our accelerator's PRI can have at once (the RO Outstanding
/// Page Request Capacity, PCIe r5.0 §10.5.2.4).
pub const ACCEL_PRI_CAPACITY: u32 = 32;
