//! `stamp --json`: one entry per file, typed (version 1). Fields are declared in alphabetical
//! order, the order the report has always had; the ones a status does not have are left out.

use std::borrow::Cow;
use std::path::Path;

use serde::Serialize;

use crate::plan::Plan;

#[derive(Serialize)]
pub struct Report<'a> {
    pub files: Vec<FileEntry<'a>>,
    pub version: u32,
}

#[derive(Serialize, Default)]
pub struct FileEntry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// Lossy: a report must not fail on a file name that is not UTF-8.
    pub file: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grew_by: Option<u64>,
    /// The PT_INTERP a `--set-interpreter` stamp writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed: Option<Vec<NeededEntry<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<&'a [String]>,
}

#[derive(Serialize)]
pub struct NeededEntry<'a> {
    pub original: Option<&'a str>,
    pub value: &'a str,
}

impl<'a> FileEntry<'a> {
    /// An entry for `target` with `status`, with the plan's entries and warnings if it has one.
    pub fn new(target: &'a Path, status: &'static str, plan: Option<&'a Plan>) -> FileEntry<'a> {
        FileEntry {
            file: target.to_string_lossy(),
            status,
            needed: plan.map(|p| {
                p.needed
                    .iter()
                    .map(|n| NeededEntry {
                        original: n.original.as_deref(),
                        value: &n.value,
                    })
                    .collect()
            }),
            warnings: plan.map(|p| p.warnings.as_slice()),
            ..FileEntry::default()
        }
    }
}

impl Report<'_> {
    /// The report, pretty-printed, with a final newline.
    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
