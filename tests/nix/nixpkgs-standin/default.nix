# `import nixpkgs { system, overlays }`: a package set with the overlays applied as a fixpoint,
# like nixpkgs' own.
{
  system ? builtins.currentSystem,
  overlays ? [ ],
  config ? { },
}:
let
  lib = import ./lib.nix;

  # A derivation that is only evaluated (never built), with the attributes packages have.
  fake =
    name: attrs:
    let
      drv = derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          "exit 1"
        ];
      };
    in
    drv
    // attrs
    // {
      overrideAttrs = f: fake name (attrs // f attrs);
    };

  base = self: {
    inherit lib;
    path = ./.;
    callPackage =
      f: args:
      let
        fn = if builtins.isPath f then import f else f;
      in
      fn (builtins.intersectAttrs (builtins.functionArgs fn) self // args);
    rustPlatform.buildRustPackage = args: fake "${args.pname}-${args.version}" args;
    makeSetupHook = args: script: fake args.name (args // { inherit script; });
    stdenv =
      let
        mk = extra: {
          hostPlatform.system = system;
          extraNativeBuildInputs = extra;
          mkDerivation = args: fake args.name args;
          override = f: mk (f { extraNativeBuildInputs = extra; }).extraNativeBuildInputs;
        };
      in
      mk [ ];
    mkShell = args: fake "shell" args;
    hello = fake "hello" { nativeBuildInputs = [ ]; };
    clippy = fake "clippy" { };
    rustfmt = fake "rustfmt" { };
    shellcheck = fake "shellcheck" { };
    nixfmt-rfc-style = fake "nixfmt" { };
  };

  apply = prev: overlay: self: prev self // overlay self (prev self);
  fix = f: let x = f x; in x;
in
fix (builtins.foldl' apply base overlays)
