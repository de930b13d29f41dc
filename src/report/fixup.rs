//! `fixup --report FILE`: the JSON report (version 1, documented in the README), typed, and
//! written straight to the file rather than built in memory first (a tree of a few thousand
//! files lists each one's closure). Fields are declared in alphabetical order, the order the
//! report has always had.

use std::borrow::Cow;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::plan::Plan;

/// The whole report.
#[derive(Serialize)]
pub struct Report<'a> {
    pub files: Vec<FileEntry<'a>>,
    pub missing: Vec<MissingEntry<'a>>,
    pub summary: Summary,
    pub version: u32,
}

/// One file of the trees.
#[derive(Serialize)]
pub struct FileEntry<'a> {
    /// Lossy: a report must not fail on a file name that is not UTF-8.
    pub file: Cow<'a, str>,
    /// The closure it was planned from; `"via": "tree"` marks a library the loader's search
    /// would not have found.
    pub libraries: Option<Vec<LibraryEntry<'a>>>,
    pub needed: Option<Vec<&'a str>>,
    pub reason: Option<Cow<'a, str>>,
    pub status: &'static str,
    pub warnings: &'a [String],
}

#[derive(Serialize)]
pub struct LibraryEntry<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub via: &'static str,
}

#[derive(Serialize)]
pub struct MissingEntry<'a> {
    pub name: &'a str,
    pub needed_by: &'a [String],
}

#[derive(Serialize)]
pub struct Summary {
    pub failed: usize,
    pub skipped: usize,
    pub stamped: usize,
    pub unchanged: usize,
}

impl<'a> FileEntry<'a> {
    /// A file with `status`, and its plan where it got one.
    pub fn new(
        file: &'a Path,
        status: &'static str,
        reason: Option<Cow<'a, str>>,
        plan: Option<&'a Plan>,
    ) -> FileEntry<'a> {
        FileEntry {
            file: file.to_string_lossy(),
            libraries: plan.map(|p| {
                p.libraries
                    .iter()
                    .map(|(name, path, via)| LibraryEntry {
                        name,
                        path,
                        via: via.name(),
                    })
                    .collect()
            }),
            needed: plan.map(|p| p.values()),
            reason,
            status,
            warnings: plan.map_or(&[], |p| &p.warnings),
        }
    }
}

impl Report<'_> {
    /// Writes the report to `path`, pretty-printed, files sorted by path.
    pub fn write(mut self, path: &Path) -> io::Result<()> {
        self.files.sort_by(|a, b| a.file.cmp(&b.file));
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer_pretty(&mut out, &self)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}
