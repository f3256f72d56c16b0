//! The Global Descriptor Table and the Task State Segment.
//!
//! In 64-bit mode segments are mostly gone, but the CPU still needs: a code segment for
//! ring 0 and one for ring 3, data segments, and a TSS. The TSS holds the stacks the CPU
//! switches to on an interrupt: `rsp0` (entry from ring 3, set per process later) and the
//! Interrupt Stack Table (IST), known-good stacks for exceptions that may hit when the
//! current stack is unusable (a double fault after a kernel stack overflow, an NMI or a
//! machine check arriving anywhere).
//!
//! The order kernel code, kernel data, user data, user code is what `syscall`/`sysret`
//! require (STAR register layout).

use core::cell::UnsafeCell;
use spin::Lazy;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slot used by the double-fault handler.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// IST slot used by the NMI handler.
pub const NMI_IST_INDEX: u16 = 1;
/// IST slot used by the machine-check handler.
pub const MACHINE_CHECK_IST_INDEX: u16 = 2;

/// Size of each IST stack.
const IST_STACK_SIZE: usize = 5 * 4096;

/// Three IST stacks, one per slot above. Only the CPU writes them, on exception entry.
/// (No alignment needed: on an interrupt the CPU aligns RSP to 16 bytes itself.)
static mut IST_STACKS: [[u8; IST_STACK_SIZE]; 3] = [[0; IST_STACK_SIZE]; 3];

/// The TSS. The CPU reads it on every interrupt from ring 3 (for `rsp0`); we write
/// `rsp0` on every context switch ([`set_kernel_stack`]), so it lives in an UnsafeCell.
struct TssCell(UnsafeCell<TaskStateSegment>);
// SAFETY: one CPU; the only writer is set_kernel_stack, which runs with interrupts off.
unsafe impl Sync for TssCell {}

static TSS: Lazy<TssCell> = Lazy::new(|| {
    let mut tss = TaskStateSegment::new();
    for (slot, index) in [
        DOUBLE_FAULT_IST_INDEX,
        NMI_IST_INDEX,
        MACHINE_CHECK_IST_INDEX,
    ]
    .into_iter()
    .enumerate()
    {
        // SAFETY: only the address is taken; no reference to the mutable static is formed.
        let base = VirtAddr::from_ptr(unsafe { core::ptr::addr_of!(IST_STACKS[slot]) });
        // Stacks grow down: the IST entry is the stack's top.
        tss.interrupt_stack_table[index as usize] = base + IST_STACK_SIZE as u64;
    }
    TssCell(UnsafeCell::new(tss))
});

/// Set the stack the CPU switches to when an interrupt or exception arrives in ring 3
/// (TSS `rsp0`). The scheduler calls this with the next process's kernel stack top.
pub fn set_kernel_stack(top: VirtAddr) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: one CPU, interrupts off: nothing else reads or writes the TSS from
        // software now; the CPU reads rsp0 only on a ring-3 interrupt, which cannot
        // happen while we run in ring 0 with interrupts off.
        unsafe { (*TSS.0.get()).privilege_stack_table[0] = top };
    });
}

/// The segment selectors, for code that builds interrupt frames or programs STAR.
#[derive(Debug, Clone, Copy)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
    pub tss: SegmentSelector,
}

static GDT: Lazy<(GlobalDescriptorTable<10>, Selectors)> = Lazy::new(|| {
    // Linux's layout (arch/x86/include/asm/segment.h), so user code sees the same
    // selectors as on Linux (CS 0x33, SS 0x2b, e.g. in a signal frame's sigcontext):
    // 0x08 32-bit kernel code (unused), 0x10 kernel code, 0x18 kernel data, 0x23 32-bit
    // user code (unused; a data descriptor holds its place), 0x2b user data, 0x33 user
    // code. STAR needs user data right below user code, as sysret would.
    let mut gdt = GlobalDescriptorTable::<10>::empty();
    let _kernel32_code = gdt.append(Descriptor::kernel_data_segment());
    let kernel_code = gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = gdt.append(Descriptor::kernel_data_segment());
    let _user32_code = gdt.append(Descriptor::user_data_segment());
    let user_data = gdt.append(Descriptor::user_data_segment());
    let user_code = gdt.append(Descriptor::user_code_segment());
    // SAFETY: the TSS is a static that lives forever and is only modified through
    // set_kernel_stack (rsp0), which the CPU tolerates at any time in ring 0.
    let tss = gdt.append(unsafe { Descriptor::tss_segment_unchecked(TSS.0.get()) });
    (
        gdt,
        Selectors {
            kernel_code,
            kernel_data,
            user_data,
            user_code,
            tss,
        },
    )
});

/// The selectors of our GDT.
pub fn selectors() -> Selectors {
    GDT.1
}

/// Load the GDT, reload the segment registers and load the TSS.
pub fn init() {
    GDT.0.load();
    let sel = selectors();
    // SAFETY: the selectors index descriptors of the GDT just loaded, of the right kind
    // (code for CS, data for the others, the TSS descriptor for `ltr`).
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        load_tss(sel.tss);
    }
}
