# overlays.stampAll: every package built with stdenv gets the hook.
#
# The tool and its hook come from a separate, unmodified import of the same nixpkgs: building
# them with the stamping stdenv would need the tool to build itself (infinite recursion), and
# `prev` does not help, because nixpkgs' packages refer to the final stdenv.
final: prev:
let
  unmodified = import prev.path {
    inherit (prev.stdenv.hostPlatform) system;
    overlays = [ (import ./overlay.nix) ];
  };
in
{
  stdenv = prev.stdenv.override (old: {
    extraNativeBuildInputs = (old.extraNativeBuildInputs or [ ]) ++ [ unmodified.shrinkwrapHook ];
  });
}
