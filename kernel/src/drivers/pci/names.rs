//! Human names of PCI class codes (for `lspci`), after the PCI Code and ID Assignment
//! Specification.
#![forbid(unsafe_code)]

use super::*;

// ---------------------------------------------------------------------------------------------
// Class names.
// ---------------------------------------------------------------------------------------------

/// The name `lspci` gives class `class`/`subclass` (names from the PCI Code and ID Assignment
/// Specification r1.11 as pciutils' pci.ids spells them): the sub-class's name for the common
/// ones, else the base class's.
pub fn class_name(class: u8, subclass: u8) -> &'static str {
    match DeviceType::from((class, subclass)) {
        DeviceType::ScsiBusController => "SCSI storage controller",
        DeviceType::IdeController => "IDE interface",
        DeviceType::FloppyController => "Floppy disk controller",
        DeviceType::RaidController => "RAID bus controller",
        DeviceType::SataController => "SATA controller",
        DeviceType::NvmeController => "Non-Volatile memory controller",
        DeviceType::EthernetController => "Ethernet controller",
        DeviceType::VgaCompatibleController => "VGA compatible controller",
        DeviceType::AudioDevice => "Audio device",
        DeviceType::RamController => "RAM memory",
        DeviceType::HostBridge => "Host bridge",
        DeviceType::IsaBridge => "ISA bridge",
        DeviceType::PciPciBridge => "PCI bridge",
        DeviceType::CardBusBridge => "CardBus bridge",
        DeviceType::SerialController => "Serial controller",
        DeviceType::InterruptController => "PIC",
        DeviceType::SystemTimer => "Timer",
        DeviceType::UsbController => "USB controller",
        DeviceType::SmBusController => "SMBus",
        _ => base_class_name(class),
    }
}

/// The name of a base class (PCI Code and ID Assignment Specification r1.11, §1).
fn base_class_name(class: u8) -> &'static str {
    match class {
        0x00 => "Unclassified device",
        0x01 => "Mass storage controller",
        0x02 => "Network controller",
        0x03 => "Display controller",
        0x04 => "Multimedia controller",
        0x05 => "Memory controller",
        0x06 => "Bridge",
        0x07 => "Communication controller",
        0x08 => "Generic system peripheral",
        0x09 => "Input device controller",
        0x0A => "Docking station",
        0x0B => "Processor",
        0x0C => "Serial bus controller",
        0x0D => "Wireless controller",
        0x0E => "Intelligent controller",
        0x0F => "Satellite communications controller",
        0x10 => "Encryption controller",
        0x11 => "Signal processing controller",
        CLASS_PROCESSING_ACCELERATOR => "Processing accelerator",
        0x13 => "Non-essential instrumentation",
        0x40 => "Coprocessor",
        0xFF => "Unassigned class",
        _ => "Unknown class",
    }
}
