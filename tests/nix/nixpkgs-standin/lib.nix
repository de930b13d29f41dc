# The few nixpkgs lib functions shrinkwrap's Nix files use.
rec {
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  licenses.mit = {
    spdxId = "MIT";
  };
  platforms.linux = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  fileset = {
    unions = paths: paths;
    toSource = { root, fileset }: root;
  };
  importTOML = path: builtins.fromTOML (builtins.readFile path);
  getExe = drv: "${drv}/bin/${drv.meta.mainProgram}";
}
