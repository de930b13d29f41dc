//! Output of `shrinkwrap tree`: `lddtree`-like text, and the stable JSON format (version 1)
//! documented in the README.

use std::borrow::Cow;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::{Class, Endian};
use crate::resolve::{Closure, ResolveError};

/// The outcome of resolving one file, as the reports need it.
pub struct TreeResult {
    pub file: PathBuf,
    pub result: Result<Closure, ResolveError>,
}

impl TreeResult {
    pub fn new(file: &Path, result: Result<Closure, ResolveError>) -> TreeResult {
        TreeResult {
            file: file.to_path_buf(),
            result,
        }
    }

    /// The error that made this file fail, if any. A file that is simply not dynamically
    /// linked is not a failure: there is nothing to resolve.
    pub fn error(&self) -> Option<&ResolveError> {
        match &self.result {
            Err(e @ ResolveError::Elf(_)) => Some(e),
            _ => None,
        }
    }
}

/// Human-readable closure: the file, then each library in load order, indented by depth.
pub fn human(r: &TreeResult) -> String {
    let mut s = String::new();
    let c = match &r.result {
        Ok(c) => c,
        Err(ResolveError::NotDynamic(kind)) => {
            let _ = writeln!(s, "{}: {kind}, not dynamically linked", r.file.display());
            return s;
        }
        Err(ResolveError::Elf(_)) => return s,
    };
    let info = &c.root.info;
    let _ = write!(
        s,
        "{} ({}, {}",
        c.file,
        info.kind.name(),
        info.machine_name()
    );
    if let Some(l) = &c.loader {
        let _ = write!(s, ", interpreter {}", l.interpreter);
    }
    s.push_str(")\n");
    for lib in &c.libraries {
        let indent = "    ".repeat(lib.depth.max(1));
        let _ = write!(s, "{indent}{} => {}", lib.name, lib.path);
        if lib.needed_by != 0 {
            let _ = write!(s, "  [needed by {}]", c.requester_label(lib.needed_by));
        }
        s.push('\n');
    }
    for m in &c.missing {
        let _ = write!(
            s,
            "    {} => not found  [needed by {}]",
            m.name,
            c.requester_label(m.needed_by)
        );
        if let Some(reason) = &m.reason {
            let _ = write!(s, ": {reason}");
        }
        s.push('\n');
    }
    for w in &c.warnings {
        let _ = writeln!(s, "  warning: {w}");
    }
    s
}

/// The JSON document for all files: `{"version": 1, "files": [...]}`.
pub fn json(results: &[TreeResult]) -> String {
    let doc = Report {
        files: results.iter().map(file_json).collect(),
        version: 1,
    };
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

// The JSON report, typed. Fields are declared in alphabetical order, the order the report has
// always had.

#[derive(Serialize)]
struct Report<'a> {
    files: Vec<FileJson<'a>>,
    version: u32,
}

/// One file: resolved, not dynamically linked, or failed (only `error` and `file`).
#[derive(Serialize)]
#[serde(untagged)]
enum FileJson<'a> {
    Resolved(Box<Resolved<'a>>),
    NotDynamic {
        error: Option<&'a str>,
        file: Cow<'a, str>,
        kind: &'a str,
        libraries: [(); 0],
        missing: [(); 0],
        warnings: [(); 0],
    },
    Failed {
        error: String,
        file: Cow<'a, str>,
    },
}

#[derive(Serialize)]
struct Resolved<'a> {
    class: &'static str,
    endian: &'static str,
    error: Option<&'a str>,
    file: &'a str,
    interpreter: Option<&'a str>,
    kind: &'static str,
    libraries: Vec<LibraryJson<'a>>,
    machine: String,
    missing: Vec<MissingJson<'a>>,
    needed: &'a [String],
    nodeflib: bool,
    os_abi: u8,
    rpath: Option<&'a str>,
    runpath: Option<&'a str>,
    soname: Option<&'a str>,
    version_needs: Vec<VersionNeedJson<'a>>,
    warnings: Vec<WarningJson>,
}

#[derive(Serialize)]
struct LibraryJson<'a> {
    depth: usize,
    name: &'a str,
    needed_by: &'a str,
    path: &'a str,
    soname: Option<&'a str>,
    via: &'static str,
}

#[derive(Serialize)]
struct MissingJson<'a> {
    name: &'a str,
    needed_by: &'a str,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct VersionNeedJson<'a> {
    file: &'a str,
    versions: &'a [String],
}

#[derive(Serialize)]
struct WarningJson {
    kind: &'static str,
    message: String,
}

fn file_json(r: &TreeResult) -> FileJson<'_> {
    let c = match &r.result {
        Ok(c) => c,
        Err(ResolveError::NotDynamic(kind)) => {
            return FileJson::NotDynamic {
                error: None,
                file: r.file.to_string_lossy(),
                kind,
                libraries: [],
                missing: [],
                warnings: [],
            }
        }
        Err(e) => {
            return FileJson::Failed {
                error: e.to_string(),
                file: r.file.to_string_lossy(),
            }
        }
    };
    let info = &c.root.info;
    FileJson::Resolved(Box::new(Resolved {
        class: match info.class {
            Class::Elf32 => "elf32",
            Class::Elf64 => "elf64",
        },
        endian: match info.endian {
            Endian::Little => "little",
            Endian::Big => "big",
        },
        error: None,
        file: &c.file,
        interpreter: c.loader.as_ref().map(|l| l.interpreter.as_str()),
        kind: info.kind.name(),
        libraries: c
            .libraries
            .iter()
            .map(|l| LibraryJson {
                depth: l.depth,
                name: &l.name,
                needed_by: c.requester_path(l.needed_by),
                path: &l.path,
                soname: l.object.info.soname.as_deref(),
                via: l.via.name(),
            })
            .collect(),
        machine: info.machine_name(),
        missing: c
            .missing
            .iter()
            .map(|m| MissingJson {
                name: &m.name,
                needed_by: c.requester_path(m.needed_by),
                reason: m.reason.as_deref(),
            })
            .collect(),
        needed: &info.needed,
        nodeflib: info.nodeflib(),
        os_abi: info.os_abi,
        rpath: info.rpath.as_deref(),
        runpath: info.runpath.as_deref(),
        soname: info.soname.as_deref(),
        version_needs: info
            .version_needs
            .iter()
            .map(|v| VersionNeedJson {
                file: &v.file,
                versions: &v.versions,
            })
            .collect(),
        warnings: c
            .warnings
            .iter()
            .map(|w| WarningJson {
                kind: w.kind(),
                message: w.to_string(),
            })
            .collect(),
    }))
}
