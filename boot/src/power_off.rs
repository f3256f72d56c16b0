//! Reading how a run ended: the power-off protocol of pid 1 (described in
//! [`crate::qemu`]) and the runner's exit status for runs that are not test kernels.
//!
//! The serial output is scanned as it streams past ([`SerialWatch`]), so a long
//! interactive session is not kept in memory; [`verdict`] then turns QEMU's ending and
//! what was seen into the runner's exit status and, for anything but a clean power-off,
//! a `[runner] ...` line saying what happened.

use std::time::Duration;

use crate::qemu::Ending;

/// The line the kernel prints when pid 1 ends: `[kernel] power off: init exited with status S`.
pub const POWER_OFF_PREFIX: &str = "[kernel] power off: init exited with status ";
/// What a kernel panic line starts with (the kernel's panic handler).
pub const PANIC_PREFIX: &str = "[kernel panic] ";
/// What QEMU's console multiplexer prints when the user quits with Ctrl-A X.
pub const QEMU_QUIT_LINE: &str = "QEMU: Terminated";

/// QEMU exit statuses for the values the kernel writes to `isa-debug-exit` (v -> 2v+1).
pub const QEMU_SUCCESS: i32 = 33; // 0x10: the kernel finished successfully (test kernels)
pub const QEMU_FAILURE: i32 = 35; // 0x11: kernel panic / a test failed
pub const QEMU_POWER_OFF: i32 = 37; // 0x12: pid 1 ended; its status is on the serial line

/// The runner's own exit statuses (besides init's status S and 0).
pub const EXIT_TIMEOUT: i32 = 124; // like coreutils' timeout(1)
pub const EXIT_KERNEL_FAILED: i32 = 125; // kernel panic, reset/triple fault, no status line, ...
pub const EXIT_QUIT: i32 = 130; // an --init run the user quit with Ctrl-A X (like Ctrl-C)

/// The status S in a `[kernel] power off: init exited with status S` line (anywhere in
/// the line, so output a program left without a newline does not hide it). S is taken
/// modulo 256, as an exit status is.
pub fn parse_power_off_line(line: &str) -> Option<u8> {
    let at = line.find(POWER_OFF_PREFIX)?;
    let rest = line[at + POWER_OFF_PREFIX.len()..].trim_end_matches(['\r', '\n', ' ']);
    let (negative, digits) = match rest.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, rest),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let n = if negative { -n } else { n };
    Some(n.rem_euclid(256) as u8)
}

/// What the serial output said, collected line by line as it streams.
#[derive(Debug, Default)]
pub struct SerialWatch {
    partial: Vec<u8>,
    /// S from the LAST power-off line.
    pub init_status: Option<u8>,
    /// The first kernel panic line (without its prefix).
    pub panic: Option<String>,
    /// QEMU printed "QEMU: Terminated" (Ctrl-A X).
    pub quit: bool,
    /// The return addresses of a panic's backtrace line, until the reader takes them
    /// to print their names (`crate::symbolize`).
    pub backtrace: Option<Vec<u64>>,
}

/// Longest partial line kept; longer lines are cut (a status line is short).
const MAX_LINE: usize = 4096;

impl SerialWatch {
    /// Scan a chunk of output (chunks may split lines anywhere).
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.line(&String::from_utf8_lossy(&line));
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            }
        }
    }

    /// The output ended: scan the last, unterminated line.
    pub fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&String::from_utf8_lossy(&line));
        }
    }

    fn line(&mut self, line: &str) {
        let line = line.trim_end_matches('\r');
        if let Some(s) = parse_power_off_line(line) {
            self.init_status = Some(s);
        }
        if let Some(at) = line.find(PANIC_PREFIX) {
            if self.panic.is_none() {
                self.panic = Some(line[at + PANIC_PREFIX.len()..].to_string());
            }
        }
        if self.panic.is_some() {
            if let Some(addrs) = crate::symbolize::parse_backtrace_line(line) {
                self.backtrace = Some(addrs);
            }
        }
        if line.contains(QEMU_QUIT_LINE) {
            self.quit = true;
        }
    }
}

/// What the run was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A plain `make run` / `cargo run`: the kernel may also just finish (status 33 -> 0)
    /// or the user may quit (Ctrl-A X -> 0).
    AnyEnd,
    /// An `--init PROGRAM` run: only pid 1's power-off gives a status; every other
    /// ending is a failure.
    InitStatus,
}

/// The runner's exit status and, unless the run ended as expected, why.
#[derive(Debug, PartialEq, Eq)]
pub struct RunVerdict {
    pub code: i32,
    pub message: Option<String>,
}

impl RunVerdict {
    fn ok(code: i32) -> Self {
        RunVerdict {
            code,
            message: None,
        }
    }

    fn fail(code: i32, message: String) -> Self {
        RunVerdict {
            code,
            message: Some(message),
        }
    }
}

/// Decide the runner's exit status (see the table in [`crate::qemu`]).
/// `timeout_var` names the variable that set the timeout, for the message.
pub fn verdict(
    ending: &Ending,
    watch: &SerialWatch,
    expect: Expect,
    timeout_var: &str,
) -> RunVerdict {
    let panic = || match &watch.panic {
        Some(msg) => format!("kernel panic: {msg}"),
        None => "kernel reported failure (QEMU exit status 35)".to_string(),
    };
    match ending {
        Ending::Exited(QEMU_POWER_OFF) => match watch.init_status {
            Some(s) => RunVerdict::ok(i32::from(s)),
            None => RunVerdict::fail(
                EXIT_KERNEL_FAILED,
                "QEMU powered off (exit status 37) but the kernel printed no \
                 `[kernel] power off: init exited with status S` line"
                    .to_string(),
            ),
        },
        Ending::Exited(QEMU_SUCCESS) => match expect {
            Expect::AnyEnd => RunVerdict::ok(0),
            Expect::InitStatus => RunVerdict::fail(
                EXIT_KERNEL_FAILED,
                "the kernel exited with its success code (QEMU 33) instead of powering off \
                 when init ended: does this kernel run /init?"
                    .to_string(),
            ),
        },
        Ending::Exited(QEMU_FAILURE) => RunVerdict::fail(EXIT_KERNEL_FAILED, panic()),
        Ending::Exited(0) if watch.quit => match expect {
            Expect::AnyEnd => RunVerdict::ok(0),
            Expect::InitStatus => RunVerdict::fail(
                EXIT_QUIT,
                "QEMU was quit (Ctrl-A X) before init exited".to_string(),
            ),
        },
        Ending::Exited(0) => RunVerdict::fail(
            EXIT_KERNEL_FAILED,
            "QEMU exited with status 0: the machine reset or shut down (triple fault?) \
             without the kernel powering off"
                .to_string(),
        ),
        Ending::Exited(code) => RunVerdict::fail(
            EXIT_KERNEL_FAILED,
            format!("unexpected QEMU exit status {code} (a QEMU error is printed above it)"),
        ),
        Ending::Signalled => RunVerdict::fail(
            EXIT_KERNEL_FAILED,
            "QEMU was killed by a signal".to_string(),
        ),
        Ending::TimedOut(t) => {
            let seen = match watch.init_status {
                Some(s) => format!("; init had exited with status {s} but QEMU did not power off"),
                None => String::new(),
            };
            RunVerdict::fail(
                EXIT_TIMEOUT,
                format!(
                    "timed out after {} s ({timeout_var}); QEMU was stopped{seen}",
                    fmt_secs(*t)
                ),
            )
        }
    }
}

/// "15" or "2.5".
fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(text: &str) -> SerialWatch {
        let mut w = SerialWatch::default();
        w.feed(text.as_bytes());
        w.finish();
        w
    }

    #[test]
    fn status_line_parses() {
        let p = parse_power_off_line;
        assert_eq!(p("[kernel] power off: init exited with status 0"), Some(0));
        assert_eq!(
            p("[kernel] power off: init exited with status 3\r"),
            Some(3)
        );
        assert_eq!(
            p("[kernel] power off: init exited with status 255\r\n"),
            Some(255)
        );
        assert_eq!(
            p("# [kernel] power off: init exited with status 42"),
            Some(42)
        );
        assert_eq!(
            p("[kernel] power off: init exited with status 300"),
            Some(44)
        );
        assert_eq!(
            p("[kernel] power off: init exited with status -1"),
            Some(255)
        );
        assert_eq!(p("[kernel] power off: init exited with status "), None);
        assert_eq!(p("[kernel] power off: init exited with status x1"), None);
        assert_eq!(p("[kernel] power off: init exited with status 1 2"), None);
        assert_eq!(
            p("[kernel] power off: init exited with status 99999999999999999999"),
            None
        );
        assert_eq!(p("init exited with status 3"), None);
    }

    #[test]
    fn last_status_line_wins_across_split_chunks() {
        let mut w = SerialWatch::default();
        let text = "boot\n[kernel] power off: init exited with status 7\n\
                    junk\r\n[kernel] power off: init exited with status 12\r\n";
        for chunk in text.as_bytes().chunks(5) {
            w.feed(chunk);
        }
        w.finish();
        assert_eq!(w.init_status, Some(12));
        // Without a final newline too.
        assert_eq!(
            watch("x\n[kernel] power off: init exited with status 9").init_status,
            Some(9)
        );
    }

    #[test]
    fn power_off_exits_with_init_status() {
        let w = watch("[kernel] power off: init exited with status 3\n");
        for expect in [Expect::AnyEnd, Expect::InitStatus] {
            assert_eq!(
                verdict(&Ending::Exited(37), &w, expect, "KRUN_TIMEOUT"),
                RunVerdict::ok(3)
            );
        }
        let v = verdict(
            &Ending::Exited(37),
            &watch("no line\n"),
            Expect::AnyEnd,
            "T",
        );
        assert_eq!(v.code, EXIT_KERNEL_FAILED);
        assert!(v.message.unwrap().contains("no `[kernel] power off"));
    }

    #[test]
    fn other_endings() {
        let none = watch("");
        let v = |e: Ending, w: &SerialWatch, x: Expect| verdict(&e, w, x, "KRUN_TIMEOUT");
        assert_eq!(
            v(Ending::Exited(33), &none, Expect::AnyEnd),
            RunVerdict::ok(0)
        );
        assert_eq!(v(Ending::Exited(33), &none, Expect::InitStatus).code, 125);
        let panic = watch("[kernel panic] boom at x.rs:1:2\n");
        let r = v(Ending::Exited(35), &panic, Expect::AnyEnd);
        assert_eq!(r.code, EXIT_KERNEL_FAILED);
        assert!(r
            .message
            .unwrap()
            .contains("kernel panic: boom at x.rs:1:2"));
        let r = v(Ending::Exited(0), &none, Expect::AnyEnd);
        assert_eq!(r.code, EXIT_KERNEL_FAILED);
        assert!(r.message.unwrap().contains("triple fault"));
        let quit = watch("QEMU: Terminated\n\r");
        assert_eq!(
            v(Ending::Exited(0), &quit, Expect::AnyEnd),
            RunVerdict::ok(0)
        );
        assert_eq!(
            v(Ending::Exited(0), &quit, Expect::InitStatus).code,
            EXIT_QUIT
        );
        assert_eq!(v(Ending::Exited(1), &none, Expect::AnyEnd).code, 125);
        assert_eq!(v(Ending::Signalled, &none, Expect::AnyEnd).code, 125);
        let r = v(
            Ending::TimedOut(Duration::from_secs(15)),
            &none,
            Expect::InitStatus,
        );
        assert_eq!(r.code, EXIT_TIMEOUT);
        assert!(r
            .message
            .unwrap()
            .contains("timed out after 15 s (KRUN_TIMEOUT)"));
    }
}
