//! Names for a kernel panic's backtrace. The kernel prints the return addresses it finds
//! by following frame pointers (`  backtrace: 0x... 0x...`, kernel/src/arch/x86_64/
//! backtrace.rs); the runner, which knows the unstripped kernel ELF, turns them into
//! function names and source lines with binutils' `addr2line`, right below the panic.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What the kernel's backtrace line starts with.
pub const BACKTRACE_PREFIX: &str = "  backtrace:";

/// The kernel ELF with debug info (set once per run).
static KERNEL: OnceLock<PathBuf> = OnceLock::new();

/// Say which kernel the addresses belong to.
pub fn set_kernel(path: &Path) {
    let _ = KERNEL.set(path.to_path_buf());
}

/// The addresses of a backtrace line, or `None` if `line` is not one.
pub fn parse_backtrace_line(line: &str) -> Option<Vec<u64>> {
    let rest = line.strip_prefix(BACKTRACE_PREFIX)?;
    rest.split_whitespace()
        .map(|w| u64::from_str_radix(w.strip_prefix("0x")?, 16).ok())
        .collect()
}

/// Print one line per address: `#i 0xADDR function at file:line`. Says so instead when
/// `addr2line` is not installed or the kernel is not known.
pub fn print(addrs: &[u64]) {
    let Some(kernel) = KERNEL.get() else { return };
    if addrs.is_empty() {
        return;
    }
    let mut cmd = Command::new("addr2line");
    cmd.arg("-f").arg("-C").arg("-e").arg(kernel);
    // A return address points after the call: name the call itself.
    cmd.args(addrs.iter().map(|a| format!("{:#x}", a.saturating_sub(1))));
    let out = match cmd.output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            println!(
                "[runner] (no addr2line: install binutils to see the backtrace's function names)"
            );
            return;
        }
    };
    println!("[runner] backtrace of the panic (innermost first):");
    let lines: Vec<&str> = out.lines().collect();
    for (i, (pair, addr)) in lines.chunks(2).zip(addrs).enumerate() {
        let function = pair.first().copied().unwrap_or("??");
        let place = pair.get(1).copied().unwrap_or("??");
        println!(
            "[runner]   #{i:<2} {addr:#x} {function} at {}",
            short_path(place)
        );
    }
}

/// A source path relative to the repository, or without the toolchain's or cargo
/// registry's long prefix.
fn short_path(place: &str) -> &str {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent();
    if let Some(rest) = repo
        .and_then(|r| r.to_str())
        .and_then(|r| place.strip_prefix(r))
    {
        return rest.trim_start_matches('/');
    }
    for marker in ["/library/", "/registry/src/"] {
        if let Some(at) = place.find(marker) {
            return &place[at + 1..];
        }
    }
    place
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtrace_lines_parse() {
        assert_eq!(
            parse_backtrace_line("  backtrace: 0xffffffff80001000 0x10"),
            Some(vec![0xffff_ffff_8000_1000, 0x10])
        );
        assert_eq!(parse_backtrace_line("  backtrace:"), Some(vec![]));
        assert_eq!(parse_backtrace_line("  backtrace: zz"), None);
        assert_eq!(parse_backtrace_line("running 3 tests"), None);
    }
}
