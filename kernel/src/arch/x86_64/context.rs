//! Switching between kernel stacks: the heart of the scheduler.
//!
//! Each process has its own kernel stack. To switch, [`switch`] pushes the
//! callee-saved registers on the current stack, stores the stack pointer, loads the
//! other one and pops its registers: the `ret` at the end then continues wherever that
//! stack last called [`switch`] (xv6 `swtch`). A brand-new stack is prepared by
//! [`prepare_user`] to "return" into `trap_return` with a [`TrapFrame`], so a new or
//! forked process starts in ring 3 exactly like the end of a system call. The unsafe
//! part (raw stack pointers) stays here: callers hold [`Context`] values.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};
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

/// A stopped kernel context: the stack pointer of a kernel stack that is not running,
/// from which [`switch`] resumes it (xv6 `struct context`, Linux `thread.sp`).
///
/// A `Context` that can be switched to comes only from [`prepare_user`] /
/// [`prepare_kernel_thread`] (a fresh stack) or from a [`switch`] that saved into it, so
/// it always names a prepared stack; whoever owns the stack (`mm::kstack`) keeps it
/// mapped for as long as the context exists.
#[derive(Debug)]
pub struct Context {
    rsp: AtomicU64,
}

impl Context {
    /// A context to save into (the scheduler's own, on the boot stack), not yet valid
    /// to switch to.
    pub const fn empty() -> Context {
        Context {
            rsp: AtomicU64::new(0),
        }
    }
}

/// Save the running context into `from` and resume `to`; returns when something
/// switches back to `from`. Interrupts must be off (checked).
pub fn switch(from: &Context, to: &Context) {
    assert!(
        !x86_64::instructions::interrupts::are_enabled(),
        "context::switch with interrupts on"
    );
    let load = to.rsp.load(Ordering::Acquire);
    assert_ne!(load, 0, "context::switch to a context that was never saved");
    // SAFETY: interrupts are off; `load` was saved by a switch or made by a prepare
    // function on a stack whose owner keeps it mapped while the Context exists (the
    // Context contract); `from` lives in a struct that outlives this call.
    unsafe { switch_context_asm(from.rsp.as_ptr(), load) };
}

/// Leave the running context for good and resume `to` (an exiting process: nothing
/// of it will run again, so nothing needs saving or keeping alive).
pub fn switch_final(to: &Context) -> ! {
    // Saved into a local that nobody can reach: the context is never resumed.
    let gone = Context::empty();
    switch(&gone, to);
    unreachable!("context::switch_final: a finished context was resumed")
}

/// A context that, when switched to, enters ring 3 with the registers of `frame`,
/// on the fresh kernel stack whose top is `top`.
///
/// # Safety
/// [top - 1 KiB, top) must be a mapped, writable kernel stack that nothing else uses,
/// and must stay mapped while the returned Context exists.
pub unsafe fn prepare_user(top: VirtAddr, frame: &TrapFrame) -> Context {
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
    Context {
        rsp: AtomicU64::new(rsp),
    }
}

/// A context that, when switched to, calls `entry` (a kernel thread's body, which never
/// returns) on the fresh kernel stack whose top is `top`.
///
/// # Safety
/// As [`prepare_user`].
pub unsafe fn prepare_kernel_thread(top: VirtAddr, entry: extern "C" fn() -> !) -> Context {
    // After `ret` pops the entry address, rsp must be 8 mod 16, as after a `call`.
    let ret_addr = (top.as_u64() - 16) & !0xf;
    let rsp = ret_addr - 6 * 8;
    // SAFETY: all writes lie in [top - 72, top), inside the stack (caller).
    unsafe {
        (ret_addr as *mut u64).write(entry as *const () as u64);
        core::ptr::write_bytes(rsp as *mut u64, 0, 6);
    }
    Context {
        rsp: AtomicU64::new(rsp),
    }
}
