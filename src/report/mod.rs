//! Reporting: turning closures (and later, stamping results) into text for people and JSON for
//! programs.

pub mod check;
pub mod explain;
pub mod fixup;
pub mod stamp;
pub mod tree;

/// `{"version": 1, "files": [...]}`, pretty-printed with a final newline: the shape of the
/// per-file JSON reports (`check`, `explain`).
pub fn files_json<T: serde::Serialize>(files: &[T]) -> String {
    #[derive(serde::Serialize)]
    struct Report<'a, T> {
        version: u32,
        files: &'a [T],
    }
    serde_json::to_string_pretty(&Report { version: 1, files }).unwrap_or_default() + "\n"
}
