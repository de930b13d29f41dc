//! Nix store-path semantics: which paths are store paths, and which store object they belong to.
//!
//! A small module of our own rather than `harmonia-store-core`: that crate (0.0.0-alpha) brings
//! tokio, ring and serde_with into a synchronous tool that needs two facts — "is this path inside
//! the store directory" and "is its first component a valid `<hash>-<name>`".

use std::path::{Component, Path, PathBuf};

/// Characters of Nix's base-32 alphabet (no `e`, `o`, `u`, `t`).
const NIX_BASE32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
/// Length of the hash part of a store path's name.
pub const HASH_LEN: usize = 32;
/// Longest name part Nix accepts.
const MAX_NAME_LEN: usize = 211;

/// A store directory, `/nix/store` unless `NIX_STORE_DIR` says otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDir(PathBuf);

impl Default for StoreDir {
    fn default() -> Self {
        StoreDir::new(PathBuf::from("/nix/store"))
    }
}

impl StoreDir {
    pub fn new(path: PathBuf) -> Self {
        StoreDir(path)
    }

    /// The store directory the running Nix would use: `$NIX_STORE_DIR`, else `/nix/store`.
    pub fn from_env() -> Self {
        match std::env::var_os("NIX_STORE_DIR") {
            Some(dir) if !dir.is_empty() => StoreDir::new(PathBuf::from(dir)),
            _ => StoreDir::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The store object (`<store>/<hash>-<name>`) that `path` lies in, if any. `path` must be
    /// absolute; `..` components are not resolved (a loader-style path like
    /// `/nix/store/x-a/lib/../lib/libz.so` still belongs to `x-a`).
    pub fn store_object_of(&self, path: &Path) -> Option<PathBuf> {
        let rest = path.strip_prefix(&self.0).ok()?;
        let first = match rest.components().next()? {
            Component::Normal(c) => c.to_str()?,
            _ => return None,
        };
        is_store_path_name(first).then(|| self.0.join(first))
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.store_object_of(path).is_some()
    }
}

/// Whether `name` is a valid `<32 chars of nix base32>-<name>` store path base name.
pub fn is_store_path_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.len() < HASH_LEN + 2 || bytes[HASH_LEN] != b'-' {
        return false;
    }
    let (hash, rest) = (&bytes[..HASH_LEN], &bytes[HASH_LEN + 1..]);
    hash.iter().all(|b| NIX_BASE32.contains(b))
        && rest.len() <= MAX_NAME_LEN
        && rest[0] != b'.'
        && rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_store_paths() {
        let store = StoreDir::default();
        let p = Path::new("/nix/store/0c0x3i0w8i1vm4hcpzh2b2al2ppl0fjx-zlib-1.3/lib/libz.so.1");
        assert_eq!(
            store.store_object_of(p).unwrap(),
            Path::new("/nix/store/0c0x3i0w8i1vm4hcpzh2b2al2ppl0fjx-zlib-1.3")
        );
        assert!(!store.contains(Path::new("/usr/lib/libz.so.1")));
        // 'e' is not in the alphabet; hash too short; name starting with '.'.
        assert!(!is_store_path_name("ec0x3i0w8i1vm4hcpzh2b2al2ppl0fjx-zlib"));
        assert!(!is_store_path_name("0c0x3i0w8i1vm4hcpzh2b2al2ppl0fj-zlib"));
        assert!(!is_store_path_name(
            "0c0x3i0w8i1vm4hcpzh2b2al2ppl0fjx-.zlib"
        ));
        assert!(!store.contains(Path::new("/nix/store/.links/abc")));
    }
}
