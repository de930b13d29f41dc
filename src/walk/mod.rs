//! Walking output trees: which files `fixup` looks at.
//!
//! Regular files only; symlinks are not followed (a symlink to an ELF inside the tree is
//! stamped once, through its target, which the walk meets as a regular file). Each inode is
//! taken once (hard links), under its first path in sorted order, so the result does not
//! depend on directory order.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

/// `S_ISUID | S_ISGID`.
const SETID: u32 = 0o6000;

/// A regular file that starts with the ELF magic.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    pub mode: u32,
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Tree {
    /// ELF files to consider, sorted by path.
    pub candidates: Vec<Candidate>,
    /// Files passed over without parsing, with why (sorted by path).
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Walks `dirs` (each may also be a single file).
pub fn walk(dirs: &[PathBuf]) -> io::Result<Tree> {
    let mut files = Vec::new();
    for d in dirs {
        let meta = std::fs::symlink_metadata(d)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", d.display())))?;
        if meta.is_dir() {
            collect(d, &mut files)?;
        } else if meta.is_file() {
            files.push(d.clone());
        }
    }
    files.sort();
    files.dedup();
    // Stat and read the magic of every file in parallel; then take each inode once, in path
    // order, serially.
    let looked: Vec<Option<(PathBuf, std::fs::Metadata, Magic)>> = files
        .into_par_iter()
        .map(|path| {
            let meta = std::fs::symlink_metadata(&path).ok()?;
            let magic = magic(&path);
            (magic != Magic::Other).then_some((path, meta, magic))
        })
        .collect();
    let mut seen = HashSet::new();
    let mut tree = Tree::default();
    for (path, meta, magic) in looked.into_iter().flatten() {
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if magic == Magic::Unreadable {
            // Whether it is ELF cannot be told: said, not passed over in silence.
            tree.skipped.push((path, "unreadable"));
        } else if crate::elf::stamped::is_temp_name(&name) {
            tree.skipped.push((path, "left by a killed shrinkwrap run"));
        } else if is_debug_path(&path) {
            tree.skipped.push((path, "debug file"));
        } else if meta.mode() & SETID != 0 {
            tree.skipped.push((path, "set-uid/set-gid"));
        } else {
            tree.candidates.push(Candidate {
                path,
                mode: meta.mode(),
            });
        }
    }
    Ok(tree)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    for e in entries {
        // Another run may rename or delete files while we walk (its temporary files, the old
        // file it swapped a new one for): what is gone by the time we look was never ours.
        let t = match e.and_then(|e| Ok((e.file_type()?, e.path()))) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match t {
            (t, path) if t.is_dir() => match collect(&path, out) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                r => r?,
            },
            (t, path) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Magic {
    Elf,
    Other,
    /// It could not be opened or read (no permission): maybe ELF.
    Unreadable,
}

/// Whether a regular file starts with the ELF magic.
fn magic(path: &Path) -> Magic {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| io::Read::read_exact(&mut f, &mut magic));
    match read {
        Ok(()) if &magic == b"\x7fELF" => Magic::Elf,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Magic::Unreadable,
        _ => Magic::Other,
    }
}

/// Separate debug files by convention: under `lib/debug/`, or named `*.debug`.
fn is_debug_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "debug")
        || path
            .to_string_lossy()
            .split('/')
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w == ["lib", "debug"])
}

#[cfg(test)]
mod tests {
    use super::is_debug_path;
    use std::path::Path;

    #[test]
    fn debug_paths() {
        assert!(is_debug_path(Path::new(
            "/nix/store/x-debug/lib/debug/.build-id/ab/cd.debug"
        )));
        assert!(is_debug_path(Path::new("/o/lib/debug/usr/bin/ls")));
        assert!(is_debug_path(Path::new("/o/bin/ls.debug")));
        assert!(!is_debug_path(Path::new("/o/lib/libdebug.so")));
    }
}
