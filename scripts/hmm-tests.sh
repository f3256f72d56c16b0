#!/usr/bin/env bash
# Linux's own selftest for HMM (tools/testing/selftests/mm/hmm-tests.c), unmodified,
# built with musl and with glibc, booted as /init, judged by the kselftest harness's
# own "# Totals:" line.
#
#   1. fetch Debian's linux-source-6.12 (apt-get download; cached in target/linux-6.12)
#      and take the five files the test needs, at their paths in the Linux tree
#   2. build it: musl-gcc -static (with the Linux UAPI headers) and gcc -static
#   3. boot each build; require the Totals line, no kernel panic, "no leak", the
#      exclusive subset passing (3 OK on the private device; the coherent device is
#      absent, so its 3 SKIP), and at least the counts in tests/hmm-tests.expected
#
# A count above the expected one is reported: raise the file in the same commit.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KERNEL="${1:-$ROOT/target/x86_64-target/debug/kernel}"
RESULTS="${KTEST_RESULTS:-/dev/null}"
EXPECTED="$ROOT/tests/hmm-tests.expected"
CACHE="$ROOT/target/linux-6.12"
SRC="$CACHE/src"
export KRUN_TIMEOUT="${KRUN_TIMEOUT:-300}"

files=(
    tools/testing/selftests/mm/hmm-tests.c
    tools/testing/selftests/kselftest_harness.h
    tools/testing/selftests/kselftest.h
    lib/test_hmm_uapi.h
    mm/gup_test.h
)

fetch() {
    [ -f "$SRC/tools/testing/selftests/mm/hmm-tests.c" ] && return 0
    mkdir -p "$CACHE" && cd "$CACHE" || return 1
    echo "[hmm-tests] fetching linux-source-6.12 (Debian package, about 150 MB)"
    if ! ls linux-source-6.12_*.deb >/dev/null 2>&1; then
        apt-get download linux-source-6.12 >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get download linux-source-6.12; } || return 1
    fi
    local deb
    deb=$(ls linux-source-6.12_*.deb | head -1)
    echo "[hmm-tests] unpacking ${files[*]} from $deb"
    rm -rf "$SRC" && mkdir -p "$SRC" || return 1
    dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/src/linux-source-6.12.tar.xz |
        tar -xJ -C "$SRC" --strip-components=1 "${files[@]/#/linux-source-6.12/}" || return 1
    rm -f "$deb"
}

build() {
    local out="$CACHE/bin"
    mkdir -p "$out" "$CACHE/uapi"
    # musl has no Linux UAPI headers of its own: point at Debian's (linux-libc-dev).
    ln -sfn /usr/include/linux "$CACHE/uapi/linux"
    ln -sfn /usr/include/asm-generic "$CACHE/uapi/asm-generic"
    ln -sfn /usr/include/x86_64-linux-gnu/asm "$CACHE/uapi/asm"
    local test_c="$SRC/tools/testing/selftests/mm/hmm-tests.c"
    musl-gcc -static -O2 -I"$SRC" -isystem "$CACHE/uapi" -o "$out/hmm-tests-musl" "$test_c" -lpthread &&
        gcc -static -O2 -I"$SRC" -o "$out/hmm-tests-glibc" "$test_c" -lpthread
}

if ! fetch; then
    echo "[hmm-tests] FAIL: could not fetch linux-source-6.12 (apt-get download)" >&2
    printf 'hmm-tests\t0\t1\n' >>"$RESULTS"
    exit 1
fi
if ! (cd "$ROOT" && build); then
    echo "[hmm-tests] FAIL: could not build hmm-tests.c" >&2
    printf 'hmm-tests\t0\t1\n' >>"$RESULTS"
    exit 1
fi

status=0
for libc in musl glibc; do
    log="$ROOT/target/hmm-tests-$libc.log"
    echo "[hmm-tests] Linux's hmm-tests ($libc) as /init"
    "$ROOT/run-qemu.sh" "$KERNEL" --init "$CACHE/bin/hmm-tests-$libc" </dev/null >"$log" 2>&1
    grep -E '^(ok|not ok) |^# Totals|\[kernel\]|panic' "$log"
    totals=$(grep -E '^# Totals: pass:' "$log" | tail -1)
    why=""
    [ -z "$totals" ] && why="no '# Totals' line (kernel panic or hang?)"
    grep -q 'no leak' "$log" || why="${why:+$why; }no 'no leak' line from the kernel"
    for t in exclusive exclusive_mprotect exclusive_cow; do
        grep -qE "^ok [0-9]+ hmm\.hmm_device_private\.$t\$" "$log" ||
            why="${why:+$why; }hmm_device_private.$t did not pass"
        grep -qE "^ok [0-9]+ hmm\.hmm_device_coherent\.$t # SKIP" "$log" ||
            why="${why:+$why; }hmm_device_coherent.$t did not skip"
    done
    pass=$(sed -nE 's/.*Totals: pass:([0-9]+).*/\1/p' <<<"$totals")
    skip=$(sed -nE 's/.*skip:([0-9]+).*/\1/p' <<<"$totals")
    want=$(awk -v l="$libc" '$1 == l { print $2 }' "$EXPECTED")
    if [ -n "$pass" ] && [ -n "$want" ] && [ "$pass" -lt "$want" ]; then
        why="${why:+$why; }$pass tests pass, tests/hmm-tests.expected says $want"
    elif [ -n "$pass" ] && [ -n "$want" ] && [ "$pass" -gt "$want" ]; then
        echo "[hmm-tests] $libc: $pass pass, more than the $want in tests/hmm-tests.expected: raise it"
    fi
    if [ -n "$why" ]; then
        echo "[hmm-tests] $libc: FAIL: $why"
        printf 'hmm-tests (%s)\t%s\t1\n' "$libc" "${pass:-0}" >>"$RESULTS"
        status=1
    else
        echo "[hmm-tests] $libc: PASS: ${totals#\# } (at least $want pass; $skip skip)"
        printf 'hmm-tests (%s)\t%s\t0\n' "$libc" "$pass" >>"$RESULTS"
    fi
done
exit $status
