#!/usr/bin/env bash
# Install what building, running and testing the kernel needs, and only what is missing.
#
#   Debian packages : qemu-system-x86 (QEMU), ovmf (UEFI firmware), musl-tools (musl-gcc),
#                     libc6-dev (static glibc), linux-libc-dev (UAPI headers), xz-utils
#   rustup          : the nightly components rust-src and llvm-tools-preview
#
# Fast when everything is present (a few `command -v` / file checks). When it cannot
# install (not root, no network) it prints exactly what to run by hand and exits 1.
set -euo pipefail

missing_pkgs=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing_pkgs+=(qemu-system-x86)
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -f /usr/share/OVMF/OVMF_CODE.fd ] || missing_pkgs+=(ovmf)
command -v musl-gcc >/dev/null 2>&1 || missing_pkgs+=(musl-tools)
# glibc's static library (user programs built with glibc too) and the Linux UAPI headers
# (Linux's own hmm-tests include <linux/types.h>).
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing_pkgs+=(libc6-dev)
[ -f /usr/include/linux/types.h ] || missing_pkgs+=(linux-libc-dev)
command -v xz >/dev/null 2>&1 || missing_pkgs+=(xz-utils)

if [ ${#missing_pkgs[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing_pkgs[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo"
    else
        echo "setup: not root and no password-less sudo. Run this by hand, then retry:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y ${missing_pkgs[*]}" >&2
        exit 1
    fi
    if ! { $SUDO apt-get update -qq && \
           DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}"; }; then
        echo "setup: apt-get failed (no network?). Run this by hand, then retry:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y ${missing_pkgs[*]}" >&2
        exit 1
    fi
fi

# rustup components of the nightly toolchain named in rust-toolchain.toml.
installed=$(rustup component list --toolchain nightly --installed 2>/dev/null || true)
missing_comps=()
grep -q '^rust-src' <<<"$installed" || missing_comps+=(rust-src)
grep -q '^llvm-tools' <<<"$installed" || missing_comps+=(llvm-tools-preview)
if [ ${#missing_comps[@]} -gt 0 ]; then
    echo "setup: adding rustup components: ${missing_comps[*]}"
    if ! rustup component add --toolchain nightly "${missing_comps[@]}"; then
        echo "setup: rustup failed. Run this by hand, then retry:" >&2
        echo "    rustup component add --toolchain nightly ${missing_comps[*]}" >&2
        exit 1
    fi
fi
