//! A kernel stack overflow must end in the double-fault handler, running on its own IST
//! stack, instead of a triple fault (which would reset the machine).
//!
//! The overflow hits the guard page below the kernel stack; the CPU cannot push the
//! page-fault frame onto the full stack, so it raises a double fault, which switches to
//! the IST stack. We install our own IDT whose double-fault handler reports success.
//! `harness = false`: one check, run by hand.
#![no_std]
#![no_main]
#![feature(abi_x86_interrupt)]

use bootloader_api::BootInfo;
use kernel::arch::x86_64::{gdt, qemu::ExitCode};
use kernel::{serial_println, testing};
use spin::Lazy;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame};

bootloader_api::entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

const NAME: &str = "stack_overflow::double_fault_on_ist_stack";

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::init(boot_info);
    serial_println!("running 1 tests");
    testing::begin_test(NAME);
    TEST_IDT.load();
    recurse(0);
    serial_println!("[recursion returned?]");
    testing::finish(ExitCode::Failed)
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    // volatile read keeps the frame from being optimised into a loop
    let local = [depth; 8];
    recurse(core::hint::black_box(local)[0] + 1) + 1
}

static TEST_IDT: Lazy<InterruptDescriptorTable> = Lazy::new(|| {
    let mut idt = InterruptDescriptorTable::new();
    // SAFETY: the IST slot was installed by gdt::init() and is used only by this handler.
    unsafe {
        idt.double_fault
            .set_handler_fn(test_double_fault)
            .set_stack_index(gdt::DOUBLE_FAULT_IST_INDEX);
    }
    idt
});

extern "x86-interrupt" fn test_double_fault(frame: InterruptStackFrame, _code: u64) -> ! {
    serial_println!(
        "(double fault caught; faulting rsp={:#x})",
        frame.stack_pointer.as_u64()
    );
    testing::end_test_ok(NAME);
    testing::finish(ExitCode::Success)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    testing::test_panic_handler(info)
}
