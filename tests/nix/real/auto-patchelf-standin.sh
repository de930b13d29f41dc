# shellcheck shell=bash
# A stand-in for nixpkgs' autoPatchelfHook, for tests/nix/real/default.nix: sourced like a
# setup hook, it registers autoPatchelfPostFixup, which adds $autoPatchelfLibDirs to the
# RUNPATH of every ELF file of every output (the real hook finds each missing library among
# the inputs and sets RUNPATH to its directory). Until it has run, those libraries are found
# nowhere.
autoPatchelfPostFixup() {
    local name file
    for name in $(getAllOutputNames); do
        while IFS= read -r -d '' file; do
            if readelf -h "$file" >/dev/null 2>&1; then
                # shellcheck disable=SC2154 # the derivation's attribute
                patchelf --add-rpath "$autoPatchelfLibDirs" "$file"
                echo "autoPatchelf stand-in: patched $file" >&2
            fi
        done < <(find "${!name}" -type f -print0)
    done
}
postFixupHooks+=(autoPatchelfPostFixup)
