//! `shrinkwrap unwrap`: put back the file a stamp was made from.

use std::path::Path;

use super::stamp::write_copy;
use super::{print, Outcome};
use crate::cli::UnwrapArgs;
use crate::elf::read_elf_file;
use crate::elf::stamped::{self, Ours};
use crate::lock;
use crate::write::{self, Unwrapped};

/// What unwrapping one file did.
enum Done {
    /// Put back byte for byte; the file is this many bytes smaller.
    Unwrapped { shrank_by: u64 },
    /// Changed after it was stamped (stripped): its names are back, not its bytes.
    Names,
    /// No stamp of ours in it: nothing to do.
    NotStamped,
}

/// Unwraps every FILE (or one to `-o OUT`), through the same locked, crash-safe writes a stamp
/// uses (`write::unwrap_file`): a file as the stamp left it gets its original bytes back from
/// the stamp's record; one changed afterwards (stripped) gets the original's DT_NEEDED list
/// and `vn_file` names back, which the record also keeps, so the loader lists it as the
/// original.
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
            Ok(Done::Names) => print(&format!(
                "{}: unwrapped its names: the original's DT_NEEDED list and vn_file (it was changed after it was stamped, so not its bytes)\n",
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
    // Read under a shared lock first: a file that carries no stamp of ours is said so without
    // being opened for writing (it may be read-only).
    let size_before = {
        let (f, _) = lock::open_to_read(file).map_err(|e| on_file(e.to_string()))?;
        let ef = read_elf_file(&f).map_err(|e| on_file(e.to_string()))?;
        match stamped::ours(&f, &ef).map_err(|e| on_file(format!("reading its record: {e}")))? {
            Ours::No => return Ok(Done::NotStamped),
            Ours::Original(_) | Ours::Changed(_) => ef.size,
        }
    };
    // The writer decides again under the exclusive lock (another run may have unwrapped or
    // restamped the file meanwhile).
    let result = if target == file {
        write::unwrap_file(file).map_err(|e| (file, e))
    } else {
        write_copy(file, target, write::unwrap_copy)
    };
    match result.map_err(|(about, e)| (about, e.to_string()))? {
        Unwrapped::NotStamped => Ok(Done::NotStamped),
        Unwrapped::Names => Ok(Done::Names),
        Unwrapped::Original => {
            let size_after = std::fs::metadata(target)
                .map(|m| m.len())
                .unwrap_or(size_before);
            Ok(Done::Unwrapped {
                shrank_by: size_before.saturating_sub(size_after),
            })
        }
    }
}
