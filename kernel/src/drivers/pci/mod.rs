//! PCI: find every function, route configuration reads and writes, bind drivers by id.
//!
//! A PCI function is named by its address `segment:bus:device.function` (printed like Linux's
//! `lspci`, e.g. `0000:00:01.0`). A *segment* (PCIe's "PCI Segment Group") is an independent
//! hierarchy of up to 256 buses. This kernel has two:
//!
//! - **Segment 0** ([`HOST_SEGMENT`]) is QEMU's real bus, reached through *configuration mechanism
//!   #1*: write the function's address to CONFIG_ADDRESS (I/O port 0xCF8), then read or write the
//!   dword at CONFIG_DATA (port 0xCFC). PCI Local Bus Specification 3.0, §3.2.2.3.2 "Software
//!   Generation of Configuration Transactions" (PCI 2.1/2.2 §3.7.4.1 "Configuration Mechanism #1");
//!   PCIe r5.0 §7.2.1 "PCI-compatible Configuration Mechanism". It reaches the 256-byte conventional
//!   space only; offsets 0x100 and up need ECAM (PCIe r5.0 §7.2.2).
//! - **Segment 1** ([`SOFTWARE_SEGMENT`]) is a *software segment*: functions emulated by code, such
//!   as the accelerator of `devices::accel`, registered with [`register_software_function`]. They
//!   have the full 4 KiB PCIe configuration space. An address where nothing is registered reads all
//!   ones, exactly like an empty slot on a real bus, so the same scan finds both kinds.
//!
//! Use: [`enumerate`] lists every function, [`print_lspci`] prints that list, [`bind_drivers`] calls
//! each [`PciDriver`]'s `probe` on the functions whose vendor/device id it names, and
//! [`config_read`] / [`config_write`] (or the `pci_types` header types with [`ConfigAccess`]) let a
//! driver program its function's command register and BARs.
//!
//! Linux parallels: `pci_conf1_read`/`pci_conf1_write` (arch/x86/pci/direct.c) for the ports,
//! `pci_scan_child_bus` (drivers/pci/probe.c) for the scan, `pci_match_id` and
//! `__pci_device_probe` (drivers/pci/pci-driver.c) for binding.
//!
//! The only `unsafe` code is the port access in `mechanism1`.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use devices::pci::ids::CLASS_PROCESSING_ACCELERATOR;
use devices::pci::regs::header;
use pci_types::device_type::DeviceType;
use pci_types::{ConfigRegionAccess, HeaderType, PciHeader, PciPciBridgeHeader};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::instructions::port::Port;

use crate::serial_println;

pub use pci_types::PciAddress;

/// The segment of QEMU's real PCI bus (configuration mechanism #1).
pub const HOST_SEGMENT: u16 = 0;

/// The segment of emulated functions (see [`SoftwareFunction`]).
pub const SOFTWARE_SEGMENT: u16 = 1;

/// What a read from a function that does not exist returns: all ones, so its Vendor ID is
/// 0xFFFF, a value PCI-SIG never assigns (PCI 3.0 §6.2.1).
pub const ABSENT: u32 = 0xFFFF_FFFF;

/// Vendor ID of an absent function (the low half of [`ABSENT`]).
const NO_VENDOR: u16 = 0xFFFF;

/// Devices per bus (5-bit device number) and functions per device (3-bit function number).
const DEVICES_PER_BUS: u8 = 32;
/// See [`DEVICES_PER_BUS`].
const FUNCTIONS_PER_DEVICE: u8 = 8;

/// Bytes of configuration space mechanism #1 reaches: the conventional space (PCI 3.0 §6.1).
const CONVENTIONAL_SIZE: u16 = devices::pci::regs::CONVENTIONAL_SIZE as u16;

/// Bytes of configuration space a software function has: the whole PCIe space (PCIe r5.0 §7.2.2).
const SOFTWARE_CONFIG_SIZE: u16 = devices::pci::regs::CONFIG_SPACE_SIZE as u16;

// ---------------------------------------------------------------------------------------------
// Segment 0: configuration mechanism #1.
// ---------------------------------------------------------------------------------------------

/// CONFIG_ADDRESS, a 32-bit read/write register at I/O port 0xCF8 (PCI 3.0 §3.2.2.3.2).
const CONFIG_ADDRESS_PORT: u16 = 0xCF8;
/// CONFIG_DATA, a 32-bit window at I/O port 0xCFC onto the dword CONFIG_ADDRESS selects.
const CONFIG_DATA_PORT: u16 = 0xCFC;
/// CONFIG_ADDRESS bit 31: Enable. Only with it set does a CONFIG_DATA access become a
/// configuration transaction (without it, the access is an ordinary I/O cycle).
const CONFIG_ENABLE: u32 = 1 << 31;

/// The two registers of mechanism #1. They sit behind one lock because a configuration access
/// is two port accesses (address, then data) that must not interleave with another's.
struct Mechanism1 {
    address: Port<u32>,
    data: Port<u32>,
}

/// The one instance of the mechanism #1 registers; only [`mechanism1`] touches them.
static MECHANISM1: Mutex<Mechanism1> = Mutex::new(Mechanism1 {
    address: Port::new(CONFIG_ADDRESS_PORT),
    data: Port::new(CONFIG_DATA_PORT),
});

/// One configuration transaction: read the dword, or write this value to it.
#[derive(Clone, Copy, Debug)]
enum Transaction {
    Read,
    Write(u32),
}

/// The CONFIG_ADDRESS value that selects dword `offset` of `address` on segment 0 (PCI 3.0
/// §3.2.2.3.2, Figure 3-2): bit 31 Enable, bits 23:16 bus, 15:11 device, 10:8 function, 7:2
/// register (dword) number, 1:0 zero. `offset` must be below 0x100 and a multiple of 4.
fn config_address(address: PciAddress, offset: u16) -> u32 {
    CONFIG_ENABLE
        | u32::from(address.bus()) << 16
        | u32::from(address.device()) << 11
        | u32::from(address.function()) << 8
        | u32::from(offset & 0xFC)
}

/// Performs one configuration transaction on segment 0 through ports 0xCF8/0xCFC, with
/// interrupts disabled and the port lock held so that nothing slips between the address write
/// and the data access. Returns the dword read (all ones from an absent function), or
/// [`ABSENT`] after a write. `offset` must be below 0x100 and a multiple of 4.
/// Mirrors Linux's `pci_conf1_read`/`pci_conf1_write`.
fn mechanism1(address: PciAddress, offset: u16, transaction: Transaction) -> u32 {
    let selector = config_address(address, offset);
    without_interrupts(|| {
        let mut ports = MECHANISM1.lock();
        // SAFETY: 0xCF8/0xCFC are the PC chipset's CONFIG_ADDRESS/CONFIG_DATA registers (PCI 3.0
        // §3.2.2.3.2), present on every QEMU x86 machine; only this function touches them, under
        // MECHANISM1's lock with interrupts off, so the address write and the data access form one
        // transaction. With Enable set, a CONFIG_DATA access reaches configuration space only: it
        // reads all ones from an absent function and never touches memory Rust owns. (What a write
        // means to the device, e.g. moving a BAR, concerns whoever maps that BAR, not this access.)
        unsafe {
            ports.address.write(selector);
            match transaction {
                Transaction::Read => ports.data.read(),
                Transaction::Write(value) => {
                    ports.data.write(value);
                    ABSENT
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Segment 1: software functions.
// ---------------------------------------------------------------------------------------------

/// A PCI function emulated in software: its configuration space, one dword at a time.
///
/// `offset` is a multiple of 4 below 0x1000. Follow the hardware rules a real function follows
/// (read-only bits ignore writes, BAR sizing, RW1C bits...); `devices::pci::ConfigSpace` does.
/// Both methods run in the caller's context (interrupts as the caller has them) with no PCI
/// lock held, so they may take locks of their own.
pub trait SoftwareFunction: Send + Sync {
    /// Returns the dword at `offset` of this function's configuration space.
    fn config_read(&self, offset: u16) -> u32;
    /// Writes `value` to the dword at `offset` of this function's configuration space.
    fn config_write(&self, offset: u16, value: u32);
}

/// A software function's place on [`SOFTWARE_SEGMENT`]: (bus, device, function).
type SlotKey = (u8, u8, u8);

/// The registered software functions by place. Its lock is taken with interrupts disabled and
/// never held while calling a function.
static SOFTWARE_FUNCTIONS: Mutex<BTreeMap<SlotKey, Arc<dyn SoftwareFunction>>> =
    Mutex::new(BTreeMap::new());

/// Puts `f` at address `0001:bus:device.function`, where [`enumerate`] will find it and
/// [`config_read`]/[`config_write`] will reach it, like plugging a card into a slot. A function
/// already registered there is replaced (with a warning). Panics if `device` >= 32 or
/// `function` >= 8, which no PCI address can hold.
pub fn register_software_function(bus: u8, device: u8, function: u8, f: Arc<dyn SoftwareFunction>) {
    assert!(
        device < DEVICES_PER_BUS && function < FUNCTIONS_PER_DEVICE,
        "pci::register_software_function: device {device} / function {function} out of range \
         (devices 0..32, functions 0..8)"
    );
    let old = without_interrupts(|| SOFTWARE_FUNCTIONS.lock().insert((bus, device, function), f));
    if old.is_some() {
        log::warn!(
            "replaced the software function at {}",
            PciAddress::new(SOFTWARE_SEGMENT, bus, device, function)
        );
    }
}

/// The software function at `address` (a segment-1 address), if one is registered.
fn software_function(address: PciAddress) -> Option<Arc<dyn SoftwareFunction>> {
    let key = (address.bus(), address.device(), address.function());
    without_interrupts(|| SOFTWARE_FUNCTIONS.lock().get(&key).cloned())
}

/// The buses of the software segment that hold at least one registered function, ascending.
fn software_buses() -> Vec<u8> {
    let mut buses: Vec<u8> = without_interrupts(|| {
        SOFTWARE_FUNCTIONS
            .lock()
            .keys()
            .map(|&(bus, _, _)| bus)
            .collect()
    });
    buses.dedup(); // keys are sorted, so equal buses are adjacent
    buses
}

// ---------------------------------------------------------------------------------------------
// Configuration access, routed by segment.
// ---------------------------------------------------------------------------------------------

/// Panics unless `offset` is dword-aligned: both mechanisms move whole dwords, and a misaligned
/// offset is a bug in the calling driver.
fn check_aligned(caller: &str, address: PciAddress, offset: u16) {
    assert!(
        offset.is_multiple_of(4),
        "pci::{caller}: offset {offset:#x} of {address} is not a multiple of 4"
    );
}

/// Reads the dword at `offset` (a multiple of 4) of `address`'s configuration space, on
/// whichever segment it lives. Returns [`ABSENT`] (all ones) if no function is there, if the
/// segment does not exist, or if `offset` is beyond what the segment reaches (0x100 on segment
/// 0, 0x1000 on segment 1), like Linux's `pci_read_config_dword` failing into `PCI_ERROR_RESPONSE`.
pub fn config_read(address: PciAddress, offset: u16) -> u32 {
    check_aligned("config_read", address, offset);
    match address.segment() {
        HOST_SEGMENT if offset < CONVENTIONAL_SIZE => {
            mechanism1(address, offset, Transaction::Read)
        }
        SOFTWARE_SEGMENT if offset < SOFTWARE_CONFIG_SIZE => {
            software_function(address).map_or(ABSENT, |f| f.config_read(offset))
        }
        _ => ABSENT,
    }
}

/// Writes `value` to the dword at `offset` (a multiple of 4) of `address`'s configuration space,
/// on whichever segment it lives; dropped where [`config_read`] would return [`ABSENT`], as a
/// write to an empty slot is on real hardware. To change part of a dword, read it first.
pub fn config_write(address: PciAddress, offset: u16, value: u32) {
    check_aligned("config_write", address, offset);
    match address.segment() {
        HOST_SEGMENT if offset < CONVENTIONAL_SIZE => {
            mechanism1(address, offset, Transaction::Write(value));
        }
        SOFTWARE_SEGMENT if offset < SOFTWARE_CONFIG_SIZE => {
            if let Some(f) = software_function(address) {
                f.config_write(offset, value);
            }
        }
        _ => {}
    }
}

/// `pci_types`' access trait over [`config_read`]/[`config_write`], for both segments: pass it
/// to `pci_types::PciHeader`, `EndpointHeader` (`bar`, `update_command`, `capabilities`...) and
/// `PciPciBridgeHeader`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigAccess;

impl ConfigRegionAccess for ConfigAccess {
    // The trait makes these `unsafe fn` for accesses such as ECAM that go through raw pointers;
    // ours are safe functions for every address and offset (see config_read/config_write).
    unsafe fn read(&self, address: PciAddress, offset: u16) -> u32 {
        config_read(address, offset)
    }

    unsafe fn write(&self, address: PciAddress, offset: u16, value: u32) {
        config_write(address, offset, value)
    }
}

// ---------------------------------------------------------------------------------------------
// Enumeration.
// ---------------------------------------------------------------------------------------------

/// What enumeration learns about one function: where it is and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    /// segment:bus:device.function (`address.segment()`, `.bus()`, `.device()`, `.function()`).
    pub address: PciAddress,
    /// Vendor ID (offset 0x00).
    pub vendor_id: u16,
    /// Device ID (offset 0x02).
    pub device_id: u16,
    /// Base class (offset 0x0B), e.g. 0x06 bridge.
    pub class: u8,
    /// Sub-class (offset 0x0A), e.g. 0x01 ISA bridge within class 0x06.
    pub subclass: u8,
    /// Programming interface (offset 0x09).
    pub prog_if: u8,
    /// Header Type register as read (offset 0x0E): bits 6:0 the layout, bit 7 multi-function.
    pub header_type: u8,
    /// Revision ID (offset 0x08).
    pub revision: u8,
}

impl PciFunction {
    /// The header layout (Header Type bits 6:0): endpoint, PCI-to-PCI bridge or CardBus bridge.
    pub fn header_layout(&self) -> HeaderType {
        match self.header_type & header::HEADER_TYPE_LAYOUT_MASK {
            header::HEADER_TYPE_ENDPOINT => HeaderType::Endpoint,
            header::HEADER_TYPE_BRIDGE => HeaderType::PciPciBridge,
            header::HEADER_TYPE_CARDBUS => HeaderType::CardBusBridge,
            other => HeaderType::Unknown(other),
        }
    }

    /// Whether the device has more than one function (Header Type bit 7; meaningful on function 0).
    pub fn is_multi_function(&self) -> bool {
        self.header_type & header::HEADER_TYPE_MULTI_FUNCTION != 0
    }

    /// A human-readable name for the function's class, as `lspci` prints it.
    pub fn class_name(&self) -> &'static str {
        class_name(self.class, self.subclass)
    }
}

/// One `lspci -n`-like line: `0000:00:01.0 8086:7000 [0601] ISA bridge`.
impl fmt::Display for PciFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} [{:02x}{:02x}] {}",
            self.address,
            self.vendor_id,
            self.device_id,
            self.class,
            self.subclass,
            self.class_name()
        )
    }
}

/// Reads the identity of the function at `address`, or `None` if nothing answers there
/// (Vendor ID 0xFFFF).
pub fn function_at(address: PciAddress) -> Option<PciFunction> {
    let header = PciHeader::new(address);
    let (vendor_id, device_id) = header.id(ConfigAccess);
    if vendor_id == NO_VENDOR {
        return None;
    }
    let (revision, class, subclass, prog_if) = header.revision_and_class(ConfigAccess);
    let header_dword = config_read(address, (header::HEADER_TYPE & !3) as u16);
    Some(PciFunction {
        address,
        vendor_id,
        device_id,
        class,
        subclass,
        prog_if,
        header_type: (header_dword >> (8 * (header::HEADER_TYPE & 3))) as u8,
        revision,
    })
}

/// Every function on both segments, sorted by address. Scans the real bus anew on each call, so
/// it also sees software functions registered since the last call.
///
/// A scan (Linux's `pci_scan_child_bus`) visits all 32 devices of a bus; a device is present if
/// function 0 answers, and its functions 1..=7 are probed only if function 0's Header Type has
/// the multi-function bit. A PCI-to-PCI bridge adds its secondary bus to the scan (bus numbers
/// as the firmware assigned them; we do not renumber).
/// Root buses: segment 0 starts at bus 0 (QEMU's i440fx has one host bridge, 00:00.0; if the host
/// bridge were multi-function, function n would be the host bridge of bus n). The software
/// segment has no bridges to follow, so every bus that holds a registered function is a root.
pub fn enumerate() -> Vec<PciFunction> {
    let mut found = Vec::new();
    scan_segment(HOST_SEGMENT, &host_root_buses(), &mut found);
    scan_segment(SOFTWARE_SEGMENT, &software_buses(), &mut found);
    found.sort_by_key(|f| f.address);
    found
}

/// The root buses of segment 0: bus 0, plus bus n for each function n > 0 of a multi-function
/// host bridge at 00:00.0 (systems with several host controllers).
fn host_root_buses() -> Vec<u8> {
    let mut roots = Vec::from([0]);
    let host_bridge = PciHeader::new(PciAddress::new(HOST_SEGMENT, 0, 0, 0));
    if host_bridge.has_multiple_functions(ConfigAccess) {
        roots.extend((1..FUNCTIONS_PER_DEVICE).filter(|&function| {
            function_at(PciAddress::new(HOST_SEGMENT, 0, 0, function)).is_some()
        }));
    }
    roots
}

/// Scans `roots` of `segment` and every bus behind a bridge found there, each bus once,
/// appending the functions found to `found`.
fn scan_segment(segment: u16, roots: &[u8], found: &mut Vec<PciFunction>) {
    let mut scanned = [false; 256];
    let mut pending: Vec<u8> = roots.to_vec();
    while let Some(bus) = pending.pop() {
        if core::mem::replace(&mut scanned[usize::from(bus)], true) {
            continue; // a bus named twice (a misconfigured bridge) is scanned once
        }
        scan_bus(segment, bus, found, &mut pending);
    }
}

/// Scans the 32 devices of one bus, appending functions to `found` and bridges' secondary buses
/// to `pending`.
fn scan_bus(segment: u16, bus: u8, found: &mut Vec<PciFunction>, pending: &mut Vec<u8>) {
    for device in 0..DEVICES_PER_BUS {
        let Some(function0) = function_at(PciAddress::new(segment, bus, device, 0)) else {
            continue;
        };
        let functions = if function0.is_multi_function() {
            FUNCTIONS_PER_DEVICE
        } else {
            1
        };
        for function in 0..functions {
            let address = PciAddress::new(segment, bus, device, function);
            let Some(f) = function_at(address) else {
                continue;
            };
            if f.header_layout() == HeaderType::PciPciBridge {
                if let Some(bridge) =
                    PciPciBridgeHeader::from_header(PciHeader::new(address), ConfigAccess)
                {
                    let secondary = bridge.secondary_bus_number(ConfigAccess);
                    // 0 means the firmware left the bridge unconfigured: nothing to follow.
                    if secondary != 0 {
                        pending.push(secondary);
                    }
                }
            }
            found.push(f);
        }
    }
}

/// Prints every function, one `lspci`-like line each, on the serial console.
pub fn print_lspci() {
    for f in enumerate() {
        serial_println!("{f}");
    }
}

mod driver;
mod names;

pub use driver::{bind_drivers, bound_driver, PciDriver};
pub use names::class_name;
