#!/usr/bin/env bash
# Run every test suite: host tests, then every QEMU test kernel. Keeps going after a
# failure so one run shows everything, prints a summary, exits non-zero if anything failed.
#
#   host : cargo test of devices/ (the device model) and boot/ (the runner's judge)
#   qemu : cargo test of the kernel: its in-kernel unit tests and every tests/*.rs kernel
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

# Host crates are built from / so the repo's bare-metal .cargo/config.toml does not apply.
step "host: devices" bash -c "cd / && cargo +nightly test --manifest-path '$ROOT/devices/Cargo.toml' --target-dir '$ROOT/target/host'"
step "host: boot (runner)" bash -c "cd / && cargo +nightly test --release --manifest-path '$ROOT/boot/Cargo.toml' --target-dir '$ROOT/target/boot'"
# --no-fail-fast: a failing kernel does not stop the others.
step "qemu: kernel test kernels" cargo test --no-fail-fast

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
