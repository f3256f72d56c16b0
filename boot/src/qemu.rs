//! The QEMU command line and the ways of running it: for a person (interactive serial
//! console), for a test kernel (output captured, a timeout enforced, judged by
//! [`crate::judge`]) and for a user-space program run as init (`--init`).
//!
//! # Exit-status protocol (pid 1 -> kernel -> QEMU -> runner)
//!
//! This is the contract between the kernel and this runner; scripts that drive
//! `run-qemu.sh --init PROGRAM` depend on it, so it must stay stable:
//!
//! 1. When pid 1 (`/init`) ends with exit status S (exit/exit_group(S), S & 0xff), or
//!    calls `reboot(LINUX_REBOOT_CMD_POWER_OFF)` (then S = 0), the kernel prints, on a
//!    line of its own on the serial console,
//!    `[kernel] power off: init exited with status S` (S in decimal), and then writes
//!    0x12 to the `isa-debug-exit` port (0xf4), so QEMU exits with status
//!    (0x12 << 1) | 1 = **37**.
//! 2. The runner watches the serial output as it passes it through (live, to the
//!    terminal; stdin stays the terminal in run mode) and, when QEMU exits with 37,
//!    exits with the S of the **last** such line.
//!
//! Every other ending makes the runner print a `[runner] ...` line saying what
//! happened and exit with a status of its own:
//!
//! | how QEMU ended                                   | runner exits with              |
//! |--------------------------------------------------|--------------------------------|
//! | 37 and a power-off line                          | S                              |
//! | 37 without a power-off line                      | 125                            |
//! | 33 (kernel's success code, test kernels)         | 0 (plain run); 125 with --init |
//! | 35 (kernel panic / failure)                      | 125, with the panic message    |
//! | 0 after Ctrl-A X ("QEMU: Terminated")            | 0 (plain run); 130 with --init |
//! | 0 otherwise (reset, triple fault: -no-reboot)    | 125                            |
//! | any other status, or QEMU killed by a signal     | 125                            |
//! | timeout (`KRUN_TIMEOUT` / `KTEST_TIMEOUT`)       | 124                            |
//! | the runner itself failed (bad arguments, build)  | 2                              |
//!
//! Run mode has no timeout unless `KRUN_TIMEOUT=SECONDS` is set; on timeout QEMU gets
//! SIGTERM (so it restores the terminal), then SIGKILL. Test mode (`--test`, or cargo's
//! test binaries) with `--init` follows the same table with `KTEST_TIMEOUT` (default
//! 120 s); test kernels without `--init` are judged by [`crate::judge`] as before.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::power_off::{self, Expect, SerialWatch};
use crate::timing::BootTimes;
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

/// Build the QEMU command for `image`. With `firmware_log` (`--timing`), the firmware's
/// debug console (I/O port 0x402, where SeaBIOS reports its progress) goes to that FIFO.
pub fn command(opts: &Options, image: &Path, firmware_log: Option<&Path>) -> Result<Command> {
    let qemu = "qemu-system-x86_64";
    if Command::new(qemu).arg("--version").output().is_err() {
        bail!("{qemu} not found: run `make setup` (Debian package qemu-system-x86)");
    }
    let mut cmd = Command::new(qemu);
    cmd.arg("-drive")
        // virtio-blk, not IDE: the firmware reads the kernel through virtio instead of
        // port I/O, which halves the time to the banner under TCG.
        .arg(format!("if=virtio,format=raw,file={}", image.display()))
        // phys-bits=39: with 40 or more (TCG's default), QEMU reports a 12 GiB
        // HyperTransport hole at 1 TiB in the memory map of an AMD-flavoured CPU, and the
        // bootloader maps physical memory up to the highest address in the map: 1 TiB of
        // 2 MiB pages, ~70 ms of stage 4 under emulation. 2^39 = 512 GiB is plenty.
        .args(["-m", MEMORY, "-cpu", "max,phys-bits=39", "-smp", "1"])
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
    if let Some(fifo) = firmware_log {
        cmd.arg("-chardev")
            .arg(format!("pipe,id=fwlog,path={}", fifo.display()))
            .args(["-device", "isa-debugcon,iobase=0x402,chardev=fwlog"]);
    }
    if opts.gdb {
        cmd.args(["-s", "-S"]);
    }
    cmd.args(&opts.qemu_args);
    Ok(cmd)
}

/// How QEMU's run ended.
#[derive(Debug)]
pub enum Ending {
    /// QEMU exited with this status.
    Exited(i32),
    /// QEMU was killed by a signal.
    Signalled,
    /// It ran past the timeout and was stopped.
    TimedOut(Duration),
}

/// Everything the judge needs about one test-kernel run.
#[derive(Debug)]
pub struct TestRun {
    pub ending: Ending,
    pub output: String,
    pub elapsed: Duration,
    pub times: BootTimes,
}

/// Where QEMU's stdin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Console {
    /// The terminal (a person types into the guest's serial console).
    Interactive,
    /// Nothing (/dev/null): tests and scripts.
    Detached,
}

/// Whether to keep the whole serial output (test kernels) or only scan it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Output,
    ScanOnly,
}

/// One QEMU run.
struct Session {
    ending: Ending,
    output: String,
    watch: SerialWatch,
    elapsed: Duration,
    times: BootTimes,
}

/// What the output readers collect while QEMU runs.
#[derive(Default)]
struct Collected {
    output: Vec<u8>,
    watch: SerialWatch,
    times: BootTimes,
}

/// Lock `shared`, also if a reader thread panicked while holding it.
fn lock(shared: &Mutex<Collected>) -> std::sync::MutexGuard<'_, Collected> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Echo QEMU's serial output (its stdout) live, keep it if asked, and scan it.
fn read_serial(mut stdout: impl Read, shared: &Mutex<Collected>, keep: Keep, start: Instant) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stdout.read(&mut buf) {
        if n == 0 {
            break;
        }
        let at = start.elapsed();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&buf[..n]);
        let _ = out.flush();
        drop(out);
        let mut c = lock(shared);
        if keep == Keep::Output {
            c.output.extend_from_slice(&buf[..n]);
        }
        c.watch.feed(&buf[..n]);
        c.times.serial(&buf[..n], at);
        if let Some(addrs) = c.watch.backtrace.take() {
            drop(c);
            crate::symbolize::print(&addrs);
        }
    }
}

/// Time the firmware's debug-console lines from the FIFO `path`, on a thread of its own
/// that is never joined: opened read-write, so the open does not wait for QEMU, the
/// FIFO never reports end of file, and the thread ends with the runner.
fn read_firmware_log(path: &Path, shared: &Arc<Mutex<Collected>>, start: Instant) -> Result<()> {
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = fifo.read(&mut buf) {
            if n == 0 {
                break;
            }
            lock(&shared).times.firmware(&buf[..n], start.elapsed());
        }
    });
    Ok(())
}

/// A timeout in seconds from `var`: unset or empty = none; otherwise a positive number.
pub fn timeout_from_env(var: &str) -> Result<Option<Duration>> {
    match std::env::var(var) {
        Err(_) => Ok(None),
        Ok(s) if s.trim().is_empty() => Ok(None),
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs.is_finite() => Ok(Some(Duration::from_secs_f64(secs))),
            _ => bail!("{var}={s:?}: want a number of seconds"),
        },
    }
}

/// The run-mode timeout: `KRUN_TIMEOUT` seconds, none when unset.
pub fn run_timeout() -> Result<Option<Duration>> {
    timeout_from_env("KRUN_TIMEOUT")
}

/// The test timeout: `KTEST_TIMEOUT` seconds, default 120.
fn test_timeout() -> Duration {
    let secs = std::env::var("KTEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_TEST_TIMEOUT_SECS);
    Duration::from_secs(secs)
}

/// Ask QEMU to stop (SIGTERM: it restores the terminal it put in raw mode), then kill
/// it if it has not gone after a few seconds.
fn stop(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with the pid of our own child, which we have not waited for
        // yet, so the pid cannot have been reused; it touches no memory of ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Run QEMU, echoing its serial output live, scanning it, enforcing `timeout`; with
/// `firmware_log`, timing the firmware's progress too.
fn run_session(
    mut command: Command,
    console: Console,
    keep: Keep,
    timeout: Option<Duration>,
    firmware_log: Option<&Path>,
) -> Result<Session> {
    let shared = Arc::new(Mutex::new(Collected::default()));
    let start = Instant::now();
    if let Some(fifo) = firmware_log {
        read_firmware_log(fifo, &shared, start)?;
    }
    command.stdout(Stdio::piped());
    match console {
        Console::Interactive => command.stdin(Stdio::inherit()),
        Console::Detached => command.stdin(Stdio::null()),
    };
    let mut child = command.spawn().context("cannot start QEMU")?;
    let stdout = child.stdout.take().context("QEMU stdout")?;
    let reader = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || read_serial(stdout, &shared, keep, start))
    };
    let ending = wait(&mut child, console, timeout, start)?;
    let elapsed = start.elapsed();
    let _ = reader.join();
    let mut c = lock(&shared);
    c.watch.finish();
    Ok(Session {
        ending,
        output: String::from_utf8_lossy(&c.output).into_owned(),
        watch: std::mem::take(&mut c.watch),
        elapsed,
        times: c.times.clone(),
    })
}

/// Wait for QEMU to end, stopping it at `timeout` (counted from `start`).
fn wait(
    child: &mut Child,
    console: Console,
    timeout: Option<Duration>,
    start: Instant,
) -> Result<Ending> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            return Ok(match status.code() {
                Some(code) => Ending::Exited(code),
                None => Ending::Signalled,
            });
        }
        if let Some(limit) = timeout {
            if start.elapsed() > limit {
                match console {
                    Console::Interactive => stop(child),
                    Console::Detached => {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
                return Ok(Ending::TimedOut(limit));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Print the `[runner]` line for an ending that was not a clean power-off, on a line of
/// its own even if the guest's output did not end with a newline.
fn report(verdict: &power_off::RunVerdict) {
    if let Some(message) = &verdict.message {
        println!("\n[runner] {message} (exit status {})", verdict.code);
    }
}

/// Run QEMU for a person: the terminal is the serial console (stdin inherited), the
/// output is passed through live and scanned for the power-off line. Returns the
/// runner's exit status (see the module documentation). `timeout` comes from
/// `KRUN_TIMEOUT` ([`run_timeout`]).
pub fn run_interactive(
    command: Command,
    expect: Expect,
    timeout: Option<Duration>,
    timing: Option<&Path>,
) -> Result<i32> {
    if let Some(t) = timeout {
        println!(
            "[runner] KRUN_TIMEOUT: QEMU is stopped after {} s",
            t.as_secs_f64()
        );
    }
    let session = run_session(
        command,
        Console::Interactive,
        Keep::ScanOnly,
        timeout,
        timing,
    )?;
    let verdict = power_off::verdict(&session.ending, &session.watch, expect, "KRUN_TIMEOUT");
    report(&verdict);
    print_timing(&session.times, timing);
    Ok(verdict.code)
}

/// With `--timing`, the breakdown line (on a line of its own).
pub fn print_timing(times: &BootTimes, timing: Option<&Path>) {
    if timing.is_some() {
        println!("\n[runner] {}", times.summary());
    }
}

/// Run a user program as init, non-interactively (test mode): like [`run_interactive`]
/// with stdin detached and `KTEST_TIMEOUT` (default 120 s). Returns init's status S or
/// one of the runner's failure statuses.
pub fn run_init_test(command: Command, name: &str, timing: Option<&Path>) -> Result<i32> {
    let timeout = test_timeout();
    println!(
        "[runner] booting with {name} as /init (timeout {} s)",
        timeout.as_secs()
    );
    let session = run_session(
        command,
        Console::Detached,
        Keep::ScanOnly,
        Some(timeout),
        timing,
    )?;
    let verdict = power_off::verdict(
        &session.ending,
        &session.watch,
        Expect::InitStatus,
        "KTEST_TIMEOUT",
    );
    report(&verdict);
    print_timing(&session.times, timing);
    if verdict.message.is_none() {
        println!(
            "[runner] {name}: init exited with status {} ({} ms in QEMU)",
            verdict.code,
            session.elapsed.as_millis()
        );
    }
    Ok(verdict.code)
}

/// Run a test kernel: echo its serial output, enforce the timeout, and collect the output.
pub fn run_test(command: Command, name: &str, timing: Option<&Path>) -> Result<TestRun> {
    let timeout = test_timeout();
    println!(
        "[runner] booting {name} in QEMU (timeout {} s)",
        timeout.as_secs()
    );
    let session = run_session(
        command,
        Console::Detached,
        Keep::Output,
        Some(timeout),
        timing,
    )?;
    Ok(TestRun {
        ending: session.ending,
        output: session.output,
        elapsed: session.elapsed,
        times: session.times,
    })
}
