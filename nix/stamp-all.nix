# overlays.stampAll: every package built with stdenv gets the hook.
#
# The tool and its hook come from a separate, unmodified import of the same nixpkgs: building
# them with the stamping stdenv would need the tool to build itself (infinite recursion), and
# `prev` does not help, because nixpkgs' packages refer to the final stdenv. That import is
# for the build platform (the hook runs the tool at build time, also when cross-compiling),
# with the user's config. The set's own `shrinkwrap` and `shrinkwrapHook` are those same
# derivations, so they are built once and the hook is never loaded twice.
final: prev:
let
  unmodified = import prev.path {
    localSystem = prev.stdenv.buildPlatform;
    inherit (prev) config;
    overlays = [ (import ./overlay.nix) ];
  };
in
{
  inherit (unmodified) shrinkwrap shrinkwrapHook;
  stdenv = prev.stdenv.override (old: {
    extraNativeBuildInputs = (old.extraNativeBuildInputs or [ ]) ++ [ unmodified.shrinkwrapHook ];
  });
}
