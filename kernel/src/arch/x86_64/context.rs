//! Switching between kernel stacks: the heart of the scheduler.
//!
//! Each process has its own kernel stack. To switch, [`switch_context`] pushes the
//! callee-saved registers on the current stack, stores the stack pointer, loads the
//! other one and pops its registers: the `ret` at the end then continues wherever that
//! stack last called `switch_context` (xv6 `swtch`). A brand-new stack is prepared by
//! [`prepare_new_stack`] to "return" into `trap_return` with a [`TrapFrame`], so a
//! new or forked process starts in ring 3 exactly like the end of a system call.

use core::arch::global_asm;
use x86_64::VirtAddr;

use super::trap::TrapFrame;

extern "C" {
    /// Save callee-saved registers and rsp into `*save_rsp`, switch to `load_rsp`.
    fn switch_context_asm(save_rsp: *mut u64, load_rsp: u64);
    fn new_process_trampoline();
}

global_asm!(
    ".global switch_context_asm",
    "switch_context_asm:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    // A new stack's first `ret` lands here with rsp at its TrapFrame.
    ".global new_process_trampoline",
    "new_process_trampoline:",
    "jmp trap_return",
);

/// Switch from the context whose stack pointer will be saved in `save` to the one
/// saved in `load`. Returns when something switches back to `save`.
///
/// # Safety
/// Interrupts must be off. `load` must come from an earlier `switch_context` or from
/// [`prepare_new_stack`], on a stack that is still mapped; `save` must stay valid until
/// the context is resumed.
pub unsafe fn switch_context(save: *mut u64, load: u64) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { switch_context_asm(save, load) };
}

/// Lay out a fresh kernel stack whose top is `top` so that switching to it enters ring
/// 3 with the registers of `frame`. Returns the stack pointer to switch to.
///
/// # Safety
/// [top - 1 KiB, top) must be a mapped, writable kernel stack that nothing else uses.
pub unsafe fn prepare_new_stack(top: VirtAddr, frame: &TrapFrame) -> u64 {
    let frame_size = core::mem::size_of::<TrapFrame>() as u64;
    let frame_addr = top.as_u64() - frame_size;
    // Below the frame: the return address and six zeroed callee-saved registers that
    // switch_context_asm pops.
    let ret_addr = frame_addr - 8;
    let rsp = ret_addr - 6 * 8;
    // SAFETY: all writes lie in [top - frame_size - 56, top), inside the stack (caller).
    unsafe {
        (frame_addr as *mut TrapFrame).write(*frame);
        (ret_addr as *mut u64).write(new_process_trampoline as *const () as u64);
        core::ptr::write_bytes(rsp as *mut u64, 0, 6);
    }
    rsp
}

/// Lay out a fresh kernel stack so that switching to it calls `entry` (a kernel
/// thread's body, which never returns). Returns the stack pointer to switch to.
///
/// # Safety
/// [top - 64, top) must be a mapped, writable kernel stack that nothing else uses.
pub unsafe fn prepare_kernel_thread_stack(top: VirtAddr, entry: extern "C" fn() -> !) -> u64 {
    // After `ret` pops the entry address, rsp must be 8 mod 16, as after a `call`.
    let ret_addr = (top.as_u64() - 16) & !0xf;
    let rsp = ret_addr - 6 * 8;
    // SAFETY: all writes lie in [top - 72, top), inside the stack (caller).
    unsafe {
        (ret_addr as *mut u64).write(entry as *const () as u64);
        core::ptr::write_bytes(rsp as *mut u64, 0, 6);
    }
    rsp
}

/// Where the [`TrapFrame`] of a process sits on its kernel stack (the syscall entry
/// and [`prepare_new_stack`] both put it at the very top).
pub fn trap_frame_at(top: VirtAddr) -> *mut TrapFrame {
    (top.as_u64() - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame
}
