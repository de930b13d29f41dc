//! The pool's index: every shared library under the given directories, read once, in
//! parallel. A directory is a store path, a store directory (`/nix/store` itself: the library
//! directories of every path in it), or any directory, searched recursively.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use std::os::unix::fs::MetadataExt;

use super::cache::{Cache, Entry, Stamp};
use crate::elf::{read_elf_file, ElfInfo};
use crate::store::StoreDir;

/// One shared library of the pool.
#[derive(Debug, Clone)]
pub struct Lib {
    /// Where it was found, spelled through the directory given (a soname link stays a link).
    pub path: PathBuf,
    /// Its file name.
    pub name: String,
    pub info: ElfInfo,
    pub size: u64,
    /// `(st_dev, st_ino)`: one file found under several names is one library.
    pub file_id: (u64, u64),
}

impl Lib {
    /// The names the loader matches a request against: its soname, or its file name.
    pub fn answers_to(&self, name: &str) -> bool {
        match &self.info.soname {
            Some(s) => s == name,
            None => self.name == name,
        }
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

/// The libraries of a pool, sorted by path.
#[derive(Debug, Default)]
pub struct Index {
    pub libs: Vec<Lib>,
    /// Directories that could not be read, with why (said, not fatal).
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Library directories inside a store path.
const LIB_DIRS: &[&str] = &["lib", "lib64", "lib32"];

/// Indexes every shared library under `dirs`. A directory that is a store directory (its
/// entries are store paths, e.g. `/nix/store`) is indexed through each path's `lib`, `lib64`
/// and `lib32`; any other directory (a store path among them) is searched recursively. Files
/// the cache (`cache_path`) knows unchanged are not opened; the cache is updated.
pub fn scan(dirs: &[PathBuf], store: &StoreDir, cache_path: Option<&Path>) -> Index {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for dir in dirs {
        let roots: Vec<PathBuf> = if is_store_dir(dir, store) {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .flat_map(|e| LIB_DIRS.iter().map(move |l| e.path().join(l)))
                .filter(|p| p.is_dir())
                .collect()
        } else {
            vec![dir.clone()]
        };
        for root in roots {
            walk(&root, &mut files, &mut unreadable);
        }
    }
    files.sort();
    files.dedup();
    let mut cache = Cache::load(cache_path);
    let seen: Vec<(PathBuf, Entry, Option<Lib>)> = files
        .par_iter()
        .filter_map(|p| {
            let meta = std::fs::metadata(p).ok().filter(|m| m.is_file())?;
            let stamp = Stamp::of(&meta);
            let info = match cache.get(p, stamp) {
                Some(e) => e.lib.clone(),
                None => read_library(p),
            };
            let lib = info.clone().map(|info| Lib {
                name: p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                path: p.clone(),
                info,
                size: meta.len(),
                file_id: (meta.dev(), meta.ino()),
            });
            Some((p.clone(), Entry { stamp, lib: info }, lib))
        })
        .collect();
    let mut libs = Vec::new();
    let mut fresh = Vec::new();
    for (p, e, lib) in seen {
        fresh.push((p, e));
        libs.extend(lib);
    }
    if cache_path.is_some() {
        cache.update(dirs, fresh);
        cache.save(cache_path);
    }
    Index { libs, unreadable }
}

/// Whether `dir` is a store directory rather than a store path or a library directory: the
/// configured store itself, or a directory whose entries all look like store paths.
fn is_store_dir(dir: &Path, store: &StoreDir) -> bool {
    if dir == store.path() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    !names.is_empty() && names.iter().all(|n| crate::store::is_store_path_name(n))
}

/// Files under `dir` whose names look like shared libraries (`*.so`, `*.so.*`). Directory
/// symlinks are not followed (no loops); file symlinks are kept (a soname link is how the
/// loader would find the file).
fn walk(dir: &Path, out: &mut Vec<PathBuf>, unreadable: &mut Vec<(PathBuf, String)>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            unreadable.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&path, out, unreadable);
        } else if looks_like_library(&entry.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
}

fn looks_like_library(name: &str) -> bool {
    name.ends_with(".so") || name.contains(".so.")
}

/// A shared library's facts; `None` for anything else (not ELF, not a library, unreadable).
fn read_library(path: &Path) -> Option<ElfInfo> {
    let file = std::fs::File::open(path).ok()?;
    let ef = read_elf_file(&file).ok()?;
    let is_library =
        matches!(ef.info.kind, crate::elf::Kind::SharedLibrary) || ef.info.soname.is_some();
    (ef.info.kind.is_dynamic() && is_library).then_some(ef.info)
}
