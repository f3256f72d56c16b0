//! Register offsets and bit fields of PCI/PCIe configuration space, by name.
//!
//! These are the spec's names, usable for any function (QEMU's real devices as well as our model).
//! Offsets inside a capability are relative to the capability's own offset. Section numbers are from
//! the PCI Express Base Specification, Revision 5.0 ("PCIe r5.0") and the PCI Local Bus
//! Specification, Revision 3.0 ("PCI 3.0"). All registers are little-endian.

/// Size of conventional configuration space: the header plus the capability list (PCI 3.0 §6.1).
pub const CONVENTIONAL_SIZE: usize = 0x100;

/// Size of one function's PCIe configuration space, conventional + extended (PCIe r5.0 §7.2.2).
pub const CONFIG_SPACE_SIZE: usize = 0x1000;

/// First offset a conventional capability may live at: the end of the 64-byte header (PCI 3.0 §6.7).
pub const FIRST_CAPABILITY_OFFSET: usize = 0x40;

/// Where the extended capability list starts (PCIe r5.0 §7.6).
pub const EXTENDED_CAPABILITIES_OFFSET: usize = 0x100;

/// The type-0 (endpoint) configuration header (PCIe r5.0 §7.5.1.1 common part, §7.5.1.2 type-0 part;
/// PCI 3.0 §6.1 Figure 6-1).
pub mod header {
    /// Vendor ID, 16 bits, RO (§7.5.1.1.1).
    pub const VENDOR_ID: usize = 0x00;
    /// Device ID, 16 bits, RO (§7.5.1.1.2).
    pub const DEVICE_ID: usize = 0x02;
    /// Command register, 16 bits (§7.5.1.1.3). Bits: [`crate::pci::Command`].
    pub const COMMAND: usize = 0x04;
    /// Status register, 16 bits (§7.5.1.1.4). Bits: [`crate::pci::Status`].
    pub const STATUS: usize = 0x06;
    /// Revision ID, 8 bits, RO (§7.5.1.1.5).
    pub const REVISION_ID: usize = 0x08;
    /// Programming interface, the low byte of the Class Code, RO (§7.5.1.1.6).
    pub const PROG_IF: usize = 0x09;
    /// Sub-class, the middle byte of the Class Code, RO (§7.5.1.1.6).
    pub const SUBCLASS: usize = 0x0A;
    /// Base class, the high byte of the Class Code, RO (§7.5.1.1.6).
    pub const BASE_CLASS: usize = 0x0B;
    /// Cache Line Size, 8 bits, RW with no effect on PCIe (§7.5.1.1.7).
    pub const CACHE_LINE_SIZE: usize = 0x0C;
    /// Latency Timer, 8 bits, hardwired to 0 on PCIe (§7.5.1.1.8).
    pub const LATENCY_TIMER: usize = 0x0D;
    /// Header Type, 8 bits, RO (§7.5.1.1.9).
    pub const HEADER_TYPE: usize = 0x0E;
    /// BIST, 8 bits; 0 means "no built-in self test" (§7.5.1.1.10).
    pub const BIST: usize = 0x0F;
    /// Base Address Register 0 (§7.5.1.2.1); BAR n is at `BAR0 + 4 * n`, n = 0..=5.
    pub const BAR0: usize = 0x10;
    /// Base Address Register 1: the upper half of BAR0 when BAR0 is a 64-bit memory BAR.
    pub const BAR1: usize = 0x14;
    /// Base Address Register 5, the last one of a type-0 header.
    pub const BAR5: usize = 0x24;
    /// CardBus CIS Pointer, 32 bits, RO (§7.5.1.2.2).
    pub const CARDBUS_CIS_POINTER: usize = 0x28;
    /// Subsystem Vendor ID, 16 bits, RO (§7.5.1.2.3).
    pub const SUBSYSTEM_VENDOR_ID: usize = 0x2C;
    /// Subsystem ID, 16 bits, RO (§7.5.1.2.3).
    pub const SUBSYSTEM_ID: usize = 0x2E;
    /// Expansion ROM Base Address, 32 bits (§7.5.1.2.4); 0 when there is no ROM.
    pub const EXPANSION_ROM_BASE: usize = 0x30;
    /// Capabilities Pointer, 8 bits, RO; bits 1:0 are reserved (§7.5.1.1.11).
    pub const CAPABILITIES_POINTER: usize = 0x34;
    /// Interrupt Line, 8 bits, RW scratch for software (§7.5.1.1.12).
    pub const INTERRUPT_LINE: usize = 0x3C;
    /// Interrupt Pin, 8 bits, RO: 0 none, 1..=4 INTA#..INTD# (§7.5.1.1.13).
    pub const INTERRUPT_PIN: usize = 0x3D;
    /// Min_Gnt, 8 bits, hardwired to 0 on PCIe (§7.5.1.2.5).
    pub const MIN_GNT: usize = 0x3E;
    /// Max_Lat, 8 bits, hardwired to 0 on PCIe (§7.5.1.2.5).
    pub const MAX_LAT: usize = 0x3F;

    /// Header Type bits 6:0: the layout of the rest of the header.
    pub const HEADER_TYPE_LAYOUT_MASK: u8 = 0x7F;
    /// Header Type bit 7: the device has more than one function.
    pub const HEADER_TYPE_MULTI_FUNCTION: u8 = 0x80;
    /// Header layout 0: an endpoint ("normal" device).
    pub const HEADER_TYPE_ENDPOINT: u8 = 0x00;
    /// Header layout 1: a PCI-to-PCI bridge.
    pub const HEADER_TYPE_BRIDGE: u8 = 0x01;
    /// Header layout 2: a CardBus bridge, whose capabilities pointer is at 0x14 instead of 0x34.
    pub const HEADER_TYPE_CARDBUS: u8 = 0x02;
    /// Where a CardBus bridge keeps its capabilities pointer (PCI 3.0 §6.7, footnote).
    pub const CARDBUS_CAPABILITIES_POINTER: usize = 0x14;

    /// BAR bit 0: 1 for an I/O BAR, 0 for a memory BAR.
    pub const BAR_IO_SPACE: u32 = 0x1;
    /// Memory BAR bits 2:1: the address width ("type").
    pub const BAR_MEM_TYPE_MASK: u32 = 0x6;
    /// Memory BAR type 00b: 32-bit address.
    pub const BAR_MEM_TYPE_32: u32 = 0x0;
    /// Memory BAR type 10b: 64-bit address, the BAR and the next one form one register.
    pub const BAR_MEM_TYPE_64: u32 = 0x4;
    /// Memory BAR bit 3: prefetchable (reads have no side effects).
    pub const BAR_MEM_PREFETCHABLE: u32 = 0x8;
    /// Memory BAR bits 31:4: the address; bits 3:0 are the read-only flags above.
    pub const BAR_MEM_ADDRESS_MASK: u32 = !0xF;

    /// Interrupt Pin value for INTA#.
    pub const INTERRUPT_PIN_INTA: u8 = 1;
}

/// Capability IDs of the conventional list (PCI Code and ID Assignment Spec r1.11, §2).
pub mod cap_id {
    /// PCI Power Management.
    pub const POWER_MANAGEMENT: u8 = 0x01;
    /// Message Signaled Interrupts (PCIe r5.0 §7.7.1).
    pub const MSI: u8 = 0x05;
    /// Vendor specific.
    pub const VENDOR_SPECIFIC: u8 = 0x09;
    /// PCI Express (PCIe r5.0 §7.5.3).
    pub const PCI_EXPRESS: u8 = 0x10;
    /// MSI-X (PCIe r5.0 §7.7.2).
    pub const MSIX: u8 = 0x11;
}

/// Extended capability IDs (PCI Code and ID Assignment Spec r1.11, §3).
pub mod ext_cap_id {
    /// Advanced Error Reporting.
    pub const ADVANCED_ERROR_REPORTING: u16 = 0x0001;
    /// Address Translation Services (PCIe r5.0 §10.5.1).
    pub const ATS: u16 = 0x000F;
    /// Page Request Interface (PCIe r5.0 §10.5.2).
    pub const PRI: u16 = 0x0013;
    /// Process Address Space ID.
    pub const PASID: u16 = 0x001B;
}

/// A conventional capability's first two bytes: ID, then next pointer (PCI 3.0 §6.7).
pub mod cap {
    /// Capability ID, 8 bits.
    pub const ID: usize = 0x00;
    /// Next Capability Pointer, 8 bits; 0 ends the list, bits 1:0 are reserved.
    pub const NEXT: usize = 0x01;
}

/// The 32-bit header of every extended capability (PCIe r5.0 §7.6.3).
pub mod ext_cap {
    /// Bits 15:0: the extended capability ID.
    pub const ID_MASK: u32 = 0xFFFF;
    /// Bits 19:16: the capability version.
    pub const VERSION_SHIFT: u32 = 16;
    /// Mask of the version after shifting.
    pub const VERSION_MASK: u32 = 0xF;
    /// Bits 31:20: the next capability's offset; 0 ends the list.
    pub const NEXT_SHIFT: u32 = 20;
    /// Mask of the next offset after shifting; bits 1:0 are reserved, so they are masked off.
    pub const NEXT_MASK: u32 = 0xFFC;

    /// Encodes an extended capability header from its three fields.
    pub const fn header(id: u16, version: u8, next: usize) -> u32 {
        id as u32
            | ((version as u32 & VERSION_MASK) << VERSION_SHIFT)
            | ((next as u32 & NEXT_MASK) << NEXT_SHIFT)
    }
}

/// The PCI Express Capability structure, offsets from the capability (PCIe r5.0 §7.5.3).
pub mod pcie {
    /// PCI Express Capabilities Register, 16 bits, RO (§7.5.3.2).
    pub const CAPABILITIES: usize = 0x02;
    /// Device Capabilities Register, 32 bits, RO (§7.5.3.3).
    pub const DEVICE_CAPABILITIES: usize = 0x04;
    /// Device Control Register, 16 bits (§7.5.3.4).
    pub const DEVICE_CONTROL: usize = 0x08;
    /// Device Status Register, 16 bits (§7.5.3.5).
    pub const DEVICE_STATUS: usize = 0x0A;
    /// Link Capabilities Register, 32 bits, RO (§7.5.3.6).
    pub const LINK_CAPABILITIES: usize = 0x0C;
    /// Link Control Register, 16 bits (§7.5.3.7).
    pub const LINK_CONTROL: usize = 0x10;
    /// Link Status Register, 16 bits (§7.5.3.8).
    pub const LINK_STATUS: usize = 0x12;
    /// Slot Capabilities Register (§7.5.3.9); 0 on an endpoint, which has no slot.
    pub const SLOT_CAPABILITIES: usize = 0x14;
    /// Root Control Register (§7.5.3.12); 0 on an endpoint.
    pub const ROOT_CONTROL: usize = 0x1C;
    /// Device Capabilities 2 Register, 32 bits, RO (§7.5.3.15).
    pub const DEVICE_CAPABILITIES_2: usize = 0x24;
    /// Device Control 2 Register, 16 bits (§7.5.3.16).
    pub const DEVICE_CONTROL_2: usize = 0x28;
    /// Link Capabilities 2 Register, 32 bits, RO (§7.5.3.18).
    pub const LINK_CAPABILITIES_2: usize = 0x2C;
    /// Link Control 2 Register, 16 bits (§7.5.3.19).
    pub const LINK_CONTROL_2: usize = 0x30;
    /// Link Status 2 Register, 16 bits (§7.5.3.20).
    pub const LINK_STATUS_2: usize = 0x32;
    /// Length of a version-2 PCI Express capability (through Slot Status 2 at 0x3A).
    pub const LENGTH: usize = 0x3C;

    /// Capabilities Register bits 3:0: capability version (2 for PCIe 2.0 and later).
    pub const CAP_VERSION_MASK: u16 = 0x000F;
    /// Capabilities Register bits 7:4: device/port type.
    pub const CAP_DEVICE_TYPE_MASK: u16 = 0x00F0;
    /// Shift of the device/port type field.
    pub const CAP_DEVICE_TYPE_SHIFT: u16 = 4;
    /// Device/port type 0000b: PCI Express Endpoint.
    pub const DEVICE_TYPE_ENDPOINT: u16 = 0x0;

    /// Device Capabilities bits 2:0: Max_Payload_Size supported, 128 << n bytes.
    pub const DEVCAP_MAX_PAYLOAD_MASK: u32 = 0x7;
    /// Device Capabilities bit 5: Extended Tag Field supported.
    pub const DEVCAP_EXTENDED_TAG: u32 = 1 << 5;
    /// Device Capabilities bit 15: Role-Based Error Reporting (must be 1 since PCIe 1.1).
    pub const DEVCAP_ROLE_BASED_ERROR: u32 = 1 << 15;

    /// Device Control bits 3:0: correctable, non-fatal, fatal, unsupported-request reporting enables.
    pub const DEVCTL_ERROR_REPORTING_MASK: u16 = 0x000F;
    /// Device Control bit 4: Enable Relaxed Ordering.
    pub const DEVCTL_RELAXED_ORDERING: u16 = 1 << 4;
    /// Device Control bits 7:5: Max_Payload_Size, 128 << n bytes.
    pub const DEVCTL_MAX_PAYLOAD_MASK: u16 = 0x7 << 5;
    /// Device Control bit 8: Extended Tag Field Enable.
    pub const DEVCTL_EXTENDED_TAG: u16 = 1 << 8;
    /// Device Control bit 11: Enable No Snoop.
    pub const DEVCTL_NO_SNOOP: u16 = 1 << 11;
    /// Device Control bits 14:12: Max_Read_Request_Size, 128 << n bytes.
    pub const DEVCTL_MAX_READ_REQUEST_MASK: u16 = 0x7 << 12;
    /// Shift of the Max_Read_Request_Size field.
    pub const DEVCTL_MAX_READ_REQUEST_SHIFT: u16 = 12;

    /// Device Status bits 3:0: correctable, non-fatal, fatal, unsupported request detected (RW1C).
    pub const DEVSTA_ERRORS_DETECTED: u16 = 0x000F;

    /// Link Capabilities/Status bits 3:0: link speed, an index into the Supported Link Speeds vector.
    pub const LINK_SPEED_MASK: u32 = 0xF;
    /// Link Capabilities/Status bits 9:4: link width (number of lanes).
    pub const LINK_WIDTH_MASK: u32 = 0x3F << 4;
    /// Shift of the link width field.
    pub const LINK_WIDTH_SHIFT: u32 = 4;

    /// Device Control 2 bit 6: AtomicOp Requester Enable.
    pub const DEVCTL2_ATOMIC_OP_REQUESTER: u16 = 1 << 6;
}

/// The MSI capability, 64-bit layout without per-vector masking (PCIe r5.0 §7.7.1, PCI 3.0 §6.8.1).
pub mod msi {
    /// Message Control Register, 16 bits (§7.7.1.2).
    pub const CONTROL: usize = 0x02;
    /// Message Address Register, low 32 bits; bits 1:0 are reserved, read 0 (§7.7.1.3).
    pub const ADDRESS_LO: usize = 0x04;
    /// Message Upper Address Register, high 32 bits (§7.7.1.4).
    pub const ADDRESS_HI: usize = 0x08;
    /// Message Data Register, 16 bits, in the 64-bit layout (§7.7.1.5).
    pub const DATA: usize = 0x0C;
    /// Length of the 64-bit layout, including the 16 bits after Message Data.
    pub const LENGTH: usize = 0x10;

    /// Message Control bit 0: MSI Enable.
    pub const CONTROL_ENABLE: u16 = 1 << 0;
    /// Message Control bits 3:1: Multiple Message Capable, log2 of the vectors requested (RO).
    pub const CONTROL_MULTIPLE_CAPABLE_MASK: u16 = 0x7 << 1;
    /// Message Control bits 6:4: Multiple Message Enable, log2 of the vectors granted.
    pub const CONTROL_MULTIPLE_ENABLE_MASK: u16 = 0x7 << 4;
    /// Message Control bit 7: 64-bit address capable (RO).
    pub const CONTROL_64BIT: u16 = 1 << 7;
    /// Message Control bit 8: per-vector masking capable (RO).
    pub const CONTROL_PER_VECTOR_MASKING: u16 = 1 << 8;
}

/// The ATS extended capability, offsets from its header (PCIe r5.0 §10.5.1).
pub mod ats {
    /// ATS Capability Register, 16 bits, RO (§10.5.1.2).
    pub const CAPABILITY: usize = 0x04;
    /// ATS Control Register, 16 bits (§10.5.1.3).
    pub const CONTROL: usize = 0x06;
    /// Length of the ATS capability.
    pub const LENGTH: usize = 0x08;

    /// Capability bits 4:0: Invalidate Queue Depth (0 means 32).
    pub const CAP_INVALIDATE_QUEUE_DEPTH_MASK: u16 = 0x1F;
    /// Capability bit 5: Page Aligned Request (untranslated addresses in requests are page aligned).
    pub const CAP_PAGE_ALIGNED_REQUEST: u16 = 1 << 5;
    /// Capability bit 6: Global Invalidate supported.
    pub const CAP_GLOBAL_INVALIDATE: u16 = 1 << 6;
    /// Capability bit 7: Relaxed Ordering supported.
    pub const CAP_RELAXED_ORDERING: u16 = 1 << 7;

    /// Control bits 4:0: Smallest Translation Unit, translations cover at least 4096 << STU bytes.
    pub const CONTROL_STU_MASK: u16 = 0x1F;
    /// Control bit 15: ATS Enable.
    pub const CONTROL_ENABLE: u16 = 1 << 15;
}

/// The Page Request (PRI) extended capability, offsets from its header (PCIe r5.0 §10.5.2).
pub mod pri {
    /// Page Request Control Register, 16 bits (§10.5.2.2).
    pub const CONTROL: usize = 0x04;
    /// Page Request Status Register, 16 bits (§10.5.2.3).
    pub const STATUS: usize = 0x06;
    /// Outstanding Page Request Capacity, 32 bits, RO (§10.5.2.4).
    pub const CAPACITY: usize = 0x08;
    /// Outstanding Page Request Allocation, 32 bits, RW (§10.5.2.5).
    pub const ALLOCATION: usize = 0x0C;
    /// Length of the PRI capability.
    pub const LENGTH: usize = 0x10;

    /// Control bit 0: Enable; the function may issue page requests only while it is set.
    pub const CONTROL_ENABLE: u16 = 1 << 0;
    /// Control bit 1: Reset; writing 1 while Enable is clear clears the request credits; reads 0.
    pub const CONTROL_RESET: u16 = 1 << 1;

    /// Status bit 0: Response Failure, a PRG Response said "failure" (RW1C).
    pub const STATUS_RESPONSE_FAILURE: u16 = 1 << 0;
    /// Status bit 1: Unexpected Page Request Group Index in a PRG Response (RW1C).
    pub const STATUS_UNEXPECTED_PRG_INDEX: u16 = 1 << 1;
    /// Status bit 8: Stopped, no page request is outstanding; meaningful while Enable is clear (RO).
    pub const STATUS_STOPPED: u16 = 1 << 8;
    /// Status bit 15: PRG Response PASID Required (RO).
    pub const STATUS_PRG_RESPONSE_PASID_REQUIRED: u16 = 1 << 15;
}
