# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR disable=SC1091 # followed only with shellcheck -x
# Builder of the program (tests/nix/real/default.nix), through the stdenv stand-in and the
# shrinkwrap hook: $lib/lib/libp.so.1 from $libp and $out/bin/prog from $prog, both needing
# liba, with wide RUNPATHs; then the stand-in's fixupPhase, with $inputs as host dependencies.
# shellcheck disable=SC2154 # the derivation's attributes
# shellcheck source=../stdenv-standin.sh
source "$standin"
standinOutputs out="$out" lib="$lib"
# The autoPatchelfHook stand-in, listed before or after the hook when $autoPatchelfOrder says.
if [ "${autoPatchelfOrder-}" = before ]; then
    # shellcheck source=auto-patchelf-standin.sh
    source "$autoPatchelfStandin"
fi
# shellcheck source=../../../hooks/shrinkwrap-hook.sh
source "$hook"
if [ "${autoPatchelfOrder-}" = after ]; then
    # shellcheck source=auto-patchelf-standin.sh
    source "$autoPatchelfStandin"
fi
PATH="$shrinkwrap/bin:$PATH"

mkdir -p "$out/bin" "$out/lib/empty" "$lib/lib/empty"
printf '%s' "$libp" >libp.c
printf '%s' "$prog" >prog.c
gcc -shared -fPIC -o "$lib/lib/libp.so.1" -Wl,-soname,libp.so.1 libp.c "$liba/lib/liba.so.1" \
    -Wl,--enable-new-dtags,-rpath,"$decoys:$lib/lib/empty:$liba/lib"
# shellcheck disable=SC2086 # $extraLinks is a list of files
gcc -o "$out/bin/prog" prog.c "$lib/lib/libp.so.1" "$liba/lib/liba.so.1" ${extraLinks-} \
    -Wl,--enable-new-dtags,-rpath,"$decoys:$out/lib/empty:$lib/lib/empty:$lib/lib:$liba/lib"

# shellcheck disable=SC2086 # $inputs is a list of store paths
standinInputs $inputs
fixupPhase
true
