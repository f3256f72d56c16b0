//! Judging a test kernel's run: did every announced test print `ok`, and did the kernel
//! end with the success code? Prints one verdict line and, if `KTEST_RESULTS` names a
//! file, appends `suite passed failed` to it (make test adds those up at the end).

use std::io::Write;
use std::path::Path;

use crate::qemu::{Ending, TestRun};
use crate::timing::Ready;

/// QEMU exit status for `isa-debug-exit` value 0x10: the kernel's "all passed".
const EXIT_SUCCESS: i32 = 33;
/// QEMU exit status for value 0x11: the kernel's "a test failed / panic".
const EXIT_FAILED: i32 = 35;

/// "basic_boot" for target/.../deps/basic_boot-0123abcd; "kernel (unit tests)" for the lib.
pub fn suite_name(kernel: &Path) -> String {
    let file = kernel
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = match file.rsplit_once('-') {
        Some((base, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => base.to_string(),
        _ => file,
    };
    if base == "kernel" {
        "kernel (unit tests)".to_string()
    } else {
        base
    }
}

/// Counts read from the serial output.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `running N tests`, if the kernel got that far.
    pub announced: Option<usize>,
    /// Lines ending in `... ok`.
    pub ok: usize,
    /// The test that was running when the output stopped or failed.
    pub last_started: Option<String>,
    /// The `[kernel panic]` message and its location, if any.
    pub panic: Option<String>,
}

/// Read the counts out of a test kernel's serial output.
pub fn count(output: &str) -> Counts {
    let mut counts = Counts::default();
    let mut lines = output.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("running ") {
            counts.announced = rest.strip_suffix(" tests").and_then(|n| n.parse().ok());
        }
        if let Some((name, _)) = line.split_once(" ... ") {
            counts.last_started = Some(name.to_string());
        }
        if line.ends_with(" ... ok") {
            counts.ok += 1;
        }
        if let Some(msg) = line.strip_prefix("[kernel panic] ") {
            let mut text = msg.to_string();
            while let Some(next) = lines.peek() {
                if next.starts_with("  ") {
                    text.push('\n');
                    text.push_str(next.trim_end_matches('\r'));
                    lines.next();
                } else {
                    break;
                }
            }
            counts.panic = Some(text);
        }
    }
    counts
}

/// A verdict: passed/failed counts and, for a failure, why.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: usize,
    pub failed: usize,
    pub reason: Option<String>,
}

/// Decide pass or fail from how QEMU ended and what the kernel printed.
pub fn verdict(ending: &Ending, counts: &Counts) -> Verdict {
    let announced = counts.announced;
    let ran_all = announced == Some(counts.ok);
    let missing = announced
        .unwrap_or(counts.ok + 1)
        .saturating_sub(counts.ok)
        .max(1);
    let in_test = counts
        .last_started
        .as_deref()
        .map(|t| format!(" in test `{t}`"))
        .unwrap_or_default();
    let reason = match ending {
        Ending::Exited(EXIT_SUCCESS) if ran_all => None,
        Ending::Exited(EXIT_SUCCESS) => Some(format!(
            "kernel reported success but {} tests announced and {} passed",
            announced.map_or("no".to_string(), |n| n.to_string()),
            counts.ok
        )),
        Ending::Exited(EXIT_FAILED) => Some(match &counts.panic {
            Some(p) => format!("kernel panic{in_test}: {p}"),
            None => format!("kernel reported failure{in_test}"),
        }),
        Ending::Exited(0) => Some(format!(
            "QEMU exited with status 0{in_test}: the machine reset (triple fault?) before the test finished"
        )),
        Ending::Exited(code) => Some(format!("unexpected QEMU exit status {code}{in_test}")),
        Ending::Signalled => Some(format!("QEMU was killed by a signal{in_test}")),
        Ending::TimedOut(t) => Some(format!(
            "timed out after {} s{in_test} (hang?); raise KTEST_TIMEOUT if it is just slow",
            t.as_secs()
        )),
    };
    match reason {
        None => Verdict {
            passed: counts.ok,
            failed: 0,
            reason: None,
        },
        Some(r) => Verdict {
            passed: counts.ok,
            failed: missing,
            reason: Some(r),
        },
    }
}

/// Print the verdict for `name`, record it in `KTEST_RESULTS`, return the exit status.
pub fn report(name: &str, run: &TestRun) -> i32 {
    if !run.output.is_empty() && !run.output.ends_with('\n') {
        println!(); // the kernel stopped mid-line (e.g. a hang after `name ... `)
    }
    let counts = count(&run.output);
    let v = verdict(&run.ending, &counts);
    let banner = run
        .times
        .banner
        .map(|d| format!("banner after {} ms, ", d.as_millis()))
        .unwrap_or_default();
    let first_test = match run.times.ready {
        Some((at, Ready::FirstTest)) => format!("first test after {} ms, ", at.as_millis()),
        _ => String::new(),
    };
    match &v.reason {
        None => println!(
            "[runner] {name}: PASS: {} passed, 0 failed ({banner}{first_test}{} ms in QEMU)",
            v.passed,
            run.elapsed.as_millis()
        ),
        Some(reason) => println!(
            "[runner] {name}: FAIL: {} passed, {} failed: {reason}",
            v.passed, v.failed
        ),
    }
    if let Ok(path) = std::env::var("KTEST_RESULTS") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(f, "{name}\t{}\t{}", v.passed, v.failed);
        }
    }
    i32::from(v.reason.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = "running 2 tests\na::x ... ok\na::y ... ok\n2 passed, 0 failed\n";

    #[test]
    fn names_strip_cargo_hash() {
        assert_eq!(
            suite_name(Path::new("t/deps/basic_boot-0123abcdef")),
            "basic_boot"
        );
        assert_eq!(
            suite_name(Path::new("t/deps/kernel-99ff")),
            "kernel (unit tests)"
        );
        assert_eq!(
            suite_name(Path::new("t/debug/kernel")),
            "kernel (unit tests)"
        );
    }

    #[test]
    fn all_ok_with_success_code_passes() {
        let v = verdict(&Ending::Exited(33), &count(GOOD));
        assert_eq!(
            v,
            Verdict {
                passed: 2,
                failed: 0,
                reason: None
            }
        );
    }

    #[test]
    fn success_code_with_missing_tests_fails() {
        let out = "running 3 tests\na::x ... ok\n";
        let v = verdict(&Ending::Exited(33), &count(out));
        assert_eq!((v.passed, v.failed), (1, 2));
        assert!(v.reason.unwrap().contains("3 tests announced and 1 passed"));
    }

    #[test]
    fn panic_names_test_and_message() {
        let out = "running 2 tests\na::x ... ok\na::y ... FAILED\n[kernel panic] boom\n  at src/a.rs:1:2\n1 passed, 1 failed\n";
        let v = verdict(&Ending::Exited(35), &count(out));
        let reason = v.reason.unwrap();
        assert!(reason.contains("`a::y`"), "{reason}");
        assert!(
            reason.contains("boom") && reason.contains("src/a.rs:1:2"),
            "{reason}"
        );
        assert_eq!((v.passed, v.failed), (1, 1));
    }

    #[test]
    fn timeout_and_reset_fail() {
        let out = "running 2 tests\na::x ... ";
        let v = verdict(&Ending::TimedOut(Duration::from_secs(5)), &count(out));
        assert!(v
            .reason
            .unwrap()
            .contains("timed out after 5 s in test `a::x`"));
        let v = verdict(&Ending::Exited(0), &count(out));
        assert!(v.reason.unwrap().contains("triple fault"));
        assert_eq!(v.failed, 2);
    }

    #[test]
    fn no_output_at_all_fails() {
        let v = verdict(&Ending::Exited(33), &count(""));
        assert!(v.reason.is_some());
        assert_eq!(v.failed, 1);
    }
}
