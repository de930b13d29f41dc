//! `check --json`: one entry per file, typed (version 1, documented in the README).

use std::path::Path;

use serde::Serialize;

#[derive(Serialize)]
pub struct FileEntry {
    pub file: String,
    /// `ok`, `not-stamped` or `problems`.
    pub status: &'static str,
    /// How many absolute DT_NEEDED entries were checked (`ok` only).
    pub entries: Option<usize>,
    pub problems: Vec<String>,
}

impl FileEntry {
    pub fn new(
        file: &Path,
        status: &'static str,
        entries: Option<usize>,
        problems: Vec<String>,
    ) -> FileEntry {
        FileEntry {
            // Lossy: a report must not fail on a file name that is not UTF-8.
            file: file.to_string_lossy().into_owned(),
            status,
            entries,
            problems,
        }
    }
}
