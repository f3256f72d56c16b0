//! Bit-flag types for the Command and Status registers (PCIe r5.0 §7.5.1.1.3 and §7.5.1.1.4).
//!
//! Hand-written instead of the `bitflags` crate: a small macro gives each register a `Copy` newtype
//! with named constants, set operations and a `Debug` that prints the names.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// Defines a newtype over a register's raw bits with named single-bit (or multi-bit) constants.
macro_rules! register_flags {
    (
        $(#[$meta:meta])*
        pub struct $name:ident: $raw:ty {
            $( $(#[$fmeta:meta])* const $flag:ident = $value:expr; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name($raw);

        impl $name {
            $( $(#[$fmeta])* pub const $flag: Self = Self($value); )*

            /// Every named flag with its name, in bit order (used by `Debug`).
            const NAMED: &'static [(&'static str, Self)] = &[$( (stringify!($flag), Self::$flag) ),*];

            /// No bit set.
            pub const fn empty() -> Self {
                Self(0)
            }

            /// Wraps raw register bits, keeping bits that have no name.
            pub const fn from_bits_retain(bits: $raw) -> Self {
                Self(bits)
            }

            /// The raw register bits.
            pub const fn bits(self) -> $raw {
                self.0
            }

            /// True if no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// True if every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// True if `self` and `other` have at least one bit in common.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }

            /// The bits set in either.
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// The bits set in `self` but not in `other`.
            pub const fn difference(self, other: Self) -> Self {
                Self(self.0 & !other.0)
            }
        }

        impl BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                self.union(rhs)
            }
        }

        impl BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: Self) {
                *self = self.union(rhs);
            }
        }

        impl BitAnd for $name {
            type Output = Self;
            fn bitand(self, rhs: Self) -> Self {
                Self(self.0 & rhs.0)
            }
        }

        impl Not for $name {
            type Output = Self;
            fn not(self) -> Self {
                Self(!self.0)
            }
        }

        impl fmt::Debug for $name {
            // Prints e.g. `Command(MEMORY_SPACE | BUS_MASTER | 0x8)`; unnamed bits as hex.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                let mut rest = self.0;
                let mut first = true;
                for (name, flag) in Self::NAMED {
                    if flag.0 != 0 && self.0 & flag.0 == flag.0 {
                        if !first {
                            f.write_str(" | ")?;
                        }
                        f.write_str(name)?;
                        rest &= !flag.0;
                        first = false;
                    }
                }
                if rest != 0 || first {
                    if !first {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{:#x}", rest)?;
                }
                f.write_str(")")
            }
        }
    };
}

register_flags! {
    /// The Command register (offset 0x04), PCIe r5.0 §7.5.1.1.3.
    ///
    /// All bits a driver may meet are named, including those our accelerator model hardwires to 0
    /// (it implements only `MEMORY_SPACE`, `BUS_MASTER` and `INTX_DISABLE`).
    pub struct Command: u16 {
        /// Bit 0: respond to I/O-space accesses through I/O BARs.
        const IO_SPACE = 1 << 0;
        /// Bit 1: respond to memory-space accesses through memory BARs.
        const MEMORY_SPACE = 1 << 1;
        /// Bit 2: the function may issue memory requests (DMA, MSI) of its own.
        const BUS_MASTER = 1 << 2;
        /// Bit 6: report parity (poisoned TLP) errors.
        const PARITY_ERROR_RESPONSE = 1 << 6;
        /// Bit 8: report fatal and non-fatal errors to the root complex.
        const SERR_ENABLE = 1 << 8;
        /// Bit 10: the function may not assert its INTx interrupt.
        const INTX_DISABLE = 1 << 10;
    }
}

register_flags! {
    /// The Status register (offset 0x06), PCIe r5.0 §7.5.1.1.4.
    ///
    /// The error bits are RW1C: software clears one by writing 1 to it; writing 0 changes nothing.
    pub struct Status: u16 {
        /// Bit 3 (RO): the function's INTx interrupt is pending (whatever `INTX_DISABLE` says).
        const INTERRUPT_STATUS = 1 << 3;
        /// Bit 4 (RO): the Capabilities Pointer at 0x34 is valid; always 1 on PCIe.
        const CAPABILITIES_LIST = 1 << 4;
        /// Bit 8 (RW1C): Master Data Parity Error, a poisoned completion or write was seen.
        const MASTER_DATA_PARITY_ERROR = 1 << 8;
        /// Bit 11 (RW1C): the function completed a request with Completer Abort.
        const SIGNALED_TARGET_ABORT = 1 << 11;
        /// Bit 12 (RW1C): the function received a Completer Abort completion.
        const RECEIVED_TARGET_ABORT = 1 << 12;
        /// Bit 13 (RW1C): the function received an Unsupported Request completion.
        const RECEIVED_MASTER_ABORT = 1 << 13;
        /// Bit 14 (RW1C): the function sent ERR_FATAL or ERR_NONFATAL.
        const SIGNALED_SYSTEM_ERROR = 1 << 14;
        /// Bit 15 (RW1C): the function received a poisoned TLP.
        const DETECTED_PARITY_ERROR = 1 << 15;
    }
}

impl Status {
    /// Every write-1-to-clear error bit of the Status register.
    pub const ERRORS: Self = Self::MASTER_DATA_PARITY_ERROR
        .union(Self::SIGNALED_TARGET_ABORT)
        .union(Self::RECEIVED_TARGET_ABORT)
        .union(Self::RECEIVED_MASTER_ABORT)
        .union(Self::SIGNALED_SYSTEM_ERROR)
        .union(Self::DETECTED_PARITY_ERROR);
}
