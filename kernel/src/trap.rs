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

use crate::arch::x86_64::trap::{self as arch_trap, Handlers, TrapEvent, TrapFrame};
use crate::mm::page_table::USER_END;
use crate::proc::{self, sched, ExitStatus};
use crate::vm::{self, Access, FaultOutcome, Privilege};

/// Register the handlers with the architecture code (once, at boot).
pub fn init() {
    arch_trap::set_handlers(Handlers {
        user_trap,
        timer_tick: sched::on_tick,
        user_end: USER_END,
    });
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
            proc::kill_current_for_fault(
                signal_for(vector),
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

/// A page fault in user mode: let the VM layer fix it; what it cannot fix ends the
/// process with the signal Linux sends.
fn user_page_fault(frame: &TrapFrame, addr: u64, code: PageFaultErrorCode) {
    let access = if code.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
        Access::Execute
    } else if code.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
        Access::Write
    } else {
        Access::Read
    };
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
        FaultOutcome::BadAccess(reason) => proc::kill_current_for_fault(
            proc::SIGSEGV,
            format_args!("{access:?} at address {addr:#x}, rip {rip:#x}: {reason}"),
        ),
        FaultOutcome::OutOfMemory => proc::kill_current_for_fault(
            proc::SIGKILL,
            format_args!("out of memory at address {addr:#x}, rip {rip:#x}"),
        ),
        // A user access to a kernel (upper-half) or non-canonical address.
        FaultOutcome::KernelBug(_) => proc::kill_current_for_fault(
            proc::SIGSEGV,
            format_args!("{access:?} at kernel address {addr:#x}, rip {rip:#x}"),
        ),
    }
}

/// The signal Linux sends for an exception in user code.
fn signal_for(vector: u8) -> i32 {
    match vector {
        1 | 3 => proc::SIGTRAP,
        0 | 16 | 19 => proc::SIGFPE,
        6 => proc::SIGILL,
        17 => proc::SIGBUS,
        _ => proc::SIGSEGV,
    }
}

/// The one way back to ring 3 (Linux `exit_to_user_mode_loop`): give the CPU away if
/// the time slice is over, then end the process if it was sent SIGKILL, then check the
/// frame (a frame no `iretq` may take kills with SIGSEGV). Returns with interrupts off.
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
        break;
    }
    if frame.sanitize_for_user(USER_END).is_err() {
        proc::kill_current_for_fault(
            proc::SIGSEGV,
            format_args!(
                "return to user mode with rip {:#x}, outside user space",
                frame.rip
            ),
        );
    }
    interrupts::disable();
}
