//! Kernel stacks for processes, each with an unmapped guard page below it.
//!
//! Every process runs kernel code (syscalls, faults, interrupts) on a stack of its
//! own. Stacks live in the kernel-stack area of the upper half, one slot each: the
//! stack pages, with the page below them left unmapped, so an overflow faults (and ends
//! in the double-fault handler on its IST stack) instead of silently overwriting the
//! neighbouring stack.
//!
//! A stack is handed out together with its first [`Context`] (`new_user`,
//! `new_kernel_thread`), the only two `unsafe` blocks here: preparing a context is
//! sound exactly when the stack is fresh and stays mapped, which this module knows.

use spin::{Lazy, Mutex};

use super::gather::{Gather, NoDevices};
use crate::arch::x86_64::context::{self, Context};
use crate::arch::x86_64::trap::TrapFrame;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use super::frame::Frame;
use super::page_table::{PageTable, KSTACK_AREA_START};
use super::{MmError, PAGE_SIZE};

/// Pages of stack per process (32 KiB).
pub const STACK_PAGES: u64 = 8;
/// Pages per slot: the stack plus guard pages below it.
const SLOT_PAGES: u64 = 2 * STACK_PAGES;
/// How many kernel stacks can exist at once (and so how many processes).
pub const MAX_STACKS: usize = 512;

struct Area {
    table: PageTable,
    /// Bit i set = slot i in use. The lowest free slot is always taken, so the stacks
    /// stay packed and the page-table pages of the area are freed as processes go
    /// (the free-frame count returns exactly to its baseline).
    used: [u64; MAX_STACKS / 64],
}

impl Area {
    fn take_slot(&mut self) -> Option<usize> {
        let (word, bits) = self
            .used
            .iter_mut()
            .enumerate()
            .find(|(_, w)| **w != u64::MAX)?;
        let bit = bits.trailing_ones() as usize;
        *bits |= 1 << bit;
        Some(word * 64 + bit)
    }

    fn free_slot(&mut self, slot: usize) {
        self.used[slot / 64] &= !(1 << (slot % 64));
    }
}

static AREA: Lazy<Mutex<Area>> = Lazy::new(|| {
    Mutex::new(Area {
        table: PageTable::kernel_stack_area(),
        used: [0; MAX_STACKS / 64],
    })
});

/// How many kernel stacks exist (for the power-off leak report).
pub fn in_use() -> usize {
    x86_64::instructions::interrupts::without_interrupts(|| {
        AREA.lock()
            .used
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum()
    })
}

/// Why a kernel stack could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KstackError {
    /// All slots are in use (the process table is full: EAGAIN).
    NoSlot,
    /// No memory for the pages (ENOMEM).
    NoMemory,
}

/// One mapped kernel stack; unmapped and freed on drop.
#[derive(Debug)]
pub struct KernelStack {
    slot: usize,
}

impl KernelStack {
    /// Map a new stack. Its guard page (and the rest of the slot below it) stays unmapped.
    pub fn new() -> Result<KernelStack, KstackError> {
        x86_64::instructions::interrupts::without_interrupts(|| {
            let mut area = AREA.lock();
            let slot = area.take_slot().ok_or(KstackError::NoSlot)?;
            let (bottom, top) = Self::bounds(slot);
            let mut cursor = area
                .table
                .cursor(bottom, top)
                .expect("slot bounds lie in the kernel-stack area");
            let flags =
                PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
            let mut page = bottom;
            while page < top {
                let mapped = Frame::alloc_zeroed().and_then(|f| cursor.map(page, f, flags));
                if let Err(e) = mapped {
                    debug_assert_eq!(e, MmError::NoMemory);
                    cursor.unmap_all(&mut Gather::begin(&NoDevices, bottom, top));
                    drop(cursor);
                    area.free_slot(slot);
                    return Err(KstackError::NoMemory);
                }
                page += PAGE_SIZE;
            }
            Ok(KernelStack { slot })
        })
    }

    /// A new stack, prepared so that switching to the returned context enters ring 3
    /// with the registers of `frame` (a new or forked process).
    pub fn new_user(frame: &TrapFrame) -> Result<(KernelStack, Context), KstackError> {
        let stack = KernelStack::new()?;
        // SAFETY: the stack was just mapped and nothing else uses it; the KernelStack
        // returned with the context keeps it mapped (the caller keeps both together).
        let context = unsafe { context::prepare_user(stack.top(), frame) };
        Ok((stack, context))
    }

    /// A new stack, prepared so that switching to the returned context runs `entry` (a
    /// kernel thread).
    pub fn new_kernel_thread(
        entry: extern "C" fn() -> !,
    ) -> Result<(KernelStack, Context), KstackError> {
        let stack = KernelStack::new()?;
        // SAFETY: as in `new_user`.
        let context = unsafe { context::prepare_kernel_thread(stack.top(), entry) };
        Ok((stack, context))
    }

    /// [bottom, top) of the stack pages of `slot`.
    fn bounds(slot: usize) -> (VirtAddr, VirtAddr) {
        let slot_start = KSTACK_AREA_START + slot as u64 * SLOT_PAGES * PAGE_SIZE;
        let top = slot_start + SLOT_PAGES * PAGE_SIZE;
        (
            VirtAddr::new(top - STACK_PAGES * PAGE_SIZE),
            VirtAddr::new(top),
        )
    }

    /// The address just above the stack (stacks grow down; this is the initial rsp).
    pub fn top(&self) -> VirtAddr {
        Self::bounds(self.slot).1
    }

    /// The lowest stack address; the page below it is the guard.
    pub fn bottom(&self) -> VirtAddr {
        Self::bounds(self.slot).0
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        x86_64::instructions::interrupts::without_interrupts(|| {
            let mut area = AREA.lock();
            let (bottom, top) = Self::bounds(self.slot);
            let mut cursor = area
                .table
                .cursor(bottom, top)
                .expect("slot bounds lie in the kernel-stack area");
            // No device mirrors kernel stacks: nothing to invalidate but the TLB.
            let mut gather = Gather::begin(&NoDevices, bottom, top);
            cursor.unmap_all(&mut gather);
            drop(cursor);
            gather.finish();
            area.free_slot(self.slot);
        });
    }
}
