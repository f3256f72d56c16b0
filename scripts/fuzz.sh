#!/usr/bin/env bash
# Boot each fuzzer (user/c/fuzz_sys.c, user/c/fuzz_hmm.c) as /init of its own boot and
# judge it: exit status 0, the kernel's "no leak" at power-off, and "1 passed, 0 failed".
#
#   scripts/fuzz.sh [KERNEL]        (default target/x86_64-target/debug/kernel)
#
# It builds nothing: scripts/build-user.sh must have built target/user/bin/fuzz_*.
#
# The kernel starts /init with no arguments, so the arguments go into the initramfs:
# this script packs, with `boot mkcpio`, /init = the fuzzer, /bin/NAME = every program of
# target/user/bin (as `run-qemu.sh --init` does) and /fuzz.args = "SEED CALLS [replay
# [FROM]]", which a fuzzer reads when it has no arguments (on Linux, pass them instead:
# target/user/bin/fuzz_sys SEED CALLS [replay [FROM]]).
#
# Environment:
#   FUZZ_CALLS   calls (fuzz_sys) and operations (fuzz_hmm) per fuzzer; default
#                FUZZ_SYS_CALLS / FUZZ_HMM_OPS, sized for `make test` on the debug kernel
#   FUZZ_SEED    the seed (default 1)
#   FUZZ_REPLAY  1: print every call (from call FUZZ_FROM on, if set)
#   FUZZ_ONLY    fuzz_sys or fuzz_hmm: run only that one
#   KRUN_TIMEOUT seconds per boot (default: 300 + calls / 100)
#   KTEST_RESULTS file to append "name<TAB>passed<TAB>failed" lines to (as user-tests.sh)
#
# A failure prints how to replay it. The logs are target/fuzz-NAME.log.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KERNEL="${1:-$ROOT/target/x86_64-target/debug/kernel}"
BIN="$ROOT/target/user/bin"
BOOT_BIN="$ROOT/target/boot/release/boot"
# shellcheck source=lib/init-image.sh
. "$ROOT/scripts/lib/init-image.sh"
RESULTS="${KTEST_RESULTS:-/dev/null}"
SEED="${FUZZ_SEED:-1}"
# make test: both together well under three minutes on the debug kernel under TCG
# (measured: about 70 s with these counts, boots included, on 2 cores at load 4-5)
FUZZ_SYS_CALLS="${FUZZ_SYS_CALLS:-50000}"
FUZZ_HMM_OPS="${FUZZ_HMM_OPS:-50000}"

if [ ! -f "$KERNEL" ]; then
    echo "fuzz: no kernel at $KERNEL (cargo build)" >&2
    exit 2
fi
# run-qemu.sh builds the host tool (boot/) if needed; --help stops there.
"$ROOT/run-qemu.sh" --help >/dev/null || exit 2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Boot a private copy: the runner writes its disk image (initramfs included) next to the
# kernel ELF, so another run of the same kernel at the same time would swap our image.
cp "$KERNEL" "$tmp/kernel" || exit 2
passed=0
failed=0
for prog in fuzz_sys fuzz_hmm; do
    if [ -n "${FUZZ_ONLY:-}" ] && [ "$FUZZ_ONLY" != "$prog" ]; then
        continue
    fi
    if [ ! -x "$BIN/$prog" ]; then
        echo "fuzz: $BIN/$prog is missing (scripts/build-user.sh)" >&2
        failed=$((failed + 1))
        printf '%s\t%s\t%s\n' "fuzz:$prog" 0 1 >>"$RESULTS"
        continue
    fi
    if [ "$prog" = fuzz_sys ]; then calls="${FUZZ_CALLS:-$FUZZ_SYS_CALLS}"; else calls="${FUZZ_CALLS:-$FUZZ_HMM_OPS}"; fi
    args="$SEED $calls"
    if [ "${FUZZ_REPLAY:-0}" = 1 ]; then
        args="$args replay ${FUZZ_FROM:-0}"
    fi
    pack_init_image "$tmp/$prog.cpio" "$BIN/$prog" fuzz.args "$args" || exit 2
    log="$ROOT/target/fuzz-$prog.log"
    echo "[fuzz] $prog: seed $SEED, $calls calls, kernel $KERNEL"
    start=$(date +%s)
    KRUN_TIMEOUT="${KRUN_TIMEOUT:-$((300 + calls / 100))}" \
        "$ROOT/run-qemu.sh" "$tmp/kernel" --initramfs "$tmp/$prog.cpio" </dev/null 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    secs=$(($(date +%s) - start))
    why=""
    [ "$rc" -ne 0 ] && why="exit status $rc"
    grep -aq "^$prog: seed" "$log" || why="${why:+$why; }$prog did not start"
    grep -aq 'no leak' "$log" || why="${why:+$why; }no 'no leak' line from the kernel"
    grep -aqE '^1 passed, 0 failed' "$log" || why="${why:+$why; }no '1 passed, 0 failed' line"
    if [ -n "$why" ]; then
        failed=$((failed + 1))
        printf '%s\t%s\t%s\n' "fuzz:$prog" 0 1 >>"$RESULTS"
        echo "[fuzz] $prog: FAIL ($why) after ${secs} s; log: ${log#"$ROOT"/}"
        grep -aE 'panic|^  at |BUG|FAIL|^\[runner\]' "$log" | head -40 | sed 's/^/[fuzz]   /'
        # Replay from the last progress line (every 100000 calls) to print each call up
        # to the failure; the choices of a call depend only on the seed and its number.
        from=$(grep -aoE "$prog: [0-9]+ (calls|operations) \(" "$log" | tail -1 | grep -oE '[0-9]+' || true)
        echo "[fuzz] replay (prints every call from call ${from:-0} on):"
        echo "[fuzz]   FUZZ_ONLY=$prog FUZZ_SEED=$SEED FUZZ_CALLS=$calls FUZZ_REPLAY=1 FUZZ_FROM=${from:-0} scripts/fuzz.sh $KERNEL"
    else
        passed=$((passed + 1))
        printf '%s\t%s\t%s\n' "fuzz:$prog" 1 0 >>"$RESULTS"
        echo "[fuzz] $prog: PASS in ${secs} s"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
