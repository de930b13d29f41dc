//! The index cache: what each file of a pool was (its facts, or "not a library"), keyed by
//! its path and `(st_dev, st_ino, size, mtime)`. A second scan of an unchanged store reads
//! directories and `stat`s files, and opens none; a file added, removed, replaced or changed
//! is read again (or dropped), so a changed store is noticed file by file.
//!
//! One JSON file, `$XDG_CACHE_HOME/shrinkwrap/pool-index.json` (else `~/.cache/…`), written
//! as a new file renamed over the old; a cache that cannot be read or written is only slower.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::elf::ElfInfo;

const VERSION: u32 = 2;

/// What a file's metadata says about whether it is still the file that was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    /// Seconds and nanoseconds apart: any time a file system can hold, without overflow.
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub stamp: Stamp,
    /// `None`: not a shared library.
    pub lib: Option<ElfInfo>,
}

#[derive(Default, Serialize, Deserialize)]
pub struct Cache {
    version: u32,
    files: HashMap<PathBuf, Entry>,
}

impl Cache {
    /// The cache at its usual place, or an empty one.
    pub fn load(path: Option<&Path>) -> Cache {
        path.and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<Cache>(&b).ok())
            .filter(|c| c.version == VERSION)
            .unwrap_or_default()
    }

    /// What was read from `path` when it had `stamp`, if it still has.
    pub fn get(&self, path: &Path, stamp: Stamp) -> Option<&Entry> {
        self.files.get(path).filter(|e| e.stamp == stamp)
    }

    /// Replaces every entry under `roots` with `fresh`: files gone from there are dropped.
    pub fn update(&mut self, roots: &[PathBuf], fresh: Vec<(PathBuf, Entry)>) {
        self.files
            .retain(|p, _| !roots.iter().any(|r| p.starts_with(r)));
        self.files.extend(fresh);
        self.version = VERSION;
    }

    /// Writes the cache (best effort: a cache that cannot be written is only slower).
    pub fn save(&self, path: Option<&Path>) {
        let Some(path) = path else { return };
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(self) else {
            return;
        };
        let tmp = dir.join(format!(".pool-index.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// `$XDG_CACHE_HOME/shrinkwrap/pool-index.json`, else `$HOME/.cache/shrinkwrap/…`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("shrinkwrap").join("pool-index.json"))
}
