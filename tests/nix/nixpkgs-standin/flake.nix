# A stand-in for nixpkgs, for evaluating shrinkwrap's flake offline (nixpkgs itself cannot be
# fetched here, and current nixpkgs needs a newer Nix than Debian's). It has only what the flake
# and overlays use, with the same names and shapes; its derivations are never built.
{
  outputs =
    { self }:
    {
      lib = import ./lib.nix;
    };
}
