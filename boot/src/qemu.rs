//! The QEMU command line and the two ways of running it: for a person (interactive
//! serial console) and for a test (output captured, a timeout enforced).

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Firmware, Mode, Options};

/// Guest RAM. Matches the reference Linux measurements in the issues.
const MEMORY: &str = "512M";
/// Default time a test kernel may run before it is killed; `KTEST_TIMEOUT` overrides.
const DEFAULT_TEST_TIMEOUT_SECS: u64 = 120;
/// The line the kernel prints in its boot banner (used to time the boot).
pub const BANNER_MARK: &str = "a teaching kernel for x86-64";

/// OVMF firmware code and variable-store template, as Debian's `ovmf` package installs them.
fn ovmf_files() -> Result<(PathBuf, PathBuf)> {
    for (code, vars) in [
        ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
        ("OVMF_CODE.fd", "OVMF_VARS.fd"),
    ] {
        let dir = Path::new("/usr/share/OVMF");
        if dir.join(code).exists() && dir.join(vars).exists() {
            return Ok((dir.join(code), dir.join(vars)));
        }
    }
    bail!("UEFI firmware not found in /usr/share/OVMF: run `make setup` (Debian package ovmf)")
}

/// Build the QEMU command for `image`.
pub fn command(opts: &Options, image: &Path) -> Result<Command> {
    let qemu = "qemu-system-x86_64";
    if Command::new(qemu).arg("--version").output().is_err() {
        bail!("{qemu} not found: run `make setup` (Debian package qemu-system-x86)");
    }
    let mut cmd = Command::new(qemu);
    cmd.arg("-drive")
        .arg(format!("format=raw,file={}", image.display()))
        .args(["-m", MEMORY, "-cpu", "max", "-smp", "1"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(["-display", "none", "-no-reboot"]);
    if opts.firmware == Firmware::Uefi {
        let (code, vars_template) = ovmf_files()?;
        // The firmware writes its variable store: give it a private copy.
        let vars = image.with_extension("OVMF_VARS.fd");
        std::fs::copy(&vars_template, &vars)
            .with_context(|| format!("cannot copy {}", vars_template.display()))?;
        cmd.arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,readonly=on,file={}",
                code.display()
            ))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,file={}", vars.display()));
    }
    match opts.mode {
        // mon:stdio: the serial console on the terminal, Ctrl-A X quits, Ctrl-A C monitor.
        Mode::Run => cmd.args(["-serial", "mon:stdio"]),
        Mode::Test => cmd.args(["-serial", "stdio", "-monitor", "none"]),
    };
    if opts.gdb {
        cmd.args(["-s", "-S"]);
    }
    cmd.args(&opts.qemu_args);
    Ok(cmd)
}

/// Run QEMU for a person: the terminal is the serial console. Returns the exit status
/// translated for the shell (QEMU's 33 "success" becomes 0).
pub fn run_interactive(mut command: Command) -> Result<i32> {
    let status = command.status().context("cannot start QEMU")?;
    Ok(match status.code() {
        Some(33) => 0,
        Some(code) => code,
        None => 1,
    })
}

/// How a test kernel's QEMU run ended.
#[derive(Debug)]
pub enum Ending {
    /// QEMU exited with this status.
    Exited(i32),
    /// QEMU was killed by a signal.
    Signalled,
    /// It ran past the timeout and was killed.
    TimedOut(Duration),
}

/// Everything the judge needs about one test-kernel run.
#[derive(Debug)]
pub struct TestRun {
    pub ending: Ending,
    pub output: String,
    pub elapsed: Duration,
    pub banner_after: Option<Duration>,
}

/// Run a test kernel: echo its serial output, enforce the timeout, and collect the output.
pub fn run_test(mut command: Command, name: &str) -> Result<TestRun> {
    let timeout = std::env::var("KTEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_TEST_TIMEOUT_SECS);
    let timeout = Duration::from_secs(timeout);
    println!(
        "[runner] booting {name} in QEMU (timeout {} s)",
        timeout.as_secs()
    );
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start QEMU")?;
    let mut stdout = child.stdout.take().context("QEMU stdout")?;
    let output = Arc::new(Mutex::new(Vec::<u8>::new()));
    let banner_at = Arc::new(Mutex::new(None::<Duration>));
    let reader = {
        let output = Arc::clone(&output);
        let banner_at = Arc::clone(&banner_at);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
                let mut all = output.lock().unwrap_or_else(|e| e.into_inner());
                all.extend_from_slice(&buf[..n]);
                let mut banner = banner_at.lock().unwrap_or_else(|e| e.into_inner());
                if banner.is_none() && String::from_utf8_lossy(&all).contains(BANNER_MARK) {
                    *banner = Some(start.elapsed());
                }
            }
        })
    };
    let ending = loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            break match status.code() {
                Some(code) => Ending::Exited(code),
                None => Ending::Signalled,
            };
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break Ending::TimedOut(timeout);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let _ = reader.join();
    let output =
        String::from_utf8_lossy(&output.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    let banner_after = *banner_at.lock().unwrap_or_else(|e| e.into_inner());
    Ok(TestRun {
        ending,
        output,
        elapsed,
        banner_after,
    })
}
