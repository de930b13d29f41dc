# shellcheck shell=bash
# A small stand-in for the parts of nixpkgs' stdenv setup that fixup hooks use: addEnvHooks,
# runHook, getAllOutputNames, the postFixupHooks array, outputs with and without
# __structuredAttrs. Written for the tests; it mirrors stdenv's protocol, not its code.
#
# With standinHelpers set before it is sourced, it also has newer stdenv's concatTo, nixLog
# and nixErrorLog (the messages go to $NIX_LOG_FD, and nowhere when that is unset); without,
# it is an older stdenv that has none of them.
#
# use: source stdenv-standin.sh; standinOutputs out=/o lib=/l debug=/d
#      source hooks/shrinkwrap-hook.sh; standinInputs /dep1 /dep2; fixupPhase

set -eu
set -o pipefail

# stdenv: host dependencies get their env hooks called with targetOffset's slot.
# shellcheck disable=SC2034
hostOffset=0
# shellcheck disable=SC2034
targetOffset=1
envHooks=()
# shellcheck disable=SC2034
postFixupHooks=()
# shellcheck disable=SC2034
preFixupHooks=()

addEnvHooks() {
    shift # the offset: the stand-in has one kind of dependency
    envHooks+=("$@")
}

# Calls every env hook once per input, as stdenv's findInputs does.
standinInputs() {
    local dep hook
    for dep in "$@"; do
        for hook in "${envHooks[@]}"; do
            "$hook" "$dep"
        done
    done
}

# Declares the outputs: NAME=PATH... Under __structuredAttrs `outputs` is an associative
# array; otherwise a space-separated string. Either way each output is also a variable.
standinOutputs() {
    local spec names=()
    if [ -n "${__structuredAttrs-}" ]; then
        declare -gA outputs=()
    fi
    for spec in "$@"; do
        local name=${spec%%=*} path=${spec#*=}
        names+=("$name")
        declare -g "$name=$path"
        if [ -n "${__structuredAttrs-}" ]; then
            outputs[$name]=$path
        fi
    done
    if [ -z "${__structuredAttrs-}" ]; then
        # shellcheck disable=SC2178 # a string when attrs are not structured
        declare -g outputs="${names[*]}"
    fi
}

if [ -n "${standinHelpers-}" ]; then
    # How many times concatTo ran: a test's proof that the hook used stdenv's.
    standinConcatToCalls=0
    # concatTo ARRAY VAR[=DEFAULT]...: each VAR appended to ARRAY, an array element by element,
    # a string split on whitespace without globbing, DEFAULT when VAR is empty.
    concatTo() {
        local -n standinTo=$1
        shift
        local spec name default
        standinConcatToCalls=$((standinConcatToCalls + 1))
        for spec in "$@"; do
            name=${spec%%=*}
            default=
            if [[ "$spec" == *=* ]]; then
                default=${spec#*=}
            fi
            if [[ "$(declare -p "$name" 2>/dev/null)" == "declare -a"* ]]; then
                local -n standinFrom=$name
                standinTo+=("${standinFrom[@]}")
                unset -n standinFrom
            elif [ -n "${!name-}" ]; then
                local -
                set -f
                # shellcheck disable=SC2206 # splitting is the point
                standinTo+=(${!name})
            elif [ -n "$default" ]; then
                standinTo+=("$default")
            fi
        done
    }
    # The caller's name, then the message, on $NIX_LOG_FD.
    nixLog() {
        [ -n "${NIX_LOG_FD-}" ] || return 0
        printf '%s: %s\n' "${FUNCNAME[1]}" "$*" >&"$NIX_LOG_FD"
    }
    nixErrorLog() {
        [ -n "${NIX_LOG_FD-}" ] || return 0
        printf '%s\n' "$*" >&"$NIX_LOG_FD"
    }
fi

getAllOutputNames() {
    if [ -n "${__structuredAttrs-}" ]; then
        echo "${!outputs[@]}"
    else
        # shellcheck disable=SC2128
        echo "$outputs"
    fi
}

# runHook NAME: the variable NAME (a string of shell code) first, then the NAMEs array, as in
# stdenv ("postFixup" runs $postFixup, then postFixupHooks).
runHook() {
    local name=$1 hook
    shift
    if [ -n "${!name-}" ]; then
        eval "${!name}"
    fi
    local slice="${name}Hooks[@]"
    for hook in ${!slice+"${!slice}"}; do
        "$hook" "$@"
    done
}

fixupPhase() {
    runHook preFixup
    runHook postFixup
}
