//! Hardware interrupts: the legacy 8259 PIC pair and the 8254 PIT timer.
//!
//! The PICs power up delivering IRQs on vectors 8-15, on top of CPU exceptions, so we
//! remap them to 32-47 and mask every line except IRQ 0, the timer. The PIT is
//! programmed to fire [`TIMER_HZ`] times a second; each tick increments a counter.

use core::sync::atomic::{AtomicU64, Ordering};
use pic8259::ChainedPics;
use spin::Mutex;
use x86_64::instructions::port::Port;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame};

/// First vector of the primary PIC after remapping (IRQ n -> vector 32 + n).
pub const PIC_1_OFFSET: u8 = 32;
/// First vector of the secondary PIC.
pub const PIC_2_OFFSET: u8 = PIC_1_OFFSET + 8;
/// Vector of the timer interrupt (IRQ 0).
pub const TIMER_VECTOR: u8 = PIC_1_OFFSET;
/// Timer interrupts per second.
pub const TIMER_HZ: u64 = 1000;

/// The PIT's input clock in Hz.
const PIT_BASE_HZ: u64 = 1_193_182;

// SAFETY: the offsets 32 and 40 do not overlap CPU exception vectors (0-31) or each other.
static PICS: Mutex<ChainedPics> =
    Mutex::new(unsafe { ChainedPics::new(PIC_1_OFFSET, PIC_2_OFFSET) });

static TICKS: AtomicU64 = AtomicU64::new(0);

/// Timer ticks since interrupts were enabled.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Add our interrupt handlers to the IDT (called while the IDT is built).
pub fn install(idt: &mut InterruptDescriptorTable) {
    idt[TIMER_VECTOR].set_handler_fn(timer_interrupt);
    // A spurious IRQ 7 / IRQ 15 can arrive even when masked; ignore them.
    idt[PIC_1_OFFSET + 7].set_handler_fn(spurious_primary);
    idt[PIC_2_OFFSET + 7].set_handler_fn(spurious_secondary);
}

/// Remap and mask the PICs, start the PIT, enable interrupts.
pub fn init() {
    let mut pics = PICS.lock();
    // SAFETY: the PICs are standard PC hardware at their standard ports; remapping is
    // done with interrupts disabled (they have not been enabled yet).
    unsafe {
        pics.initialize();
        // Mask bits: 1 = masked. Primary: everything but IRQ 0 (timer) and IRQ 2 (the
        // cascade to the secondary). Secondary: everything.
        pics.write_masks(0b1111_1010, 0b1111_1111);
    }
    drop(pics);
    program_pit(TIMER_HZ);
    x86_64::instructions::interrupts::enable();
}

/// Program PIT channel 0 as a rate generator at `hz`.
fn program_pit(hz: u64) {
    let divisor = (PIT_BASE_HZ / hz) as u16;
    let mut command = Port::<u8>::new(0x43);
    let mut channel0 = Port::<u8>::new(0x40);
    // SAFETY: 0x43/0x40 are the PIT's command and channel-0 data ports. Mode 2 (rate
    // generator), access lobyte/hibyte, binary counting.
    unsafe {
        command.write(0b0011_0100);
        channel0.write((divisor & 0xff) as u8);
        channel0.write((divisor >> 8) as u8);
    }
}

/// Count the tick, wake sleepers whose time has come, and preempt user code whose time
/// slice is over (kernel code is never preempted; see `proc::sched`).
extern "x86-interrupt" fn timer_interrupt(frame: InterruptStackFrame) {
    let now = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    // SAFETY: we are in the handler of TIMER_VECTOR, which the PIC delivered.
    unsafe { PICS.lock().notify_end_of_interrupt(TIMER_VECTOR) };
    let slice_over = crate::proc::sched::on_tick(now);
    if frame.code_segment.rpl() == x86_64::PrivilegeLevel::Ring3 {
        if slice_over {
            crate::proc::sched::yield_now();
        }
        crate::proc::exit_if_killed();
    }
}

extern "x86-interrupt" fn spurious_primary(_frame: InterruptStackFrame) {
    // A spurious IRQ 7 must not be acknowledged.
}

extern "x86-interrupt" fn spurious_secondary(_frame: InterruptStackFrame) {
    // A spurious IRQ 15 is acknowledged on the primary only (for the cascade line).
    let mut primary = Port::<u8>::new(0x20);
    // SAFETY: 0x20 is the primary PIC's command port; 0x20 is the EOI command.
    unsafe { primary.write(0x20) };
}
