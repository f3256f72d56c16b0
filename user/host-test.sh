#!/usr/bin/env bash
# The user programs are plain static Linux x86-64 executables, so they run on this host
# too: this checks their use of the Linux ABI (initial stack, syscalls, fork/execve/wait4,
# brk heap) without our kernel. Run after scripts/build-user.sh (make user-host-test).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/user/bin"
passed=0; failed=0

check() { # check NAME EXPECTED_STATUS GOT_STATUS OUTPUT PATTERN...
    local name=$1 want=$2 got=$3 out=$4; shift 4
    local ok=1
    [ "$got" = "$want" ] || { echo "  exit status $got, want $want"; ok=0; }
    for pat in "$@"; do
        grep -qF -- "$pat" <<<"$out" || { echo "  output lacks: $pat"; ok=0; }
    done
    if [ $ok = 1 ]; then echo "host: $name ... ok"; passed=$((passed + 1))
    else echo "host: $name ... FAILED"; echo "$out" | sed 's/^/    | /'; failed=$((failed + 1)); fi
}

out=$("$BIN/hello" a "b c" 2>&1); st=$?
check "hello prints its argv" 0 $st "$out" "hello from ring 3" "argc = 3" 'argv[2] = "b c"'

out=$(printf 'echo hi\nfree\nexit 3\n' | "$BIN/init" 2>&1); st=$?
check "init: echo, free, exit 3" 3 $st "$out" "hi" "total" "KiB"

out=$(printf '%s\n' true false "sh -c 'kill -9 \$\$'" nope | "$BIN/init" 2>&1); st=$?
check "init: runs programs, reports endings" 0 $st "$out" \
    "false: exited with status 1" "sh: killed by signal 9" "nope: exited with status 127"

out=$(printf 'echo a\x7fb\r\nps\n\x04' | "$BIN/init" 2>&1); st=$?
check "init: backspace, CRLF, ps, Ctrl-D" 0 $st "$out" "b" "ps: not supported" "exit"

# help and ls: on Linux, /bin is Linux's and getdents64 lists it; on memkernel the shell
# reads /bin/INDEX instead (user/init/src/dir.rs). The descriptions come from the shell.
out=$(printf '%s\n' help "help exdemo t_signal_glibc ls nope" | "$BIN/init" 2>&1); st=$?
check "init: help lists /bin and says what programs are" 0 $st "$out" \
    "built-ins: help [NAME], ls [DIR...]" "programs in /bin:" "  true" \
    "exdemo: start here" "t_signal_glibc: test: POSIX signals" "ls [DIR...]: the entries" \
    "nope: neither a built-in nor a program in /bin"

out=$(printf '%s\n' ls "ls /proc/self /nonexistent" | "$BIN/init" 2>&1); st=$?
check "init: ls lists directories" 0 $st "$out" \
    "/bin:" "/dev:" "/proc:" "null" "/proc/self:" "cmdline" \
    "ls: /nonexistent: no such directory"

# Test programs whose source says `ktest: host` must pass on Linux itself (both C
# libraries where built twice): the kernel is held to the same expected output.
for src in "$ROOT"/user/c/t_*.c; do
    grep -q 'ktest: host' "$src" || continue
    name=$(basename "$src" .c)
    for prog in "$BIN/$name" "$BIN/${name}_glibc"; do
        [ -x "$prog" ] || continue
        out=$("$prog" </dev/null 2>&1); st=$?
        check "$(basename "$prog") on Linux" 0 $st "$out" " passed, 0 failed"
    done
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
