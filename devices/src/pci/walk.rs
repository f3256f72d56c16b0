//! Walking the capability lists the way a driver does, through configuration reads only.
//!
//! Generic over [`ConfigRead`], so the kernel can walk QEMU's real functions with the same code it
//! uses for our model. The walks mirror Linux's `__pci_find_next_cap_ttl` and
//! `pci_find_next_ext_capability` (drivers/pci/pci.c): a bounded number of steps, so a corrupt or
//! looping list still ends.

use core::iter::FusedIterator;

use super::config::AccessError;
use super::flags::Status;
use super::regs::{
    ext_cap, header, CONFIG_SPACE_SIZE, CONVENTIONAL_SIZE, EXTENDED_CAPABILITIES_OFFSET,
    FIRST_CAPABILITY_OFFSET,
};

/// Read access to one function's configuration space, as a driver has it.
pub trait ConfigRead {
    /// Reads the dword at `offset` (a multiple of 4) of the function's configuration space.
    fn read_dword(&self, offset: usize) -> Result<u32, AccessError>;

    /// Reads the 16 bits at an even `offset`, via the dword that holds them.
    fn read_word(&self, offset: usize) -> Result<u16, AccessError> {
        if !offset.is_multiple_of(2) {
            return Err(AccessError::Misaligned {
                offset,
                width: super::Width::Word,
            });
        }
        Ok((self.read_dword(offset & !3)? >> (8 * (offset & 3))) as u16)
    }

    /// Reads the byte at `offset`, via the dword that holds it.
    fn read_byte(&self, offset: usize) -> Result<u8, AccessError> {
        Ok((self.read_dword(offset & !3)? >> (8 * (offset & 3))) as u8)
    }
}

/// One entry of the conventional capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capability {
    /// Capability ID (see [`super::cap_id`]).
    pub id: u8,
    /// Offset of the capability in configuration space.
    pub offset: usize,
}

/// One entry of the extended capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedCapability {
    /// Extended capability ID (see [`super::ext_cap_id`]).
    pub id: u16,
    /// Capability version (header bits 19:16).
    pub version: u8,
    /// Offset of the capability in configuration space.
    pub offset: usize,
}

/// At most this many conventional capabilities fit (Linux's `PCI_FIND_CAP_TTL`): 4-byte entries
/// between 0x40 and 0x100.
const CAPABILITY_TTL: usize = (CONVENTIONAL_SIZE - FIRST_CAPABILITY_OFFSET) / 4;

/// At most this many extended capabilities fit: 8-byte entries between 0x100 and 0x1000.
const EXTENDED_CAPABILITY_TTL: usize = (CONFIG_SPACE_SIZE - EXTENDED_CAPABILITIES_OFFSET) / 8;

/// Iterator over the conventional capability list (see [`capabilities`]).
#[derive(Clone, Debug)]
pub struct Capabilities<'a, C: ?Sized> {
    /// The function being walked.
    config: &'a C,
    /// Offset of the next entry; below 0x40 means the list has ended.
    next: usize,
    /// Steps left before the walk gives up on a looping list.
    ttl: usize,
}

/// Iterator over the extended capability list (see [`extended_capabilities`]).
#[derive(Clone, Debug)]
pub struct ExtendedCapabilities<'a, C: ?Sized> {
    /// The function being walked.
    config: &'a C,
    /// Offset of the next entry; below 0x100 means the list has ended.
    next: usize,
    /// Steps left before the walk gives up on a looping list.
    ttl: usize,
}

/// The conventional capability list of `config`: empty unless Status.CAPABILITIES_LIST is set;
/// starts at the Capabilities Pointer (0x34, or 0x14 for a CardBus bridge) (PCI 3.0 §6.7).
pub fn capabilities<C: ConfigRead + ?Sized>(config: &C) -> Capabilities<'_, C> {
    Capabilities {
        config,
        next: first_capability(config).unwrap_or(0),
        ttl: CAPABILITY_TTL,
    }
}

/// The offset the Capabilities Pointer names, or `None` if the function has no list.
fn first_capability<C: ConfigRead + ?Sized>(config: &C) -> Option<usize> {
    let status = Status::from_bits_retain(config.read_word(header::STATUS).ok()?);
    if !status.contains(Status::CAPABILITIES_LIST) {
        return None;
    }
    let pointer = match config.read_byte(header::HEADER_TYPE).ok()?
        & header::HEADER_TYPE_LAYOUT_MASK
    {
        header::HEADER_TYPE_ENDPOINT | header::HEADER_TYPE_BRIDGE => header::CAPABILITIES_POINTER,
        header::HEADER_TYPE_CARDBUS => header::CARDBUS_CAPABILITIES_POINTER,
        _ => return None,
    };
    config.read_byte(pointer).ok().map(usize::from)
}

impl<C: ConfigRead + ?Sized> Iterator for Capabilities<'_, C> {
    type Item = Capability;

    // Yields the entry at `next` and follows its next pointer; ends at a pointer below 0x40, an ID
    // of 0xFF (no device answered), a failed read, or after CAPABILITY_TTL entries.
    fn next(&mut self) -> Option<Capability> {
        if self.next < FIRST_CAPABILITY_OFFSET || self.ttl == 0 {
            self.next = 0;
            return None;
        }
        self.ttl -= 1;
        let offset = self.next & !3; // bits 1:0 of a pointer are reserved
        let entry = match self.config.read_word(offset) {
            Ok(entry) if entry & 0xFF != 0xFF => entry,
            _ => {
                self.next = 0;
                return None;
            }
        };
        self.next = usize::from(entry >> 8);
        Some(Capability {
            id: entry as u8,
            offset,
        })
    }
}

// Once a walk has ended, `next` stays below the list start, so it keeps returning `None`.
impl<C: ConfigRead + ?Sized> FusedIterator for Capabilities<'_, C> {}

/// The extended capability list of `config`, from 0x100 (PCIe r5.0 §7.6). Empty if the header at
/// 0x100 is 0 (no extended capabilities) or all ones (no extended space, e.g. a conventional PCI
/// function), or if extended space cannot be read at all.
pub fn extended_capabilities<C: ConfigRead + ?Sized>(config: &C) -> ExtendedCapabilities<'_, C> {
    ExtendedCapabilities {
        config,
        next: EXTENDED_CAPABILITIES_OFFSET,
        ttl: EXTENDED_CAPABILITY_TTL,
    }
}

impl<C: ConfigRead + ?Sized> Iterator for ExtendedCapabilities<'_, C> {
    type Item = ExtendedCapability;

    // Yields the entry at `next` and follows its next offset; ends at an offset below 0x100, a
    // header of 0 or all ones, a failed read, or after EXTENDED_CAPABILITY_TTL entries.
    fn next(&mut self) -> Option<ExtendedCapability> {
        if self.next < EXTENDED_CAPABILITIES_OFFSET || self.ttl == 0 {
            self.next = 0;
            return None;
        }
        self.ttl -= 1;
        let offset = self.next;
        let header = match self.config.read_dword(offset) {
            Ok(header) if header != 0 && header != u32::MAX => header,
            _ => {
                self.next = 0;
                return None;
            }
        };
        self.next = ((header >> ext_cap::NEXT_SHIFT) & ext_cap::NEXT_MASK) as usize;
        Some(ExtendedCapability {
            id: (header & ext_cap::ID_MASK) as u16,
            version: ((header >> ext_cap::VERSION_SHIFT) & ext_cap::VERSION_MASK) as u8,
            offset,
        })
    }
}

// Once a walk has ended, `next` stays below 0x100, so it keeps returning `None`.
impl<C: ConfigRead + ?Sized> FusedIterator for ExtendedCapabilities<'_, C> {}

/// The offset of the first conventional capability of `config` with ID `id`, like Linux's
/// `pci_find_capability`.
pub fn find_capability<C: ConfigRead + ?Sized>(config: &C, id: u8) -> Option<usize> {
    capabilities(config).find(|c| c.id == id).map(|c| c.offset)
}

/// The offset of the first extended capability of `config` with ID `id`, like Linux's
/// `pci_find_ext_capability`.
pub fn find_extended_capability<C: ConfigRead + ?Sized>(config: &C, id: u16) -> Option<usize> {
    extended_capabilities(config)
        .find(|c| c.id == id)
        .map(|c| c.offset)
}
