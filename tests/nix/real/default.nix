# Real derivations for tests/nix_build.rs, built with the host's gcc (the sandbox off): a chain
# of libraries liba -> libb -> libc3, each its own store path with a wide RUNPATH, and a program
# (outputs `out` and `lib`) that needs liba, built through the stdenv stand-in and the
# shrinkwrap hook.
#
# use: nix-build default.nix --argstr nonce N --argstr bin DIR -A prog -o DIR/prog
{
  # Part of every derivation name, so each test run builds new store paths.
  nonce,
  # A directory holding bin/shrinkwrap, copied into the store as it is.
  bin,
  # The setup hook under test.
  hook ? ../../../hooks/shrinkwrap-hook.sh,
  system ? builtins.currentSystem,
}:
let
  shrinkwrap = builtins.path {
    path = /. + bin;
    name = "shrinkwrap-bin";
  };

  mk =
    name: builder: attrs:
    derivation (
      {
        inherit system;
        name = "shrinkwrap-test-${name}-${nonce}";
        builder = "/bin/bash";
        args = [ builder ];
        PATH = "/usr/bin:/bin";
        # RUNPATH entries in front of the real ones, none of which exists (the builders add an
        # empty directory of their own after them).
        decoys = builtins.concatStringsSep ":" [
          "/nonexistent/${nonce}/lib"
          "/nonexistent/${nonce}/lib64"
          "/usr/local/lib/shrinkwrap-test-${nonce}"
          "/opt/shrinkwrap-test-${nonce}/lib"
        ];
      }
      // attrs
    );

  # lib<name>.so.1 from `code`, linked against `deps` (library derivations), with every
  # dependency's lib directory on its RUNPATH.
  library =
    name: code: deps:
    mk "lib${name}" ./library.sh {
      soname = "lib${name}.so.1";
      inherit code;
      deps = map (d: "${d}/lib/${d.soname}") deps;
      libdirs = map (d: "${d}/lib") deps;
    };

  libc3 = library "c3" "int c(void) { return 3; }\n" [ ];
  libb = library "b" "int c(void);\nint b(void) { return 10 * c() + 2; }\n" [ libc3 ];
  # liba's RUNPATH names libc3 too (as Nix's ld wrapper would for any -L directory).
  liba = library "a" "int b(void);\nint a(void) { return 10 * b() + 1; }\n" [
    libb
    libc3
  ];

  # The program: $out/bin/prog needs $lib/lib/libp.so.1 and liba; libp needs liba.
  # `inputs` are what the stand-in's standinInputs gets (stdenv's host dependencies).
  program =
    name: inputs: attrs:
    mk name ./program.sh (
      {
        outputs = [
          "out"
          "lib"
        ];
        standin = ../stdenv-standin.sh;
        inherit hook shrinkwrap inputs liba;
        libp = "int a(void);\nint p(void) { return a() + 1000; }\n";
        prog = ''
          #include <stdio.h>
          int a(void);
          int p(void);
          int main(void) { printf("a=%d p=%d\n", a(), p()); return 0; }
        '';
      }
      // attrs
    );

  # Found by nothing but the autoPatchelfHook stand-in, which puts it on the RUNPATH.
  libauto = library "auto" "int aut(void) { return 7; }\n" [ ];
  # The program, also needing libauto, with the autoPatchelfHook stand-in listed `order`
  # (before or after) the hook.
  autoPatchelf =
    order:
    program "auto-${order}" [ liba libb libc3 ] {
      autoPatchelfOrder = order;
      autoPatchelfStandin = ./auto-patchelf-standin.sh;
      autoPatchelfLibDirs = "${libauto}/lib";
      extraLinks = "${libauto}/lib/libauto.so.1";
      prog = ''
        #include <stdio.h>
        int a(void);
        int p(void);
        int aut(void);
        int main(void) { printf("a=%d p=%d auto=%d\n", a(), p(), aut()); return 0; }
      '';
    };

in
{
  inherit libc3 libb liba libauto;
  autoBefore = autoPatchelf "before";
  autoAfter = autoPatchelf "after";
  # The same without the stand-in: libauto is missing, and the build must fail.
  autoNone = autoPatchelf "none";
  # Every library as a host dependency.
  prog = program "prog" [ liba libb libc3 ] { };
  # Only the direct dependency, as stdenv gives a package with buildInputs = [ liba ].
  direct = program "direct" [ liba ] { };
  # The same program, not stamped.
  plain = program "plain" [ liba libb libc3 ] { dontShrinkwrap = "1"; };
  # Not stamped by the hook, but by hand through the hook's `shrinkwrapFixup` function.
  byhand = program "byhand" [ liba libb libc3 ] {
    dontShrinkwrap = "1";
    postFixup = ''shrinkwrapFixup "$out" "$lib"'';
  };
}
