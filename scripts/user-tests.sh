#!/usr/bin/env bash
# Run every user-space test program (target/user/bin/t_*) as /init of its own boot:
#   ./run-qemu.sh KERNEL --init target/user/bin/t_NAME
# A program passes when it exits 0 (run-qemu.sh exits with init's status) and the kernel
# reported no frame leak after every process was gone. Each program prints its own
# `name ... ok` lines and `N passed, M failed`; those counts go to KTEST_RESULTS.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KERNEL="${1:-$ROOT/target/x86_64-target/debug/kernel}"
RESULTS="${KTEST_RESULTS:-/dev/null}"
export KRUN_TIMEOUT="${KRUN_TIMEOUT:-300}"
status=0
shopt -s nullglob
tests=("$ROOT"/target/user/bin/t_*)
if [ ${#tests[@]} -eq 0 ]; then
    echo "user-tests: no test programs in target/user/bin (run scripts/build-user.sh)" >&2
    exit 1
fi
# Programs whose source says `ktest: kernel=test-hooks` need the test-only hooks (see
# user/c/hmm.h): they boot a second kernel built with the cargo feature `test-hooks`.
HOOKS_KERNEL="${KTEST_HOOKS_KERNEL:-$ROOT/target/kernel-test-hooks}"
if [ -z "${KTEST_HOOKS_KERNEL:-}" ] && grep -qs 'ktest: kernel=test-hooks' "$ROOT"/user/c/t_*.c; then
    echo "[user-tests] building the test-hooks kernel"
    (cd "$ROOT" && cargo build --features test-hooks &&
        cp target/x86_64-target/debug/kernel "$HOOKS_KERNEL" && cargo build) || exit 1
fi
for t in "${tests[@]}"; do
    name="user:$(basename "$t")"
    log="$ROOT/target/user-test-$(basename "$t").log"
    kernel="$KERNEL"
    if grep -qs 'ktest: kernel=test-hooks' "$ROOT/user/c/$(basename "$t").c"; then
        kernel="$HOOKS_KERNEL"
        name="$name(test-hooks)"
    fi
    echo "[user-tests] $name"
    "$ROOT/run-qemu.sh" "$kernel" --init "$t" </dev/null 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    passed=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"${summary:-0 passed}")
    failed=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"${summary:-0 passed, 1 failed}")
    why=""
    [ "$rc" -ne 0 ] && why="exit status $rc"
    if ! grep -q 'no leak' "$log"; then
        why="${why:+$why; }no 'no leak' line from the kernel (frames not all returned?)"
    fi
    [ -z "$summary" ] && why="${why:+$why; }no 'N passed, M failed' line"
    if [ -n "$why" ]; then
        [ "$failed" -eq 0 ] && failed=1
        echo "[user-tests] $name: FAIL: $passed passed, $failed failed ($why)"
        status=1
    else
        echo "[user-tests] $name: PASS: $passed passed, 0 failed"
    fi
    printf '%s\t%s\t%s\n' "$name" "$passed" "$failed" >>"$RESULTS"
done
exit $status
