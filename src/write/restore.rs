//! Putting a stamped file's original back (`elf::stamped` reads it; this writes it).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::replace::{replace_file, Piece, Rewrite};
use super::WriteError;
use crate::elf::stamped::Original;
use crate::elf::Source;

/// Puts `original` back at `path`: in place (the saved header bytes, and the original length)
/// for an in-place stamp; as a new file renamed over the old for a shifted or spare one
/// (whose edits are not all in the head), which is returned, open for writing and locked.
pub fn restore(original: &Original<'_>, path: &Path) -> Result<Option<File>, WriteError> {
    if original.inserted == 0 && !original.replace {
        // Everything the stamp changed lies in the head (ELF header, program header slots):
        // put it back in one write, the inverse of the stamp's commit, so a run killed during
        // the restore leaves the stamped file or the original with an unreferenced tail
        // (which the next run trims), never a mix of the two headers.
        let end = original
            .patches
            .iter()
            .map(|(off, bytes)| off + bytes.len() as u64)
            .max()
            .unwrap_or(0);
        let mut head = vec![0u8; end as usize];
        Source::read_exact_at(original, &mut head, 0)?;
        original.file.write_all_at(&head, 0)?;
        original.file.set_len(original.size)?;
        return Ok(None);
    }
    let at = original.at;
    let rewrite = Rewrite {
        pieces: vec![
            Piece::Copy { from: 0, len: at },
            Piece::Copy {
                from: at + original.inserted,
                len: original.size - at,
            },
        ],
        patches: original.patches.clone(),
    };
    replace_file(path, original.file, &rewrite, |_| Ok(())).map(Some)
}
