//! The time-stamp counter: a cycle counter, calibrated once against the PIT so cycles
//! can be turned into nanoseconds (the clocks, the log, the boot banner, benchmarks).

use core::sync::atomic::{AtomicU64, Ordering};

/// TSC ticks per microsecond (= MHz), 0 until [`calibrate`] ran.
static TSC_MHZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per cycle as a 32.32 fixed-point number: ns = cycles * this >> 32. A
/// multiplication instead of a 128-bit division keeps clock_gettime cheap.
static NS_PER_CYCLE_FP32: AtomicU64 = AtomicU64::new(0);

/// The current value of the time-stamp counter.
#[inline]
pub fn read() -> u64 {
    // SAFETY: rdtsc has no side effects and is available on every x86-64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measure the TSC frequency. First against the PIT's channel 2 counting down 50 ms
/// (Linux `pit_calibrate_tsc`): the count is read from the timer itself, so it holds
/// even when QEMU delivers timer interrupts late on a busy host (counting interrupts
/// instead was off by up to 2x then, and every clock with it). If the PIT never reaches
/// its terminal count, over `CALIBRATION_TICKS` timer ticks instead. Needs the timer
/// interrupt running (see [`super::interrupts`]) for the fallback.
pub fn calibrate() {
    let mhz = pit_calibrate(50).unwrap_or_else(|| ticks_calibrate(20));
    let mhz = mhz.max(1);
    TSC_MHZ.store(mhz, Ordering::Relaxed);
    NS_PER_CYCLE_FP32.store((1000u64 << 32) / mhz, Ordering::Relaxed);
}

/// TSC cycles per microsecond over `ms` milliseconds of the PIT's channel 2 in one-shot
/// mode (at most 54 ms: the count is 16 bits at 1.193182 MHz); `None` if it did not
/// finish within a generous number of polls.
fn pit_calibrate(ms: u64) -> Option<u64> {
    use x86_64::instructions::port::Port;
    const PIT_HZ: u64 = 1_193_182;
    let latch = (PIT_HZ * ms / 1000).min(0xffff) as u16;
    let mut gate = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    // SAFETY: 0x61 is the system control port B (bit 0: channel 2's gate, bit 1: the
    // speaker, bit 5: channel 2's output), 0x43/0x42 the PIT's command and channel-2 data
    // ports. Channel 2 drives only the speaker, which stays off; channel 0 (the timer
    // interrupt) is not touched.
    let cycles = unsafe {
        let control = gate.read();
        gate.write((control & !0x02) | 0x01);
        command.write(0xb0); // channel 2, low then high byte, mode 0, binary
        channel2.write(latch as u8);
        channel2.write((latch >> 8) as u8);
        let start = read();
        let mut polls = 0u64;
        while gate.read() & 0x20 == 0 {
            polls += 1;
            if polls > 50_000_000 {
                gate.write(control);
                return None;
            }
        }
        let cycles = read() - start;
        gate.write(control);
        cycles
    };
    let us = u64::from(latch) * 1_000_000 / PIT_HZ;
    Some(cycles / us.max(1))
}

/// TSC cycles per microsecond over `ticks` timer interrupts.
fn ticks_calibrate(ticks: u64) -> u64 {
    let start_tick = wait_for_next_tick();
    let start = read();
    while super::interrupts::ticks() < start_tick + ticks {
        x86_64::instructions::hlt();
    }
    let cycles = read() - start;
    let us = ticks * 1_000_000 / super::interrupts::TIMER_HZ;
    cycles / us
}

fn wait_for_next_tick() -> u64 {
    let now = super::interrupts::ticks();
    while super::interrupts::ticks() == now {
        x86_64::instructions::hlt();
    }
    super::interrupts::ticks()
}

/// TSC frequency in MHz (0 before calibration).
pub fn mhz() -> u64 {
    TSC_MHZ.load(Ordering::Relaxed)
}

/// Convert a cycle count into nanoseconds (0 before calibration).
pub fn cycles_to_ns(cycles: u64) -> u64 {
    let fp = NS_PER_CYCLE_FP32.load(Ordering::Relaxed);
    ((cycles as u128 * fp as u128) >> 32) as u64
}

/// Nanoseconds since CPU reset, as far as the TSC knows (0 before calibration).
pub fn uptime_ns() -> u64 {
    cycles_to_ns(read())
}
