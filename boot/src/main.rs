//! `boot`: the host side of running a kernel. run-qemu.sh builds this tool and hands it
//! its arguments:
//!
//! ```text
//! boot KERNEL_ELF [--uefi] [--gdb] [--timing]
//!      [--init PROGRAM | --initramfs FILE.cpio | --no-initramfs] [--test | --run] [-- QEMU_ARGS]
//! boot mkcpio OUT.cpio NAME=FILE...
//! ```
//!
//! 1. checks that KERNEL_ELF is an x86-64 ELF executable;
//! 2. strips its debug info into a copy (the BIOS stages read the kernel from disk
//!    sector by sector under emulation: a smaller file boots seconds faster);
//! 3. picks the initramfs (the bootloader's ramdisk): `--initramfs FILE` as given;
//!    `--init PROGRAM` packs a temporary one with PROGRAM as `/init` and every program
//!    of `target/user/bin` as `/bin/NAME`; otherwise `target/initramfs.cpio` if it
//!    exists (`make user` builds it); `--no-initramfs` for none;
//! 4. builds a BIOS (default) or UEFI disk image with the `bootloader` crate, with the
//!    bootloader's own logging off, and tunes a BIOS image for QEMU's emulator (see
//!    [`image`]: ~5 s to the shell became ~0.5 s);
//! 5. runs QEMU with the serial console on stdio, and
//! 6. in test mode (cargo test binaries, which live under `deps/`, or `--test`), judges
//!    the run: only QEMU exit status 33 (the kernel wrote 0x10 to `isa-debug-exit`) with
//!    as many `... ok` lines as the kernel announced counts as a pass. In run mode, and
//!    for `--init` in test mode, it exits with init's exit status instead (the protocol
//!    and the runner's own exit statuses: see [`qemu`]);
//! 7. with `--timing` (or `KRUN_TIMING=1`), prints where the boot time went ([`timing`]).
//!
//! `mkcpio` writes a cpio (newc) archive from host files, plus `bin/INDEX` (see
//! [`cpio`]); scripts/build-user.sh packs `target/initramfs.cpio` with it.

mod cpio;
mod image;
mod initramfs;
mod judge;
mod power_off;
mod qemu;
mod symbolize;
mod timing;

use anyhow::{bail, Context, Result};
use power_off::Expect;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Firmware interface to boot through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

/// Whether the kernel is a test kernel to judge, or something to run for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    Test,
}

/// Which initramfs (bootloader ramdisk) to boot with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ramdisk {
    /// `target/initramfs.cpio` if it exists, else none.
    Default,
    /// `--no-initramfs`.
    Nothing,
    /// `--initramfs FILE`.
    File(PathBuf),
    /// `--init PROGRAM`: a temporary archive with PROGRAM as /init.
    Init(PathBuf),
}

/// Parsed command line.
#[derive(Debug)]
pub struct Options {
    pub kernel: PathBuf,
    pub firmware: Firmware,
    pub gdb: bool,
    pub ramdisk: Ramdisk,
    pub mode: Mode,
    /// `--timing` or `KRUN_TIMING=1`: print where the boot time went.
    pub timing: bool,
    /// Extra arguments after `--`, appended to QEMU's command line.
    pub qemu_args: Vec<String>,
}

const USAGE: &str = "usage: run-qemu.sh KERNEL_ELF [--uefi] [--gdb] [--timing] \
[--init PROGRAM | --initramfs FILE.cpio | --no-initramfs] [--test|--run] [-- QEMU_ARGS]
       boot mkcpio OUT.cpio NAME=FILE...";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options> {
    let mut kernel = None;
    let mut firmware = Firmware::Bios;
    let mut gdb = false;
    let mut timing = std::env::var("KRUN_TIMING").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut ramdisk = Ramdisk::Default;
    let mut mode = None;
    let mut qemu_args = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--uefi" => firmware = Firmware::Uefi,
            "--bios" => firmware = Firmware::Bios,
            "--gdb" => gdb = true,
            "--timing" => timing = true,
            "--test" => mode = Some(Mode::Test),
            "--run" => mode = Some(Mode::Run),
            "--initramfs" | "--init" | "--no-initramfs" => {
                if ramdisk != Ramdisk::Default {
                    bail!("give only one of --init, --initramfs, --no-initramfs\n{USAGE}");
                }
                ramdisk = match arg.as_str() {
                    "--no-initramfs" => Ramdisk::Nothing,
                    opt => {
                        let file = args
                            .next()
                            .with_context(|| format!("{opt} needs a file\n{USAGE}"))?;
                        if opt == "--init" {
                            Ramdisk::Init(PathBuf::from(file))
                        } else {
                            Ramdisk::File(PathBuf::from(file))
                        }
                    }
                };
            }
            "--" => qemu_args.extend(args.by_ref()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s => {
                if kernel.replace(PathBuf::from(s)).is_some() {
                    bail!("more than one kernel given\n{USAGE}");
                }
            }
        }
    }
    let kernel = kernel.with_context(|| format!("no kernel ELF given\n{USAGE}"))?;
    // cargo puts test executables in target/<triple>/<profile>/deps/.
    let mode = mode.unwrap_or_else(|| {
        if kernel.parent().and_then(Path::file_name) == Some("deps".as_ref()) {
            Mode::Test
        } else {
            Mode::Run
        }
    });
    Ok(Options {
        kernel,
        firmware,
        gdb,
        ramdisk,
        mode,
        timing,
        qemu_args,
    })
}

/// Refuse anything that is not an x86-64 ELF executable built against `bootloader_api`
/// (such kernels carry a `.bootloader-config` section), with a message a person can
/// act on.
fn check_kernel_elf(path: &Path) -> Result<()> {
    use object::{Architecture, Object, ObjectKind};
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read kernel ELF {}", path.display()))?;
    let elf = object::File::parse(&*bytes)
        .map_err(|e| anyhow::anyhow!("{} is not an ELF file ({e})", path.display()))?;
    if elf.architecture() != Architecture::X86_64 {
        bail!(
            "{} is not an x86-64 ELF ({:?})",
            path.display(),
            elf.architecture()
        );
    }
    if !matches!(elf.kind(), ObjectKind::Executable | ObjectKind::Dynamic) {
        bail!("{} is not an executable ({:?})", path.display(), elf.kind());
    }
    if elf.section_by_name(".bootloader-config").is_none() {
        bail!(
            "{} is not a kernel: it has no .bootloader-config section \
             (kernels declare `bootloader_api::entry_point!`)",
            path.display()
        );
    }
    Ok(())
}

/// The `llvm-objcopy` shipped with the nightly toolchain's `llvm-tools-preview`.
fn llvm_objcopy() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output()
        .context("cannot run rustc to find the toolchain's llvm-objcopy")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let tool = sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-objcopy");
    if !tool.exists() {
        bail!(
            "{} not found: run `make setup` (or `rustup component add llvm-tools-preview --toolchain nightly`)",
            tool.display()
        );
    }
    Ok(tool)
}

/// Write a copy of `kernel` without debug info into `dir` (default: next to it) and
/// return its path.
fn strip_kernel(kernel: &Path, dir: Option<&Path>) -> Result<PathBuf> {
    let stripped = match dir {
        Some(dir) => dir.join("kernel.stripped"),
        None => kernel.with_extension("stripped"),
    };
    let status = Command::new(llvm_objcopy()?)
        .arg("--strip-all")
        .arg(kernel)
        .arg(&stripped)
        .status()
        .context("cannot run llvm-objcopy")?;
    if !status.success() {
        bail!("llvm-objcopy --strip-all {} failed", kernel.display());
    }
    Ok(stripped)
}

/// Build the disk image for `opts.firmware` (into `dir`, default: next to the kernel)
/// and return its path.
fn build_image(
    opts: &Options,
    stripped: &Path,
    ramdisk: Option<&Path>,
    dir: Option<&Path>,
) -> Result<PathBuf> {
    let ext = match opts.firmware {
        Firmware::Bios => "bios.img",
        Firmware::Uefi => "uefi.img",
    };
    let image = match dir {
        Some(dir) => dir.join("kernel").with_extension(ext),
        None => opts.kernel.with_extension(ext),
    };
    image::build(opts, stripped, ramdisk, &image)?;
    Ok(image)
}

fn run(opts: &Options) -> Result<i32> {
    check_kernel_elf(&opts.kernel)?;
    symbolize::set_kernel(&opts.kernel);
    // Checked before the slow steps, so a typo fails at once.
    let run_timeout = match opts.mode {
        Mode::Run => qemu::run_timeout()?,
        Mode::Test => None,
    };
    // An --init run builds everything in a private directory (removed at the end), so
    // several such runs of one kernel can go on at once.
    let scratch = match opts.ramdisk {
        Ramdisk::Init(_) => Some(initramfs::ScratchDir::new()?),
        _ => None,
    };
    let dir = scratch.as_ref().map(|s| s.path());
    // Test kernels (cargo test) never run user programs: booting them without the
    // default initramfs saves the BIOS loader the disk reads.
    let ramdisk = match (&opts.ramdisk, opts.mode) {
        (Ramdisk::Default, Mode::Test) => None,
        (which, _) => initramfs::resolve(which, dir)?,
    };
    let stripped = strip_kernel(&opts.kernel, dir)?;
    let image = build_image(opts, &stripped, ramdisk.as_deref(), dir)?;
    // --timing: the firmware's debug console goes to a FIFO in a directory of its own.
    let timing_dir = match opts.timing {
        true => Some(initramfs::ScratchDir::new()?),
        false => None,
    };
    let firmware_log = match &timing_dir {
        Some(d) => Some(timing::make_fifo(&d.path().join("firmware.log"))?),
        None => None,
    };
    let command = qemu::command(opts, &image, firmware_log.as_deref())?;
    if opts.gdb {
        println!(
            "[runner] QEMU waits for gdb on localhost:1234. In another terminal run:\n\
             [runner]   gdb {} -ex 'target remote localhost:1234'",
            opts.kernel.display()
        );
    }
    launch(opts, command, run_timeout, firmware_log.as_deref())
}

/// Run QEMU in the way `opts` asks for; the runner's exit status.
fn launch(
    opts: &Options,
    command: Command,
    run_timeout: Option<std::time::Duration>,
    timing: Option<&Path>,
) -> Result<i32> {
    match (&opts.ramdisk, opts.mode) {
        (Ramdisk::Init(_), Mode::Run) => {
            qemu::run_interactive(command, Expect::InitStatus, run_timeout, timing)
        }
        (Ramdisk::Init(program), Mode::Test) => {
            let name = program
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            qemu::run_init_test(command, &name, timing)
        }
        (_, Mode::Run) => qemu::run_interactive(command, Expect::AnyEnd, run_timeout, timing),
        (_, Mode::Test) => {
            let name = judge::suite_name(&opts.kernel);
            let outcome = qemu::run_test(command, &name, timing)?;
            let status = judge::report(&name, &outcome);
            qemu::print_timing(&outcome.times, timing);
            Ok(status)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (who, result) = if args.first().map(String::as_str) == Some("mkcpio") {
        ("boot mkcpio", cpio::mkcpio_main(&args[1..]).map(|()| 0))
    } else {
        (
            "run-qemu.sh",
            parse_args(args.into_iter()).and_then(|opts| run(&opts)),
        )
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("{who}: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn init_and_initramfs_options() {
        let o = parse(&["k", "--init", "prog"]).unwrap();
        assert_eq!(o.ramdisk, Ramdisk::Init("prog".into()));
        assert_eq!(o.mode, Mode::Run);
        let o = parse(&["t/deps/x-12ab", "--init", "prog"]).unwrap();
        assert_eq!(o.mode, Mode::Test);
        let o = parse(&["k", "--initramfs", "a.cpio", "--", "-m", "1G"]).unwrap();
        assert_eq!(o.ramdisk, Ramdisk::File("a.cpio".into()));
        assert_eq!(o.qemu_args, ["-m", "1G"]);
        assert_eq!(parse(&["k"]).unwrap().ramdisk, Ramdisk::Default);
        assert_eq!(
            parse(&["k", "--no-initramfs"]).unwrap().ramdisk,
            Ramdisk::Nothing
        );
        assert!(parse(&["k", "--timing", "--uefi"]).unwrap().timing);
        assert!(parse(&["k", "--init"]).is_err());
        assert!(parse(&["k", "--init", "a", "--initramfs", "b"]).is_err());
    }
}
