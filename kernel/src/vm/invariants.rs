//! The invariant checker: every entry, frame and VMA of an address space checked
//! against the rules of docs chapters 4, 6 and 7 (Linux has no single equivalent: these
//! are the `VM_BUG_ON`s a reader would want to see in one place).
#![forbid(unsafe_code)]

use core::fmt;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use super::address_space::AddressSpace;
use super::vma::{Prot, Sharing};
use crate::mm::frame::{self, FrameFlags};
use crate::mm::page_table::USER_END;
use crate::mm::pte::Pte;
use crate::mm::PAGE_SIZE;

/// A broken invariant, found by [`AddressSpace::check_invariants`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvariantViolation {
    pub va: Option<VirtAddr>,
    pub what: &'static str,
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.va {
            Some(va) => write!(f, "at {:#x}: {}", va.as_u64(), self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

/// What the invariant checker counted, for tests to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Census {
    pub present: usize,
    pub exclusive: usize,
    pub table_pages: usize,
}

impl AddressSpace {
    /// Check the memory invariants (docs chapters 4 and 6) and the device-exclusive
    /// invariants I1, I4, I5 (docs chapter 9) on every
    /// entry: refcount >= mapcount >= 1; a writable anonymous entry's frame is
    /// anon-exclusive; a device-exclusive entry maps an anonymous frame with mapcount 1;
    /// no entry outside a VMA; VMAs well formed; every page-table page accounted. Returns
    /// what it counted.
    pub fn check_invariants(&self) -> Result<Census, InvariantViolation> {
        self.with(|inner| {
            let bad = |va, what| InvariantViolation { va: Some(va), what };
            inner
                .vmas
                .check()
                .map_err(|what| InvariantViolation { va: None, what })?;
            let table_pages = inner
                .table
                .check_tables()
                .map_err(|what| InvariantViolation { va: None, what })?;
            let mut census = Census {
                table_pages,
                ..Census::default()
            };
            let cursor = inner
                .table
                .cursor(VirtAddr::new(0), VirtAddr::new(USER_END))
                .expect("the whole user half is a valid range");
            let mut from = VirtAddr::new(0);
            while let Some((va, pte)) = cursor.next_mapped(from) {
                let Some(vma) = inner.vmas.find(va) else {
                    return Err(bad(va, "entry outside every VMA"));
                };
                match pte {
                    Pte::None => unreachable!("next_mapped never yields None entries"),
                    Pte::Present { frame, flags } => {
                        census.present += 1;
                        let m = frame::meta(frame);
                        if m.mapcount() == 0 || m.refcount() < m.mapcount() {
                            return Err(bad(va, "present entry: refcount >= mapcount >= 1 broken"));
                        }
                        if flags.contains(PageTableFlags::WRITABLE)
                            && vma.sharing == Sharing::Private
                            && !m.flags().contains(FrameFlags::ANON_EXCLUSIVE)
                        {
                            return Err(bad(
                                va,
                                "writable anonymous entry whose frame is not anon-exclusive (I4)",
                            ));
                        }
                        if flags.contains(PageTableFlags::WRITABLE)
                            && !vma.prot.contains(Prot::WRITE)
                        {
                            return Err(bad(va, "writable entry in a VMA without PROT_WRITE"));
                        }
                    }
                    Pte::DeviceExclusive { frame } => {
                        census.exclusive += 1;
                        let m = frame::meta(frame);
                        if m.mapcount() != 1 || !m.flags().contains(FrameFlags::ANON) {
                            return Err(bad(
                                va,
                                "exclusive entry must map an anonymous frame with mapcount 1 (I1)",
                            ));
                        }
                        if m.refcount() < m.mapcount() {
                            return Err(bad(va, "exclusive entry: refcount < mapcount (I5)"));
                        }
                    }
                }
                from = va + PAGE_SIZE;
            }
            Ok(census)
        })
    }
}
