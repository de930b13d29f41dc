//! The lock file (`--lock FILE`): the choices of one adoption pinned, so a later run — here or
//! on another machine with the same store paths — asks nothing and writes the same bytes.
//!
//! JSON, version 1: `{"version": 1, "interpreter": PATH, "libraries": {NAME: {"path",
//! "soname", "size", "sha256", "exact"}}}`, one entry per DT_NEEDED name chosen, keys sorted.
//! A pinned file that is gone or whose content changed fails the run (`--update-lock` chooses
//! those again).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pins {
    pub version: u32,
    /// The PT_INTERP the program gets.
    pub interpreter: Option<PathBuf>,
    pub libraries: BTreeMap<String, Pin>,
}

/// One pinned library, by the DT_NEEDED name it was chosen for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pin {
    pub path: PathBuf,
    pub soname: Option<String>,
    pub size: u64,
    /// Of the file's content, lowercase hex.
    pub sha256: String,
    /// False for a nearest version chosen where the name itself was not in the pool.
    pub exact: bool,
}

/// Reads a lock file; `Ok(None)` when there is none yet.
pub fn read(path: &Path) -> Result<Option<Pins>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let pins: Pins =
        serde_json::from_str(&text).map_err(|e| format!("not a shrinkwrap lock file: {e}"))?;
    if pins.version != VERSION {
        return Err(format!(
            "lock file version {} (this shrinkwrap reads version {VERSION})",
            pins.version
        ));
    }
    Ok(Some(pins))
}

/// Writes `pins` to `path` (a new file renamed over the old, so a reader never sees half).
pub fn write(path: &Path, pins: &Pins) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(pins).map_err(std::io::Error::other)? + "\n";
    let tmp = path.with_file_name(format!(
        ".{}.shrinkwrap-new",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The SHA-256 of a file's content, lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
