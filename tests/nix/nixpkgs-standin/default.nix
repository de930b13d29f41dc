# `import nixpkgs { localSystem or system, overlays, config }`: a package set with the overlays applied as a fixpoint,
# like nixpkgs' own.
{
  localSystem ? {
    system = builtins.currentSystem;
  },
  system ? localSystem.system,
  overlays ? [ ],
  config ? { },
}:
let
  lib = import ./lib.nix;

  # A derivation that is only evaluated (never built), with the attributes packages have.
  # `inputs` stands for what a real build depends on (stdenv's extra inputs, for builders
  # that use stdenv), so two builds with different stdenvs are different derivations.
  fakeWith =
    inputs: name: attrs:
    let
      drv = derivation {
        inherit name system inputs;
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
      overrideAttrs = f: fakeWith inputs name (attrs // f attrs);
    };
  fake = fakeWith "";
  stdenvInputs = self: toString (map (d: d.name) self.stdenv.extraNativeBuildInputs);

  base = self: {
    inherit lib config;
    path = ./.;
    callPackage =
      f: args:
      let
        fn = if builtins.isPath f then import f else f;
      in
      fn (builtins.intersectAttrs (builtins.functionArgs fn) self // args);
    # The source is an input: a different `src` is a different derivation.
    rustPlatform.buildRustPackage =
      args: fakeWith "${stdenvInputs self} ${args.src}" "${args.pname}-${args.version}" args;
    makeSetupHook = args: script: fakeWith (stdenvInputs self) args.name (args // { inherit script; });
    stdenv =
      let
        mk = extra: {
          hostPlatform.system = system;
          buildPlatform.system = system;
          extraNativeBuildInputs = extra;
          # Like stdenv's: a name, or pname and version.
          mkDerivation =
            args: fake (args.name or "${args.pname}-${args.version}") args;
          override = f: mk (f { extraNativeBuildInputs = extra; }).extraNativeBuildInputs;
        };
      in
      mk [ ];
    mkShell = args: fake "shell" args;
    hello = fake "hello" { nativeBuildInputs = [ ]; };
    zlib = fake "zlib" { };
    clippy = fake "clippy" { };
    rustfmt = fake "rustfmt" { };
    shellcheck = fake "shellcheck" { };
    nixfmt-rfc-style = fake "nixfmt" { };
  };

  apply = prev: overlay: self: prev self // overlay self (prev self);
  fix = f: let x = f x; in x;
in
fix (builtins.foldl' apply base overlays)
