# A package built with the hook: its program must end up with absolute DT_NEEDED entries and
# still run. installCheckPhase runs after fixupPhase, so it sees the stamped files.
{ stdenv, shrinkwrapHook }:

stdenv.mkDerivation {
  name = "shrinkwrap-hook-test";
  dontUnpack = true;
  nativeBuildInputs = [ shrinkwrapHook ];
  buildPhase = ''
    echo 'int f(void) { return 42; }' > f.c
    echo 'int f(void); int main(void) { return f() == 42 ? 0 : 1; }' > m.c
    mkdir -p $out/lib $out/bin
    $CC -shared -fPIC -o $out/lib/libf.so.1 -Wl,-soname,libf.so.1 f.c
    $CC -o $out/bin/m m.c -L$out/lib -l:libf.so.1 -Wl,-rpath,$out/lib
  '';
  dontInstall = true;
  doInstallCheck = true;
  installCheckPhase = ''
    $out/bin/m
    $READELF -d $out/bin/m | grep -q "NEEDED.*\[$out/lib/libf.so.1\]"
    # Not `! pipeline`: set -e ignores a negated command unless it comes last.
    if $READELF -d $out/bin/m | grep "NEEDED" | grep -v "\[/"; then exit 1; fi
  '';
}
