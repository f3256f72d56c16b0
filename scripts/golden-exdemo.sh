#!/usr/bin/env bash
# Golden-output test of exdemo (user/c/exdemo.c), the narrated device-exclusive demo.
#
#   ./run-qemu.sh KERNEL --init target/user/bin/exdemo
#
# The output, from exdemo's first line to the kernel's power-off line, is masked and then
# compared with tests/golden/exdemo.txt; chapter 7's annotated trace (docs/07-device-
# exclusive.md, the code blocks between the markers <!-- golden:exdemo --> and
# <!-- /golden:exdemo -->) is masked the same way and must give the same text, so the
# chapter shows what the program prints today. Masked, because these legitimately vary:
#
#   frame numbers   they depend on the kernel's and the initramfs's size: each distinct
#                   frame becomes F1, F2, ... in order of first appearance, so "the same
#                   frame" and "a new frame" are still checked
#   addresses       each distinct user address becomes A1, A2, ... likewise
#   free frames     "[kernel] all processes gone; N free frames" (the count depends on the
#                   build)
#   log times       "[   12.345]" at the start of a kernel log line
#
# Boot banner, PCI list and runner lines come before exdemo's first line and are left out.
# Checks: exit status 0; the kernel's "no leak" line; golden; chapter 7. Prints
# "N passed, M failed" and exits non-zero if any check failed.
#
# After an intended change of exdemo's output: GOLDEN_UPDATE=1 scripts/golden-exdemo.sh
# rewrites the golden file from this run; then paste the same run into chapter 7.14
# (the script prints the masked difference until the chapter matches). GOLDEN_LOG=FILE puts
# the run's full log there instead of target/golden-exdemo.log. Three runs (one of them with
# three boots in parallel on two CPUs) gave the same masked output; the ATOMIC_ADD fault count
# of step 5 and the pids do not vary, so they are not masked.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KERNEL="${1:-$ROOT/target/x86_64-target/debug/kernel}"
PROG="$ROOT/target/user/bin/exdemo"
GOLDEN="$ROOT/tests/golden/exdemo.txt"
CHAPTER="$ROOT/docs/07-device-exclusive.md"
RESULTS="${KTEST_RESULTS:-/dev/null}"
LOG="${GOLDEN_LOG:-$ROOT/target/golden-exdemo.log}"
export KRUN_TIMEOUT="${KRUN_TIMEOUT:-120}"
passed=0; failed=0

check() { # check NAME OK(0/1)
    if [ "$2" = 0 ]; then echo "golden: $1 ... ok"; passed=$((passed + 1))
    else echo "golden: $1 ... FAILED"; failed=$((failed + 1)); fi
}

# mask: exdemo's lines of a run (or of the chapter), with what varies replaced (above).
mask() {
    awk '
        /^Device-exclusive access, step by step$/ { on = 1 }
        !on { next }
        {
            sub(/^\[ *[0-9]+\.[0-9]+\]/, "[T]")
            gsub(/; [0-9]+ free frames,/, "; N free frames,")
            out = ""; rest = $0; nth = 0
            page_line = ($0 ~ /^  0x[0-9a-f]+  /)
            while (match(rest, /0x[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]+/)) {
                tok = substr(rest, RSTART, RLENGTH); nth++
                if (page_line && nth == 2) {          # the frame column of a page line
                    if (!(tok in frame)) frame[tok] = "F" (++frames)
                    name = frame[tok]
                } else {
                    v = tolower(tok); sub(/^0x0*/, "", v)   # 0x0042a000 == 0x42a000
                    if (!(v in addr)) addr[v] = "A" (++addrs)
                    name = addr[v]
                }
                out = out substr(rest, 1, RSTART - 1) name
                rest = substr(rest, RSTART + RLENGTH)
            }
            print out rest
        }
        /^\[kernel\] power off:/ { exit }
    '
}

# The chapter's trace: the plain ``` blocks between the markers, one after the other.
chapter_trace() {
    awk '
        /<!-- golden:exdemo -->/ { on = 1; next }
        /<!-- \/golden:exdemo -->/ { on = 0; next }
        !on { next }
        state == 0 && /^```/ { state = ($0 == "```") ? 1 : 2; next }   # 2: ```sh and the like
        state != 0 && /^```[ \t]*$/ { state = 0; next }
        state == 1 { print }
    ' "$CHAPTER"
}

if [ ! -x "$PROG" ]; then
    echo "golden-exdemo: $PROG missing (run scripts/build-user.sh)" >&2
    check "exdemo was built" 1
    printf 'golden:exdemo\t%s\t%s\n' "$passed" "$failed" >>"$RESULTS"
    echo "$passed passed, $failed failed"
    exit 1
fi

if [ ! -f "$KERNEL" ]; then
    echo "golden-exdemo: no kernel at $KERNEL (run cargo build)" >&2
fi
echo "[golden] exdemo as /init: ${KERNEL#"$ROOT"/}"
"$ROOT/run-qemu.sh" "$KERNEL" --init "$PROG" </dev/null >"$LOG" 2>&1
rc=$?
check "exdemo exits 0 (run-qemu.sh status $rc)" "$([ "$rc" = 0 ] && echo 0 || echo 1)"
check "the kernel reports no leak" "$(grep -q 'no leak' "$LOG" && echo 0 || echo 1)"

masked=$(mask <"$LOG")
if [ "${GOLDEN_UPDATE:-0}" = 1 ]; then
    mkdir -p "$(dirname "$GOLDEN")"
    printf '%s\n' "$masked" >"$GOLDEN"
    echo "[golden] wrote ${GOLDEN#"$ROOT"/} from this run ($(wc -l <"$GOLDEN") lines)"
fi
if [ ! -f "$GOLDEN" ]; then
    echo "[golden] ${GOLDEN#"$ROOT"/} is missing (GOLDEN_UPDATE=1 writes it)"
    check "output matches ${GOLDEN#"$ROOT"/}" 1
elif diff_out=$(diff -u "$GOLDEN" <(printf '%s\n' "$masked")); then
    check "output matches ${GOLDEN#"$ROOT"/} ($(wc -l <"$GOLDEN") lines, masked)" 0
else
    echo "[golden] masked output differs from the golden file (- golden, + this run; full log: ${LOG#"$ROOT"/}):"
    printf '%s\n' "$diff_out" | head -n 80 | sed 's/^/    /'
    [ "$(printf '%s\n' "$diff_out" | wc -l)" -gt 80 ] && echo "    ... (first 80 lines of the difference)"
    check "output matches ${GOLDEN#"$ROOT"/}" 1
fi

# Chapter 7 against the golden file, blank lines aside (a code block may start or end at one).
if [ -f "$GOLDEN" ]; then
    chapter=$(chapter_trace | mask | grep -v '^$')
    if [ -z "$chapter" ]; then
        echo "[golden] no trace between <!-- golden:exdemo --> and <!-- /golden:exdemo --> in ${CHAPTER#"$ROOT"/}"
        check "chapter 7's trace matches the golden file" 1
    elif diff_out=$(diff -u <(grep -v '^$' "$GOLDEN") <(printf '%s\n' "$chapter")); then
        check "chapter 7's trace matches the golden file ($(printf '%s\n' "$chapter" | wc -l) lines, masked)" 0
    else
        echo "[golden] chapter 7's trace differs from the golden file (- golden, + chapter, masked, blank lines aside):"
        printf '%s\n' "$diff_out" | head -n 80 | sed 's/^/    /'
        check "chapter 7's trace matches the golden file" 1
    fi
fi

printf 'golden:exdemo\t%s\t%s\n' "$passed" "$failed" >>"$RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
