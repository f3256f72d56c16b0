//! The Interrupt Descriptor Table: one handler for every CPU exception (vectors 0-31),
//! plus the hardware interrupts of [`super::interrupts`].
//!
//! An exception the kernel does not expect is a kernel bug: the handler prints a report
//! (vector, name, error code, RIP, and for page faults CR2 with the error bits decoded)
//! and panics. A breakpoint (`int3`) is reported and execution continues.

use core::fmt;
use spin::Lazy;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use super::gdt;

static IDT: Lazy<InterruptDescriptorTable> = Lazy::new(|| {
    let mut idt = InterruptDescriptorTable::new();
    idt.divide_error.set_handler_fn(divide_error);
    idt.debug.set_handler_fn(debug);
    // int3 is an instruction user code may execute: its gate must allow ring 3
    // (otherwise the CPU raises #GP instead).
    idt.breakpoint
        .set_handler_fn(breakpoint)
        .set_privilege_level(x86_64::PrivilegeLevel::Ring3);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded
        .set_handler_fn(bound_range_exceeded);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available
        .set_handler_fn(device_not_available);
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment_fault);
    idt.general_protection_fault
        .set_handler_fn(general_protection_fault);
    idt.page_fault.set_handler_fn(page_fault);
    idt.x87_floating_point.set_handler_fn(x87_floating_point);
    idt.alignment_check.set_handler_fn(alignment_check);
    idt.simd_floating_point.set_handler_fn(simd_floating_point);
    idt.virtualization.set_handler_fn(virtualization);
    idt.cp_protection_exception.set_handler_fn(cp_protection);
    idt.hv_injection_exception.set_handler_fn(hv_injection);
    idt.vmm_communication_exception
        .set_handler_fn(vmm_communication);
    idt.security_exception.set_handler_fn(security);
    // SAFETY: each IST index names a stack that gdt::init() installed in the TSS, and
    // no other handler uses those stacks, so a nested exception cannot clobber them.
    unsafe {
        idt.double_fault
            .set_handler_fn(double_fault)
            .set_stack_index(gdt::DOUBLE_FAULT_IST_INDEX);
        idt.non_maskable_interrupt
            .set_handler_fn(nmi)
            .set_stack_index(gdt::NMI_IST_INDEX);
        idt.machine_check
            .set_handler_fn(machine_check)
            .set_stack_index(gdt::MACHINE_CHECK_IST_INDEX);
    }
    super::interrupts::install(&mut idt);
    idt
});

/// Load the IDT. Exceptions are handled from here on; hardware interrupts stay off
/// until [`super::interrupts::init`].
pub fn init() {
    IDT.load();
}

/// What an exception handler knows, formatted as the one-paragraph report we print.
pub struct ExceptionReport<'a> {
    pub vector: u8,
    pub name: &'static str,
    pub error_code: Option<u64>,
    pub frame: &'a InterruptStackFrame,
}

impl fmt::Display for ExceptionReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = &**self.frame;
        write!(f, "EXCEPTION {} (vector {})", self.name, self.vector)?;
        if let Some(code) = self.error_code {
            write!(f, ", error code {code:#x}")?;
        }
        write!(
            f,
            "\n  rip={:#018x} cs={:#x} rflags={:#x} rsp={:#018x} ss={:#x}",
            frame.instruction_pointer.as_u64(),
            frame.code_segment.0,
            frame.cpu_flags.bits(),
            frame.stack_pointer.as_u64(),
            frame.stack_segment.0,
        )?;
        if self.vector == 14 {
            let code = PageFaultErrorCode::from_bits_truncate(self.error_code.unwrap_or(0));
            write!(
                f,
                "\n  cr2={:#018x} ({})",
                Cr2::read_raw(),
                DecodedPageFault(code)
            )?;
        }
        Ok(())
    }
}

/// Page-fault error bits in words: "write, present (protection), user, instruction fetch".
pub struct DecodedPageFault(pub PageFaultErrorCode);

impl fmt::Display for DecodedPageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        let access = if c.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
            "instruction fetch"
        } else if c.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
            "write"
        } else {
            "read"
        };
        let cause = if c.contains(PageFaultErrorCode::PROTECTION_VIOLATION) {
            "page present: protection violation"
        } else {
            "page not present"
        };
        let mode = if c.contains(PageFaultErrorCode::USER_MODE) {
            "user mode"
        } else {
            "kernel mode"
        };
        write!(f, "{access}, {cause}, {mode}")?;
        if c.contains(PageFaultErrorCode::MALFORMED_TABLE) {
            write!(f, ", reserved bit set in a page-table entry")?;
        }
        Ok(())
    }
}

/// Whether the exception interrupted ring-3 code.
fn from_user(frame: &InterruptStackFrame) -> bool {
    frame.code_segment.rpl() == x86_64::PrivilegeLevel::Ring3
}

/// The signal Linux sends for an exception in user code.
fn signal_for(vector: u8) -> i32 {
    use crate::proc::{SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};
    match vector {
        1 | 3 => SIGTRAP,
        0 | 16 | 19 => SIGFPE,
        6 => SIGILL,
        17 => SIGBUS,
        _ => SIGSEGV,
    }
}

/// An exception: in user code it kills only that process (with the signal Linux would
/// send, and a line saying why); in the kernel it is a bug: report and panic.
fn fatal(
    vector: u8,
    name: &'static str,
    error_code: Option<u64>,
    frame: &InterruptStackFrame,
) -> ! {
    if from_user(frame) {
        crate::proc::kill_current_for_fault(
            signal_for(vector),
            format_args!("{name} at rip {:#x}", frame.instruction_pointer.as_u64()),
        );
    }
    let report = ExceptionReport {
        vector,
        name,
        error_code,
        frame,
    };
    panic!("{report}");
}

/// Define handlers for exceptions that are always fatal in the kernel.
macro_rules! fatal_handlers {
    ($( $fn_name:ident, $vector:expr, $name:expr, no_code; )*) => {$(
        extern "x86-interrupt" fn $fn_name(frame: InterruptStackFrame) {
            fatal($vector, $name, None, &frame);
        }
    )*};
}

macro_rules! fatal_handlers_with_code {
    ($( $fn_name:ident, $vector:expr, $name:expr; )*) => {$(
        extern "x86-interrupt" fn $fn_name(frame: InterruptStackFrame, code: u64) {
            fatal($vector, $name, Some(code), &frame);
        }
    )*};
}

fatal_handlers! {
    divide_error, 0, "divide error (#DE)", no_code;
    debug, 1, "debug (#DB)", no_code;
    overflow, 4, "overflow (#OF)", no_code;
    bound_range_exceeded, 5, "bound range exceeded (#BR)", no_code;
    invalid_opcode, 6, "invalid opcode (#UD)", no_code;
    device_not_available, 7, "device not available (#NM)", no_code;
    x87_floating_point, 16, "x87 floating point (#MF)", no_code;
    simd_floating_point, 19, "SIMD floating point (#XM)", no_code;
    virtualization, 20, "virtualization (#VE)", no_code;
    hv_injection, 28, "hypervisor injection (#HV)", no_code;
    nmi, 2, "non-maskable interrupt (NMI)", no_code;
}

fatal_handlers_with_code! {
    invalid_tss, 10, "invalid TSS (#TS)";
    segment_not_present, 11, "segment not present (#NP)";
    stack_segment_fault, 12, "stack-segment fault (#SS)";
    general_protection_fault, 13, "general protection fault (#GP)";
    alignment_check, 17, "alignment check (#AC)";
    cp_protection, 21, "control protection (#CP)";
    vmm_communication, 29, "VMM communication (#VC)";
    security, 30, "security exception (#SX)";
}

extern "x86-interrupt" fn breakpoint(frame: InterruptStackFrame) {
    if from_user(&frame) {
        // No debugger support: like Linux without a tracer, int3 kills with SIGTRAP.
        fatal(3, "breakpoint (int3)", None, &frame);
    }
    log::info!(
        "breakpoint (int3) at rip={:#x}; continuing",
        frame.instruction_pointer.as_u64()
    );
}

/// The page-fault handler: decode the error code and let the VM layer fix the fault
/// (demand paging, copy-on-write, device-exclusive restore). What it cannot fix is, for
/// now, fatal; with processes, a user's bad access kills only that process.
extern "x86-interrupt" fn page_fault(frame: InterruptStackFrame, code: PageFaultErrorCode) {
    use crate::vm::{self, Access, FaultOutcome, Privilege};
    let addr = Cr2::read_raw();
    let access = if code.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
        Access::Execute
    } else if code.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
        Access::Write
    } else {
        Access::Read
    };
    let who = if code.contains(PageFaultErrorCode::USER_MODE) {
        Privilege::User
    } else {
        Privilege::Kernel
    };
    // The fault path sleeps (address-space lock, frame locks): let interrupts in if the
    // faulting code had them on (user code always has). CR2 was read above.
    let irq_on = frame
        .cpu_flags
        .contains(x86_64::registers::rflags::RFlags::INTERRUPT_FLAG);
    if irq_on {
        x86_64::instructions::interrupts::enable();
    }
    let outcome = match x86_64::VirtAddr::try_new(addr) {
        Ok(va) if !code.contains(PageFaultErrorCode::MALFORMED_TABLE) => {
            vm::page_fault(va, access, who)
        }
        _ => FaultOutcome::KernelBug(vm::KernelBug::KernelAddress),
    };
    if who == Privilege::User {
        // Returning to user mode: a pending SIGKILL takes effect now.
        crate::proc::exit_if_killed();
    }
    x86_64::instructions::interrupts::disable();
    let rip = frame.instruction_pointer.as_u64();
    match outcome {
        // Killed: only for user faults, and exit_if_killed above did not return.
        FaultOutcome::Fixed(_) | FaultOutcome::Killed if who == Privilege::User => return,
        FaultOutcome::Fixed(_) => return,
        FaultOutcome::BadAccess(reason) if who == Privilege::User => {
            crate::proc::kill_current_for_fault(
                crate::proc::SIGSEGV,
                format_args!("{access:?} at address {addr:#x}, rip {rip:#x}: {reason}"),
            )
        }
        FaultOutcome::OutOfMemory if who == Privilege::User => crate::proc::kill_current_for_fault(
            crate::proc::SIGKILL,
            format_args!("out of memory at address {addr:#x}, rip {rip:#x}"),
        ),
        FaultOutcome::KernelBug(_) if who == Privilege::User => {
            // A user access to a kernel address (the upper half is never user-accessible).
            crate::proc::kill_current_for_fault(
                crate::proc::SIGSEGV,
                format_args!("{access:?} at kernel address {addr:#x}, rip {rip:#x}"),
            )
        }
        _ => {}
    }
    let report = ExceptionReport {
        vector: 14,
        name: "page fault (#PF)",
        error_code: Some(code.bits()),
        frame: &frame,
    };
    panic!("{report}\n  fault path: {outcome:?}");
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    fatal(
        8,
        "double fault (#DF) - often a kernel stack overflow",
        Some(code),
        &frame,
    );
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fatal(18, "machine check (#MC)", None, &frame);
}
