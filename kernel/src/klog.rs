//! Kernel log: the `log` crate's macros (`log::info!`, `log::warn!`, ...) print to the
//! serial console as `[   1.234] INFO  module: message`.
//!
//! The level is `Info` by default; tests and debugging can lower or raise it with
//! [`set_level`].

use crate::serial_println;
use log::{LevelFilter, Log, Metadata, Record};

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = crate::arch::x86_64::tsc::uptime_ns();
        let module = record
            .module_path()
            .map(|m| m.trim_start_matches("kernel::"))
            .unwrap_or("?");
        serial_println!(
            "[{:>5}.{:03}] {:<5} {}: {}",
            ns / 1_000_000_000,
            (ns / 1_000_000) % 1000,
            record.level(),
            module,
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Install the serial logger. Safe to call more than once (later calls do nothing).
pub fn init() {
    // set_logger fails only if a logger is already installed, which is fine.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// Change which messages are printed from now on.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// Rate limiting for messages a user program can cause at will (Linux
/// `DEFINE_RATELIMIT_STATE` + `__ratelimit`, what `printk_ratelimited` uses): at most
/// `burst` messages per `interval_ms`; when a new interval starts after some were
/// dropped, one line says how many.
pub struct RateLimit {
    name: &'static str,
    interval_ms: u64,
    burst: u32,
    begin: core::sync::atomic::AtomicU64,
    printed: core::sync::atomic::AtomicU32,
    missed: core::sync::atomic::AtomicU32,
}

impl RateLimit {
    /// A limit named `name` (it names the suppressed-messages line).
    pub const fn new(name: &'static str, interval_ms: u64, burst: u32) -> RateLimit {
        RateLimit {
            name,
            interval_ms,
            burst,
            begin: core::sync::atomic::AtomicU64::new(0),
            printed: core::sync::atomic::AtomicU32::new(0),
            missed: core::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Whether one more message may be printed now.
    pub fn allow(&self) -> bool {
        use core::sync::atomic::Ordering::Relaxed;
        let now = crate::arch::x86_64::tsc::uptime_ns() / 1_000_000;
        let begin = self.begin.load(Relaxed);
        if begin == 0 || now.saturating_sub(begin) >= self.interval_ms {
            let missed = self.missed.swap(0, Relaxed);
            if missed > 0 {
                log::warn!("{}: {missed} messages suppressed", self.name);
            }
            self.begin.store(now.max(1), Relaxed);
            self.printed.store(0, Relaxed);
        }
        if self.printed.fetch_add(1, Relaxed) < self.burst {
            true
        } else {
            self.missed.fetch_add(1, Relaxed);
            false
        }
    }
}
