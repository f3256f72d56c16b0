//! The `syscall` instruction: entry into the kernel from ring 3, and `sysretq` back.
//! This is the one place that enters ring 3 on the kernel's initiative: a new process,
//! a forked child, an `execve` and every system call all leave through
//! [`syscall_return`]. (Interrupted user code resumes through `iretq` at the end of
//! the interrupt handler that stopped it.)
//!
//! On `syscall` the CPU loads RIP from LSTAR, saves the user RIP in RCX and RFLAGS in
//! R11, clears the RFLAGS bits in FMASK (we clear IF: no interrupt until we are on the
//! kernel stack), and switches CS/SS to the kernel's (from STAR). It does *not* switch
//! stacks; the entry code does that, then saves every user register in a [`TrapFrame`]
//! at the top of the process's kernel stack and calls the Rust dispatcher.
//!
//! Registers per the Linux x86-64 ABI: rax = number, args in rdi rsi rdx r10 r8 r9,
//! result in rax; rcx and r11 are clobbered.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

use super::gdt;

/// The user registers, as saved on the kernel stack by the syscall entry. The order is
/// the push order in reverse (r15 was pushed last, so it is at the lowest address).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// User RIP to return to (loaded into RCX for sysretq).
    pub rip: u64,
    /// User RFLAGS (loaded into R11 for sysretq).
    pub rflags: u64,
    /// User stack pointer.
    pub rsp: u64,
}

impl TrapFrame {
    /// A frame that starts user code at `rip` with stack `rsp`, all other registers 0,
    /// interrupts enabled.
    pub fn new_user(rip: u64, rsp: u64) -> TrapFrame {
        TrapFrame {
            rip,
            rsp,
            rflags: (RFlags::INTERRUPT_FLAG | RFlags::from_bits_retain(0x2)).bits(),
            ..TrapFrame::default()
        }
    }
}

/// Kernel stack top of the running process; the entry code switches to it. Written by
/// the scheduler (with TSS rsp0) on every switch. One CPU, so one global is enough
/// (an SMP kernel would use per-CPU data via `swapgs`).
#[no_mangle]
static SYSCALL_KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
/// Scratch slot for the user RSP during entry.
#[no_mangle]
static SYSCALL_USER_RSP: AtomicU64 = AtomicU64::new(0);

/// Make `top` the stack used by the next syscall and ring-3 interrupt.
pub fn set_kernel_stack(top: VirtAddr) {
    SYSCALL_KERNEL_RSP.store(top.as_u64(), Ordering::Relaxed);
    gdt::set_kernel_stack(top);
}

extern "C" {
    fn syscall_entry();
    /// Restore the user registers from the [`TrapFrame`] at `rsp` and `sysretq`.
    pub fn syscall_return() -> !;
}

global_asm!(
    ".global syscall_entry",
    "syscall_entry:",
    // On the user stack, interrupts off. Switch to the kernel stack.
    "mov [rip + SYSCALL_USER_RSP], rsp",
    "mov rsp, [rip + SYSCALL_KERNEL_RSP]",
    // Build the TrapFrame, highest field first.
    "push qword ptr [rip + SYSCALL_USER_RSP]", // rsp
    "push r11",                                // rflags
    "push rcx",                                // rip
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rdi, rsp", // &mut TrapFrame
    "cld",
    "call syscall_dispatch_from_asm",
    // fall through
    ".global syscall_return",
    "syscall_return:",
    // rsp points at a TrapFrame. Interrupts must be off from here to sysretq.
    "cli",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "pop rcx", // rip  -> rcx for sysretq
    "pop r11", // rflags -> r11 for sysretq
    "pop rsp", // user stack
    "sysretq",
);

/// Called by the entry code with the saved registers. Hands them to the syscall layer,
/// which writes the result into `frame.rax`, and makes sure the return is safe.
#[no_mangle]
extern "C" fn syscall_dispatch_from_asm(frame: &mut TrapFrame) {
    crate::syscall::dispatch(frame);
    // sysretq to a non-canonical RIP would fault in ring 0 with the user's RSP: refuse.
    if frame.rip >= crate::mm::page_table::USER_END {
        crate::proc::exit_current(crate::proc::ExitStatus::Signaled(crate::proc::SIGSEGV));
    }
    // The user may not turn off interrupts or set IOPL through the flags we restore.
    frame.rflags = (frame.rflags & !(RFlags::IOPL_HIGH | RFlags::IOPL_LOW).bits())
        | RFlags::INTERRUPT_FLAG.bits()
        | 0x2;
}

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
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    SFMask::write(RFlags::INTERRUPT_FLAG | RFlags::DIRECTION_FLAG | RFlags::TRAP_FLAG);
    // SAFETY: setting SCE only enables the syscall instruction; the other bits are kept.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}
