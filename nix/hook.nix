# shrinkwrapHook: `nativeBuildInputs = [ shrinkwrapHook ];` stamps every output after fixup.
{
  makeSetupHook,
  shrinkwrap,
  callPackage,
}:

makeSetupHook {
  name = "shrinkwrap-hook";
  propagatedBuildInputs = [ shrinkwrap ];
  passthru.tests.stamps-a-program = callPackage ./hook-test.nix { };
  meta = {
    description = "Setup hook that stamps every output with its library closure after fixup";
    inherit (shrinkwrap.meta) license platforms;
  };
} ../hooks/shrinkwrap-hook.sh
