//! The PCI layer: QEMU's real bus through ports 0xCF8/0xCFC (segment 0), software functions on
//! segment 1, configuration reads of empty slots, driver binding by vendor/device id.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(kernel::testing::test_runner)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use devices::pci::ConfigSpace;
use kernel::drivers::pci::{
    self, bind_drivers, config_read, config_write, enumerate, register_software_function,
    ConfigAccess, PciAddress, PciDriver, PciFunction, SoftwareFunction, ABSENT, SOFTWARE_SEGMENT,
};
use kernel::serial_println;
use pci_types::{Bar, EndpointHeader, PciHeader};
use spin::Mutex;

kernel::test_kernel!();

/// Ids of the fake function: made up, and unlike any of QEMU's or our accelerator's.
const FAKE_VENDOR: u16 = 0xFA4E;
const FAKE_DEVICE: u16 = 0x0042;
/// Where the fake function sits on the software segment: 0001:05:03.0.
const FAKE_BUS: u8 = 5;
const FAKE_DEVICE_NUMBER: u8 = 3;

/// A tiny software function: fixed ids, class "signal processing controller" (0x1180),
/// revision 7, a single-function endpoint, and one writable dword (the Command/Status dword) so
/// that writes can be seen to arrive.
struct FakeFunction {
    command: AtomicU32,
}

impl SoftwareFunction for FakeFunction {
    fn config_read(&self, offset: u16) -> u32 {
        match offset {
            0x00 => u32::from(FAKE_DEVICE) << 16 | u32::from(FAKE_VENDOR),
            0x04 => self.command.load(Ordering::Relaxed),
            0x08 => 0x1180_0007,
            _ => 0, // Header Type 0 (endpoint, single function), no BARs, no capabilities
        }
    }

    fn config_write(&self, offset: u16, value: u32) {
        if offset == 0x04 {
            self.command.store(value & 0xFFFF, Ordering::Relaxed);
        }
    }
}

/// The accelerator's configuration-space model from devices/, as a software function.
struct ModelFunction(Mutex<ConfigSpace>);

impl SoftwareFunction for ModelFunction {
    fn config_read(&self, offset: u16) -> u32 {
        self.0
            .lock()
            .read_u32(usize::from(offset))
            .unwrap_or(ABSENT)
    }

    fn config_write(&self, offset: u16, value: u32) {
        // A write the model rejects (none should be: offsets are aligned and in range) is dropped.
        let _ = self.0.lock().write_u32(usize::from(offset), value);
    }
}

fn fake_address() -> PciAddress {
    PciAddress::new(SOFTWARE_SEGMENT, FAKE_BUS, FAKE_DEVICE_NUMBER, 0)
}

/// Registers the fake function (once; later calls find it there).
fn register_fake() {
    if config_read(fake_address(), 0) == ABSENT {
        register_software_function(
            FAKE_BUS,
            FAKE_DEVICE_NUMBER,
            0,
            Arc::new(FakeFunction {
                command: AtomicU32::new(0),
            }),
        );
    }
}

fn find(segment: u16, bus: u8, device: u8, function: u8) -> Option<PciFunction> {
    let address = PciAddress::new(segment, bus, device, function);
    enumerate().into_iter().find(|f| f.address == address)
}

#[test_case]
fn lspci_prints_every_function() {
    serial_println!();
    pci::print_lspci();
    assert!(
        enumerate().len() >= 2,
        "fewer than two functions on QEMU's bus"
    );
}

#[test_case]
fn host_bridge_is_i440fx_at_00_00_0() {
    let host = find(0, 0, 0, 0).expect("no function at 0000:00:00.0");
    assert_eq!((host.vendor_id, host.device_id), (0x8086, 0x1237));
    assert_eq!((host.class, host.subclass), (0x06, 0x00));
    assert_eq!(host.class_name(), "Host bridge");
}

#[test_case]
fn isa_bridge_piix3_exists() {
    let isa = enumerate()
        .into_iter()
        .find(|f| f.vendor_id == 0x8086 && f.device_id == 0x7000)
        .expect("no 8086:7000 ISA bridge");
    assert_eq!(isa.address.segment(), 0);
    assert_eq!((isa.class, isa.subclass), (0x06, 0x01));
    assert!(
        isa.is_multi_function(),
        "PIIX3 at {} is one device with several functions (ISA, IDE, ACPI)",
        isa.address
    );
    // Its other functions were found through the multi-function bit.
    let siblings = enumerate()
        .into_iter()
        .filter(|f| {
            f.address.bus() == isa.address.bus() && f.address.device() == isa.address.device()
        })
        .count();
    assert!(siblings > 1, "only function 0 of the PIIX3 was enumerated");
}

#[test_case]
fn empty_slots_and_unknown_segments_read_all_ones() {
    // Nothing registered at 0001:42:1f.7, no segment 7, and 0000:00:1f.0 is an empty slot on
    // QEMU's default machine.
    assert_eq!(
        config_read(PciAddress::new(SOFTWARE_SEGMENT, 0x42, 0x1f, 7), 0),
        ABSENT
    );
    assert_eq!(
        config_read(PciAddress::new(SOFTWARE_SEGMENT, 0x42, 0x1f, 7), 0x08),
        ABSENT
    );
    assert_eq!(config_read(PciAddress::new(7, 0, 0, 0), 0), ABSENT);
    assert_eq!(config_read(PciAddress::new(0, 0, 0x1f, 0), 0), ABSENT);
    // Mechanism #1 reaches only the conventional 256 bytes.
    assert_eq!(config_read(PciAddress::new(0, 0, 0, 0), 0x100), ABSENT);
    // A write to an empty software slot goes nowhere.
    config_write(PciAddress::new(SOFTWARE_SEGMENT, 0x42, 0x1f, 7), 0x04, 0x6);
    assert!(find(SOFTWARE_SEGMENT, 0x42, 0x1f, 7).is_none());
}

#[test_case]
fn software_function_is_enumerated() {
    register_fake();
    let fake = find(SOFTWARE_SEGMENT, FAKE_BUS, FAKE_DEVICE_NUMBER, 0)
        .expect("the registered fake function was not enumerated");
    assert_eq!((fake.vendor_id, fake.device_id), (FAKE_VENDOR, FAKE_DEVICE));
    assert_eq!((fake.class, fake.subclass, fake.revision), (0x11, 0x80, 7));
    // Single-function: functions 1..=7 of the device are not probed, nor listed.
    assert!(find(SOFTWARE_SEGMENT, FAKE_BUS, FAKE_DEVICE_NUMBER, 1).is_none());
    serial_println!("({fake})");
}

#[test_case]
fn config_write_reaches_software_function() {
    register_fake();
    // Memory Space + Bus Master, through pci_types' header type and our access.
    let mut header = EndpointHeader::from_header(PciHeader::new(fake_address()), ConfigAccess)
        .expect("the fake function is an endpoint");
    header.update_command(ConfigAccess, |c| {
        c | pci_types::CommandRegister::MEMORY_ENABLE
            | pci_types::CommandRegister::BUS_MASTER_ENABLE
    });
    assert_eq!(config_read(fake_address(), 0x04) & 0xFFFF, 0x6);
}

static FAKE_PROBES: AtomicUsize = AtomicUsize::new(0);
static WRONG_PROBES: AtomicUsize = AtomicUsize::new(0);

fn fake_probe(f: &PciFunction) {
    assert_eq!(f.address, fake_address());
    FAKE_PROBES.fetch_add(1, Ordering::SeqCst);
}

fn wrong_probe(f: &PciFunction) {
    serial_println!("wrong driver probed {f}");
    WRONG_PROBES.fetch_add(1, Ordering::SeqCst);
}

#[test_case]
fn fake_driver_is_bound_exactly_once() {
    register_fake();
    let drivers = [
        PciDriver {
            name: "nothing",
            vendor_id: FAKE_VENDOR,
            device_id: FAKE_DEVICE + 1,
            probe: wrong_probe,
        },
        PciDriver {
            name: "fake",
            vendor_id: FAKE_VENDOR,
            device_id: FAKE_DEVICE,
            probe: fake_probe,
        },
    ];
    bind_drivers(&drivers);
    assert_eq!(FAKE_PROBES.load(Ordering::SeqCst), 1);
    assert_eq!(pci::bound_driver(fake_address()), Some("fake"));
    // A second pass (as after a later registration) does not probe a bound function again.
    bind_drivers(&drivers);
    assert_eq!(FAKE_PROBES.load(Ordering::SeqCst), 1);
    assert_eq!(WRONG_PROBES.load(Ordering::SeqCst), 0);
}

#[test_case]
fn accelerator_model_on_software_segment() {
    // The devices/ model at 0001:09:00.0 (the accelerator driver uses its own address).
    let address = PciAddress::new(SOFTWARE_SEGMENT, 9, 0, 0);
    if config_read(address, 0) == ABSENT {
        register_software_function(
            9,
            0,
            0,
            Arc::new(ModelFunction(Mutex::new(ConfigSpace::accelerator()))),
        );
    }
    let accel = find(SOFTWARE_SEGMENT, 9, 0, 0).expect("the accelerator model was not enumerated");
    assert_eq!((accel.vendor_id, accel.device_id), (0x7EAC, 0x0001));
    assert_eq!(accel.class_name(), "Processing accelerator");
    serial_println!("({accel})");
    // BAR0 sizing through config_write/config_read, as pci_types does it: a 16 KiB 64-bit BAR.
    let header = EndpointHeader::from_header(PciHeader::new(address), ConfigAccess)
        .expect("the accelerator is an endpoint");
    match header.bar(0, ConfigAccess) {
        Some(Bar::Memory64 { size, .. }) => assert_eq!(size, 16 * 1024),
        other => panic!("BAR0 of the accelerator is {other:?}"),
    }
}
