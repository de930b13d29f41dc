# shellcheck shell=bash
# Builder of one library (tests/nix/real/default.nix): $out/lib/$soname from $code, linked
# against $deps, with RUNPATH $decoys, an empty directory of its own, then $libdirs.
# shellcheck disable=SC2154 # the derivation's attributes
set -eu
mkdir -p "$out/lib/empty"
printf '%s' "$code" >lib.c
runpath="$decoys:$out/lib/empty"
for dir in $libdirs; do
    runpath="$runpath:$dir"
done
# shellcheck disable=SC2086 # $deps is a list of files
gcc -shared -fPIC -o "$out/lib/$soname" -Wl,-soname,"$soname" lib.c $deps \
    -Wl,--enable-new-dtags,-rpath,"$runpath"
# A raw builder must end with a builtin: Nix 2.8 may report the last coreutils or compiler
# process of a builder as killed by signal 9.
true
