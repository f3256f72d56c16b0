//! The time-stamp counter: a cycle counter, calibrated once against the PIT timer so
//! cycles can be turned into nanoseconds (for the log, the boot banner and benchmarks).

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

/// Measure the TSC frequency over `CALIBRATION_TICKS` timer ticks. Needs the timer
/// interrupt running (see [`super::interrupts`]).
pub fn calibrate() {
    const CALIBRATION_TICKS: u64 = 20;
    let start_tick = wait_for_next_tick();
    let start = read();
    while super::interrupts::ticks() < start_tick + CALIBRATION_TICKS {
        x86_64::instructions::hlt();
    }
    let cycles = read() - start;
    let us = CALIBRATION_TICKS * 1_000_000 / super::interrupts::TIMER_HZ;
    let mhz = (cycles / us).max(1);
    TSC_MHZ.store(mhz, Ordering::Relaxed);
    NS_PER_CYCLE_FP32.store((1000u64 << 32) / mhz, Ordering::Relaxed);
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
