//! The configuration space of our accelerator: a PCIe type-0 endpoint, modelled as hardware does it.
//!
//! The model is 4096 bytes of register contents plus a table ([`WRITE_RULES`]) saying, bit by bit,
//! which bits software may write and which are write-1-to-clear. Every other bit is read-only, so
//! ids, class, header type, capability pointers and capability contents ignore writes, and
//! unimplemented registers read 0 for ever. BAR0/BAR1, whose writable bits depend on the BAR size,
//! and PRI's Reset bit, which is a command rather than state, are handled in code.
//!
//! The layout of this device (PCIe r5.0 §7.5.1 for the header):
//!
//! ```text
//! 0x000  type-0 header   Command implements MEMORY_SPACE, BUS_MASTER, INTX_DISABLE
//! 0x010  BAR0 + BAR1     one 64-bit non-prefetchable memory BAR, size given at construction
//! 0x034  cap pointer --> 0x040
//! 0x040  PCI Express capability, version 2, endpoint      next --> 0x080
//! 0x080  MSI capability, 64-bit, 1 vector                next --> 0 (end)
//! 0x100  ATS extended capability, version 1               next --> 0x110
//! 0x110  PRI extended capability, version 1               next --> 0 (end)
//! ```
//!
//! (Why one file of ~700 lines: the write rules, the capability list and the extended
//! capabilities describe one 4 KiB register file; every part is read against the others
//! when a bit's meaning is in doubt, as one reads one section of the spec.)

use core::fmt;
use core::ops::Range;

use super::flags::{Command, Status};
use super::ids::{DeviceIdentity, ACCEL_BAR0_SIZE, ACCEL_IDENTITY, ACCEL_PRI_CAPACITY};
use super::regs::{
    ats, cap, cap_id, ext_cap, ext_cap_id, header, msi, pcie, pri, CONFIG_SPACE_SIZE,
};
use super::walk::{self, Capabilities, ConfigRead, ExtendedCapabilities};

/// Where this model places each capability. A driver must not rely on these: it walks the lists
/// ([`ConfigSpace::find_capability`]); tests use them to check that the walk is right.
pub mod layout {
    /// The PCI Express capability (first in the conventional list).
    pub const PCIE: usize = 0x40;
    /// The MSI capability (last in the conventional list).
    pub const MSI: usize = 0x80;
    /// The ATS extended capability (first in the extended list, at its fixed start).
    pub const ATS: usize = 0x100;
    /// The PRI extended capability (last in the extended list).
    pub const PRI: usize = 0x110;
}

/// The width of one configuration access: what a CPU's config cycle or ECAM load/store carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// One byte.
    Byte,
    /// Two bytes; the offset must be even.
    Word,
    /// Four bytes; the offset must be a multiple of 4.
    Dword,
}

impl Width {
    /// The number of bytes accessed.
    pub const fn bytes(self) -> usize {
        match self {
            Width::Byte => 1,
            Width::Word => 2,
            Width::Dword => 4,
        }
    }
}

/// Why a configuration access was refused. A refused access has no effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessError {
    /// Some accessed byte lies at or past the end of the 4096-byte configuration space.
    OutOfRange {
        /// The offset of the access.
        offset: usize,
        /// The width of the access.
        width: Width,
    },
    /// The offset is not a multiple of the access width.
    Misaligned {
        /// The offset of the access.
        offset: usize,
        /// The width of the access.
        width: Width,
    },
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::OutOfRange { offset, width } => write!(
                f,
                "config access of {} bytes at {offset:#x} is past the end of config space",
                width.bytes()
            ),
            AccessError::Misaligned { offset, width } => write!(
                f,
                "config access of {} bytes at {offset:#x} is not naturally aligned",
                width.bytes()
            ),
        }
    }
}

/// The size of a memory BAR: a power of two of at least 16 bytes (bits 3:0 of a memory BAR are
/// flags, PCIe r5.0 §7.5.1.2.1), at most 2^63 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BarSize(u64);

impl BarSize {
    /// The smallest memory BAR the spec allows, in bytes.
    pub const MIN: u64 = 16;

    /// `Some` if `bytes` is a power of two of at least [`BarSize::MIN`], else `None`.
    pub const fn new(bytes: u64) -> Option<Self> {
        if bytes.is_power_of_two() && bytes >= Self::MIN {
            Some(Self(bytes))
        } else {
            None
        }
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The BAR's writable address bits: all bits at or above log2(size).
    const fn address_mask(self) -> u64 {
        !(self.0 - 1)
    }
}

/// The ATS Control register decoded (PCIe r5.0 §10.5.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AtsControl {
    /// Enable: the function may send translation requests and use translated addresses.
    pub enabled: bool,
    /// Smallest Translation Unit: every translation covers at least `4096 << stu` bytes.
    pub smallest_translation_unit: u8,
}

impl AtsControl {
    /// The smallest translation the host will hand out, in bytes (4096 << STU).
    pub const fn smallest_translation_bytes(self) -> u64 {
        4096u64 << self.smallest_translation_unit
    }
}

/// The PRI registers decoded (PCIe r5.0 §10.5.2.2 to §10.5.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PriState {
    /// Control.Enable: the function may issue page requests.
    pub enabled: bool,
    /// Status.Stopped: no page request is outstanding (meaningful while not enabled).
    pub stopped: bool,
    /// Status.Response Failure: a page request group was answered with "failure".
    pub response_failure: bool,
    /// Status.Unexpected Page Request Group Index: a response named a group never requested.
    pub unexpected_prg_index: bool,
    /// Outstanding Page Request Capacity: how many requests the function can have in flight.
    pub capacity: u32,
    /// Outstanding Page Request Allocation: how many the host lets it have in flight.
    pub allocation: u32,
}

/// An MSI message as programmed by software: the device signals its interrupt by writing `data`
/// (a 32-bit write whose upper 16 bits are 0) to `address` (PCIe r5.0 §6.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsiMessage {
    /// Message Address, upper and lower halves joined.
    pub address: u64,
    /// Message Data.
    pub data: u16,
}

/// One register's software-visible write behaviour; bits in neither mask are read-only.
#[derive(Clone, Copy, Debug)]
struct WriteRule {
    /// Offset of the register in configuration space.
    offset: usize,
    /// Width of the register in bytes (1, 2 or 4).
    bytes: usize,
    /// Bits software writes store (RW).
    writable: u32,
    /// Bits a 1 written clears and a 0 written leaves alone (RW1C).
    write_one_to_clear: u32,
}

/// Shorthand for one [`WriteRule`] table entry.
const fn rule(offset: usize, bytes: usize, writable: u32, write_one_to_clear: u32) -> WriteRule {
    WriteRule {
        offset,
        bytes,
        writable,
        write_one_to_clear,
    }
}

/// Command bits this model implements; the others are hardwired to 0 (PCIe r5.0 §7.5.1.1.3).
/// A full PCIe function also implements PARITY_ERROR_RESPONSE and SERR_ENABLE; ours has no error
/// signalling to enable.
pub const COMMAND_IMPLEMENTED: Command = Command::MEMORY_SPACE
    .union(Command::BUS_MASTER)
    .union(Command::INTX_DISABLE);

/// PCIe Device Control bits this model lets software write (PCIe r5.0 §7.5.3.4): error reporting
/// enables, relaxed ordering, Max_Payload_Size, extended tags, no snoop, Max_Read_Request_Size.
/// Phantom functions, aux power and function-level reset are not implemented.
const DEVICE_CONTROL_WRITABLE: u16 = pcie::DEVCTL_ERROR_REPORTING_MASK
    | pcie::DEVCTL_RELAXED_ORDERING
    | pcie::DEVCTL_MAX_PAYLOAD_MASK
    | pcie::DEVCTL_EXTENDED_TAG
    | pcie::DEVCTL_NO_SNOOP
    | pcie::DEVCTL_MAX_READ_REQUEST_MASK;

/// Every register with a writable or write-1-to-clear bit, except BAR0/BAR1 (size-dependent).
/// This table *is* the software-visible behaviour of the device; anything not listed is RO.
const WRITE_RULES: &[WriteRule] = &[
    // Type-0 header (PCIe r5.0 §7.5.1).
    rule(header::COMMAND, 2, COMMAND_IMPLEMENTED.bits() as u32, 0),
    rule(header::STATUS, 2, 0, Status::ERRORS.bits() as u32),
    rule(header::CACHE_LINE_SIZE, 1, 0xFF, 0),
    rule(header::INTERRUPT_LINE, 1, 0xFF, 0),
    // PCI Express capability (PCIe r5.0 §7.5.3).
    rule(
        layout::PCIE + pcie::DEVICE_CONTROL,
        2,
        DEVICE_CONTROL_WRITABLE as u32,
        0,
    ),
    rule(
        layout::PCIE + pcie::DEVICE_STATUS,
        2,
        0,
        pcie::DEVSTA_ERRORS_DETECTED as u32,
    ),
    // Link Control: ASPM Control (1:0), Common Clock Configuration (6), Extended Synch (7).
    rule(layout::PCIE + pcie::LINK_CONTROL, 2, 0x00C3, 0),
    // Device Control 2: Completion Timeout Value (3:0) + Disable (4), AtomicOp Requester Enable (6).
    rule(layout::PCIE + pcie::DEVICE_CONTROL_2, 2, 0x005F, 0),
    // Link Control 2: Target Link Speed (3:0).
    rule(layout::PCIE + pcie::LINK_CONTROL_2, 2, 0x000F, 0),
    // MSI capability (PCIe r5.0 §7.7.1).
    rule(
        layout::MSI + msi::CONTROL,
        2,
        (msi::CONTROL_ENABLE | msi::CONTROL_MULTIPLE_ENABLE_MASK) as u32,
        0,
    ),
    rule(layout::MSI + msi::ADDRESS_LO, 4, 0xFFFF_FFFC, 0),
    rule(layout::MSI + msi::ADDRESS_HI, 4, 0xFFFF_FFFF, 0),
    rule(layout::MSI + msi::DATA, 2, 0xFFFF, 0),
    // ATS (PCIe r5.0 §10.5.1.3): Enable and Smallest Translation Unit.
    rule(
        layout::ATS + ats::CONTROL,
        2,
        (ats::CONTROL_ENABLE | ats::CONTROL_STU_MASK) as u32,
        0,
    ),
    // PRI (PCIe r5.0 §10.5.2): Enable is state; Reset is a command (see `after_write`), reads 0.
    rule(layout::PRI + pri::CONTROL, 2, pri::CONTROL_ENABLE as u32, 0),
    rule(
        layout::PRI + pri::STATUS,
        2,
        0,
        (pri::STATUS_RESPONSE_FAILURE | pri::STATUS_UNEXPECTED_PRG_INDEX) as u32,
    ),
    rule(layout::PRI + pri::ALLOCATION, 4, 0xFFFF_FFFF, 0),
];

/// A 4096-byte PCIe configuration space of a type-0 endpoint with one 64-bit memory BAR, the PCI
/// Express and MSI capabilities and the ATS and PRI extended capabilities (layout in the module
/// documentation).
///
/// Software (the kernel's PCI layer) uses [`read`](Self::read)/[`write`](Self::write) and the
/// `read_*`/`write_*` shorthands, which follow the hardware rules. The device model uses the
/// decoding helpers ([`command`](Self::command), [`bar0_window`](Self::bar0_window), ...) and the
/// device-side setters ([`raise_status`](Self::raise_status), ...), which bypass write masks the
/// way the hardware's own logic does.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigSpace {
    /// Current register contents, little-endian.
    bytes: [u8; CONFIG_SPACE_SIZE],
    /// Size of the window BAR0/BAR1 decode.
    bar0_size: BarSize,
    /// Software wrote PRI Control.Reset while PRI was disabled; the device has not acted on it yet.
    pri_reset_pending: bool,
}

impl ConfigSpace {
    /// A configuration space in its power-on state: the given identity, BAR0 unassigned (address
    /// 0) with a window of `bar0_size`, Command 0, every capability at its reset value.
    pub fn new(identity: &DeviceIdentity, bar0_size: BarSize) -> Self {
        let mut cs = ConfigSpace {
            bytes: [0; CONFIG_SPACE_SIZE],
            bar0_size,
            pri_reset_pending: false,
        };
        cs.init_header(identity);
        cs.init_pcie_capability(layout::PCIE, layout::MSI);
        cs.init_msi_capability(layout::MSI, 0);
        cs.init_ats_capability(layout::ATS, layout::PRI);
        cs.init_pri_capability(layout::PRI, 0);
        cs
    }

    /// Our accelerator's configuration space at power-on ([`ACCEL_IDENTITY`], [`ACCEL_BAR0_SIZE`]).
    pub fn accelerator() -> Self {
        Self::new(&ACCEL_IDENTITY, ACCEL_BAR0_SIZE)
    }

    /// Fills the type-0 header (PCIe r5.0 §7.5.1.1, §7.5.1.2).
    fn init_header(&mut self, id: &DeviceIdentity) {
        self.set_raw_u16(header::VENDOR_ID, id.vendor_id);
        self.set_raw_u16(header::DEVICE_ID, id.device_id);
        self.set_raw_u16(header::STATUS, Status::CAPABILITIES_LIST.bits());
        self.set_raw_u8(header::REVISION_ID, id.revision_id);
        self.set_raw_u8(header::PROG_IF, id.class.prog_if);
        self.set_raw_u8(header::SUBCLASS, id.class.sub);
        self.set_raw_u8(header::BASE_CLASS, id.class.base);
        self.set_raw_u8(header::HEADER_TYPE, header::HEADER_TYPE_ENDPOINT);
        // 64-bit, non-prefetchable memory BAR at address 0 (unassigned).
        self.set_raw_u32(header::BAR0, header::BAR_MEM_TYPE_64);
        self.set_raw_u16(header::SUBSYSTEM_VENDOR_ID, id.subsystem_vendor_id);
        self.set_raw_u16(header::SUBSYSTEM_ID, id.subsystem_id);
        self.set_raw_u8(header::CAPABILITIES_POINTER, layout::PCIE as u8);
        self.set_raw_u8(header::INTERRUPT_PIN, header::INTERRUPT_PIN_INTA);
    }

    /// Fills a version-2 PCI Express capability of an endpoint at `at` (PCIe r5.0 §7.5.3):
    /// Max_Payload 256 B supported, a x16 link at 8 GT/s, no slot, no root port registers.
    fn init_pcie_capability(&mut self, at: usize, next: usize) {
        self.set_raw_u8(at + cap::ID, cap_id::PCI_EXPRESS);
        self.set_raw_u8(at + cap::NEXT, next as u8);
        let version = 2;
        let caps = version | (pcie::DEVICE_TYPE_ENDPOINT << pcie::CAP_DEVICE_TYPE_SHIFT);
        self.set_raw_u16(at + pcie::CAPABILITIES, caps);
        let max_payload_256 = 1;
        self.set_raw_u32(
            at + pcie::DEVICE_CAPABILITIES,
            max_payload_256 | pcie::DEVCAP_EXTENDED_TAG | pcie::DEVCAP_ROLE_BASED_ERROR,
        );
        // Reset value: relaxed ordering and no snoop enabled, Max_Read_Request 512 B (§7.5.3.4).
        let max_read_request_512 = 2 << pcie::DEVCTL_MAX_READ_REQUEST_SHIFT;
        self.set_raw_u16(
            at + pcie::DEVICE_CONTROL,
            pcie::DEVCTL_RELAXED_ORDERING | pcie::DEVCTL_NO_SNOOP | max_read_request_512,
        );
        // Speed 3 = the third bit of the Supported Link Speeds vector (8 GT/s); width x16.
        let speed_8gt = 3;
        let x16 = 16 << pcie::LINK_WIDTH_SHIFT;
        self.set_raw_u32(at + pcie::LINK_CAPABILITIES, speed_8gt | x16);
        self.set_raw_u16(at + pcie::LINK_STATUS, (speed_8gt | x16) as u16);
        // Completion timeout ranges: B (65 ms to 210 ms); completion timeout disable supported.
        self.set_raw_u32(at + pcie::DEVICE_CAPABILITIES_2, 0b0010 | (1 << 4));
        // Supported Link Speeds vector, bits 3:1: 2.5, 5 and 8 GT/s.
        self.set_raw_u32(at + pcie::LINK_CAPABILITIES_2, 0b1110);
        // Target Link Speed defaults to the highest supported speed (§7.5.3.19).
        self.set_raw_u16(at + pcie::LINK_CONTROL_2, speed_8gt as u16);
    }

    /// Fills a 64-bit MSI capability with one vector and no per-vector masking at `at`
    /// (PCIe r5.0 §7.7.1).
    fn init_msi_capability(&mut self, at: usize, next: usize) {
        self.set_raw_u8(at + cap::ID, cap_id::MSI);
        self.set_raw_u8(at + cap::NEXT, next as u8);
        self.set_raw_u16(at + msi::CONTROL, msi::CONTROL_64BIT);
    }

    /// Fills an ATS capability at `at` (PCIe r5.0 §10.5.1): page-aligned requests, invalidate
    /// queue depth 32 (encoded 0), disabled.
    fn init_ats_capability(&mut self, at: usize, next: usize) {
        self.set_raw_u32(at, ext_cap::header(ext_cap_id::ATS, 1, next));
        self.set_raw_u16(at + ats::CAPABILITY, ats::CAP_PAGE_ALIGNED_REQUEST);
    }

    /// Fills a PRI capability at `at` (PCIe r5.0 §10.5.2): disabled and therefore Stopped, with
    /// [`ACCEL_PRI_CAPACITY`] outstanding requests.
    fn init_pri_capability(&mut self, at: usize, next: usize) {
        self.set_raw_u32(at, ext_cap::header(ext_cap_id::PRI, 1, next));
        self.set_raw_u16(at + pri::STATUS, pri::STATUS_STOPPED);
        self.set_raw_u32(at + pri::CAPACITY, ACCEL_PRI_CAPACITY);
    }

    // ---- Software accesses (what a config cycle does) ----

    /// Checks an access: `OutOfRange` if any byte is past the end, else `Misaligned` if the offset
    /// is not a multiple of the width.
    fn check(offset: usize, width: Width) -> Result<(), AccessError> {
        match offset.checked_add(width.bytes()) {
            Some(end) if end <= CONFIG_SPACE_SIZE => {}
            _ => return Err(AccessError::OutOfRange { offset, width }),
        }
        if !offset.is_multiple_of(width.bytes()) {
            return Err(AccessError::Misaligned { offset, width });
        }
        Ok(())
    }

    /// Reads `width` bytes at `offset`, zero-extended; unimplemented registers read 0.
    pub fn read(&self, offset: usize, width: Width) -> Result<u32, AccessError> {
        Self::check(offset, width)?;
        Ok(self.raw(offset, width.bytes()))
    }

    /// Writes the low `width` bytes of `value` at `offset` under the hardware rules: RW bits take
    /// the written value, RW1C bits clear where a 1 is written, every other bit stays. Bits of
    /// `value` above `width` are ignored, as a bus that carries only `width` bytes would.
    pub fn write(&mut self, offset: usize, width: Width, value: u32) -> Result<(), AccessError> {
        Self::check(offset, width)?;
        for i in 0..width.bytes() {
            let at = offset + i;
            let written = (value >> (8 * i)) as u8;
            let (writable, write_one_to_clear) = self.byte_masks(at);
            let old = self.bytes[at];
            self.bytes[at] =
                ((old & !writable) | (written & writable)) & !(written & write_one_to_clear);
        }
        self.after_write(offset, width, value);
        Ok(())
    }

    /// Reads one byte at `offset`.
    pub fn read_u8(&self, offset: usize) -> Result<u8, AccessError> {
        self.read(offset, Width::Byte).map(|v| v as u8)
    }

    /// Reads two bytes at `offset`, which must be even.
    pub fn read_u16(&self, offset: usize) -> Result<u16, AccessError> {
        self.read(offset, Width::Word).map(|v| v as u16)
    }

    /// Reads four bytes at `offset`, which must be a multiple of 4.
    pub fn read_u32(&self, offset: usize) -> Result<u32, AccessError> {
        self.read(offset, Width::Dword)
    }

    /// Writes one byte at `offset` (see [`write`](Self::write)).
    pub fn write_u8(&mut self, offset: usize, value: u8) -> Result<(), AccessError> {
        self.write(offset, Width::Byte, value.into())
    }

    /// Writes two bytes at `offset`, which must be even (see [`write`](Self::write)).
    pub fn write_u16(&mut self, offset: usize, value: u16) -> Result<(), AccessError> {
        self.write(offset, Width::Word, value.into())
    }

    /// Writes four bytes at `offset`, a multiple of 4 (see [`write`](Self::write)).
    pub fn write_u32(&mut self, offset: usize, value: u32) -> Result<(), AccessError> {
        self.write(offset, Width::Dword, value)
    }

    /// The (writable, write-1-to-clear) masks of the byte at `at`; (0, 0) for a read-only byte.
    fn byte_masks(&self, at: usize) -> (u8, u8) {
        // BAR0/BAR1 (PCIe r5.0 §7.5.1.2.1): the address bits at or above log2(size) are writable;
        // BAR0's bits 3:0 (space, type, prefetchable) are read-only.
        let bar_mask = self.bar0_size.address_mask();
        let dword = match at & !3 {
            header::BAR0 => Some(bar_mask as u32 & header::BAR_MEM_ADDRESS_MASK),
            header::BAR1 => Some((bar_mask >> 32) as u32),
            _ => None,
        };
        if let Some(writable) = dword {
            return ((writable >> (8 * (at & 3))) as u8, 0);
        }
        for r in WRITE_RULES {
            if (r.offset..r.offset + r.bytes).contains(&at) {
                let shift = 8 * (at - r.offset);
                return (
                    (r.writable >> shift) as u8,
                    (r.write_one_to_clear >> shift) as u8,
                );
            }
        }
        (0, 0)
    }

    /// Applies the side effects of a write that are commands rather than stored bits.
    /// Today that is PRI Control (PCIe r5.0 §10.5.2.2, §10.5.2.3).
    fn after_write(&mut self, offset: usize, width: Width, value: u32) {
        let control = layout::PRI + pri::CONTROL;
        if !(offset..offset + width.bytes()).contains(&control) {
            return;
        }
        let written = (value >> (8 * (control - offset))) as u16;
        let enabled = self.raw_u16(control) & pri::CONTROL_ENABLE != 0;
        // Reset acts when Enable is clear, or is being cleared by this very write.
        if written & pri::CONTROL_RESET != 0 && !enabled {
            self.pri_reset_pending = true;
        }
        // Stopped is clear while enabled; once disabled it is set as soon as no request is
        // outstanding, which in this model (no requests in flight yet) is at once.
        let status = layout::PRI + pri::STATUS;
        let old = self.raw_u16(status);
        let new = if enabled {
            old & !pri::STATUS_STOPPED
        } else {
            old | pri::STATUS_STOPPED
        };
        self.set_raw_u16(status, new);
    }

    // ---- Decoding helpers, for the driver and the device model ----

    /// The Command register, decoded.
    pub fn command(&self) -> Command {
        Command::from_bits_retain(self.raw_u16(header::COMMAND))
    }

    /// The Status register, decoded.
    pub fn status(&self) -> Status {
        Status::from_bits_retain(self.raw_u16(header::STATUS))
    }

    /// The size of the window BAR0 decodes.
    pub fn bar0_size(&self) -> BarSize {
        self.bar0_size
    }

    /// BAR0's programmed base address (BAR1:BAR0 with the flag bits masked off), or `None` while
    /// it is unassigned: 0, or the all-ones pattern software leaves while sizing the BAR.
    pub fn bar0_address(&self) -> Option<u64> {
        let low = self.raw_u32(header::BAR0) & header::BAR_MEM_ADDRESS_MASK;
        let high = self.raw_u32(header::BAR1);
        let address = (u64::from(high) << 32) | u64::from(low);
        let sizing_pattern = self.bar0_size.address_mask();
        if address == 0 || address == sizing_pattern {
            None
        } else {
            Some(address)
        }
    }

    /// The physical range the device answers on through BAR0: `Some` only when BAR0 is programmed
    /// and Command.MEMORY_SPACE is set.
    pub fn bar0_window(&self) -> Option<Range<u64>> {
        if !self.command().contains(Command::MEMORY_SPACE) {
            return None;
        }
        let base = self.bar0_address()?;
        let end = base.checked_add(self.bar0_size.bytes())?;
        Some(base..end)
    }

    /// The MSI message software programmed, or `None` while MSI is disabled. The device may send
    /// it only while Command.BUS_MASTER is set too (an MSI is a memory write).
    pub fn msi_message(&self) -> Option<MsiMessage> {
        let control = self.raw_u16(layout::MSI + msi::CONTROL);
        if control & msi::CONTROL_ENABLE == 0 {
            return None;
        }
        let low = self.raw_u32(layout::MSI + msi::ADDRESS_LO);
        let high = self.raw_u32(layout::MSI + msi::ADDRESS_HI);
        Some(MsiMessage {
            address: (u64::from(high) << 32) | u64::from(low),
            data: self.raw_u16(layout::MSI + msi::DATA),
        })
    }

    /// The ATS Control register, decoded.
    pub fn ats_control(&self) -> AtsControl {
        let control = self.raw_u16(layout::ATS + ats::CONTROL);
        AtsControl {
            enabled: control & ats::CONTROL_ENABLE != 0,
            smallest_translation_unit: (control & ats::CONTROL_STU_MASK) as u8,
        }
    }

    /// The PRI registers, decoded.
    pub fn pri_state(&self) -> PriState {
        let control = self.raw_u16(layout::PRI + pri::CONTROL);
        let status = self.raw_u16(layout::PRI + pri::STATUS);
        PriState {
            enabled: control & pri::CONTROL_ENABLE != 0,
            stopped: status & pri::STATUS_STOPPED != 0,
            response_failure: status & pri::STATUS_RESPONSE_FAILURE != 0,
            unexpected_prg_index: status & pri::STATUS_UNEXPECTED_PRG_INDEX != 0,
            capacity: self.raw_u32(layout::PRI + pri::CAPACITY),
            allocation: self.raw_u32(layout::PRI + pri::ALLOCATION),
        }
    }

    // ---- Device side: what the hardware's own logic does to its registers ----

    /// Sets Status bits as the hardware would on an event (e.g. RECEIVED_MASTER_ABORT when a DMA
    /// read got Unsupported Request). Only the error bits can be raised; others are ignored.
    pub fn raise_status(&mut self, bits: Status) {
        let status = self.status() | (bits & Status::ERRORS);
        self.set_raw_u16(header::STATUS, status.bits());
    }

    /// Sets or clears Status.INTERRUPT_STATUS: whether the function's INTx is pending.
    pub fn set_interrupt_pending(&mut self, pending: bool) {
        let status = if pending {
            self.status() | Status::INTERRUPT_STATUS
        } else {
            self.status().difference(Status::INTERRUPT_STATUS)
        };
        self.set_raw_u16(header::STATUS, status.bits());
    }

    /// Records in PRI Status that a page request group was answered with Response Failure.
    pub fn pri_record_response_failure(&mut self) {
        let at = layout::PRI + pri::STATUS;
        self.set_raw_u16(at, self.raw_u16(at) | pri::STATUS_RESPONSE_FAILURE);
    }

    /// Records in PRI Status that a response named a page request group never requested.
    pub fn pri_record_unexpected_prg_index(&mut self) {
        let at = layout::PRI + pri::STATUS;
        self.set_raw_u16(at, self.raw_u16(at) | pri::STATUS_UNEXPECTED_PRG_INDEX);
    }

    /// True once after software reset PRI (Control.Reset written while disabled): the device must
    /// then forget its page request credits and pending requests. Clears the latch.
    pub fn take_pri_reset(&mut self) -> bool {
        core::mem::take(&mut self.pri_reset_pending)
    }

    // ---- Capability lists, walked the way a driver does ----

    /// The conventional capability list, in list order.
    pub fn capabilities(&self) -> Capabilities<'_, Self> {
        walk::capabilities(self)
    }

    /// The extended capability list, in list order.
    pub fn extended_capabilities(&self) -> ExtendedCapabilities<'_, Self> {
        walk::extended_capabilities(self)
    }

    /// The offset of the first conventional capability with ID `id` (see [`super::cap_id`]).
    pub fn find_capability(&self, id: u8) -> Option<usize> {
        walk::find_capability(self, id)
    }

    /// The offset of the first extended capability with ID `id` (see [`super::ext_cap_id`]).
    pub fn find_extended_capability(&self, id: u16) -> Option<usize> {
        walk::find_extended_capability(self, id)
    }

    // ---- Raw storage, no checks: only for offsets this file computes from constants ----

    /// `bytes` little-endian bytes at `at`, zero-extended.
    fn raw(&self, at: usize, bytes: usize) -> u32 {
        self.bytes[at..at + bytes]
            .iter()
            .rev()
            .fold(0, |acc, &b| (acc << 8) | u32::from(b))
    }

    /// The 16-bit register at `at`.
    fn raw_u16(&self, at: usize) -> u16 {
        self.raw(at, 2) as u16
    }

    /// The 32-bit register at `at`.
    fn raw_u32(&self, at: usize) -> u32 {
        self.raw(at, 4)
    }

    /// Stores an 8-bit register, bypassing the write rules.
    fn set_raw_u8(&mut self, at: usize, value: u8) {
        self.bytes[at] = value;
    }

    /// Stores a 16-bit register, bypassing the write rules.
    fn set_raw_u16(&mut self, at: usize, value: u16) {
        self.bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }

    /// Stores a 32-bit register, bypassing the write rules.
    fn set_raw_u32(&mut self, at: usize, value: u32) {
        self.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
}

impl ConfigRead for ConfigSpace {
    fn read_dword(&self, offset: usize) -> Result<u32, AccessError> {
        self.read_u32(offset)
    }
}

impl fmt::Debug for ConfigSpace {
    // A summary: 4096 raw bytes would drown the interesting state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSpace")
            .field(
                "vendor_id",
                &format_args!("{:#06x}", self.raw_u16(header::VENDOR_ID)),
            )
            .field(
                "device_id",
                &format_args!("{:#06x}", self.raw_u16(header::DEVICE_ID)),
            )
            .field("command", &self.command())
            .field("status", &self.status())
            .field("bar0_address", &self.bar0_address())
            .field("bar0_size", &self.bar0_size.bytes())
            .field("ats", &self.ats_control())
            .field("pri", &self.pri_state())
            .finish_non_exhaustive()
    }
}
