//! Host tests of the configuration-space model: each asserts one piece of hardware behaviour.

extern crate std;

use super::regs::{ats, cap, header, msi, pcie, pri, CONFIG_SPACE_SIZE};
use super::*;

/// A 64 KiB BAR0, and an identity whose every field differs from the others, so a field read from
/// the wrong offset shows.
fn test_identity() -> ids::DeviceIdentity {
    ids::DeviceIdentity {
        vendor_id: 0x1234,
        device_id: 0x5678,
        revision_id: 0x9A,
        class: ids::ClassCode {
            base: 0x12,
            sub: 0x34,
            prog_if: 0x56,
        },
        subsystem_vendor_id: 0xABCD,
        subsystem_id: 0xEF01,
    }
}

fn bar_size(bytes: u64) -> BarSize {
    BarSize::new(bytes).expect("valid BAR size in test")
}

fn test_config() -> ConfigSpace {
    ConfigSpace::new(&test_identity(), bar_size(64 * 1024))
}

#[test]
fn identity_reads_back() {
    let cs = test_config();
    assert_eq!(cs.read_u16(header::VENDOR_ID), Ok(0x1234));
    assert_eq!(cs.read_u16(header::DEVICE_ID), Ok(0x5678));
    assert_eq!(cs.read_u32(header::VENDOR_ID), Ok(0x5678_1234));
    assert_eq!(cs.read_u8(header::REVISION_ID), Ok(0x9A));
    // Dword 0x08: base class, sub-class, prog-if, revision from high byte to low.
    assert_eq!(cs.read_u32(header::REVISION_ID), Ok(0x1234_569A));
    assert_eq!(cs.read_u16(header::SUBSYSTEM_VENDOR_ID), Ok(0xABCD));
    assert_eq!(cs.read_u16(header::SUBSYSTEM_ID), Ok(0xEF01));
    assert_eq!(
        cs.read_u8(header::HEADER_TYPE),
        Ok(header::HEADER_TYPE_ENDPOINT)
    );
    assert_eq!(
        cs.read_u8(header::INTERRUPT_PIN),
        Ok(header::INTERRUPT_PIN_INTA)
    );
    assert_eq!(
        cs.read_u8(header::CAPABILITIES_POINTER),
        Ok(layout::PCIE as u8)
    );
}

#[test]
fn accelerator_identity_is_a_processing_accelerator() {
    let cs = ConfigSpace::accelerator();
    assert_eq!(cs.read_u16(header::VENDOR_ID), Ok(ids::ACCEL_VENDOR_ID));
    assert_eq!(cs.read_u16(header::DEVICE_ID), Ok(ids::ACCEL_DEVICE_ID));
    assert_eq!(
        cs.read_u8(header::BASE_CLASS),
        Ok(ids::CLASS_PROCESSING_ACCELERATOR)
    );
    assert_eq!(cs.read_u8(header::BASE_CLASS), Ok(0x12));
    assert_eq!(cs.bar0_size(), ids::ACCEL_BAR0_SIZE);
    assert_eq!(cs.pri_state().capacity, ids::ACCEL_PRI_CAPACITY);
    // Not one of the vendors QEMU's own devices use.
    assert!(![0x8086, 0x1234, 0x1af4, 0x1b36].contains(&ids::ACCEL_VENDOR_ID));
}

#[test]
fn read_only_header_fields_ignore_writes() {
    let mut cs = test_config();
    let before = cs.clone();
    for offset in [
        header::VENDOR_ID,
        header::REVISION_ID,
        header::CACHE_LINE_SIZE & !3, // Dword 0x0C: latency timer, header type, BIST are RO...
        header::CARDBUS_CIS_POINTER,
        header::SUBSYSTEM_VENDOR_ID,
        header::CAPABILITIES_POINTER,
    ] {
        cs.write_u32(offset, 0xFFFF_FFFF).unwrap();
    }
    for offset in [
        header::VENDOR_ID,
        header::REVISION_ID,
        header::SUBSYSTEM_VENDOR_ID,
    ] {
        assert_eq!(
            cs.read_u32(offset),
            before.read_u32(offset),
            "offset {offset:#x}"
        );
    }
    assert_eq!(
        cs.read_u8(header::CAPABILITIES_POINTER),
        Ok(layout::PCIE as u8)
    );
    assert_eq!(
        cs.read_u8(header::HEADER_TYPE),
        Ok(header::HEADER_TYPE_ENDPOINT)
    );
    assert_eq!(cs.read_u8(header::LATENCY_TIMER), Ok(0));
    assert_eq!(cs.read_u8(header::BIST), Ok(0));
    // ...but Cache Line Size is RW scratch (PCIe r5.0 §7.5.1.1.7).
    assert_eq!(cs.read_u8(header::CACHE_LINE_SIZE), Ok(0xFF));
    // Interrupt Pin is RO, Interrupt Line beside it is RW.
    cs.write_u16(header::INTERRUPT_LINE, 0xFF0B).unwrap();
    assert_eq!(cs.read_u8(header::INTERRUPT_LINE), Ok(0x0B));
    assert_eq!(
        cs.read_u8(header::INTERRUPT_PIN),
        Ok(header::INTERRUPT_PIN_INTA)
    );
}

#[test]
fn command_keeps_only_implemented_bits() {
    let mut cs = test_config();
    assert_eq!(cs.command(), Command::empty());
    cs.write_u16(header::COMMAND, 0xFFFF).unwrap();
    assert_eq!(cs.read_u16(header::COMMAND), Ok(0x0406));
    assert_eq!(
        cs.command(),
        Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTX_DISABLE
    );
    assert_eq!(cs.command(), COMMAND_IMPLEMENTED);
    assert!(!cs
        .command()
        .intersects(Command::IO_SPACE | Command::SERR_ENABLE));
    // Clearing works too: the register holds what was last written, masked.
    cs.write_u16(header::COMMAND, Command::BUS_MASTER.bits())
        .unwrap();
    assert_eq!(cs.command(), Command::BUS_MASTER);
    // Debug names the bits, unnamed ones in hex.
    let some = Command::MEMORY_SPACE | Command::BUS_MASTER | Command::from_bits_retain(0x8000);
    assert_eq!(
        std::format!("{some:?}"),
        "Command(MEMORY_SPACE | BUS_MASTER | 0x8000)"
    );
    assert_eq!(std::format!("{:?}", Command::empty()), "Command(0x0)");
}

#[test]
fn status_reports_capability_list_and_ignores_ro_writes() {
    let mut cs = test_config();
    assert_eq!(cs.status(), Status::CAPABILITIES_LIST);
    assert_eq!(cs.read_u16(header::STATUS), Ok(1 << 4));
    cs.write_u16(header::STATUS, 0xFFFF).unwrap();
    assert_eq!(cs.status(), Status::CAPABILITIES_LIST);
    // Interrupt Status is set by the device only.
    cs.set_interrupt_pending(true);
    assert!(cs
        .status()
        .contains(Status::INTERRUPT_STATUS | Status::CAPABILITIES_LIST));
    cs.write_u16(header::STATUS, Status::INTERRUPT_STATUS.bits())
        .unwrap();
    assert!(cs.status().contains(Status::INTERRUPT_STATUS));
    cs.set_interrupt_pending(false);
    assert_eq!(cs.status(), Status::CAPABILITIES_LIST);
}

#[test]
fn status_error_bits_are_write_one_to_clear() {
    let mut cs = test_config();
    cs.raise_status(Status::RECEIVED_MASTER_ABORT | Status::SIGNALED_TARGET_ABORT);
    let raised =
        Status::CAPABILITIES_LIST | Status::RECEIVED_MASTER_ABORT | Status::SIGNALED_TARGET_ABORT;
    assert_eq!(cs.status(), raised);
    // Writing 0s clears nothing.
    cs.write_u16(header::STATUS, 0).unwrap();
    assert_eq!(cs.status(), raised);
    // A dword write of Command (Status half 0), the usual driver idiom, leaves Status alone.
    cs.write_u32(header::COMMAND, u32::from(Command::MEMORY_SPACE.bits()))
        .unwrap();
    assert_eq!(cs.status(), raised);
    assert_eq!(cs.command(), Command::MEMORY_SPACE);
    // Writing 1 to one bit clears exactly that bit.
    cs.write_u16(header::STATUS, Status::RECEIVED_MASTER_ABORT.bits())
        .unwrap();
    assert_eq!(
        cs.status(),
        Status::CAPABILITIES_LIST | Status::SIGNALED_TARGET_ABORT
    );
    cs.write_u8(header::STATUS + 1, 0xFF).unwrap();
    assert_eq!(cs.status(), Status::CAPABILITIES_LIST);
}

#[test]
fn bar0_reset_state_is_64bit_memory_unassigned() {
    let cs = test_config();
    assert_eq!(cs.read_u32(header::BAR0), Ok(header::BAR_MEM_TYPE_64));
    assert_eq!(cs.read_u32(header::BAR1), Ok(0));
    assert_eq!(cs.bar0_address(), None);
    assert_eq!(cs.bar0_window(), None);
    // BAR2..BAR5 are not implemented.
    for bar in (header::BAR0 + 8..=header::BAR5).step_by(4) {
        assert_eq!(cs.read_u32(bar), Ok(0), "BAR at {bar:#x}");
    }
}

/// What Linux's `__pci_read_base` does for a 64-bit BAR: save, write all ones to both halves, read
/// back, restore; returns the size the BAR decodes.
fn size_bar0(cs: &mut ConfigSpace) -> u64 {
    let (saved_lo, saved_hi) = (
        cs.read_u32(header::BAR0).unwrap(),
        cs.read_u32(header::BAR1).unwrap(),
    );
    cs.write_u32(header::BAR0, 0xFFFF_FFFF).unwrap();
    cs.write_u32(header::BAR1, 0xFFFF_FFFF).unwrap();
    let lo = cs.read_u32(header::BAR0).unwrap();
    let hi = cs.read_u32(header::BAR1).unwrap();
    cs.write_u32(header::BAR0, saved_lo).unwrap();
    cs.write_u32(header::BAR1, saved_hi).unwrap();
    assert_eq!(lo & header::BAR_IO_SPACE, 0, "memory BAR");
    assert_eq!(lo & header::BAR_MEM_TYPE_MASK, header::BAR_MEM_TYPE_64);
    let mask = (u64::from(hi) << 32) | u64::from(lo & header::BAR_MEM_ADDRESS_MASK);
    (!mask).wrapping_add(1)
}

#[test]
fn bar0_sizing_protocol_returns_size_mask_with_type_bits() {
    let mut cs = test_config();
    assert_eq!(size_bar0(&mut cs), 64 * 1024);
    // Sizing saved and restored the (unassigned) BAR.
    assert_eq!(cs.read_u32(header::BAR0), Ok(header::BAR_MEM_TYPE_64));
    assert_eq!(cs.read_u32(header::BAR1), Ok(0));
    // Step by step: 64 KiB means address bits 31:16 writable, 15:4 read 0, 3:0 the RO type bits.
    cs.write_u32(header::BAR0, 0xFFFF_FFFF).unwrap();
    assert_eq!(
        cs.read_u32(header::BAR0),
        Ok(0xFFFF_0000 | header::BAR_MEM_TYPE_64)
    );
    cs.write_u32(header::BAR1, 0xFFFF_FFFF).unwrap();
    assert_eq!(cs.read_u32(header::BAR1), Ok(0xFFFF_FFFF));
    // The all-ones sizing pattern is not an address.
    assert_eq!(cs.bar0_address(), None);
    cs.write_u16(header::COMMAND, Command::MEMORY_SPACE.bits())
        .unwrap();
    assert_eq!(cs.bar0_window(), None);
}

#[test]
fn bar0_sizing_works_for_every_size_including_above_4gib() {
    for shift in 4..=40 {
        let mut cs = ConfigSpace::new(&test_identity(), bar_size(1 << shift));
        assert_eq!(size_bar0(&mut cs), 1 << shift, "BAR of 2^{shift} bytes");
    }
    // An 8 GiB BAR has no writable bit in its low half.
    let mut cs = ConfigSpace::new(&test_identity(), bar_size(8 << 30));
    cs.write_u32(header::BAR0, 0xFFFF_FFFF).unwrap();
    cs.write_u32(header::BAR1, 0xFFFF_FFFF).unwrap();
    assert_eq!(cs.read_u32(header::BAR0), Ok(header::BAR_MEM_TYPE_64));
    assert_eq!(cs.read_u32(header::BAR1), Ok(0xFFFF_FFFE));
}

#[test]
fn bar0_programming_gives_address_and_window() {
    let mut cs = test_config();
    // Unaligned low address bits and the RO flag bits are dropped.
    cs.write_u32(header::BAR0, 0xFEB4_123F).unwrap();
    cs.write_u32(header::BAR1, 0x0000_0008).unwrap();
    assert_eq!(
        cs.read_u32(header::BAR0),
        Ok(0xFEB4_0000 | header::BAR_MEM_TYPE_64)
    );
    assert_eq!(cs.bar0_address(), Some(0x8_FEB4_0000));
    // The device decodes only with Memory Space Enable.
    assert_eq!(cs.bar0_window(), None);
    cs.write_u16(header::COMMAND, Command::MEMORY_SPACE.bits())
        .unwrap();
    assert_eq!(cs.bar0_window(), Some(0x8_FEB4_0000..0x8_FEB5_0000));
}

#[test]
fn bar_size_must_be_a_power_of_two_of_at_least_16() {
    assert_eq!(BarSize::new(0), None);
    assert_eq!(BarSize::new(8), None);
    assert_eq!(BarSize::new(3 * 4096), None);
    assert_eq!(BarSize::new(16).map(BarSize::bytes), Some(16));
    assert_eq!(BarSize::new(1 << 63).map(BarSize::bytes), Some(1 << 63));
}

#[test]
fn unimplemented_registers_read_zero_and_ignore_writes() {
    let mut cs = test_config();
    let unimplemented = [
        header::BAR0 + 8, // BAR2
        header::BAR5,
        header::EXPANSION_ROM_BASE,
        0x38, // reserved
        header::MIN_GNT & !3,
        layout::PCIE + pcie::SLOT_CAPABILITIES,
        layout::PCIE + pcie::ROOT_CONTROL,
        0xC0,  // free conventional space
        0x200, // free extended space
        CONFIG_SPACE_SIZE - 4,
    ];
    for offset in unimplemented {
        cs.write_u32(offset, 0xFFFF_FFFF).unwrap();
        let expected = if offset == header::MIN_GNT & !3 {
            // Dword 0x3C holds Interrupt Line (RW) and Pin (RO) below Min_Gnt/Max_Lat (0).
            0x0000_01FF
        } else {
            0
        };
        assert_eq!(cs.read_u32(offset), Ok(expected), "offset {offset:#x}");
    }
}

#[test]
fn capability_walk_finds_pcie_then_msi_and_ends() {
    let cs = test_config();
    let found: std::vec::Vec<Capability> = cs.capabilities().collect();
    assert_eq!(
        found,
        [
            Capability {
                id: cap_id::PCI_EXPRESS,
                offset: layout::PCIE
            },
            Capability {
                id: cap_id::MSI,
                offset: layout::MSI
            },
        ]
    );
    // The list says so itself: pointer -> PCIe -> MSI -> 0.
    assert_eq!(cs.read_u8(layout::PCIE + cap::NEXT), Ok(layout::MSI as u8));
    assert_eq!(cs.read_u8(layout::MSI + cap::NEXT), Ok(0));
    assert_eq!(cs.find_capability(cap_id::PCI_EXPRESS), Some(layout::PCIE));
    assert_eq!(cs.find_capability(cap_id::MSI), Some(layout::MSI));
    assert_eq!(cs.find_capability(cap_id::MSIX), None);
    // The iterator stays ended.
    let mut walk = cs.capabilities();
    assert_eq!(walk.by_ref().count(), 2);
    assert_eq!(walk.next(), None);
}

#[test]
fn pcie_capability_is_a_version_2_endpoint_with_masked_controls() {
    let mut cs = test_config();
    let at = cs.find_capability(cap_id::PCI_EXPRESS).unwrap();
    let caps = cs.read_u16(at + pcie::CAPABILITIES).unwrap();
    assert_eq!(caps & pcie::CAP_VERSION_MASK, 2);
    assert_eq!(
        (caps & pcie::CAP_DEVICE_TYPE_MASK) >> pcie::CAP_DEVICE_TYPE_SHIFT,
        pcie::DEVICE_TYPE_ENDPOINT
    );
    // Capability header, capabilities registers and link status are RO.
    let before = cs.clone();
    for offset in [
        0,
        pcie::DEVICE_CAPABILITIES,
        pcie::LINK_CAPABILITIES,
        pcie::DEVICE_CAPABILITIES_2,
    ] {
        cs.write_u32(at + offset, 0xFFFF_FFFF).unwrap();
        assert_eq!(
            cs.read_u32(at + offset),
            before.read_u32(at + offset),
            "offset {offset:#x}"
        );
    }
    cs.write_u16(at + pcie::LINK_STATUS, 0xFFFF).unwrap();
    assert_eq!(
        cs.read_u16(at + pcie::LINK_STATUS),
        before.read_u16(at + pcie::LINK_STATUS)
    );
    // Device Control: only the implemented fields stick (no phantom functions, aux power, FLR).
    cs.write_u16(at + pcie::DEVICE_CONTROL, 0xFFFF).unwrap();
    assert_eq!(cs.read_u16(at + pcie::DEVICE_CONTROL), Ok(0x79FF));
    // Device Status error bits are RW1C.
    cs.write_u16(at + pcie::DEVICE_STATUS, 0xFFFF).unwrap();
    assert_eq!(cs.read_u16(at + pcie::DEVICE_STATUS), Ok(0));
    // Device Control 2: AtomicOp Requester Enable is writable.
    cs.write_u16(
        at + pcie::DEVICE_CONTROL_2,
        pcie::DEVCTL2_ATOMIC_OP_REQUESTER,
    )
    .unwrap();
    assert_eq!(
        cs.read_u16(at + pcie::DEVICE_CONTROL_2),
        Ok(pcie::DEVCTL2_ATOMIC_OP_REQUESTER)
    );
}

#[test]
fn msi_capability_programs_a_message() {
    let mut cs = test_config();
    let at = cs.find_capability(cap_id::MSI).unwrap();
    assert_eq!(cs.read_u16(at + msi::CONTROL), Ok(msi::CONTROL_64BIT));
    assert_eq!(cs.msi_message(), None);
    // Address bits 1:0 are reserved; data is 16 bits; 64-bit capable and MMC are RO.
    cs.write_u32(at + msi::ADDRESS_LO, 0xFEE0_0003).unwrap();
    cs.write_u32(at + msi::ADDRESS_HI, 0x0000_0001).unwrap();
    cs.write_u32(at + msi::DATA, 0xFFFF_0041).unwrap();
    cs.write_u16(at + msi::CONTROL, 0xFFFF).unwrap();
    assert_eq!(
        cs.read_u16(at + msi::CONTROL),
        Ok(msi::CONTROL_64BIT | msi::CONTROL_MULTIPLE_ENABLE_MASK | msi::CONTROL_ENABLE)
    );
    assert_eq!(cs.read_u32(at + msi::DATA), Ok(0x41));
    assert_eq!(
        cs.msi_message(),
        Some(MsiMessage {
            address: 0x1_FEE0_0000,
            data: 0x41
        })
    );
}

#[test]
fn extended_walk_finds_ats_then_pri_and_ends() {
    let cs = test_config();
    let found: std::vec::Vec<ExtendedCapability> = cs.extended_capabilities().collect();
    assert_eq!(
        found,
        [
            ExtendedCapability {
                id: ext_cap_id::ATS,
                version: 1,
                offset: layout::ATS
            },
            ExtendedCapability {
                id: ext_cap_id::PRI,
                version: 1,
                offset: layout::PRI
            },
        ]
    );
    // Raw headers: ID 15:0, version 19:16, next 31:20.
    assert_eq!(cs.read_u32(layout::ATS), Ok(0x1101_000F));
    assert_eq!(cs.read_u32(layout::PRI), Ok(0x0001_0013));
    assert_eq!(cs.find_extended_capability(ext_cap_id::ATS), Some(0x100));
    assert_eq!(cs.find_extended_capability(ext_cap_id::PRI), Some(0x110));
    assert_eq!(cs.find_extended_capability(ext_cap_id::PASID), None);
    // Extended capability headers are RO.
    let mut cs = cs;
    cs.write_u32(layout::ATS, 0).unwrap();
    cs.write_u32(layout::PRI, 0xFFFF_FFFF).unwrap();
    assert_eq!(cs.extended_capabilities().count(), 2);
}

#[test]
fn ats_control_enable_and_stu_are_the_only_writable_bits() {
    let mut cs = test_config();
    let at = cs.find_extended_capability(ext_cap_id::ATS).unwrap();
    assert_eq!(
        cs.ats_control(),
        AtsControl {
            enabled: false,
            smallest_translation_unit: 0
        }
    );
    // The capability register is RO.
    cs.write_u16(at + ats::CAPABILITY, 0xFFFF).unwrap();
    assert_eq!(
        cs.read_u16(at + ats::CAPABILITY),
        Ok(ats::CAP_PAGE_ALIGNED_REQUEST)
    );
    // Control: Enable (15) and STU (4:0) stick, bits 14:5 are reserved.
    cs.write_u16(at + ats::CONTROL, 0xFFFF).unwrap();
    assert_eq!(cs.read_u16(at + ats::CONTROL), Ok(0x801F));
    cs.write_u16(at + ats::CONTROL, ats::CONTROL_ENABLE | 9)
        .unwrap();
    let control = cs.ats_control();
    assert_eq!(
        control,
        AtsControl {
            enabled: true,
            smallest_translation_unit: 9
        }
    );
    assert_eq!(control.smallest_translation_bytes(), 2 * 1024 * 1024);
}

#[test]
fn pri_enable_reset_status_and_allocation() {
    let mut cs = test_config();
    let at = cs.find_extended_capability(ext_cap_id::PRI).unwrap();
    let state = cs.pri_state();
    assert!(!state.enabled && state.stopped);
    assert_eq!(state.allocation, 0);
    // Capacity is RO, allocation RW.
    cs.write_u32(at + pri::CAPACITY, 7).unwrap();
    cs.write_u32(at + pri::ALLOCATION, 16).unwrap();
    assert_eq!(cs.read_u32(at + pri::CAPACITY), Ok(ids::ACCEL_PRI_CAPACITY));
    assert_eq!(cs.pri_state().allocation, 16);
    // Enable clears Stopped; Reset while enabled does nothing; Reset reads 0.
    cs.write_u16(at + pri::CONTROL, pri::CONTROL_ENABLE)
        .unwrap();
    assert!(cs.pri_state().enabled && !cs.pri_state().stopped);
    cs.write_u16(at + pri::CONTROL, pri::CONTROL_ENABLE | pri::CONTROL_RESET)
        .unwrap();
    assert_eq!(cs.read_u16(at + pri::CONTROL), Ok(pri::CONTROL_ENABLE));
    assert!(!cs.take_pri_reset());
    // Disabling and resetting in one write: Stopped again, and the device sees one reset.
    cs.write_u16(at + pri::CONTROL, pri::CONTROL_RESET).unwrap();
    assert_eq!(cs.read_u16(at + pri::CONTROL), Ok(0));
    assert!(cs.pri_state().stopped);
    assert!(cs.take_pri_reset());
    assert!(!cs.take_pri_reset());
    // Status: Response Failure and UPRGI are RW1C, Stopped is RO.
    cs.pri_record_response_failure();
    cs.pri_record_unexpected_prg_index();
    assert_eq!(
        cs.read_u16(at + pri::STATUS),
        Ok(pri::STATUS_STOPPED | pri::STATUS_UNEXPECTED_PRG_INDEX | pri::STATUS_RESPONSE_FAILURE)
    );
    cs.write_u16(
        at + pri::STATUS,
        pri::STATUS_RESPONSE_FAILURE | pri::STATUS_STOPPED,
    )
    .unwrap();
    let state = cs.pri_state();
    assert!(!state.response_failure && state.unexpected_prg_index && state.stopped);
    // One dword write at +4 carries Control (low half) and Status (high half): reset and clear.
    let value = u32::from(pri::CONTROL_RESET) | (u32::from(pri::STATUS_UNEXPECTED_PRG_INDEX) << 16);
    cs.write_u32(at + pri::CONTROL, value).unwrap();
    assert!(cs.take_pri_reset());
    assert!(!cs.pri_state().unexpected_prg_index && cs.pri_state().stopped);
}

/// A configuration space with state in it, so width checks compare interesting bytes.
fn programmed_config() -> ConfigSpace {
    let mut cs = test_config();
    cs.write_u32(header::BAR0, 0xFEB4_0000).unwrap();
    cs.write_u32(header::BAR1, 0x1).unwrap();
    cs.write_u16(header::COMMAND, 0x0406).unwrap();
    cs.raise_status(Status::RECEIVED_MASTER_ABORT);
    cs.write_u16(layout::ATS + ats::CONTROL, 0x8003).unwrap();
    cs.write_u32(layout::PRI + pri::ALLOCATION, 0x0102_0304)
        .unwrap();
    cs
}

#[test]
fn byte_word_and_dword_reads_agree_everywhere() {
    let cs = programmed_config();
    for dword in (0..CONFIG_SPACE_SIZE).step_by(4) {
        let d = cs.read_u32(dword).unwrap();
        let w = u32::from(cs.read_u16(dword).unwrap())
            | (u32::from(cs.read_u16(dword + 2).unwrap()) << 16);
        let b = (0..4).fold(0u32, |acc, i| {
            acc | (u32::from(cs.read_u8(dword + i).unwrap()) << (8 * i))
        });
        assert_eq!((d, d), (w, b), "dword at {dword:#x}");
        assert_eq!(cs.read(dword, Width::Dword), Ok(d));
        // The generic walker's reads (via dwords) agree with direct ones.
        assert_eq!(
            ConfigRead::read_word(&cs, dword + 2),
            cs.read_u16(dword + 2)
        );
        assert_eq!(ConfigRead::read_byte(&cs, dword + 3), cs.read_u8(dword + 3));
    }
}

#[test]
fn byte_and_word_writes_compose_like_a_dword_write() {
    let mut by_dword = test_config();
    let mut by_word = test_config();
    let mut by_byte = test_config();
    let writes: [(usize, u32); 6] = [
        (header::COMMAND, 0xFFFF_0006),
        (header::BAR0, 0xFEB4_123F),
        (header::BAR1, 0x0000_0002),
        (layout::PCIE + pcie::DEVICE_CONTROL, 0xFFFF_2F1F),
        (layout::ATS + ats::CAPABILITY, 0x8005_FFFF),
        (layout::PRI + pri::ALLOCATION, 0xDEAD_BEEF),
    ];
    for (offset, value) in writes {
        by_dword.write_u32(offset, value).unwrap();
        by_word.write_u16(offset, value as u16).unwrap();
        by_word.write_u16(offset + 2, (value >> 16) as u16).unwrap();
        for i in 0..4 {
            by_byte
                .write_u8(offset + i, (value >> (8 * i)) as u8)
                .unwrap();
        }
    }
    assert_eq!(by_dword, by_word);
    assert_eq!(by_dword, by_byte);
    assert_eq!(by_dword.bar0_address(), Some(0x2_FEB4_0000));
    assert_eq!(by_dword.ats_control().smallest_translation_unit, 5);
}

#[test]
fn write_ignores_value_bits_beyond_the_width() {
    let mut cs = test_config();
    cs.write(header::INTERRUPT_LINE, Width::Byte, 0xFFFF_FF0A)
        .unwrap();
    assert_eq!(cs.read_u32(header::INTERRUPT_LINE), Ok(0x0000_010A));
    cs.write(header::COMMAND, Width::Word, 0xFFFF_0002).unwrap();
    assert_eq!(cs.read_u32(header::COMMAND), Ok(0x0010_0002));
}

#[test]
fn misaligned_accesses_are_refused_without_effect() {
    let mut cs = test_config();
    let before = cs.clone();
    assert_eq!(
        cs.read_u16(0x03),
        Err(AccessError::Misaligned {
            offset: 0x03,
            width: Width::Word
        })
    );
    assert_eq!(
        cs.read_u32(0x06),
        Err(AccessError::Misaligned {
            offset: 0x06,
            width: Width::Dword
        })
    );
    assert_eq!(
        cs.write_u32(header::COMMAND + 1, 0xFFFF_FFFF),
        Err(AccessError::Misaligned {
            offset: 0x05,
            width: Width::Dword
        })
    );
    assert_eq!(
        cs.write_u16(header::BAR0 + 1, 0xFFFF),
        Err(AccessError::Misaligned {
            offset: 0x11,
            width: Width::Word
        })
    );
    assert_eq!(
        ConfigRead::read_word(&cs, 0x101),
        Err(AccessError::Misaligned {
            offset: 0x101,
            width: Width::Word
        })
    );
    assert_eq!(cs, before);
}

#[test]
fn out_of_range_accesses_are_refused_without_effect() {
    let mut cs = test_config();
    let before = cs.clone();
    assert_eq!(cs.read_u8(CONFIG_SPACE_SIZE - 1), Ok(0));
    assert_eq!(cs.read_u32(CONFIG_SPACE_SIZE - 4), Ok(0));
    for (offset, width) in [
        (CONFIG_SPACE_SIZE, Width::Byte),
        (CONFIG_SPACE_SIZE, Width::Dword),
        (CONFIG_SPACE_SIZE - 2, Width::Dword), // also misaligned: range is checked first
        (0x1_0000, Width::Word),
        (usize::MAX, Width::Byte),
        (usize::MAX - 1, Width::Word), // offset + width overflows
    ] {
        let error = AccessError::OutOfRange { offset, width };
        assert_eq!(cs.read(offset, width), Err(error));
        assert_eq!(cs.write(offset, width, u32::MAX), Err(error));
    }
    assert_eq!(cs, before);
    let message = std::format!(
        "{}",
        AccessError::OutOfRange {
            offset: 0x1000,
            width: Width::Word
        }
    );
    assert!(message.contains("0x1000"), "{message}");
}

/// A fake function whose config space tests can corrupt at will, to drive the walker.
struct FakeConfig {
    dwords: [u32; CONFIG_SPACE_SIZE / 4],
    /// Reads at or past this offset fail, like a legacy 0xCF8/0xCFC path beyond 256 bytes.
    readable: usize,
}

impl FakeConfig {
    /// An endpoint with Status.CAPABILITIES_LIST and the capabilities pointer set to `first`.
    fn with_pointer(first: u8) -> Self {
        let mut fake = FakeConfig {
            dwords: [0; CONFIG_SPACE_SIZE / 4],
            readable: CONFIG_SPACE_SIZE,
        };
        fake.dwords[header::COMMAND / 4] = u32::from(Status::CAPABILITIES_LIST.bits()) << 16;
        fake.dwords[header::CAPABILITIES_POINTER / 4] = u32::from(first);
        fake
    }
}

impl ConfigRead for FakeConfig {
    fn read_dword(&self, offset: usize) -> Result<u32, AccessError> {
        if offset >= self.readable {
            return Err(AccessError::OutOfRange {
                offset,
                width: Width::Dword,
            });
        }
        Ok(self.dwords[offset / 4])
    }
}

#[test]
fn walkers_terminate_on_looping_lists() {
    // 0x40 -> 0x50 -> 0x40 -> ...
    let mut fake = FakeConfig::with_pointer(0x40);
    fake.dwords[0x40 / 4] = 0x50_10;
    fake.dwords[0x50 / 4] = 0x40_05;
    assert_eq!(capabilities(&fake).count(), (0x100 - 0x40) / 4);
    assert_eq!(find_capability(&fake, cap_id::MSI), Some(0x50));
    assert_eq!(find_capability(&fake, cap_id::MSIX), None);
    // 0x100 -> 0x100 -> ...
    fake.dwords[0x100 / 4] = regs::ext_cap::header(ext_cap_id::ATS, 1, 0x100);
    assert_eq!(extended_capabilities(&fake).count(), (0x1000 - 0x100) / 8);
    assert_eq!(find_extended_capability(&fake, ext_cap_id::PRI), None);
}

#[test]
fn walkers_stop_where_a_driver_would() {
    // No Status.CAPABILITIES_LIST: no list, whatever the pointer says.
    let mut fake = FakeConfig::with_pointer(0x40);
    fake.dwords[0x40 / 4] = 0x00_10;
    fake.dwords[header::COMMAND / 4] = 0;
    assert_eq!(capabilities(&fake).count(), 0);
    // A pointer into the header (below 0x40) ends the list; reserved pointer bits are ignored.
    let mut fake = FakeConfig::with_pointer(0x43);
    fake.dwords[0x40 / 4] = 0x3C_10;
    assert_eq!(
        capabilities(&fake).collect::<std::vec::Vec<_>>(),
        [Capability {
            id: cap_id::PCI_EXPRESS,
            offset: 0x40
        }]
    );
    // An ID of 0xFF (nobody answered) ends the list.
    fake.dwords[0x40 / 4] = 0x00_FF;
    assert_eq!(capabilities(&fake).count(), 0);
    // Extended: a zero header, an all-ones header or an unreadable extended space means none.
    assert_eq!(extended_capabilities(&fake).count(), 0);
    fake.dwords[0x100 / 4] = u32::MAX;
    assert_eq!(extended_capabilities(&fake).count(), 0);
    fake.dwords[0x100 / 4] = regs::ext_cap::header(ext_cap_id::ATS, 1, 0);
    assert_eq!(extended_capabilities(&fake).count(), 1);
    fake.readable = 0x100;
    assert_eq!(extended_capabilities(&fake).count(), 0);
    // A next offset into conventional space ends the extended list.
    fake.readable = CONFIG_SPACE_SIZE;
    fake.dwords[0x100 / 4] = regs::ext_cap::header(ext_cap_id::ATS, 1, 0x0FC);
    assert_eq!(extended_capabilities(&fake).count(), 1);
}
