//! The device page table: what one context of the accelerator may touch, page by page.
//!
//! Linux's `lib/test_hmm.c` keeps the same thing in an XArray (`dmirror->pt`) indexed by the
//! virtual page number, each entry a `struct page *` tagged `DPT_XA_TAG_WRITE` or
//! `DPT_XA_TAG_ATOMIC` (untagged = read-only). Ours maps a virtual page number to a
//! [`Translation`]: a frame number and a [`Perm`]. Like dmirror's, the table holds no reference
//! to the frames: it relies on the host invalidating it (MMU notifiers, PCIe ATS invalidation)
//! before a frame stops being the process's page.

use alloc::vec::Vec;
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

/// The host memory that holds a device page table ran out: the translation was not stored
/// (dmirror: `xa_store()` failing with `-ENOMEM` in `dmirror_do_fault()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoMemory;

/// Pages per leaf of the table (one leaf covers 2 MiB of virtual memory).
const LEAF_PAGES: u64 = 512;

/// A device page table: virtual page number (`va >> 12`) -> [`Translation`], for one context.
///
/// Two levels, like a radix tree with a sorted top: a directory of leaves ordered by
/// `vpn / 512`, each leaf 512 packed entries. Every allocation it makes can fail
/// ([`NoMemory`]): the table lives in the host kernel's memory, which a user can exhaust, and
/// a `BTreeMap` insert cannot report that (it aborts). Removing never allocates, so an
/// invalidation always succeeds. Empty leaves are freed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevicePageTable {
    /// (vpn / 512, leaf), ordered by the first.
    leaves: Vec<(u64, Leaf)>,
    /// Translations held.
    len: usize,
}

/// 512 entries: 0 = none, else `pfn << 2 | perm` with perm 1 Read, 2 Write, 3 Atomic.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Leaf {
    entries: Vec<u64>,
    used: usize,
}

impl Leaf {
    fn new() -> Result<Leaf, NoMemory> {
        let mut entries = Vec::new();
        entries
            .try_reserve_exact(LEAF_PAGES as usize)
            .map_err(|_| NoMemory)?;
        entries.resize(LEAF_PAGES as usize, 0);
        Ok(Leaf { entries, used: 0 })
    }
}

fn encode(t: Translation) -> u64 {
    let perm = match t.perm {
        Perm::Read => 1,
        Perm::Write => 2,
        Perm::Atomic => 3,
    };
    t.pfn << 2 | perm
}

fn decode(e: u64) -> Option<Translation> {
    let perm = match e & 3 {
        0 => return None,
        1 => Perm::Read,
        2 => Perm::Write,
        _ => Perm::Atomic,
    };
    Some(Translation { pfn: e >> 2, perm })
}

impl DevicePageTable {
    /// An empty table: the device may touch nothing.
    pub const fn new() -> Self {
        Self {
            leaves: Vec::new(),
            len: 0,
        }
    }

    fn leaf_index(&self, top: u64) -> Result<usize, usize> {
        self.leaves.binary_search_by_key(&top, |(t, _)| *t)
    }

    /// The translation of virtual page `vpn`, if the device holds one.
    pub fn lookup(&self, vpn: u64) -> Option<Translation> {
        let i = self.leaf_index(vpn / LEAF_PAGES).ok()?;
        decode(self.leaves[i].1.entries[(vpn % LEAF_PAGES) as usize])
    }

    /// Installs (or replaces) the translation of `vpn` (dmirror: the `xa_store()` in
    /// `dmirror_do_fault()` and `dmirror_atomic_map()`); [`NoMemory`] if a new leaf or room
    /// for it could not be had (the table is unchanged then). A pfn must fit in 62 bits.
    pub fn install(&mut self, vpn: u64, translation: Translation) -> Result<(), NoMemory> {
        debug_assert!(
            translation.pfn < 1 << 62,
            "pfn {:#x} too large",
            translation.pfn
        );
        let top = vpn / LEAF_PAGES;
        let i = match self.leaf_index(top) {
            Ok(i) => i,
            Err(i) => {
                self.leaves.try_reserve(1).map_err(|_| NoMemory)?;
                self.leaves.insert(i, (top, Leaf::new()?));
                i
            }
        };
        let leaf = &mut self.leaves[i].1;
        let slot = &mut leaf.entries[(vpn % LEAF_PAGES) as usize];
        if *slot == 0 {
            leaf.used += 1;
            self.len += 1;
        }
        *slot = encode(translation);
        Ok(())
    }

    /// Drops every translation of a virtual page in `vpns`; returns how many were dropped
    /// (dmirror: `dmirror_do_update()`, which `xa_erase()`s the range). Never allocates:
    /// the kernel calls it while unmapping, where nothing may fail.
    pub fn invalidate(&mut self, vpns: Range<u64>) -> usize {
        if vpns.start >= vpns.end {
            return 0;
        }
        let mut dropped = 0;
        let mut i = self
            .leaf_index(vpns.start / LEAF_PAGES)
            .unwrap_or_else(|i| i);
        while let Some((top, leaf)) = self.leaves.get_mut(i) {
            let base = *top * LEAF_PAGES;
            if base >= vpns.end {
                break;
            }
            let from = vpns.start.saturating_sub(base).min(LEAF_PAGES) as usize;
            let to = (vpns.end - base).min(LEAF_PAGES) as usize;
            for e in &mut leaf.entries[from..to] {
                if *e != 0 {
                    *e = 0;
                    leaf.used -= 1;
                    dropped += 1;
                }
            }
            if leaf.used == 0 {
                self.leaves.remove(i);
            } else {
                i += 1;
            }
        }
        self.len -= dropped;
        dropped
    }

    /// Every translation, in virtual-page order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Translation)> + '_ {
        self.leaves.iter().flat_map(|(top, leaf)| {
            leaf.entries
                .iter()
                .enumerate()
                .filter_map(move |(k, &e)| decode(e).map(|t| (top * LEAF_PAGES + k as u64, t)))
        })
    }

    /// The translations of the virtual pages in `vpns`, in order.
    pub fn range(&self, vpns: Range<u64>) -> impl Iterator<Item = (u64, Translation)> + '_ {
        // An empty or reversed range holds nothing.
        let vpns = vpns.start..vpns.end.max(vpns.start);
        let first = self
            .leaf_index(vpns.start / LEAF_PAGES)
            .unwrap_or_else(|i| i);
        self.leaves[first..]
            .iter()
            .take_while(move |(top, _)| top * LEAF_PAGES < vpns.end)
            .flat_map(|(top, leaf)| {
                leaf.entries
                    .iter()
                    .enumerate()
                    .filter_map(move |(k, &e)| decode(e).map(|t| (top * LEAF_PAGES + k as u64, t)))
            })
            .filter(move |(vpn, _)| vpns.contains(vpn))
    }

    /// How many translations the table holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the table holds no translation.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
