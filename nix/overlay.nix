# overlays.default: `shrinkwrap`, `shrinkwrapHook`, and `shrinkwrapPackage drv` (drv with the
# hook added).
final: prev: {
  shrinkwrap = final.callPackage ./package.nix { };
  shrinkwrapHook = final.callPackage ./hook.nix { };
  shrinkwrapPackage =
    drv:
    drv.overrideAttrs (old: {
      nativeBuildInputs = (old.nativeBuildInputs or [ ]) ++ [ final.shrinkwrapHook ];
    });
}
