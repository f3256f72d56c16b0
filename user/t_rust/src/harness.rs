//! The test harness: the Rust twin of `ktest_main` in user/c/ktest.h.
//!
//! Every test runs in a child process of its own, with a timeout. The parent prints one
//! line per test and the summary:
//!
//! ```text
//! running N tests
//! rust::name ... ok
//! rust::other ... FAILED: why
//! # comment lines start with "# "
//! memory::freeram_back_to_baseline ... ok
//! N passed, M failed
//! ```
//!
//! Free memory (`sysinfo().freeram * mem_unit`) is read before each test and again once
//! the test's processes have been reaped, and once at the start and the end of the run.
//! On memkernel (`uname().sysname == "memkernel"`) the figures must match exactly; on
//! other kernels they are only printed.
//!
//! The parent never touches the heap: a brk heap never shrinks, so a parent allocation
//! would show up as memory that did not come back. Its lines are formatted into a buffer
//! on the stack ([`Line`]). Tests (in the children) may allocate freely.

use alloc::string::String;
use core::fmt::{self, Write};

use ulib::io;
use ulib::process::{Ended, WaitStatus};
use ulib::sys::{self, SysInfo, Timespec, UtsName};
use ulib::Errno;

/// What a test returns: `Err(why)` is printed as `name ... FAILED: why`.
pub type TestResult = Result<(), String>;

/// One test: a name (`prefix::name`), the function, a timeout in seconds.
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
    pub timeout_s: u64,
}

/// `check!(cond, "why {}", x)`: return `Err(format!(...))` from the test when `cond` fails.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($why:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($why)*));
        }
    };
}

/// A line formatted on the stack (no heap), cut at 512 bytes.
pub struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    pub const fn new() -> Self {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Write the line to fd 1 in one `write` (when it fits, which ours do).
    pub fn print(&self) {
        let _ = io::write_all(io::STDOUT, self.as_bytes());
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// sysinfo().freeram * mem_unit in bytes (0 if sysinfo fails).
pub fn freeram() -> u64 {
    let mut si = SysInfo::default();
    if sys::sysinfo(&mut si).is_err() {
        return 0;
    }
    si.freeram * u64::from(si.mem_unit.max(1))
}

/// uname().sysname into `u`.
fn uname(u: &mut UtsName) -> &str {
    if sys::uname(u).is_err() {
        return "?";
    }
    sys::uts_field(&u.sysname)
}

/// True on memkernel, where free memory must come back exactly.
pub fn is_memkernel() -> bool {
    let mut u = UtsName::default();
    uname(&mut u) == "memkernel"
}

/// CLOCK_MONOTONIC in nanoseconds (0 if the clock fails).
fn now_ns() -> u64 {
    let mut ts = Timespec::default();
    if sys::clock_gettime(sys::CLOCK_MONOTONIC, &mut ts).is_err() {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep_ns(ns: u64) {
    let ts = Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as i64,
    };
    let _ = sys::nanosleep(&ts, None);
}

/// Blocking wait4 for `pid`, retrying EINTR: (pid, raw status).
pub fn reap(pid: usize) -> Result<(usize, i32), Errno> {
    let mut status = 0;
    loop {
        match sys::wait4(pid as isize, &mut status, 0) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(got) => return Ok((got, status)),
        }
    }
}

/// Wait for `pid` for at most `timeout_ms`, polling wait4(WNOHANG) with a growing sleep.
/// On timeout, SIGKILL it, reap it and return `Ok(None)`.
fn wait_timeout(pid: usize, timeout_ms: u64) -> Result<Option<i32>, Errno> {
    let start = now_ns();
    let mut sleep = 20_000; // 20 us, doubling up to 10 ms
    loop {
        let mut status = 0;
        match sys::wait4(pid as isize, &mut status, sys::WNOHANG) {
            Ok(got) if got == pid => return Ok(Some(status)),
            Ok(_) | Err(Errno::EINTR) => {}
            // No WNOHANG: fall back to a blocking wait.
            Err(Errno::EINVAL) => return reap(pid).map(|(_, st)| Some(st)),
            Err(e) => return Err(e),
        }
        if now_ns().saturating_sub(start) > timeout_ms * 1_000_000 {
            let _ = sys::kill(pid as isize, sys::SIGKILL);
            let _ = reap(pid);
            return Ok(None);
        }
        sleep_ns(sleep);
        if sleep < 10_000_000 {
            sleep *= 2;
        }
    }
}

/// As pid 1 (booted with `--init`), collect any orphans that were reparented to us.
fn reap_orphans() {
    if sys::getpid() != Ok(1) {
        return;
    }
    let mut status = 0;
    while let Ok(pid) = sys::wait4(-1, &mut status, sys::WNOHANG) {
        if pid == 0 {
            break;
        }
    }
}

/// Run `t` in a child process; true if it passed. `print` false runs the same code path
/// silently (the warm-up: the harness's own first-touch faults of stack, data and code
/// happen before the baseline is taken).
fn run_one(t: &Test, print: bool, memkernel: bool) -> bool {
    let mut line = Line::new();
    let before = freeram();
    let pid = match sys::fork() {
        Ok(0) => {
            let status = match (t.run)() {
                Ok(()) => 0,
                Err(why) => {
                    ulib::println!("{} ... FAILED: {why}", t.name);
                    1
                }
            };
            sys::exit_group(status)
        }
        Ok(pid) => pid,
        Err(e) => {
            if print {
                let _ = writeln!(
                    line,
                    "{} ... FAILED: fork for the test process: {e}",
                    t.name
                );
                line.print();
            }
            return false;
        }
    };
    let timeout_s = if t.timeout_s > 0 { t.timeout_s } else { 60 };
    let waited = wait_timeout(pid, timeout_s * 1000);
    reap_orphans();
    let after = freeram();
    let mut ok = false;
    let _ = match waited {
        Ok(None) => writeln!(
            line,
            "{} ... FAILED: timed out after {timeout_s} s (killed)",
            t.name
        ),
        Err(e) => writeln!(
            line,
            "{} ... FAILED: wait4 for the test process: {e}",
            t.name
        ),
        Ok(Some(st)) => match WaitStatus(st).decode() {
            Ended::Exited(0) if memkernel && after != before => {
                let (dir, d) = if after < before {
                    ("down", before - after)
                } else {
                    ("up", after - before)
                };
                writeln!(
                    line,
                    "{} ... FAILED: free memory {dir} by {} pages ({} -> {} KiB) after the \
                     test's processes were reaped",
                    t.name,
                    d / 4096,
                    before / 1024,
                    after / 1024
                )
            }
            Ended::Exited(0) => {
                ok = true;
                writeln!(line, "{} ... ok", t.name)
            }
            // The test printed its own FAILED line.
            Ended::Exited(1) => Ok(()),
            how => writeln!(line, "{} ... FAILED: test process {how}", t.name),
        },
    };
    if print {
        line.print();
    }
    ok
}

fn warmup() -> TestResult {
    Ok(())
}

/// Run the tests (all, or those whose name contains `only`), then the memory check;
/// print the summary; return the exit status (0: all passed).
pub fn main(tests: &[Test], only: Option<&str>) -> i32 {
    let memkernel = is_memkernel();
    let selected = |t: &&Test| only.is_none_or(|o| t.name.contains(o));
    let count = tests.iter().filter(selected).count();
    let mut line = Line::new();
    let _ = writeln!(line, "running {} tests", count + 1);
    line.print();

    // Warm-up: the same fork/wait/format path, twice, before the baseline.
    let warm = Test {
        name: "warmup",
        run: warmup,
        timeout_s: 0,
    };
    run_one(&warm, false, memkernel);
    run_one(&warm, false, memkernel);

    let base = freeram();
    let (mut passed, mut failed) = (0, 0);
    for t in tests.iter().filter(selected) {
        if run_one(t, true, memkernel) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    let end = freeram();

    let mut u = UtsName::default();
    let sysname = uname(&mut u);
    let delta_kib = (end as i64 - base as i64) / 1024;
    let mut line = Line::new();
    let _ = writeln!(
        line,
        "# memory: {sysname}: free before the tests {} KiB, after {} KiB, delta {delta_kib:+} \
         KiB ({})",
        base / 1024,
        end / 1024,
        if memkernel {
            "must be 0 on memkernel"
        } else {
            "not enforced on this kernel"
        }
    );
    line.print();
    let mut line = Line::new();
    if memkernel && base == 0 {
        let _ = writeln!(
            line,
            "memory::freeram_back_to_baseline ... FAILED: sysinfo() failed or reported no free \
             memory"
        );
        failed += 1;
    } else if memkernel && end != base {
        let (dir, d) = if end < base {
            ("down", base - end)
        } else {
            ("up", end - base)
        };
        let _ = writeln!(
            line,
            "memory::freeram_back_to_baseline ... FAILED: free memory {dir} by {} pages",
            d / 4096
        );
        failed += 1;
    } else {
        let _ = writeln!(line, "memory::freeram_back_to_baseline ... ok");
        passed += 1;
    }
    line.print();
    let mut line = Line::new();
    let _ = writeln!(line, "{passed} passed, {failed} failed");
    line.print();
    i32::from(failed != 0)
}
