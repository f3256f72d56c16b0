# Sourced by scripts/fuzz.sh and scripts/failslab.sh: the initramfs of a boot whose /init
# is a program that reads its arguments from a file (the kernel starts /init without any).
#
#   pack_init_image OUT INIT ARGS_NAME ARGS_TEXT
#
# packs OUT with /init = INIT, /ARGS_NAME = ARGS_TEXT and a line break, and /bin/NAME for
# every program in $BIN, with the runner's `mkcpio` ($BOOT_BIN). Both variables are the
# caller's. Returns mkcpio's status.
pack_init_image() {
    local out=$1 init=$2 args_name=$3 args_text=$4
    local args_file
    args_file="$(dirname "$out")/$args_name"
    echo "$args_text" >"$args_file"
    local members=("init=$init" "$args_name=$args_file")
    local p
    for p in "$BIN"/*; do
        members+=("bin/$(basename "$p")=$p")
    done
    "$BOOT_BIN" mkcpio "$out" "${members[@]}" >/dev/null
}
