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
  hasPrefix = pre: s: builtins.substring 0 (builtins.stringLength pre) s == pre;
  # Only the listed files and directories (and the directories leading to them) are copied,
  # as with nixpkgs' file sets.
  fileset = {
    unions = paths: paths;
    toSource =
      { root, fileset }:
      builtins.path {
        name = "source";
        path = root;
        filter =
          path: type:
          builtins.any (
            f:
            let
              fs = toString f;
            in
            path == fs || hasPrefix "${fs}/" path || hasPrefix "${path}/" fs
          ) fileset;
      };
  };
  importTOML = path: builtins.fromTOML (builtins.readFile path);
  getExe = drv: "${drv}/bin/${drv.meta.mainProgram}";
}
