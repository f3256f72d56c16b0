#!/usr/bin/env bash
# Run user test programs with a share of the kernel's allocations failing (Linux's
# failslab + make-it-fail; kernel/src/mm/gfp.rs), each as the child of user/c/failwrap.c
# booted as /init. The programs' own verdicts do not count (they get ENOMEM where they
# did not expect it); the kernel's do: no panic, no hang, and "no leak" at power-off.
#
#   scripts/failslab.sh [KERNEL]     (default target/x86_64-target/debug/kernel)
#
# Environment:
#   FAILSLAB_PROGRAMS   the t_ programs to run (default: the list below; "all": every
#                       t_ program that needs no test hook)
#   FAILSLAB_PROBABILITY percent of candidate allocations that fail (default 3)
#   FAILSLAB_INTERVAL   only every N-th allocation is a candidate (default 1)
#   KTEST_RESULTS       file to append "name<TAB>passed<TAB>failed" lines to
#
# It builds nothing: scripts/build-user.sh must have built target/user/bin. Logs are
# target/failslab-NAME.log.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KERNEL="${1:-$ROOT/target/x86_64-target/debug/kernel}"
BIN="$ROOT/target/user/bin"
BOOT_BIN="$ROOT/target/boot/release/boot"
# shellcheck source=lib/init-image.sh
. "$ROOT/scripts/lib/init-image.sh"
RESULTS="${KTEST_RESULTS:-/dev/null}"
PROBABILITY="${FAILSLAB_PROBABILITY:-3}"
INTERVAL="${FAILSLAB_INTERVAL:-1}"
# The programs that drive the kernel's memory paths hardest (fork, COW, mmap, exec,
# signals, /proc, the accelerator); those needing the test-hooks kernel are left out.
PROGRAMS="${FAILSLAB_PROGRAMS:-t_fork t_fork100 t_cow t_mmap t_exec t_wait t_shm t_signal t_procfs t_hmm_exclusive t_hmm_unmap t_fdinherit t_efault t_sys}"
if [ "$PROGRAMS" = all ]; then
    PROGRAMS=$(for src in "$ROOT"/user/c/t_*.c; do
        grep -q 'ktest: kernel=test-hooks' "$src" || basename "$src" .c
    done)
fi

if [ ! -f "$KERNEL" ]; then
    echo "failslab: no kernel at $KERNEL (cargo build)" >&2
    exit 2
fi
"$ROOT/run-qemu.sh" --help >/dev/null || exit 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$KERNEL" "$tmp/kernel" || exit 2 # a private copy (see scripts/fuzz.sh)
passed=0
failed=0
for prog in $PROGRAMS; do
    name="failslab$PROBABILITY%:$prog"
    if [ ! -x "$BIN/$prog" ] || [ ! -x "$BIN/failwrap" ]; then
        echo "failslab: $BIN/$prog or failwrap is missing (scripts/build-user.sh)" >&2
        failed=$((failed + 1))
        printf '%s\t%s\t%s\n' "$name" 0 1 >>"$RESULTS"
        continue
    fi
    pack_init_image "$tmp/img.cpio" "$BIN/failwrap" failwrap.args \
        "$PROBABILITY $INTERVAL /bin/$prog" || exit 2
    log="$ROOT/target/failslab-$prog.log"
    echo "[failslab] $prog: $PROBABILITY% of allocations failing (interval $INTERVAL)"
    KRUN_TIMEOUT="${KRUN_TIMEOUT:-300}" \
        "$ROOT/run-qemu.sh" "$tmp/kernel" --initramfs "$tmp/img.cpio" </dev/null >"$log" 2>&1
    rc=$?
    why=""
    [ "$rc" -ne 0 ] && why="exit status $rc"
    grep -aq 'no leak' "$log" || why="${why:+$why; }no 'no leak' line from the kernel"
    grep -aqE '^1 passed, 0 failed' "$log" || why="${why:+$why; }the program did not end by itself"
    summary=$(grep -aE '^failwrap: .* allocations failed' "$log" | tail -1)
    if [ -n "$why" ]; then
        failed=$((failed + 1))
        printf '%s\t%s\t%s\n' "$name" 0 1 >>"$RESULTS"
        echo "[failslab] $prog: FAIL ($why); log: ${log#"$ROOT"/}"
        grep -aE 'panic|^\[runner\]|LEAK|BUG' "$log" | head -30 | sed 's/^/[failslab]   /'
    else
        passed=$((passed + 1))
        printf '%s\t%s\t%s\n' "$name" 1 0 >>"$RESULTS"
        echo "[failslab] $prog: PASS (${summary#failwrap: })"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
