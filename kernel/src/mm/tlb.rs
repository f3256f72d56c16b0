//! TLB maintenance: after changing an entry that the CPU may have cached, tell it.
//! Only the active address space's entries can be cached (we do not use PCIDs; the
//! upper half never changes after boot), so callers flush only when the page table
//! they changed is the one in CR3.
#![deny(unsafe_code)]

use x86_64::instructions::tlb;
use x86_64::VirtAddr;

use super::PAGE_SIZE;

/// Above this many pages a full flush is cheaper than one `invlpg` per page.
const FULL_FLUSH_THRESHOLD: u64 = 32;

/// Forget the translation of the page containing `va`.
pub fn flush_page(va: VirtAddr) {
    tlb::flush(va);
}

/// Forget the translations of [start, end).
pub fn flush_range(start: VirtAddr, end: VirtAddr) {
    let pages = (end - start).div_ceil(PAGE_SIZE);
    if pages > FULL_FLUSH_THRESHOLD {
        flush_all();
    } else {
        for i in 0..pages {
            tlb::flush(start + i * PAGE_SIZE);
        }
    }
}

/// Forget every non-global translation (reloads CR3).
pub fn flush_all() {
    tlb::flush_all();
}
