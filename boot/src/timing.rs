//! Where the boot time goes: landmarks in QEMU's output, timed from QEMU's start, and
//! the one-line breakdown that `--timing` (or `KRUN_TIMING=1`) prints.
//!
//! ```text
//! [runner] timing: firmware 112 ms | bootloader 268 ms (stage 2 loads 139, stages 3-4 129) | kernel 41 ms to the banner, shell prompt at 447 ms
//! ```
//!
//! The landmarks, in boot order:
//!
//! | landmark                     | how the runner sees it                                        |
//! |------------------------------|---------------------------------------------------------------|
//! | firmware done                | SeaBIOS prints `Booting from ...` on its debug console (I/O port 0x402, which `--timing` connects); OVMF (`--uefi`) prints `BdsDxe: starting Boot...` on the serial console |
//! | bootloader stage 2 done      | SeaVGABIOS prints `VBE mode set` when stage 2, its files loaded, switches the display mode |
//! | kernel entry                 | the banner's time minus the kernel's own `(N ms in kernel init)` |
//! | banner                       | the banner line ([`crate::qemu::BANNER_MARK`]) on the serial console |
//! | shell prompt / first test    | the shell's `# ` prompt after its greeting; a test kernel's `running N tests` |
//!
//! The stage-2 split exists for BIOS boots only. Every time is from the moment the
//! runner started QEMU, so QEMU's own start-up (~50 ms) counts as firmware.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::qemu::BANNER_MARK;

/// Create the FIFO at `path` that QEMU writes the firmware's debug console into.
pub fn make_fifo(path: &Path) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_bytes()).context("a path with a NUL byte")?;
    // SAFETY: mkfifo(3) reads the NUL-terminated string `c_path`, alive for the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot create the FIFO {}", path.display()));
    }
    Ok(path.to_path_buf())
}

/// SeaBIOS, on its debug console, when it hands over to a boot sector.
const FIRMWARE_DONE: &str = "Booting from ";
/// OVMF, on the serial console, when it starts the bootloader (`--uefi`).
const UEFI_FIRMWARE_DONE: &str = "BdsDxe: starting ";
/// SeaVGABIOS, on the same console, when bootloader stage 2 sets the VESA mode.
const STAGE_2_DONE: &str = "VBE mode set";
/// The shell's greeting (user/init), then its prompt.
const SHELL_GREETING: &str = "memkernel shell";
const SHELL_PROMPT: &str = "# ";
/// A test kernel's first line (kernel/src/testing.rs).
const TESTS_START: &str = "running ";

/// What "ready" was for this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    ShellPrompt,
    FirstTest,
}

/// The landmarks seen so far, each as time since QEMU started.
#[derive(Debug, Default, Clone)]
pub struct BootTimes {
    pub firmware_done: Option<Duration>,
    pub stage_2_done: Option<Duration>,
    pub banner: Option<Duration>,
    /// The kernel's own figure from its banner: ms from its entry to the banner.
    pub kernel_init_ms: Option<u64>,
    pub ready: Option<(Duration, Ready)>,
    greeted: bool,
    serial_line: Vec<u8>,
    firmware_line: Vec<u8>,
}

/// Longest partial line kept (landmarks are short lines).
const MAX_LINE: usize = 1024;

/// Feed `bytes` to the line buffer `partial`, calling `f` with each finished line.
fn lines(partial: &mut Vec<u8>, bytes: &[u8], mut f: impl FnMut(&str)) {
    for &b in bytes {
        if b == b'\n' {
            let line = std::mem::take(partial);
            f(String::from_utf8_lossy(&line).trim_end_matches('\r'));
        } else if partial.len() < MAX_LINE {
            partial.push(b);
        }
    }
}

/// The N of "... (N ms in kernel init)" in the banner's timing line.
fn kernel_init_ms(line: &str) -> Option<u64> {
    let before = line
        .split(" ms in kernel init")
        .next()
        .filter(|b| b.len() < line.len())?;
    before.rsplit('(').next()?.trim().parse().ok()
}

impl BootTimes {
    /// Serial-console output that arrived at `at`.
    pub fn serial(&mut self, bytes: &[u8], at: Duration) {
        let mut partial = std::mem::take(&mut self.serial_line);
        lines(&mut partial, bytes, |line| self.serial_line_done(line, at));
        if self.greeted && self.ready.is_none() && partial.starts_with(SHELL_PROMPT.as_bytes()) {
            self.ready = Some((at, Ready::ShellPrompt));
        }
        self.serial_line = partial;
    }

    fn serial_line_done(&mut self, line: &str, at: Duration) {
        if self.firmware_done.is_none() && line.contains(UEFI_FIRMWARE_DONE) {
            self.firmware_done = Some(at);
        }
        if self.banner.is_none() && line.contains(BANNER_MARK) {
            self.banner = Some(at);
        }
        if self.kernel_init_ms.is_none() {
            self.kernel_init_ms = kernel_init_ms(line);
        }
        if line.starts_with(SHELL_GREETING) {
            self.greeted = true;
        }
        let test_count = line
            .strip_prefix(TESTS_START)
            .and_then(|rest| rest.strip_suffix(" tests"))
            .is_some_and(|n| n.parse::<usize>().is_ok());
        if self.ready.is_none() && test_count {
            self.ready = Some((at, Ready::FirstTest));
        }
    }

    /// Firmware debug-console output (I/O port 0x402) that arrived at `at`.
    pub fn firmware(&mut self, bytes: &[u8], at: Duration) {
        let mut partial = std::mem::take(&mut self.firmware_line);
        lines(&mut partial, bytes, |line| {
            if self.firmware_done.is_none() && line.starts_with(FIRMWARE_DONE) {
                self.firmware_done = Some(at);
            }
            if self.firmware_done.is_some()
                && self.stage_2_done.is_none()
                && line.starts_with(STAGE_2_DONE)
            {
                self.stage_2_done = Some(at);
            }
        });
        self.firmware_line = partial;
    }

    /// When the kernel was entered: the banner's time minus the kernel's own figure.
    pub fn kernel_entry(&self) -> Option<Duration> {
        let init = Duration::from_millis(self.kernel_init_ms?);
        self.banner?.checked_sub(init)
    }

    /// The one-line breakdown (without the `[runner] ` prefix).
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_millis();
        let mut parts = Vec::new();
        let entry = self.kernel_entry();
        match (self.firmware_done, entry) {
            (Some(fw), Some(entry)) => {
                parts.push(format!("firmware {} ms", ms(fw)));
                let split = match self.stage_2_done {
                    Some(s2) if s2 >= fw && s2 <= entry => format!(
                        " (stage 2 loads {}, stages 3-4 {})",
                        ms(s2 - fw),
                        ms(entry - s2)
                    ),
                    _ => String::new(),
                };
                parts.push(format!(
                    "bootloader {} ms{split}",
                    ms(entry.saturating_sub(fw))
                ));
            }
            (None, Some(entry)) => parts.push(format!("firmware + bootloader {} ms", ms(entry))),
            (Some(fw), None) => {
                parts.push(format!("firmware {} ms", ms(fw)));
                if let Some(s2) = self.stage_2_done {
                    parts.push(format!("bootloader stage 2 done at {} ms", ms(s2)));
                }
            }
            (None, None) => {}
        }
        if let Some(banner) = self.banner {
            let kernel = match self.kernel_init_ms {
                Some(init) => format!("kernel {init} ms to the banner"),
                None => "kernel".to_string(),
            };
            parts.push(format!("{kernel} (banner at {} ms)", ms(banner)));
        }
        match self.ready {
            Some((at, Ready::ShellPrompt)) => parts.push(format!("shell prompt at {} ms", ms(at))),
            Some((at, Ready::FirstTest)) => parts.push(format!("first test at {} ms", ms(at))),
            None => {}
        }
        if self.banner.is_none() {
            parts.push("no kernel banner seen".to_string());
        }
        format!("timing: {}", parts.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn bios_boot_to_the_shell() {
        let mut t = BootTimes::default();
        t.firmware(b"SeaBIOS (version 1.16)\nBooting from Hard", at(90));
        t.firmware(b" Disk...\nBooting from 0000:7c00\n", at(110));
        t.firmware(b"VBE mode info request: 100\nVBE mode set: 18e\n", at(250));
        t.serial(
            b"\n=====\n memkernel 0.1.0 - a teaching kernel for x86-64\n",
            at(400),
        );
        t.serial(
            b" TSC 2500 MHz; boot took 390 ms since CPU reset (40 ms in kernel init)\n",
            at(401),
        );
        t.serial(b"memkernel shell (pid 1)\nbuilt-ins: ...\n", at(430));
        assert_eq!(t.ready, None);
        t.serial(b"# ", at(431));
        assert_eq!(t.kernel_entry(), Some(at(360)));
        assert_eq!(
            t.summary(),
            "timing: firmware 110 ms | bootloader 250 ms (stage 2 loads 140, stages 3-4 110) \
             | kernel 40 ms to the banner (banner at 400 ms) | shell prompt at 431 ms"
        );
    }

    #[test]
    fn uefi_test_kernel_without_firmware_log() {
        let mut t = BootTimes::default();
        t.serial(b"x86-64\n", at(1)); // not the banner
        t.serial(
            b"a teaching kernel for x86-64\n(7 ms in kernel init)\n",
            at(900),
        );
        t.serial(b"running 3 tests\n", at(950));
        assert_eq!(
            t.summary(),
            "timing: firmware + bootloader 893 ms | kernel 7 ms to the banner (banner at 900 ms) \
             | first test at 950 ms"
        );
        assert_eq!(kernel_init_ms("boot took 5 ms since CPU reset"), None);
        assert_eq!(
            BootTimes::default().summary(),
            "timing: no kernel banner seen"
        );
        let mut hung = BootTimes::default();
        hung.firmware(b"Booting from 0000:7c00\nVBE mode set: 18e\n", at(120));
        assert_eq!(
            hung.summary(),
            "timing: firmware 120 ms | bootloader stage 2 done at 120 ms | no kernel banner seen"
        );
    }
}
