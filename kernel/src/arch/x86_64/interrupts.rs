//! Hardware interrupts: the legacy 8259 PIC pair and the 8254 PIT timer.
//!
//! The PICs power up delivering IRQs on vectors 8-15, on top of CPU exceptions, so we
//! remap them to 32-47 and mask every line except IRQ 0, the timer. The PIT is
//! programmed to fire [`TIMER_HZ`] times a second; each tick increments a counter. The
//! interrupts enter through the common stubs of [`super::trap`].

use core::sync::atomic::{AtomicU64, Ordering};
use pic8259::ChainedPics;
use spin::Mutex;
use x86_64::instructions::port::Port;
use x86_64::structures::idt::InterruptDescriptorTable;

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

/// Point the PIC vectors (32-47) of the IDT at their entry stubs (see `trap`): the
/// timer is decoded by `trap_dispatch`, the others are spurious or masked.
pub fn install(idt: &mut InterruptDescriptorTable) {
    for vector in PIC_1_OFFSET..PIC_2_OFFSET + 8 {
        // SAFETY: the stub is an entry point built for exactly this vector: it saves a
        // full TrapFrame and returns with iretq.
        unsafe {
            idt[vector].set_handler_addr(x86_64::VirtAddr::new(super::trap::stub_address(vector)));
        }
    }
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

/// The timer interrupt, as far as the hardware goes: count the tick and acknowledge it
/// at the PIC. Returns the new tick count. (Waking sleepers and preemption are the
/// scheduler's business: `trap` hands the tick up.)
pub fn timer_tick() -> u64 {
    let now = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    // SAFETY: we are in the handler of TIMER_VECTOR, which the PIC delivered.
    unsafe { PICS.lock().notify_end_of_interrupt(TIMER_VECTOR) };
    now
}

/// Whether `vector` is a PIC vector other than the timer (spurious IRQ 7/15, or a line
/// that is masked and so only arrives spuriously).
pub fn is_spurious(vector: u64) -> bool {
    (u64::from(PIC_1_OFFSET) + 1..u64::from(PIC_2_OFFSET) + 8).contains(&vector)
}

/// Handle a spurious PIC interrupt: IRQ 7 is not acknowledged; IRQ 15 is acknowledged
/// on the primary only (for the cascade line).
pub fn spurious(vector: u64) {
    if vector >= u64::from(PIC_2_OFFSET) {
        let mut primary = Port::<u8>::new(0x20);
        // SAFETY: 0x20 is the primary PIC's command port; 0x20 is the EOI command.
        unsafe { primary.write(0x20) };
    }
}
