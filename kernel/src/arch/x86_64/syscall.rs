//! The `syscall` instruction's MSRs. The entry code itself is in [`super::trap`]: a
//! system call builds the same [`TrapFrame`](super::trap::TrapFrame) as an exception
//! and leaves through the same `trap_return`.
//!
//! On `syscall` the CPU loads RIP from LSTAR, saves the user RIP in RCX and RFLAGS in
//! R11, clears the RFLAGS bits in FMASK (IF: no interrupt until we are on the kernel
//! stack; DF, TF, NT and AC too, so the kernel never runs with a user's choice of them),
//! and switches CS/SS to the kernel's (from STAR). It does *not* switch stacks.
//!
//! Registers per the Linux x86-64 ABI: rax = number, args in rdi rsi rdx r10 r8 r9,
//! result in rax; rcx and r11 are clobbered.

use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

use super::gdt;

/// Program the syscall MSRs: enable `syscall` (EFER.SCE), the entry point (LSTAR), the
/// segment selectors (STAR) and the flags to clear on entry (FMASK).
pub fn init() {
    let sel = gdt::selectors();
    Star::write(
        sel.user_code,
        sel.user_data,
        sel.kernel_code,
        sel.kernel_data,
    )
    .expect("syscall::init: GDT layout does not fit STAR");
    LStar::write(VirtAddr::new(
        super::trap::syscall_entry as *const () as u64,
    ));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::NESTED_TASK
            | RFlags::ALIGNMENT_CHECK,
    );
    super::trap::init(sel.user_code.0, sel.user_data.0);
    // SAFETY: setting SCE only enables the syscall instruction; the other bits are kept.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}
