#!/usr/bin/env bash
# Boot a kernel ELF in QEMU. The one entry point that cargo (as its runner) and people use.
#
#   ./run-qemu.sh KERNEL_ELF [--uefi] [--gdb] [--timing] [--test|--run]
#                 [--init PROGRAM | --initramfs FILE.cpio | --no-initramfs] [-- QEMU_ARGS]
#
# Builds the host tool in boot/ (once; cached), which strips the ELF, makes a BIOS or UEFI
# disk image, runs QEMU with the serial console on this terminal and, for test kernels,
# judges the result (exit status 0 = pass). KTEST_TIMEOUT=seconds changes the test timeout.
# The BIOS image is tuned for QEMU's emulator (big FAT clusters, the bootloader's stack out
# of the boot sector's page: boot/src/image.rs): the shell prompt comes ~0.5 s after QEMU
# starts instead of ~5 s.
#
# --timing (or KRUN_TIMING=1, e.g. for `cargo run`/`cargo test`) prints, when QEMU ends,
# where the boot time went, each figure in ms from QEMU's start (boot/src/timing.rs):
#   [runner] timing: firmware 120 ms | bootloader 230 ms (stage 2 loads 180, stages 3-4 50)
#            | kernel 40 ms to the banner (banner at 390 ms) | shell prompt at 420 ms
# (one line; a test kernel's ends with "first test at N ms" and its PASS line says
# "first test after N ms" anyway).
#
# Initramfs: --initramfs FILE as given; --init PROGRAM packs a temporary one with PROGRAM
# (a static x86-64 ELF) as /init and every program of target/user/bin as /bin/NAME (and
# /bin/INDEX, their names, which the shell's help and ls read);
# otherwise target/initramfs.cpio if it exists (`make user` builds it).
#
# Exit status in run mode and for --init runs (the protocol: boot/src/qemu.rs):
#   S    pid 1 exited with status S (the kernel printed
#        "[kernel] power off: init exited with status S" and QEMU exited with 37)
#   0    plain run: the kernel exited with its success code (33), or Ctrl-A X
#   124  timeout (KRUN_TIMEOUT=seconds in run mode, none by default; KTEST_TIMEOUT in test mode)
#   125  kernel panic, reset/triple fault, or any other unexpected ending
#   130  an --init run quit with Ctrl-A X
#   2    the runner itself failed (bad arguments, build error, missing tools)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BOOT_BIN="$ROOT/target/boot/release/boot"

# The host tool must not see this repo's .cargo/config.toml (bare-metal target, build-std),
# so it is built from outside the repo. bootloader's build script needs nightly cargo.
if ! (cd / && RUSTUP_TOOLCHAIN=nightly cargo build --quiet --release \
        --manifest-path "$ROOT/boot/Cargo.toml" --target-dir "$ROOT/target/boot"); then
    echo "run-qemu.sh: building the host tool in boot/ failed" >&2
    exit 2
fi
# Where the tool finds target/initramfs.cpio and target/user/bin.
export MEMKERNEL_ROOT="$ROOT"
exec "$BOOT_BIN" "$@"
