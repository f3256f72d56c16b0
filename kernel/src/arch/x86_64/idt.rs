//! The Interrupt Descriptor Table: every CPU exception (vectors 0-31) and the PIC's
//! interrupts (32-47) enter through the stubs of [`super::trap`], which build one
//! TrapFrame and hand the decoded event to the upper layers (or, in kernel mode, report
//! a bug). Double fault, NMI and machine check have handlers of their own here, on
//! interrupt stacks (IST), and always panic with a report.

use core::fmt;
use spin::Lazy;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use super::gdt;

static IDT: Lazy<InterruptDescriptorTable> = Lazy::new(|| {
    let mut idt = InterruptDescriptorTable::new();
    // Every exception enters through its stub in `trap` (one TrapFrame, one return
    // path), except the three that arrive on an interrupt stack of their own.
    let stub = |vector: u8| x86_64::VirtAddr::new(super::trap::stub_address(vector));
    macro_rules! to_stub {
        ($($field:ident = $vector:literal),* $(,)?) => {$(
            // SAFETY: the stub is the entry point built for this vector: it saves a
            // full TrapFrame (pushing a dummy error code where the CPU pushes none) and
            // returns with iretq.
            unsafe { idt.$field.set_handler_addr(stub($vector)) };
        )*};
    }
    to_stub!(
        divide_error = 0,
        debug = 1,
        overflow = 4,
        bound_range_exceeded = 5,
        invalid_opcode = 6,
        device_not_available = 7,
        invalid_tss = 10,
        segment_not_present = 11,
        stack_segment_fault = 12,
        general_protection_fault = 13,
        page_fault = 14,
        x87_floating_point = 16,
        alignment_check = 17,
        simd_floating_point = 19,
        virtualization = 20,
        cp_protection_exception = 21,
        hv_injection_exception = 28,
        vmm_communication_exception = 29,
        security_exception = 30,
    );
    // int3 is an instruction user code may execute: its gate must allow ring 3
    // (otherwise the CPU raises #GP instead).
    // SAFETY: as above, for vector 3.
    unsafe { idt.breakpoint.set_handler_addr(stub(3)) }
        .set_privilege_level(x86_64::PrivilegeLevel::Ring3);
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

/// Report and panic: these three arrive on their own interrupt stacks and are never a
/// user's doing that we could recover from.
fn fatal(
    vector: u8,
    name: &'static str,
    error_code: Option<u64>,
    frame: &InterruptStackFrame,
) -> ! {
    let report = ExceptionReport {
        vector,
        name,
        error_code,
        frame,
    };
    panic!("{report}");
}

extern "x86-interrupt" fn nmi(frame: InterruptStackFrame) {
    fatal(2, "non-maskable interrupt (NMI)", None, &frame);
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
