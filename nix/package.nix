# The shrinkwrap command-line tool.
{ lib, rustPlatform }:

let
  # Read from this file's own source tree (a local path, or the fetched flake's source), never
  # from a build output: no import-from-derivation (tests/flake.rs evaluates it with IFD off).
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

  # The library's unit tests need nothing from the system: they run here. The integration
  # tests (tests/, not in `src`) need the system loader, cross compilers, qemu-user and a Nix
  # store: they run with ./scripts/test.sh, not in the build sandbox.
  cargoTestFlags = [ "--lib" ];

  meta = {
    inherit (cargo) description;
    license = lib.licenses.mit;
    mainProgram = "shrinkwrap";
    platforms = lib.platforms.linux;
  };
}
