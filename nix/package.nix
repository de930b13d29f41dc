# The shrinkwrap command-line tool.
{ lib, rustPlatform }:

rustPlatform.buildRustPackage {
  pname = "shrinkwrap";
  version = "0.1.0";

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
    description = "Stamp ELF files with their whole shared-library closure as absolute paths, so the loader searches for nothing";
    license = lib.licenses.mit;
    mainProgram = "shrinkwrap";
    platforms = lib.platforms.linux;
  };
}
