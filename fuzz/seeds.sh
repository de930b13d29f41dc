#!/usr/bin/env bash
# Regenerates what the fuzzers start from (checked in; run it again only to change them):
# fuzz/store/ — the synthetic libraries the resolve and stamp targets lay out beside each input
# (x86_64 in lib/, i686 in lib32/: libfa.so.1 → libfb.so.1 → libc), and fuzz/corpus/<target>/
# — compiled programs and libraries (PIE, non-PIE with DT_RPATH, a non-PIE whose `.dynstr`
# takes the shifted layout, a library, i686 ones), small system files, the same stamped in
# place, shifted and into a library's padding, a copy of /etc/ld.so.cache and a cut one, and
# stamp records. Every program's RUNPATH is `$ORIGIN/../lib32:$ORIGIN/../lib`, the store as
# the targets lay it out: an x86_64 program meets the i686 libfa.so.1 first and skips it.
#
# use: fuzz/seeds.sh        # needs gcc, i686-linux-gnu-gcc (optional), python3, cargo
set -euo pipefail
cd "$(dirname "$0")"
fuzz=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lib" "$work/lib32" "$work/in"
rpath="-Wl,-rpath,\$ORIGIN/../lib32:\$ORIGIN/../lib"

cat >"$work/fb.c" <<'C'
int fb(void) { return 2; }
C
cat >"$work/fa.c" <<'C'
#include <unistd.h>
int fb(void);
int fa(void) { return getpid() > 0 ? fb() + 1 : 0; }
C
cat >"$work/prog.c" <<'C'
#include <stdio.h>
int fa(void);
int main(void) { printf("%d\n", fa()); return 0; }
C
# Enough long exported names that `.dynstr` is larger than the pages the shifted layout inserts.
{
  cat "$work/prog.c"
  for i in $(seq 1 300); do
    echo "int exported_function_with_a_rather_long_name_number_$i(void) { return $i; }"
  done
} >"$work/shift.c"

# build CC DIR: the two libraries into DIR, linked as the store lays them out.
build_libs() {
  local cc=$1 dir=$2
  "$cc" -O1 -shared -fPIC -Wl,-soname,libfb.so.1 -o "$dir/libfb.so.1" "$work/fb.c"
  "$cc" -O1 -shared -fPIC -Wl,-soname,libfa.so.1 -Wl,-rpath,\$ORIGIN \
    -o "$dir/libfa.so.1" "$work/fa.c" -L"$dir" -l:libfb.so.1
}
build_libs gcc "$work/lib"
gcc -O1 -fPIE -pie "$rpath" -Wl,--enable-new-dtags -o "$work/in/pie" "$work/prog.c" -L"$work/lib" -l:libfa.so.1
gcc -O1 -no-pie "$rpath" -Wl,--disable-new-dtags -o "$work/in/nopie" "$work/prog.c" -L"$work/lib" -l:libfa.so.1
gcc -O1 -no-pie -rdynamic "$rpath" -o "$work/in/shift" "$work/shift.c" -L"$work/lib" -l:libfa.so.1
cp "$work/lib/libfa.so.1" "$work/in/libfa.so.1"
if command -v i686-linux-gnu-gcc >/dev/null; then
  build_libs i686-linux-gnu-gcc "$work/lib32"
  i686-linux-gnu-gcc -O1 -fPIE -pie "$rpath" -o "$work/in/pie32" "$work/prog.c" -L"$work/lib32" -l:libfa.so.1
else
  echo "seeds.sh: no i686-linux-gnu-gcc, no i686 seeds" >&2
fi
cp -L /usr/bin/true "$work/in/true"
cp -L /usr/lib/x86_64-linux-gnu/libdl.so.2 "$work/in/libdl.so.2"

# Stamped copies: in place (PIE), shifted (the long non-PIE), spare (the library).
(cd .. && cargo build --quiet)
sw=../target/debug/shrinkwrap
for f in pie shift libfa.so.1; do
  cp "$work/in/$f" "$work/in/stamped-$f"
  "$sw" stamp --search "$work/lib" "$work/in/stamped-$f"
done
[ "$(stat -c %s "$work/in/stamped-libfa.so.1")" = "$(stat -c %s "$work/in/libfa.so.1")" ] ||
  { echo "seeds.sh: the library did not take the spare layout" >&2; exit 1; }

rm -rf store corpus
mkdir -p store/lib store/lib32 corpus/resolve corpus/stamp corpus/parsers
cp "$work"/lib/*.so.1 store/lib/
cp "$work"/lib32/*.so.1 store/lib32/ 2>/dev/null || true
cp "$work"/in/* corpus/resolve/
cp "$work"/in/* corpus/stamp/
cp /etc/ld.so.cache corpus/parsers/ld.so.cache
head -c 4096 /etc/ld.so.cache >corpus/parsers/ld.so.cache-cut
# Records as Record::find sees them: the end of a `.dynstr` (a few names, then the record).
python3 - "$work/in" corpus/parsers <<'PY'
import sys, pathlib
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(src.glob("stamped-*")):
    b = f.read_bytes()
    at = b.index(b"shrinkwrap-undo:")
    end = b.index(b"\0", at) + 1
    (out / ("record-" + f.name[len("stamped-"):])).write_bytes(b"\0libc.so.6\0libfa.so.1\0" + b[at:end])
PY
ls -la store/* corpus/*
echo "$fuzz: seeds written"
