//! `boot`: the host side of running a kernel. run-qemu.sh builds this tool and hands it
//! its arguments:
//!
//! ```text
//! boot KERNEL_ELF [--uefi] [--gdb] [--initramfs FILE.cpio] [--test | --run]
//! ```
//!
//! 1. checks that KERNEL_ELF is an x86-64 ELF executable;
//! 2. strips its debug info into a copy (the BIOS stages read the kernel from disk
//!    sector by sector under emulation: a smaller file boots seconds faster);
//! 3. builds a BIOS (default) or UEFI disk image with the `bootloader` crate, with the
//!    bootloader's own logging off;
//! 4. runs QEMU with the serial console on stdio, and
//! 5. in test mode (cargo test binaries, which live under `deps/`, or `--test`), judges
//!    the run: only QEMU exit status 33 (the kernel wrote 0x10 to `isa-debug-exit`) with
//!    as many `... ok` lines as the kernel announced counts as a pass.

mod judge;
mod qemu;

use anyhow::{bail, Context, Result};
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

/// Parsed command line.
#[derive(Debug)]
pub struct Options {
    pub kernel: PathBuf,
    pub firmware: Firmware,
    pub gdb: bool,
    pub initramfs: Option<PathBuf>,
    pub mode: Mode,
    /// Extra arguments after `--`, appended to QEMU's command line.
    pub qemu_args: Vec<String>,
}

const USAGE: &str = "usage: run-qemu.sh KERNEL_ELF [--uefi] [--gdb] [--initramfs FILE.cpio] [--test|--run] [-- QEMU_ARGS]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options> {
    let mut kernel = None;
    let mut firmware = Firmware::Bios;
    let mut gdb = false;
    let mut initramfs = None;
    let mut mode = None;
    let mut qemu_args = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--uefi" => firmware = Firmware::Uefi,
            "--bios" => firmware = Firmware::Bios,
            "--gdb" => gdb = true,
            "--test" => mode = Some(Mode::Test),
            "--run" => mode = Some(Mode::Run),
            "--initramfs" => {
                let file = args.next().context("--initramfs needs a file")?;
                initramfs = Some(PathBuf::from(file));
            }
            "--init" => bail!(
                "--init is not available yet: it needs user processes (issue \"Processes in ring 3\")"
            ),
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
        initramfs,
        mode,
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

/// Write a copy of `kernel` without debug info next to it and return its path.
fn strip_kernel(kernel: &Path) -> Result<PathBuf> {
    let stripped = kernel.with_extension("stripped");
    let status = Command::new(llvm_objcopy()?)
        .arg("--strip-debug")
        .arg(kernel)
        .arg(&stripped)
        .status()
        .context("cannot run llvm-objcopy")?;
    if !status.success() {
        bail!("llvm-objcopy --strip-debug {} failed", kernel.display());
    }
    Ok(stripped)
}

/// Build the disk image for `opts.firmware` and return its path.
fn build_image(opts: &Options, stripped: &Path) -> Result<PathBuf> {
    let mut builder = bootloader::DiskImageBuilder::new(stripped.to_path_buf());
    let mut config = bootloader::BootConfig::default();
    // The bootloader's own log is slow to print under emulation and not ours to show.
    config.frame_buffer_logging = false;
    config.serial_logging = false;
    builder.set_boot_config(&config);
    if let Some(ramdisk) = &opts.initramfs {
        if !ramdisk.is_file() {
            bail!("initramfs {} does not exist", ramdisk.display());
        }
        builder.set_ramdisk(ramdisk.clone());
    }
    let image = match opts.firmware {
        Firmware::Bios => opts.kernel.with_extension("bios.img"),
        Firmware::Uefi => opts.kernel.with_extension("uefi.img"),
    };
    match opts.firmware {
        Firmware::Bios => builder.create_bios_image(&image),
        Firmware::Uefi => builder.create_uefi_image(&image),
    }
    .with_context(|| format!("cannot create disk image {}", image.display()))?;
    Ok(image)
}

fn run(opts: &Options) -> Result<i32> {
    check_kernel_elf(&opts.kernel)?;
    let stripped = strip_kernel(&opts.kernel)?;
    let image = build_image(opts, &stripped)?;
    let command = qemu::command(opts, &image)?;
    if opts.gdb {
        println!(
            "[runner] QEMU waits for gdb on localhost:1234. In another terminal run:\n\
             [runner]   gdb {} -ex 'target remote localhost:1234'",
            opts.kernel.display()
        );
    }
    match opts.mode {
        Mode::Run => qemu::run_interactive(command),
        Mode::Test => {
            let name = judge::suite_name(&opts.kernel);
            let outcome = qemu::run_test(command, &name)?;
            Ok(judge::report(&name, &outcome))
        }
    }
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|opts| run(&opts));
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("run-qemu.sh: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
