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
