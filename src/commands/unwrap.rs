//! `shrinkwrap unwrap`: put back the file a stamp was made from.

use std::path::Path;

use super::stamp::write_copy;
use super::{print, Outcome};
use crate::cli::UnwrapArgs;
use crate::elf::read_elf_file;
use crate::elf::stamped::{self, StampState};
use crate::lock;
use crate::write::{self, WriteError};

/// What unwrapping one file did.
enum Done {
    /// Put back; the file is this many bytes smaller.
    Unwrapped { shrank_by: u64 },
    /// No stamp of ours in it: nothing to do.
    NotStamped,
}

/// Unwraps every FILE (or one to `-o OUT`): the original bytes come back from the stamp's
/// record, through the same locked, crash-safe writes a stamp uses — in fact a stamp whose plan
/// is the original's DT_NEEDED list, which restores the original and has nothing to add. A file
/// changed after it was stamped (stripped) cannot be put back exactly, and is refused.
pub fn run(args: &UnwrapArgs) -> Outcome {
    if args.output.is_some() && args.files.len() != 1 {
        eprintln!("shrinkwrap: -o/--output takes exactly one FILE");
        return Outcome::Usage;
    }
    let mut outcome = Outcome::Success;
    for file in &args.files {
        let target = args.output.as_deref().unwrap_or(file);
        match unwrap_one(file, target) {
            Ok(Done::Unwrapped { shrank_by }) => print(&format!(
                "{}: unwrapped (-{shrank_by} bytes)\n",
                target.display()
            )),
            Ok(Done::NotStamped) => print(&format!(
                "{}: not stamped, nothing to unwrap\n",
                file.display()
            )),
            Err((about, why)) => {
                eprintln!("shrinkwrap: {}: {why}", about.display());
                outcome = Outcome::FileFailed;
            }
        }
    }
    outcome
}

type Failure<'a> = (&'a Path, String);

fn unwrap_one<'a>(file: &'a Path, target: &'a Path) -> Result<Done, Failure<'a>> {
    let on_file = |e: String| (file, e);
    // The original's DT_NEEDED list, read under a shared lock.
    let (needed, size_before) = {
        let (f, _) = lock::open_to_read(file).map_err(|e| on_file(e.to_string()))?;
        let ef = read_elf_file(&f).map_err(|e| on_file(e.to_string()))?;
        match stamped::stamp_state(&f, &ef).map_err(|e| on_file(format!("reading its original: {e}")))? {
            StampState::NotStamped => return Ok(Done::NotStamped),
            StampState::Changed => {
                return Err(on_file(
                    "it was changed after it was stamped (stripped?), so its original cannot be put back exactly; unwrap the unstripped file".into(),
                ))
            }
            StampState::Stamped(original) => (original.needed, ef.size),
        }
    };
    // A stamp whose plan is the original's list: it restores the original, under the
    // exclusive lock, and adds nothing. (Another run may have restamped the file meanwhile;
    // its original is the same.)
    let result = if target == file {
        write::stamp_file(file, &needed).map_err(|e: WriteError| (file, e))
    } else {
        write_copy(file, target, &needed)
    };
    result.map_err(|(about, e)| (about, e.to_string()))?;
    let size_after = std::fs::metadata(target)
        .map(|m| m.len())
        .unwrap_or(size_before);
    Ok(Done::Unwrapped {
        shrank_by: size_before.saturating_sub(size_after),
    })
}
