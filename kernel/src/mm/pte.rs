//! The one place that decodes page-table entries.
//!
//! A leaf entry (in a level-1 table) is one of the kinds of [`Pte`]. The hardware only
//! looks at an entry whose Present bit (bit 0) is set; when it is clear, the other 63
//! bits are ours, and we use them the way Linux uses "swap entries": a type tag and a
//! frame number. That is how a device-exclusive entry can keep the frame it stands
//! for while any CPU access to the page faults.
//!
//! ```text
//! present:          | NX | ... | frame number (bits 12-51) | flags (bits 0-11, P=1) |
//! non-present kind: |  0 | ... | frame number (bits 12-51) | 0000000 | tag (1-4) | P=0 |
//! none:             all zero
//! ```
#![deny(unsafe_code)]

use x86_64::structures::paging::{PageTableFlags, PhysFrame};
use x86_64::PhysAddr;

/// Bits 12-51: the physical frame address.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Bits 1-4 of a non-present entry: which kind it is.
const TAG_SHIFT: u64 = 1;
const TAG_MASK: u64 = 0xf << TAG_SHIFT;

/// Type tags of non-present entries. Room is left for swap and migration entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
enum Tag {
    DeviceExclusive = 1,
}

/// A decoded leaf page-table entry. Every walker matches all kinds, without a wildcard
/// arm, so adding a kind makes the compiler list every place that must handle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pte {
    /// Nothing mapped.
    None,
    /// Mapped: the CPU can access `frame` with `flags`.
    Present {
        frame: PhysFrame,
        flags: PageTableFlags,
    },
    /// The device holds the page exclusively (Linux `make_device_exclusive`). Not
    /// present for the CPU: any access faults and the fault handler restores a present
    /// entry. It still counts as a mapping of `frame` (mapcount) and holds the reference
    /// the present entry held.
    DeviceExclusive { frame: PhysFrame },
}

impl Pte {
    /// Decode a raw 64-bit entry. Panics on a non-present entry with an unknown tag:
    /// only this module writes such entries, so that is memory corruption.
    pub fn decode(raw: u64) -> Pte {
        if raw == 0 {
            return Pte::None;
        }
        let frame = PhysFrame::containing_address(PhysAddr::new(raw & ADDR_MASK));
        if raw & PageTableFlags::PRESENT.bits() != 0 {
            let flags = PageTableFlags::from_bits_truncate(raw & !ADDR_MASK);
            return Pte::Present { frame, flags };
        }
        match (raw & TAG_MASK) >> TAG_SHIFT {
            t if t == Tag::DeviceExclusive as u64 => Pte::DeviceExclusive { frame },
            t => panic!("Pte::decode: corrupt non-present entry {raw:#018x} (tag {t})"),
        }
    }

    /// Encode as a raw 64-bit entry.
    pub fn encode(self) -> u64 {
        match self {
            Pte::None => 0,
            Pte::Present { frame, flags } => {
                frame.start_address().as_u64() | (flags | PageTableFlags::PRESENT).bits()
            }
            Pte::DeviceExclusive { frame } => {
                frame.start_address().as_u64() | ((Tag::DeviceExclusive as u64) << TAG_SHIFT)
            }
        }
    }

    /// The frame the entry refers to (and holds a reference on), if any.
    pub fn frame(self) -> Option<PhysFrame> {
        match self {
            Pte::None => None,
            Pte::Present { frame, .. } | Pte::DeviceExclusive { frame } => Some(frame),
        }
    }

    /// Whether the entry is `None`.
    pub fn is_none(self) -> bool {
        matches!(self, Pte::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(addr: u64) -> PhysFrame {
        PhysFrame::containing_address(PhysAddr::new(addr))
    }

    #[test_case]
    fn pte_kinds_round_trip() {
        let kinds = [
            Pte::None,
            Pte::Present {
                frame: frame(0x1234_5000),
                flags: PageTableFlags::PRESENT
                    | PageTableFlags::WRITABLE
                    | PageTableFlags::USER_ACCESSIBLE
                    | PageTableFlags::NO_EXECUTE,
            },
            Pte::DeviceExclusive {
                frame: frame(0xf_ffff_f000),
            },
        ];
        for kind in kinds {
            assert_eq!(Pte::decode(kind.encode()), kind, "round trip of {kind:?}");
        }
    }

    #[test_case]
    fn exclusive_entry_is_not_present_for_the_cpu() {
        let raw = Pte::DeviceExclusive {
            frame: frame(0x20_0000),
        }
        .encode();
        assert_eq!(raw & 1, 0, "P bit must be clear");
        assert_eq!(raw & ADDR_MASK, 0x20_0000, "frame number kept");
    }
}
