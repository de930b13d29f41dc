# shellcheck shell=bash
# shrinkwrapHook: after the normal fixup, stamp every ELF file of every output (all but
# `debug`) with its whole shared-library closure as absolute paths, so the loader opens each
# library once and searches for nothing. Runs from postFixupHooks: after patchelf's
# --shrink-rpath and strip, and after autoPatchelfHook wherever that is listed.
#
# Once sourced, `shrinkwrap` is still the binary (`shrinkwrap tree FILE` works in any phase);
# the hook adds only the functions and variables named below.
#
# Options, as derivation attributes (lists work with and without __structuredAttrs):
#   dontShrinkwrap            skip the hook.
#                             use: dontShrinkwrap = true;
#   shrinkwrapKeep            soname globs left as bare names, not lifted.
#                             use: shrinkwrapKeep = [ "libvulkan.so*" ];
#   shrinkwrapAllowMissing    missing sonames to leave bare instead of failing.
#                             use: shrinkwrapAllowMissing = [ "libjack.so.0" ];
#   shrinkwrapFlags           more `shrinkwrap fixup` flags.
#                             use: shrinkwrapFlags = [ "--programs-only" ];
#   shrinkwrapStoreDir        the store directory (default: $NIX_STORE_DIR, else $NIX_STORE,
#                             which Nix sets in every build, else /nix/store).
#                             use: shrinkwrapStoreDir = "/gnu/store";
# Shell functions:
#   addShrinkwrapSearchPath DIR...   more library directories to resolve against.
#                             use: preFixup = "addShrinkwrapSearchPath $out/libexec/lib";
#   shrinkwrapFixup PATH...   stamp other paths by hand, with the same options; from
#                             postFixup, after patchelf --shrink-rpath (which would delete
#                             the RUNPATH of a file stamped before it) and strip.
#                             use: postFixup = "shrinkwrapFixup $out/opt/app";

# Sourced once, however many dependencies propagate the hook.
if [ -n "${shrinkwrapHookSourced-}" ]; then
    return 0
fi
shrinkwrapHookSourced=1

# Older stdenvs lack these; the same names and behaviour, so the rest reads as on a new one.
if ! declare -F concatTo >/dev/null; then
    # concatTo ARRAY VAR...: appends each VAR to ARRAY, an array as it is, a string split on
    # whitespace (no globbing).
    concatTo() {
        local -n concatToOut=$1
        shift
        local name
        for name in "$@"; do
            if [[ "$(declare -p "$name" 2>/dev/null)" == "declare -a"* ]]; then
                local -n concatToIn=$name
                concatToOut+=("${concatToIn[@]}")
                unset -n concatToIn
            elif [ -n "${!name-}" ]; then
                local words
                read -r -d "" -a words <<<"${!name}" || true
                concatToOut+=("${words[@]}")
            fi
        done
    }
fi
if ! declare -F nixLog >/dev/null; then
    # nixLog MESSAGE...: one line on the build log, after the calling function's name.
    nixLog() {
        printf '%s: %s\n' "${FUNCNAME[1]}" "$*" >&2
    }
fi
if ! declare -F nixErrorLog >/dev/null; then
    nixErrorLog() {
        printf '%s\n' "$*" >&2
    }
fi

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
    shrinkwrapSearchPath+=("$@")
}

# Stamps PATH... (directories or files) with the hook's options.
shrinkwrapFixup() {
    local keep=() allowMissing=() flags=() args=() dir glob
    concatTo keep shrinkwrapKeep
    concatTo allowMissing shrinkwrapAllowMissing
    concatTo flags shrinkwrapFlags
    # An attribute first; then what a user's environment says; then what Nix sets in builds.
    local storeDir=${shrinkwrapStoreDir:-${NIX_STORE_DIR:-${NIX_STORE:-}}}
    if [ -n "$storeDir" ]; then
        args+=(--store-dir "$storeDir")
    fi
    for dir in "${shrinkwrapSearchPath[@]}"; do
        args+=(--search "$dir")
    done
    for glob in "${keep[@]}"; do
        args+=(--keep "$glob")
    done
    for glob in "${allowMissing[@]}"; do
        args+=(--allow-missing "$glob")
    done
    # fixup takes its job count from $NIX_BUILD_CORES itself.
    shrinkwrap fixup "${args[@]}" "${flags[@]}" "$@"
}

# The hooks that rewrite ELF files in postFixup and so must run before the stamping.
shrinkwrapRunsAfter=(autoPatchelfPostFixup)

# Index of the last postFixupHooks entry that must run before shrinkwrapPostFixup, or -1.
shrinkwrapLastBefore() {
    local i name last=-1
    for i in "${!postFixupHooks[@]}"; do
        for name in "${shrinkwrapRunsAfter[@]}"; do
            if [ "${postFixupHooks[$i]}" = "$name" ]; then
                last=$i
            fi
        done
    done
    echo "$last"
}

# From preFixupHooks (so before postFixup's list is read): moves shrinkwrapPostFixup after
# autoPatchelfPostFixup, so the order in nativeBuildInputs does not matter.
shrinkwrapOrderHooks() {
    local i last hooks=()
    last=$(shrinkwrapLastBefore)
    for i in "${!postFixupHooks[@]}"; do
        if [ "${postFixupHooks[$i]}" != shrinkwrapPostFixup ]; then
            hooks+=("${postFixupHooks[$i]}")
        fi
        if [ "$i" = "$last" ]; then
            hooks+=(shrinkwrapPostFixup)
        fi
    done
    if ((last >= 0)); then
        postFixupHooks=("${hooks[@]}")
    fi
}

shrinkwrapPostFixup() {
    if [ -n "${dontShrinkwrap-}" ]; then
        nixLog "dontShrinkwrap is set, not stamping"
        return 0
    fi
    # Only when a custom fixupPhase skipped preFixupHooks can autoPatchelf still come later:
    # stamping now would lift libraries it has not patched in yet.
    local i me=-1
    for i in "${!postFixupHooks[@]}"; do
        if [ "${postFixupHooks[$i]}" = shrinkwrapPostFixup ]; then
            me=$i
        fi
    done
    if (($(shrinkwrapLastBefore) > me)); then
        nixErrorLog "shrinkwrapHook: autoPatchelfHook would run after it (preFixupHooks did not run); call shrinkwrapFixup from postFixup instead"
        return 1
    fi
    # Not `outputs`: getAllOutputNames reads stdenv's `outputs`, which a local of that name
    # would hide from it.
    local name dirs=()
    for name in $(getAllOutputNames); do
        if [ "$name" != debug ] && [ -e "${!name}" ]; then
            dirs+=("${!name}")
        fi
    done
    if ((${#dirs[@]})); then
        shrinkwrapFixup "${dirs[@]}"
    fi
}

preFixupHooks+=(shrinkwrapOrderHooks)
postFixupHooks+=(shrinkwrapPostFixup)
