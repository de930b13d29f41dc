# The shrinkwrap command-line tool.
{ lib, rustPlatform }:

let
  cargo = (lib.importTOML ../Cargo.toml).package;
in
rustPlatform.buildRustPackage {
  pname = cargo.name;
  inherit (cargo) version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;

  # The test suite needs the system loader, cross compilers, qemu-user and a Nix store:
  # it runs with ./scripts/test.sh, not in the build sandbox.
  doCheck = false;

  meta = {
    inherit (cargo) description;
    license = lib.licenses.mit;
    mainProgram = "shrinkwrap";
    platforms = lib.platforms.linux;
  };
}
