//! What happens on every entry from ring 3, decided in one place (xv6 `kernel/trap.c`;
//! Linux `kernel/entry/common.c`).
//!
//! The architecture code (`arch::x86_64::trap`) saves the registers in one
//! [`TrapFrame`], decodes the event and calls [`user_trap`]; it imports nothing from
//! the layers above. This module sits above proc, vm and syscall and decides: run the
//! system call, fix the page fault or kill the process, and finally
//! [`exit_to_user`], the one path back to ring 3 (reschedule, then a pending kill).
//!
//! ```text
//!  syscall     -> user_trap -> syscall::dispatch(frame)  -> exit_to_user -> iretq
//!  page fault  -> user_trap -> vm::page_fault(addr, ..)  -> exit_to_user -> iretq
//!                              (bad access: the process is killed with SIGSEGV)
//!  exception   -> user_trap -> kill with the signal Linux sends
//!  timer       -> user_trap -> (nothing)                 -> exit_to_user: yield if the
//!                                                          slice is over
//! ```
#![deny(unsafe_code)]

use x86_64::instructions::interrupts;
use x86_64::structures::idt::PageFaultErrorCode;

use crate::arch::x86_64::trap::{
    self as arch_trap, Handlers, InterruptsWere, TrapEvent, TrapFrame,
};
use crate::mm::page_table::USER_END;
use crate::proc::{self, sched, signal, ExitStatus};
use crate::vm::{self, Access, FaultOutcome, Privilege};

/// Register the handlers with the architecture code (once, at boot).
pub fn init() {
    arch_trap::set_handlers(Handlers {
        user_trap,
        timer_tick,
        kernel_page_fault,
        user_end: USER_END,
    });
}

/// Every timer tick (interrupts off): what the handler allocates (the list of sleepers
/// to wake) may use the memory reserve and is never failed by injection, since an
/// interrupt has nobody to report ENOMEM to (Linux `GFP_ATOMIC`, `in_task()`).
fn timer_tick(now: u64) {
    crate::mm::gfp::with_reserve(|| sched::on_tick(now));
}

/// A page fault in kernel mode: only a user-half address of the current address space
/// can be fixed (demand-zero, copy-on-write, exclusive restore), for kernel code that
/// touches user memory directly (test kernels, the benchmark; system calls use the
/// checked copies of `uaccess`, which never fault). Anything else is a kernel bug.
fn kernel_page_fault(addr: u64, code: PageFaultErrorCode, irq: InterruptsWere) -> bool {
    if code.contains(PageFaultErrorCode::MALFORMED_TABLE) {
        return false;
    }
    let Ok(va) = x86_64::VirtAddr::try_new(addr) else {
        return false;
    };
    let access = access_of(code);
    if irq == InterruptsWere::On {
        interrupts::enable();
    }
    let fixed = matches!(
        vm::page_fault(va, access, Privilege::Kernel),
        FaultOutcome::Fixed(_)
    );
    interrupts::disable();
    fixed
}

/// An event from ring 3 (interrupts off on entry). Handle it, then go back through
/// [`exit_to_user`].
fn user_trap(frame: &mut TrapFrame, event: TrapEvent) {
    match event {
        TrapEvent::Syscall => {
            // Syscalls run with interrupts on: the timer ticks while they work or sleep.
            interrupts::enable();
            crate::syscall::dispatch(frame);
        }
        TrapEvent::PageFault { addr, code } => {
            // The fault path sleeps (address-space lock, frame locks). CR2 was read.
            interrupts::enable();
            user_page_fault(frame, addr, code);
        }
        TrapEvent::Exception { vector, .. } => {
            interrupts::enable();
            let (sig, code) = signal_for(vector);
            proc::signal_current_for_fault(
                sig,
                code,
                frame.rip,
                format_args!(
                    "{} at rip {:#x}",
                    arch_trap::exception_name(vector),
                    frame.rip
                ),
            );
        }
        TrapEvent::Timer => {}
    }
    exit_to_user(frame);
}

/// The kind of access a page fault's error bits describe.
fn access_of(code: PageFaultErrorCode) -> Access {
    if code.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
        Access::Execute
    } else if code.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
        Access::Write
    } else {
        Access::Read
    }
}

/// A page fault in user mode: let the VM layer fix it; what it cannot fix ends the
/// process with the signal Linux sends.
fn user_page_fault(frame: &TrapFrame, addr: u64, code: PageFaultErrorCode) {
    let access = access_of(code);
    // Whether *this* fault's allocation was injected is what counts below.
    crate::mm::gfp::take_injected();
    let outcome = match x86_64::VirtAddr::try_new(addr) {
        Ok(va) if !code.contains(PageFaultErrorCode::MALFORMED_TABLE) => {
            vm::page_fault(va, access, Privilege::User)
        }
        _ => FaultOutcome::KernelBug(vm::KernelBug::KernelAddress),
    };
    let rip = frame.rip;
    match outcome {
        // Killed: exit_to_user ends the process.
        FaultOutcome::Fixed(_) | FaultOutcome::Killed => {}
        FaultOutcome::BadAccess(reason) => {
            let code = match reason {
                vm::BadAccessReason::NotMapped => signal::SEGV_MAPERR,
                vm::BadAccessReason::Protection { .. } => signal::SEGV_ACCERR,
            };
            proc::signal_current_for_fault(
                proc::SIGSEGV,
                code,
                addr,
                format_args!("{access:?} at address {addr:#x}, rip {rip:#x}: {reason}"),
            );
        }
        // An injected failure (mm::gfp): take the fault again, as Linux does after
        // `pagefault_out_of_memory`; the next try gets its memory.
        FaultOutcome::OutOfMemory if crate::mm::gfp::take_injected() => {}
        FaultOutcome::OutOfMemory => proc::signal_current_for_fault(
            proc::SIGKILL,
            signal::SI_KERNEL,
            addr,
            format_args!("out of memory at address {addr:#x}, rip {rip:#x}"),
        ),
        // A user access to a kernel (upper-half) or non-canonical address.
        FaultOutcome::KernelBug(_) => proc::signal_current_for_fault(
            proc::SIGSEGV,
            signal::SEGV_MAPERR,
            addr,
            format_args!("{access:?} at kernel address {addr:#x}, rip {rip:#x}"),
        ),
    }
}

/// The signal and `si_code` Linux sends for an exception in user code
/// (`arch/x86/kernel/traps.c`).
fn signal_for(vector: u8) -> (i32, i32) {
    match vector {
        1 => (proc::SIGTRAP, 2), // TRAP_TRACE
        3 => (proc::SIGTRAP, signal::SI_KERNEL),
        0 => (proc::SIGFPE, 1), // FPE_INTDIV
        16 | 19 => (proc::SIGFPE, 0),
        6 => (proc::SIGILL, 2),  // ILL_ILLOPN
        17 => (proc::SIGBUS, 1), // BUS_ADRALN
        _ => (proc::SIGSEGV, signal::SI_KERNEL),
    }
}

/// The one way back to ring 3 (Linux `exit_to_user_mode_loop`): give the CPU away if
/// the time slice is over, end the process if it was sent SIGKILL, deliver pending
/// signals (and restart or fail an interrupted syscall), then check the frame: a frame
/// no `iretq` may take (a RIP outside user space, say after a forged `rt_sigreturn`)
/// is SIGSEGV with the default action, never a loop. Returns with interrupts off.
/// Nothing owned may be on the caller's stack: `exit_current` does not return.
fn exit_to_user(frame: &mut TrapFrame) {
    interrupts::enable();
    loop {
        if sched::take_need_resched() {
            sched::yield_now();
            continue;
        }
        if proc::current_killed() {
            proc::exit_current(ExitStatus::Signaled(proc::SIGKILL));
        }
        signal::deliver(frame);
        if frame.sanitize_for_user(USER_END).is_err() {
            signal::force_sigsegv(format_args!(
                "return to user mode with rip {:#x}, outside user space",
                frame.rip
            ));
            continue;
        }
        break;
    }
    interrupts::disable();
}
