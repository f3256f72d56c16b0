//! The device page table: what one context of the accelerator may touch, page by page.
//!
//! Linux's `lib/test_hmm.c` keeps the same thing in an XArray (`dmirror->pt`) indexed by the
//! virtual page number, each entry a `struct page *` tagged `DPT_XA_TAG_WRITE` or
//! `DPT_XA_TAG_ATOMIC` (untagged = read-only). Ours maps a virtual page number to a
//! [`Translation`]: a frame number and a [`Perm`]. Like dmirror's, the table holds no reference
//! to the frames: it relies on the host invalidating it (MMU notifiers, PCIe ATS invalidation)
//! before a frame stops being the process's page.

use alloc::collections::BTreeMap;
use core::ops::Range;

/// What the device may do with a page it holds a translation for. Ordered: each permission
/// implies the ones before it (`Read < Write < Atomic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Perm {
    /// Read only (dmirror: an untagged entry).
    Read,
    /// Read and write (dmirror: `DPT_XA_TAG_WRITE`).
    Write,
    /// Read, write and atomic operations: the host made the page *device-exclusive* for this
    /// device (dmirror: `DPT_XA_TAG_ATOMIC`, installed by `dmirror_atomic_map()` after
    /// `make_device_exclusive()`). The CPU cannot touch the page until it takes it back.
    Atomic,
}

impl Perm {
    /// True if a translation with this permission is enough for `access`.
    pub const fn allows(self, access: Access) -> bool {
        self as u8 >= access.needed() as u8
    }
}

/// The kind of access the device wants to make to a page; what a page request asks for.
///
/// PCIe PRI page requests carry Read and Write bits (PCIe r5.0 §10.4.1); `Atomic` is our
/// addition, standing for "write, and make the page device-exclusive" (Linux
/// `make_device_exclusive()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read the page.
    Read,
    /// Write the page.
    Write,
    /// Atomic read-modify-write on the page, which needs exclusive access.
    Atomic,
}

impl Access {
    /// The least permission that allows this access.
    pub const fn needed(self) -> Perm {
        match self {
            Access::Read => Perm::Read,
            Access::Write => Perm::Write,
            Access::Atomic => Perm::Atomic,
        }
    }
}

/// One entry of a device page table: the frame a virtual page maps to, and what the device may
/// do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Translation {
    /// Physical frame number (physical address >> 12).
    pub pfn: u64,
    /// What the device may do with the frame.
    pub perm: Perm,
}

/// A device page table: virtual page number (`va >> 12`) -> [`Translation`], for one context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevicePageTable {
    /// The entries, ordered by virtual page number so ranges are cheap.
    entries: BTreeMap<u64, Translation>,
}

impl DevicePageTable {
    /// An empty table: the device may touch nothing.
    pub const fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// The translation of virtual page `vpn`, if the device holds one.
    pub fn lookup(&self, vpn: u64) -> Option<Translation> {
        self.entries.get(&vpn).copied()
    }

    /// Installs (or replaces) the translation of `vpn` (dmirror: the `xa_store()` in
    /// `dmirror_do_fault()` and `dmirror_atomic_map()`).
    pub fn install(&mut self, vpn: u64, translation: Translation) {
        self.entries.insert(vpn, translation);
    }

    /// Drops every translation of a virtual page in `vpns`; returns how many were dropped
    /// (dmirror: `dmirror_do_update()`, which `xa_erase()`s the range).
    pub fn invalidate(&mut self, vpns: Range<u64>) -> usize {
        if vpns.start >= vpns.end {
            return 0;
        }
        // One entry at a time: removing from a BTreeMap never allocates (split_off would),
        // and an invalidation must not fail for want of memory (the kernel calls it while
        // unmapping).
        let mut dropped = 0;
        while let Some((&vpn, _)) = self.entries.range(vpns.clone()).next() {
            self.entries.remove(&vpn);
            dropped += 1;
        }
        dropped
    }

    /// Every translation, in virtual-page order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Translation)> + '_ {
        self.entries.iter().map(|(&vpn, &t)| (vpn, t))
    }

    /// The translations of the virtual pages in `vpns`, in order.
    pub fn range(&self, vpns: Range<u64>) -> impl Iterator<Item = (u64, Translation)> + '_ {
        // An empty or reversed range would make BTreeMap::range panic.
        let vpns = vpns.start..vpns.end.max(vpns.start);
        self.entries.range(vpns).map(|(&vpn, &t)| (vpn, t))
    }

    /// How many translations the table holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the table holds no translation.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
