#!/usr/bin/env bash
# Run every test suite: host tests, then every QEMU test kernel. Keeps going after a
# failure so one run shows everything, prints a summary, exits non-zero if anything failed.
#
#   host : cargo test of devices/ (the device model) and boot/ (the runner); the docs'
#          notifier-event tables against the code (scripts/check-notify-events.sh); the user
#          programs run on Linux itself (they are ordinary static Linux executables)
#   qemu : cargo test of the kernel (its in-kernel unit tests and every tests/*.rs kernel),
#          then every user test program (target/user/bin/t_*) as /init of its own boot,
#          then exdemo against its golden output and docs chapter 7 (scripts/golden-exdemo.sh),
#          then Linux's own hmm-tests.c (musl and glibc builds) as /init, the fuzzers,
#          and test programs with kernel allocations failing (scripts/failslab.sh)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export KTEST_RESULTS="$ROOT/target/ktest-results.txt"
mkdir -p target && : >"$KTEST_RESULTS"
failed_steps=()

step() { # step NAME COMMAND...
    local name=$1; shift
    echo; echo "=== $name ==="
    if ! "$@"; then failed_steps+=("$name"); fi
}

# The tree stays clean: formatting and clippy (warnings are errors) on every crate.
step "lint: cargo fmt --check" make --no-print-directory fmt-check
step "lint: clippy -D warnings" make --no-print-directory lint
# Host crates are built from / so the repo's bare-metal .cargo/config.toml does not apply.
step "host: devices" bash -c "cd / && cargo +nightly test --manifest-path '$ROOT/devices/Cargo.toml' --target-dir '$ROOT/target/host'"
step "host: boot (runner)" bash -c "cd / && cargo +nightly test --release --manifest-path '$ROOT/boot/Cargo.toml' --target-dir '$ROOT/target/boot'"
# Every MMU-notifier event the kernel sends has its row in the docs' event tables.
step "host: notify events in the docs" bash scripts/check-notify-events.sh
# User programs (Rust and C) and the default initramfs the kernels boot with.
step "build: user programs + initramfs" bash scripts/build-user.sh
step "host: user programs on Linux" bash user/host-test.sh
# --no-fail-fast: a failing kernel does not stop the others.
step "qemu: kernel test kernels" cargo test --no-fail-fast
# Every user test program as /init of its own boot (exit status + leak check).
step "qemu: user test programs" bash scripts/user-tests.sh
# exdemo's output (masked) against tests/golden/exdemo.txt and docs chapter 7's trace.
step "qemu: golden exdemo" bash scripts/golden-exdemo.sh
# Linux's own hmm-tests, unmodified, with musl and glibc (fetches linux-source-6.12).
step "qemu: Linux hmm-tests" bash scripts/hmm-tests.sh
# The fuzzers, a few tens of thousands of random calls each (make fuzz: a million).
step "qemu: fuzzers" bash scripts/fuzz.sh
# Test programs with 2% and then 10% of the kernel's allocations failing (failslab):
# the kernel must neither panic nor hang nor leak.
step "qemu: failslab 2%" env FAILSLAB_PROBABILITY=2 bash scripts/failslab.sh
step "qemu: failslab 10%" env FAILSLAB_PROBABILITY=10 bash scripts/failslab.sh

echo
echo "=== summary ==="
passed=0; failed=0
while IFS=$'\t' read -r suite p f; do
    [ -z "$suite" ] && continue
    printf '  %-28s %4d passed %4d failed\n' "$suite" "$p" "$f"
    passed=$((passed + p)); failed=$((failed + f))
done <"$KTEST_RESULTS"
if [ ${#failed_steps[@]} -gt 0 ]; then
    echo "failed steps: ${failed_steps[*]}"
    # a step that failed before any kernel reported (build error) still counts
    [ "$failed" -eq 0 ] && failed=1
fi
echo "qemu: $passed passed, $failed failed"
[ ${#failed_steps[@]} -eq 0 ] && [ "$failed" -eq 0 ]
