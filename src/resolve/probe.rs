//! The file-system side of resolving: which candidate files exist, what they are, and a cache
//! so each file is opened and parsed once however many objects ask for it, across threads.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::elf::{read_elf_file, ElfError, ElfInfo};

/// A parsed ELF file found on disk.
#[derive(Debug)]
pub struct Object {
    pub info: ElfInfo,
    /// The loader's last de-duplication key, `(st_dev, st_ino)`, with the file's birth time.
    pub file_id: FileId,
}

/// `(st_dev, st_ino, birth time in ns)`: which file this is. The loader compares device and
/// inode of files open at once; a run that reads files one after another, while another run
/// replaces some of them (a stamp written as a new file), can meet an inode number that was
/// freed and given to a different file meanwhile. The birth time tells those apart (0 where
/// the file system does not keep one); hard links, and a file stamped in place, keep it.
pub type FileId = (u64, u64, u128);

/// The [`FileId`] of a file from its metadata.
pub fn file_id(meta: &std::fs::Metadata) -> FileId {
    let born = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    (meta.dev(), meta.ino(), born)
}

/// What a search directory holds.
pub struct Dir {
    /// Its names (`None`: it cannot be listed; every candidate is then opened, as the loader
    /// would).
    names: Option<HashSet<OsString>>,
    /// Its `glibc-hwcaps/<level>` subdirectories, sorted (empty for most directories).
    pub hwcaps: Vec<String>,
}

/// What opening a candidate path gave.
#[derive(Clone, Debug)]
pub enum Probe {
    /// Nothing there (or not openable: the loader moves on to the next directory).
    Absent,
    Found(Arc<Object>),
    /// There, but not loadable ELF: the loader stops with an error for this name.
    Invalid(Arc<ElfError>),
}

/// Cache of probes and of what search directories hold, shared by all lookups. Read far
/// more often than written (every search probes many directories), hence read-write locks.
#[derive(Default)]
pub struct ProbeCache {
    files: RwLock<HashMap<PathBuf, Probe>>,
    /// What each search directory holds, read once.
    dirs: RwLock<HashMap<PathBuf, Arc<Dir>>>,
    /// Read a file we stamped as its original (see `Options::originals`).
    originals: bool,
}

impl ProbeCache {
    pub fn new(originals: bool) -> ProbeCache {
        ProbeCache {
            originals,
            ..ProbeCache::default()
        }
    }

    /// Opens and parses `path` once; later calls answer from the cache.
    pub fn probe(&self, path: &Path) -> Probe {
        if let Some(p) = self.files.read().unwrap().get(path) {
            return p.clone();
        }
        let probe = Probe::from_result(probe_file(path, self.originals));
        self.files
            .write()
            .unwrap()
            .entry(path.to_path_buf())
            .or_insert(probe)
            .clone()
    }

    /// [`probe`](Self::probe) of `path`, which is `name` in the search directory `dir`: a name
    /// the directory's listing does not hold is absent without a look. A search over a long
    /// RUNPATH asks every directory for names most do not have; one `getdents` per directory
    /// answers them all, where one failed `open` per name and directory would not.
    pub fn probe_in(&self, dir: &Dir, name: &str, path: &Path) -> Probe {
        if dir
            .names
            .as_ref()
            .is_some_and(|n| !n.contains(OsStr::new(name)))
        {
            return Probe::Absent;
        }
        self.probe(path)
    }

    /// What `dir` holds, read once: its names, and its `glibc-hwcaps/<level>` subdirectories.
    pub fn dir(&self, dir: &Path) -> Arc<Dir> {
        if let Some(d) = self.dirs.read().unwrap().get(dir) {
            return d.clone();
        }
        let names: Option<HashSet<OsString>> = std::fs::read_dir(dir)
            .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
            .ok();
        // Most directories have no glibc-hwcaps: their listing says so without a look.
        let has_hwcaps = names
            .as_ref()
            .is_none_or(|n| n.contains(OsStr::new("glibc-hwcaps")));
        let mut hwcaps: Vec<String> = if has_hwcaps {
            std::fs::read_dir(dir.join("glibc-hwcaps"))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        } else {
            Vec::new()
        };
        hwcaps.sort();
        let d = Arc::new(Dir { names, hwcaps });
        self.dirs
            .write()
            .unwrap()
            .entry(dir.to_path_buf())
            .or_insert(d)
            .clone()
    }

    /// Remembers what a caller already read at `path`, so resolution does not read it again.
    pub fn insert(&self, path: &Path, probe: Probe) {
        self.files
            .write()
            .unwrap()
            .insert(path.to_path_buf(), probe);
    }
}

impl Probe {
    /// What a read of a candidate means to the loader.
    pub fn from_result(read: Result<Arc<Object>, ElfError>) -> Probe {
        match read {
            Ok(o) => Probe::Found(o),
            Err(ElfError::Io(e)) if skippable(&e) => Probe::Absent,
            Err(e) => Probe::Invalid(Arc::new(e)),
        }
    }
}

/// Opens and parses one file, uncached: for root files, whose errors are the user's. With
/// `original`, a file carrying our stamp is read as the original the stamp records.
pub fn probe_file(path: &Path, original: bool) -> Result<Arc<Object>, ElfError> {
    let (file, file_id) = open_file(path)?;
    let ef = read_elf_file(&file)?;
    let stamped = match original {
        true => crate::elf::stamped::original_info(&file, &ef)?,
        false => None,
    };
    let info = stamped.unwrap_or(ef.info);
    Ok(Arc::new(Object { info, file_id }))
}

/// Opens a regular file (see [`crate::lock::open_regular`]), with its [`FileId`].
pub fn open_file(path: &Path) -> Result<(File, FileId), ElfError> {
    let file = crate::lock::open_regular(path, std::fs::OpenOptions::new().read(true))?;
    let meta = file.metadata()?;
    Ok((file, file_id(&meta)))
}

/// Errors on `open` after which glibc simply tries the next directory.
fn skippable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::NotADirectory
    ) || e.raw_os_error() == Some(40) // ELOOP
}
