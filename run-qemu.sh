#!/usr/bin/env bash
# Boot a kernel ELF in QEMU. The one entry point that cargo (as its runner) and people use.
#
#   ./run-qemu.sh KERNEL_ELF [--uefi] [--gdb] [--initramfs FILE.cpio] [--test|--run] [-- QEMU_ARGS]
#
# Builds the host tool in boot/ (once; cached), which strips the ELF, makes a BIOS or UEFI
# disk image, runs QEMU with the serial console on this terminal and, for test kernels,
# judges the result (exit status 0 = pass). KTEST_TIMEOUT=seconds changes the test timeout.
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
exec "$BOOT_BIN" "$@"
