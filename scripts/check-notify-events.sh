#!/usr/bin/env bash
# Host check: the docs' event tables name every place in kernel/src that sends an MMU
# notifier event, and nothing else.
#
# 1. Senders. A function with a parameter of type `NotifyEvent` passes an event on to the
#    devices (`AddressSpace::notify`, `Subscribers::notify`, `Inner::zap_entries`,
#    `MmuNotifier::invalidate_range_start`), and so does a struct with a `NotifyEvent`
#    field built as a literal (`Invalidation { event: .. }`, which `Gather::begin` sends).
#    Both lists are found in the source, not written here.
# 2. Sends. Every `NotifyEvent::X` written inside the arguments of a sender call, or in a
#    sender struct literal, is a send of event X by the function around it (named
#    `Type::function`, or `Drop for Type` for a drop). Other uses (comparisons, the
#    driver's own queue) are listed as "not a send".
# 3. The docs. The event tables are the tables of docs/07-device-exclusive.md and
#    docs/08-locks-and-unmapping.md with a column "event" and a column "sent by" or
#    "where". Each send (event X, function F) must have a row whose event cell holds `X`
#    and whose other cell holds `F` (as `Type::function`, `function` or `Drop for Type`, in
#    backticks). And each row must name at least one function that really sends its event
#    (a stale row fails too).
#
# Prints every check, then "N passed, M failed"; exits non-zero if any failed. A send whose
# event goes through a variable first (`let e = NotifyEvent::X; self.notify(.., e, ..)`)
# is not recognised: it shows up as "not a send", so look at that list when it changes.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
DOCS=(docs/07-device-exclusive.md docs/08-locks-and-unmapping.md)
mapfile -t SOURCES < <(find kernel/src -name '*.rs' | sort)

# scan PASS FILES...: a small Rust tokenizer (comments, strings and char literals dropped)
# that tracks brackets, `fn` and `impl`. Pass "senders" prints "fn NAME" for functions with a
# NotifyEvent parameter and "struct NAME" for structs with a NotifyEvent field. Pass "sends"
# (with -v senders="name name ...") prints one line per `NotifyEvent::X`:
#   send<TAB>X<TAB>Type::function<TAB>file:line<TAB>callee    or
#   other<TAB>X<TAB>Type::function<TAB>file:line<TAB>context
scan() {
    local pass=$1; shift
    awk -v pass="$pass" -v senders="${SENDERS:-}" '
    BEGIN {
        n = split(senders, s, " "); for (i = 1; i <= n; i++) is_sender[s[i]] = 1
    }
    FNR == 1 { depth = 0; in_str = 0; in_blk = 0; prev = ""; prevkind = ""; want_fn = 0
               fn_pending = ""; impl_pending = 0; delete fn_at; delete impl_at; delete name_at
               struct_pending = ""; struct_depth = -1 }
    {
        line = $0; out = ""; i = 1; L = length(line)
        # strip comments, strings and char literals, keeping the code
        while (i <= L) {
            c = substr(line, i, 1); c2 = substr(line, i, 2)
            if (in_blk) { if (c2 == "*/") { in_blk = 0; i += 2 } else i++; continue }
            if (in_str) {
                if (c == "\\") { i += 2; continue }
                if (c == "\"") in_str = 0
                i++; continue
            }
            if (c2 == "//") break
            if (c2 == "/*") { in_blk = 1; i += 2; continue }
            if (c == "\"") { in_str = 1; out = out " "; i++; continue }
            if (c == "'\''") {
                if (substr(line, i + 2, 1) == "'\''") { out = out " "; i += 3; continue }
                if (substr(line, i + 1, 1) == "\\") {
                    j = index(substr(line, i + 2), "'\''")
                    if (j > 0) { out = out " "; i += j + 2; continue }
                }
                i++; continue          # a lifetime
            }
            out = out c; i++
        }
        # tokens
        code = out
        while (length(code) > 0) {
            if (match(code, /^[ \t]+/)) { code = substr(code, RLENGTH + 1); continue }
            if (match(code, /^[A-Za-z_][A-Za-z0-9_]*/)) {
                tok = substr(code, 1, RLENGTH); code = substr(code, RLENGTH + 1)
                if (collecting != "") sig = sig " " tok
                if (want_fn) { fn_pending = tok; want_fn = 0; collecting = "fn"; sig = "" }
                else if (tok == "fn" && collecting == "") want_fn = 1
                else if (tok == "impl" && collecting == "" && (prev == "" || prev == "}" || prev == ";" || prev == "{" || prev == "]" || prev == "unsafe")) { impl_pending = 1; impl_hdr = "" }
                else if (impl_pending) impl_hdr = impl_hdr " " tok
                if (tok == "struct" && collecting == "") { want_struct = 1 }
                else if (want_struct) { struct_pending = tok; want_struct = 0 }
                # NotifyEvent::X
                if (tok == "NotifyEvent" && substr(code, 1, 2) == "::" && match(substr(code, 3), /^[A-Za-z_][A-Za-z0-9_]*/)) {
                    ev = substr(code, 3, RLENGTH); code = substr(code, 3 + RLENGTH)
                    if (pass == "sends") report(ev)
                    prev = ev; prevkind = "ident"; continue
                }
                if (tok == "NotifyEvent" && pass == "senders") {
                    if (collecting == "fn") sig_has_event = 1
                    if (struct_depth >= 0 && depth == struct_depth + 1) struct_has_event[struct_name] = 1
                }
                prev = tok; prevkind = "ident"; continue
            }
            c = substr(code, 1, 1); code = substr(code, 2)
            if (c == ":" && substr(code, 1, 1) == ":") { code = substr(code, 2); prevkind = "path"; continue }
            if (c == "(" || c == "{" || c == "[") {
                depth++
                name_at[depth] = (prevkind == "ident") ? prev : ""
                delete fn_at[depth]; delete impl_at[depth]
                if (c == "{" && collecting == "fn" && fn_pending != "") {
                    fn_at[depth] = fn_pending
                    if (pass == "senders" && sig_has_event) print "fn " fn_pending
                    collecting = ""; fn_pending = ""; sig_has_event = 0
                }
                if (c == "{" && impl_pending) { impl_at[depth] = impl_name(impl_hdr); impl_pending = 0 }
                if (c == "{" && struct_pending != "") { struct_name = struct_pending; struct_depth = depth - 1; struct_pending = "" }
            } else if (c == ")" || c == "}" || c == "]") {
                if (c == "}" && struct_depth >= 0 && depth == struct_depth + 1) {
                    if (pass == "senders" && struct_has_event[struct_name]) print "struct " struct_name
                    struct_depth = -1
                }
                delete fn_at[depth]; delete impl_at[depth]; delete name_at[depth]
                depth--
            } else if (c == ";") {
                if (collecting == "fn") { collecting = ""; fn_pending = ""; sig_has_event = 0 }  # a declaration
                struct_pending = ""; want_struct = 0
            } else if (c == "<" || c == ">" || c == "&" || c == "," || c == "'\''") {
                if (impl_pending) impl_hdr = impl_hdr " " c
            }
            prev = c; prevkind = "punct"
        }
    }
    # "Drop for AddressSpace" -> "Drop for AddressSpace"; "AddressSpace" -> "AddressSpace"
    function impl_name(h,    w, n, i, t, ty, tr, lt) {
        gsub(/<[^<>]*>/, "", h); gsub(/<[^<>]*>/, "", h)
        n = split(h, w, " "); tr = ""; ty = ""
        for (i = 1; i <= n; i++) {
            t = w[i]; if (t == "<" || t == ">" || t == "&" || t == "," || t == "'\''") continue
            if (t == "for") { tr = ty; ty = ""; continue }
            if (t == "dyn" || t == "mut") continue
            if (ty == "") ty = t
        }
        return (tr != "") ? tr " for " ty : ty
    }
    function report(ev,    d, callee, fnn, imp, who) {
        callee = ""
        for (d = depth; d >= 1; d--) if (name_at[d] != "") { callee = name_at[d]; break }
        fnn = ""; imp = ""
        for (d = depth; d >= 1; d--) if (d in fn_at) { fnn = fn_at[d]; break }
        for (d = d - 1; d >= 1; d--) if (d in impl_at) { imp = impl_at[d]; break }
        if (fnn == "") who = "(outside a function)"
        else if (imp ~ / for / && fnn == "drop") who = imp
        else if (imp != "" && imp !~ / for /) who = imp "::" fnn
        else if (imp != "") { split(imp, parts, " for "); who = parts[2] "::" fnn }
        else who = fnn
        printf "%s\t%s\t%s\t%s:%d\t%s\n", (callee in is_sender) ? "send" : "other", ev, who, FILENAME, FNR, callee
    }
    ' "$@"
}

mapfile -t sender_lines < <(scan senders "${SOURCES[@]}" | sort -u)
SENDERS=""
for l in "${sender_lines[@]}"; do SENDERS="$SENDERS ${l#* }"; done
export SENDERS
mapfile -t found < <(scan sends "${SOURCES[@]}")

# The event tables: one line per row, "file:line<TAB>event cell<TAB>sender cell".
rows() {
    awk '
        FNR == 1 { cols = 0 }
        /^ *\|/ {
            row = $0; sub(/^ +/, "", row)
            n = split(row, cell, "|")
            if (!cols) {                    # a header row?
                ev = 0; by = 0
                for (i = 2; i < n; i++) {
                    h = cell[i]; gsub(/^ +| +$/, "", h)
                    if (h == "event") ev = i
                    if (h == "sent by" || h == "where") by = i
                }
                if (ev && by) { cols = 1; evcol = ev; bycol = by }
                else cols = -1
                next
            }
            if (cols == 1 && row !~ /^\|[-| ]+\|$/) printf "%s:%d\t%s\t%s\n", FILENAME, FNR, cell[evcol], cell[bycol]
            next
        }
        { cols = 0 }
    ' "${DOCS[@]}"
}
mapfile -t table < <(rows)

passed=0; failed=0
ok()   { echo "  ok      $*"; passed=$((passed + 1)); }
fail() { echo "  FAILED  $*"; failed=$((failed + 1)); }

# cell_names CELL: the backticked names in a cell, one per line.
cell_names() { grep -o '`[^`]*`' <<<"$1" | tr -d '`'; }
# names_fn WHO: the spellings of a sender that a row may use.
matches_fn() { # matches_fn CELL WHO
    local name
    while IFS= read -r name; do
        [ "$name" = "$2" ] && return 0
        case "$2" in
            "Drop for "*) ;;
            *::*) [ "$name" = "${2##*::}" ] && return 0 ;;
        esac
    done < <(cell_names "$1")
    return 1
}

echo "senders (functions with a NotifyEvent parameter, structs with a NotifyEvent field):"
echo "  ${SENDERS# }"
echo
echo "event tables (${DOCS[*]}): ${#table[@]} rows"
echo
echo "every send in kernel/src has a row naming its event and its function:"
declare -A sent=()
for f in "${found[@]}"; do
    IFS=$'\t' read -r kind ev who where callee <<<"$f"
    [ "$kind" = send ] || continue
    sent["$ev|$who"]=1
    hit=""
    for r in "${table[@]}"; do
        IFS=$'\t' read -r at evcell bycell <<<"$r"
        grep -qF "\`$ev\`" <<<"$evcell" || continue
        matches_fn "$bycell" "$who" && { hit=$at; break; }
    done
    if [ -n "$hit" ]; then ok "$ev sent by $who ($where, via $callee): $hit"
    else fail "$ev sent by $who ($where, via $callee): no row with \`$ev\` and \`$who\` in ${DOCS[*]}"; fi
done
echo
echo "every row names a function that sends its event:"
for r in "${table[@]}"; do
    IFS=$'\t' read -r at evcell bycell <<<"$r"
    evs=$(cell_names "$evcell" | grep -E '^(Exclusive|Clear|Unmap|ProtectionPage|ProtectionVma|Release)$' || true)
    [ -z "$evs" ] && continue          # e.g. "none (NoDevices ...)"
    while IFS= read -r ev; do
        good=""
        for key in "${!sent[@]}"; do
            [ "${key%%|*}" = "$ev" ] || continue
            matches_fn "$bycell" "${key#*|}" && { good=${key#*|}; break; }
        done
        if [ -n "$good" ]; then ok "$at: \`$ev\` by $(cell_names "$bycell" | paste -sd' ') ($good sends it)"
        else fail "$at: \`$ev\` by $(cell_names "$bycell" | paste -sd' '): no such send in kernel/src"; fi
    done <<<"$evs"
done
echo
echo "not a send (NotifyEvent written elsewhere; listed for review):"
for f in "${found[@]}"; do
    IFS=$'\t' read -r kind ev who where callee <<<"$f"
    [ "$kind" = other ] && echo "  -       $ev in $who ($where, inside ${callee:-an expression})"
done
[ ${#found[@]} -eq 0 ] && fail "no NotifyEvent found in kernel/src: the scan is broken"
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
