//! The files that drive allocation-failure injection (see `mm::gfp`), as Linux names
//! them (Documentation/fault-injection/fault-injection.rst):
//!
//! | file                                   | Linux                      | value          |
//! |----------------------------------------|----------------------------|----------------|
//! | `/proc/self/fail-nth`                  | `proc_fail_nth_operations` | N >= 0, "%u\n" |
//! | `/proc/self/make-it-fail`              | `proc_fault_inject_*`      | 0 or 1, "%i\n" |
//! | `/sys/kernel/debug/failslab/probability` | debugfs `fault_attr`     | u32 (>= 100: always) |
//! | `/sys/kernel/debug/failslab/interval`  | debugfs `fault_attr`       | u32 (0 acts as 1) |
//! | `/sys/kernel/debug/failslab/times`     | debugfs `fault_attr`       | i32 (-1: no limit) |
//!
//! Reading and writing them allocates nothing, so it does not move a countdown.
//! Deviation: "self" is the task that reads or writes, not the one that opened the file
//! (Linux resolves /proc/self at open); a descriptor passed to a child arms the child.

#![forbid(unsafe_code)]

use alloc::boxed::Box;
use core::sync::atomic::Ordering;

use super::procfs::PROC_STAT;
use crate::error::Errno;
use crate::fs::{self, FileOps, Stat};
use crate::mm::gfp;

/// Which setting a file shows (its registry minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Knob {
    FailNth,
    MakeItFail,
    Probability,
    Interval,
    Times,
}

const KNOBS: [(Knob, &str); 5] = [
    (Knob::FailNth, "/proc/self/fail-nth"),
    (Knob::MakeItFail, "/proc/self/make-it-fail"),
    (Knob::Probability, "/sys/kernel/debug/failslab/probability"),
    (Knob::Interval, "/sys/kernel/debug/failslab/interval"),
    (Knob::Times, "/sys/kernel/debug/failslab/times"),
];

/// Read-write for its owner (Linux: 0644 in /proc, 0600 in debugfs).
const KNOB_STAT: Stat = Stat {
    mode: fs::S_IFREG | 0o644,
    ..PROC_STAT
};

/// Register the five files with fs.
pub fn register() -> Result<(), Errno> {
    for (minor, (_, path)) in KNOBS.iter().enumerate() {
        fs::register(path, open, minor as u32, KNOB_STAT)?;
    }
    Ok(())
}

fn open(minor: u32) -> Result<Box<dyn FileOps>, Errno> {
    let (knob, _) = KNOBS.get(minor as usize).ok_or(Errno::ENODEV)?;
    fs::boxed(KnobFile(*knob))
}

struct KnobFile(Knob);

impl KnobFile {
    fn get(&self) -> i64 {
        let attrs = &gfp::FAILSLAB;
        match self.0 {
            Knob::FailNth => i64::from(gfp::fail_nth()),
            Knob::MakeItFail => i64::from(gfp::make_it_fail()),
            Knob::Probability => i64::from(attrs.probability.load(Ordering::Relaxed)),
            Knob::Interval => i64::from(attrs.interval.load(Ordering::Relaxed)),
            Knob::Times => attrs.times.load(Ordering::Relaxed),
        }
    }

    /// Store `v`, or EINVAL out of the range Linux accepts.
    fn set(&self, v: i64) -> Result<(), Errno> {
        let attrs = &gfp::FAILSLAB;
        let u32_in = |lo: i64, hi: i64| {
            if (lo..=hi).contains(&v) {
                Ok(v as u32)
            } else {
                Err(Errno::EINVAL)
            }
        };
        match self.0 {
            // kstrtouint: ERANGE past u32, EINVAL below 0.
            Knob::FailNth if v > i64::from(u32::MAX) => return Err(Errno::ERANGE),
            Knob::FailNth => gfp::set_fail_nth(u32_in(0, i64::from(u32::MAX))?),
            Knob::MakeItFail => gfp::set_make_it_fail(u32_in(0, 1)? == 1),
            Knob::Probability => attrs
                .probability
                .store(u32_in(0, i64::from(u32::MAX))?, Ordering::Relaxed),
            Knob::Interval => attrs
                .interval
                .store(u32_in(0, i64::from(u32::MAX))?, Ordering::Relaxed),
            Knob::Times if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) => {
                attrs.times.store(v, Ordering::Relaxed);
            }
            Knob::Times => return Err(Errno::ERANGE),
        }
        Ok(())
    }
}

impl FileOps for KnobFile {
    fn read(&self, pos: usize, buf: u64, count: usize) -> Result<usize, Errno> {
        let mut text = [0u8; 24];
        let len = format_line(self.get(), &mut text);
        let data = text[..len].get(pos..).unwrap_or(&[]);
        let n = data.len().min(count);
        crate::vm::uaccess::write_bytes(buf, &data[..n])?;
        Ok(n)
    }

    /// Linux `kstrtoint(s, 0)` / `kstrtouint`: decimal, `0x` hex or `0` octal, an
    /// optional sign, one trailing newline; EINVAL otherwise, ERANGE when too large.
    fn write(&self, buf: u64, count: usize) -> Result<usize, Errno> {
        let mut text = [0u8; 32];
        if count >= text.len() {
            return Err(Errno::EINVAL);
        }
        crate::vm::uaccess::read_bytes(buf, &mut text[..count])?;
        self.set(parse_int(&text[..count])?)?;
        Ok(count)
    }

    fn stat(&self) -> Stat {
        KNOB_STAT
    }
}

/// `v` in decimal and a newline, into `out`; returns the length.
fn format_line(v: i64, out: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut m = v.unsigned_abs();
    loop {
        digits[len] = b'0' + (m % 10) as u8;
        len += 1;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    let mut at = 0;
    if v < 0 {
        out[0] = b'-';
        at = 1;
    }
    for i in 0..len {
        out[at + i] = digits[len - 1 - i];
    }
    at += len;
    out[at] = b'\n';
    at + 1
}

/// Linux `kstrtoll(s, 0)`: base from the prefix (`0x`: 16, `0`: 8, else 10) after an
/// optional sign, one trailing newline allowed.
fn parse_int(text: &[u8]) -> Result<i64, Errno> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let (negative, text) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    let (digits, radix) = match text {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        [b'0', rest @ ..] if !rest.is_empty() => (rest, 8),
        _ => (text, 10),
    };
    if digits.is_empty() {
        return Err(Errno::EINVAL);
    }
    let mut n: i64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix).ok_or(Errno::EINVAL)?;
        n = n
            .checked_mul(i64::from(radix))
            .and_then(|n| n.checked_add(i64::from(d)))
            .ok_or(Errno::ERANGE)?;
    }
    Ok(if negative { -n } else { n })
}
