#!/usr/bin/env bash
# Build every user program and pack the default initramfs.
#
#   Rust : the user/ workspace (target x86_64-user.json), release  -> target/user/bin/NAME
#   C    : each user/c/NAME.c, musl-gcc -static -O2 (one program per file)
#                                                              -> target/user/bin/NAME
#          and, if its source says `ktest: libc=musl,glibc`, gcc -static (glibc)
#                                                              -> target/user/bin/NAME_glibc
#   cpio : target/initramfs.cpio (newc): /init (the Rust shell) and /bin/NAME for every
#          program above, written by the host tool in boot/ (`boot mkcpio`)
#
# run-qemu.sh boots with target/initramfs.cpio by default. USER_CFLAGS adds C flags.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/user/bin"
BOOT_BIN="$ROOT/target/boot/release/boot"
OUT="$ROOT/target/initramfs.cpio"

rm -rf "$BIN"
mkdir -p "$BIN"

# --- Rust: cargo in user/ picks up user/.cargo/config.toml (target, build-std, target-dir).
echo "build-user: Rust programs (user/)"
rust_bins=$(cd "$ROOT/user" && cargo build --release --message-format=json-render-diagnostics \
    | grep -o '"executable":"[^"]*"' | sed 's/^"executable":"//; s/"$//')
for exe in $rust_bins; do
    cp "$exe" "$BIN/$(basename "$exe")"
done

# --- C: one static program per user/c/*.c.
shopt -s nullglob
c_files=("$ROOT"/user/c/*.c)
if [ ${#c_files[@]} -gt 0 ]; then
    if ! command -v musl-gcc >/dev/null 2>&1; then
        echo "build-user: musl-gcc not found: run \`make setup\` (Debian package musl-tools)" >&2
        exit 1
    fi
    echo "build-user: C programs (user/c/, musl-gcc -static)"
    for src in "${c_files[@]}"; do
        name=$(basename "$src" .c)
        if [ -e "$BIN/$name" ]; then
            echo "build-user: user/c/$name.c: a program named $name exists already" >&2
            exit 1
        fi
        # shellcheck disable=SC2086 # USER_CFLAGS is a list of flags
        # -s: no symbol tables; the BIOS stage reads every byte of the initramfs at boot.
        musl-gcc -static -O2 -s -Wall -I"$ROOT/user/c" ${USER_CFLAGS:-} -o "$BIN/$name" "$src"
        # A program whose source says `ktest: libc=musl,glibc` is also built against glibc
        # (as NAME_glibc): the two C libraries use the kernel differently (glibc's fork is
        # clone, its start-up asks for more).
        if grep -q 'ktest: libc=musl,glibc' "$src"; then
            # shellcheck disable=SC2086
            gcc -static -O2 -s -Wall -I"$ROOT/user/c" ${USER_CFLAGS:-} -o "$BIN/${name}_glibc" "$src"
        fi
    done
fi

# --- initramfs: /init is the shell, /bin/NAME every program.
if [ ! -x "$BIN/init" ]; then
    echo "build-user: no init program was built (user/init)" >&2
    exit 1
fi
# The host tool is built from outside the repo (see run-qemu.sh).
(cd / && RUSTUP_TOOLCHAIN=nightly cargo build --quiet --release \
    --manifest-path "$ROOT/boot/Cargo.toml" --target-dir "$ROOT/target/boot")
members=("init=$BIN/init")
for prog in "$BIN"/*; do
    members+=("bin/$(basename "$prog")=$prog")
done
"$BOOT_BIN" mkcpio "$OUT" "${members[@]}"
echo "build-user: programs in ${BIN#"$ROOT"/}: $(cd "$BIN" && echo *)"
