# shellcheck shell=bash
# shrinkwrapHook: after the normal fixup, stamp every ELF file of every output (all but
# `debug`) with its whole shared-library closure as absolute paths, so the loader opens each
# library once and searches for nothing. Runs from postFixupHooks: after patchelf's
# --shrink-rpath and strip, and after autoPatchelfHook (which must be listed first).
#
# Options, as derivation attributes (lists work with and without __structuredAttrs):
#   dontShrinkwrap            skip the hook.
#                             use: dontShrinkwrap = true;
#   shrinkwrapKeep            soname globs left as bare names, not lifted.
#                             use: shrinkwrapKeep = [ "libvulkan.so*" ];
#   shrinkwrapAllowMissing    missing sonames to leave bare instead of failing.
#                             use: shrinkwrapAllowMissing = [ "libjack.so.0" ];
#   shrinkwrapFlags           more `shrinkwrap fixup` flags.
#                             use: shrinkwrapFlags = [ "--no-default-keep" ];
# Shell functions:
#   addShrinkwrapSearchPath DIR...   more library directories to resolve against.
#                             use: preFixup = "addShrinkwrapSearchPath $out/libexec/lib";
#   shrinkwrap PATH...        run it by hand, with the same options, on other paths; from
#                             postFixup, after patchelf --shrink-rpath (which would delete
#                             the RUNPATH of a file stamped before it) and strip.
#                             use: postFixup = "shrinkwrap $out/opt/app";

shrinkwrapSearchPath=()

# The lib directory of every host dependency (addEnvHooks calls this once per input).
shrinkwrapAddInput() {
    if [ -d "$1/lib" ]; then
        shrinkwrapSearchPath+=("$1/lib")
    fi
}
# shellcheck disable=SC2154 # stdenv sets targetOffset
addEnvHooks "$targetOffset" shrinkwrapAddInput

addShrinkwrapSearchPath() {
    local dir
    for dir in "$@"; do
        shrinkwrapSearchPath+=("$dir")
    done
}

# Reads option $1 as a list into the array named $2: a bash array under __structuredAttrs,
# a space-separated string otherwise.
# shellcheck disable=SC2034 # the nameref writes the caller's array
shrinkwrapList() {
    local -n shrinkwrapListOut=$2
    shrinkwrapListOut=()
    if [[ "$(declare -p "$1" 2>/dev/null)" == "declare -a"* ]]; then
        local -n shrinkwrapListIn=$1
        shrinkwrapListOut=("${shrinkwrapListIn[@]}")
    elif [ -n "${!1-}" ]; then
        read -r -a shrinkwrapListOut <<<"${!1}"
    fi
}

# Stamps PATH... (directories or files) with the hook's options.
shrinkwrap() {
    local keep allowMissing flags dir glob
    # fixup takes its job count from $NIX_BUILD_CORES itself.
    local args=()
    shrinkwrapList shrinkwrapKeep keep
    shrinkwrapList shrinkwrapAllowMissing allowMissing
    shrinkwrapList shrinkwrapFlags flags
    for dir in "${shrinkwrapSearchPath[@]}"; do
        args+=(--search "$dir")
    done
    for glob in "${keep[@]}"; do
        args+=(--keep "$glob")
    done
    for glob in "${allowMissing[@]}"; do
        args+=(--allow-missing "$glob")
    done
    command shrinkwrap fixup "${args[@]}" "${flags[@]}" "$@"
}

shrinkwrapPostFixup() {
    if [ -n "${dontShrinkwrap-}" ]; then
        echo "shrinkwrap: dontShrinkwrap is set, not stamping"
        return 0
    fi
    # Hooks run in the order their packages were listed: autoPatchelfHook's must come first,
    # or we would stamp files it has not patched yet.
    local i me=-1 auto=-1
    for i in "${!postFixupHooks[@]}"; do
        case "${postFixupHooks[$i]}" in
        shrinkwrapPostFixup) me=$i ;;
        autoPatchelfPostFixup) auto=$i ;;
        esac
    done
    if ((auto > me)); then
        echo "shrinkwrap: autoPatchelfHook would run after shrinkwrapHook; list autoPatchelfHook before shrinkwrapHook in nativeBuildInputs" >&2
        return 1
    fi
    # Not `outputs`: getAllOutputNames reads stdenv's `outputs`, which a local of that name
    # would hide from it.
    local name names dirs=()
    names=$(getAllOutputNames)
    for name in $names; do
        if [ "$name" != debug ] && [ -e "${!name}" ]; then
            dirs+=("${!name}")
        fi
    done
    if ((${#dirs[@]})); then
        shrinkwrap "${dirs[@]}"
    fi
}

postFixupHooks+=(shrinkwrapPostFixup)
