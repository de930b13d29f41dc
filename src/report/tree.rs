//! Output of `shrinkwrap tree`: `lddtree`-like text, and the stable JSON format (version 1)
//! documented in the README.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

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
    let files: Vec<Value> = results.iter().map(file_json).collect();
    let doc = json!({ "version": 1, "files": files });
    let mut out = serde_json::to_string_pretty(&doc).expect("JSON values always serialise");
    out.push('\n');
    out
}

fn file_json(r: &TreeResult) -> Value {
    let c = match &r.result {
        Ok(c) => c,
        Err(ResolveError::NotDynamic(kind)) => {
            return json!({
                "file": r.file.to_string_lossy(), "kind": kind, "error": null,
                "libraries": [], "missing": [], "warnings": [],
            })
        }
        Err(e) => return json!({ "file": r.file.to_string_lossy(), "error": e.to_string() }),
    };
    let info = &c.root.info;
    let libraries: Vec<Value> = c
        .libraries
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "path": l.path,
                "soname": l.object.info.soname,
                "needed_by": c.requester_path(l.needed_by),
                "via": l.via.name(),
                "depth": l.depth,
            })
        })
        .collect();
    let missing: Vec<Value> = c
        .missing
        .iter()
        .map(|m| json!({ "name": m.name, "needed_by": c.requester_path(m.needed_by), "reason": m.reason }))
        .collect();
    let warnings: Vec<Value> = c
        .warnings
        .iter()
        .map(|w| json!({ "kind": w.kind(), "message": w.to_string() }))
        .collect();
    json!({
        "file": c.file,
        "error": null,
        "kind": info.kind.name(),
        "class": match info.class { Class::Elf32 => "elf32", Class::Elf64 => "elf64" },
        "endian": match info.endian { Endian::Little => "little", Endian::Big => "big" },
        "machine": info.machine_name(),
        "os_abi": info.os_abi,
        "interpreter": c.loader.as_ref().map(|l| l.interpreter.as_str()),
        "soname": info.soname,
        "needed": info.needed,
        "rpath": info.rpath,
        "runpath": info.runpath,
        "nodeflib": info.nodeflib(),
        "version_needs": info.version_needs.iter().map(|v| json!({"file": v.file, "versions": v.versions})).collect::<Vec<_>>(),
        "libraries": libraries,
        "missing": missing,
        "warnings": warnings,
    })
}
