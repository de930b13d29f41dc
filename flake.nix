{
  description = "shrinkwrap: stamp ELF files with their whole library closure, so the loader searches for nothing";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems =
        f:
        nixpkgs.lib.genAttrs systems (
          system:
          f (
            import nixpkgs {
              inherit system;
              overlays = [ self.overlays.default ];
            }
          )
        );
    in
    {
      overlays.default = import ./nix/overlay.nix;
      overlays.stampAll = import ./nix/stamp-all.nix;

      packages = forAllSystems (pkgs: {
        default = pkgs.shrinkwrap;
        inherit (pkgs) shrinkwrap shrinkwrapHook;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = pkgs.lib.getExe pkgs.shrinkwrap;
          meta.description = pkgs.shrinkwrap.meta.description;
        };
      });

      checks = forAllSystems (pkgs: {
        hook = pkgs.callPackage ./nix/hook-test.nix { };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ pkgs.shrinkwrap ];
          packages = [
            pkgs.clippy
            pkgs.rustfmt
            pkgs.shellcheck
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}
