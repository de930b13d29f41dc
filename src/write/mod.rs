//! Writing the stamp: `stamp_file` is the entry point (`stamp_file_to` for a [`Target`] that
//! also sets a new PT_INTERP, which only the in-place layout writes). It takes the file's lock, clears what a
//! killed run left, puts back the original of an earlier stamp, and writes the plan in
//! whichever layout grows the file less: in place (`inplace.rs`, one new segment appended and
//! committed by one `pwrite` at offset 0) or shifted (`shift.rs`, pages inserted after
//! `.dynstr`, for non-PIE executables, written as a new file swapped in by `replace.rs`).
//! `tables.rs` builds the tables both layouts write; `verify.rs` holds the loader's rules on
//! the input and on the headers about to be committed; `restore.rs` puts an original back
//! (`unwrap_file` is its entry point).
//! The last string of the new `.dynstr` is a record of what the stamp replaced
//! (`elf::stamped`), so a later run can recognise its own work, restore the original, and
//! stamp afresh rather than stacking stamps. See `../shared/design/stamping.md`.

mod inplace;
mod replace;
mod restore;
mod shift;
mod spare;
mod tables;
mod verify;

use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::elf::stamped as record;
use crate::elf::{read_elf_file, read_elf_source, ElfError, ElfFile};
use crate::lock::{self, Lock};

/// What stamping did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was rewritten; it grew by this many bytes (relative to its unstamped size).
    Stamped { grew_by: u64 },
    /// The file already had exactly these DT_NEEDED entries: nothing was written.
    Unchanged,
}

/// Why a file could not be stamped. The file is untouched in every case.
#[derive(Debug)]
pub enum WriteError {
    Io(io::Error),
    Elf(ElfError),
    /// The layout leaves no way to add a program header without risk.
    NoRoom(String),
    Unsupported(String),
    /// The file cannot be replaced by a new one (the shifted layout); stamp it in place.
    KeepInPlace(String),
    /// An unwrap that cannot be done safely.
    CannotUnwrap(String),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Io(e) => write!(f, "{e}"),
            WriteError::Elf(e) => write!(f, "{e}"),
            WriteError::NoRoom(why) => write!(f, "no room for another program header: {why}"),
            WriteError::Unsupported(why) => write!(f, "cannot stamp: {why}"),
            WriteError::KeepInPlace(why) => write!(f, "cannot replace the file: {why}"),
            WriteError::CannotUnwrap(why) => write!(f, "cannot unwrap: {why}"),
        }
    }
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

impl From<ElfError> for WriteError {
    fn from(e: ElfError) -> Self {
        match e {
            ElfError::Io(io) => WriteError::Io(io),
            other => WriteError::Elf(other),
        }
    }
}

/// What to do with a file whose mode does not let its owner write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnly {
    /// Fail with "Permission denied", as any write would (`stamp`: the mode is the user's say).
    Refuse,
    /// Make it writable for the moment it takes to open it, then give it its mode back
    /// (`fixup`: build outputs are the builder's own files).
    MakeWritable,
}

/// Stamps `path` so its DT_NEEDED entries are exactly `needed`: the first entries replace the
/// existing slots in order, the rest are inserted after them. In place, or, for a non-PIE
/// executable the shifted layout grows less, by replacing the file (`shift.rs`). A read-only
/// file is refused.
pub fn stamp_file(path: &Path, needed: &[String]) -> Result<Outcome, WriteError> {
    stamp_file_as(path, needed, ReadOnly::Refuse)
}

/// [`stamp_file`], with `read_only` saying what to do with a read-only file: [`stamp_file_to`]
/// with no new interpreter.
pub fn stamp_file_as(
    path: &Path,
    needed: &[String],
    read_only: ReadOnly,
) -> Result<Outcome, WriteError> {
    let target = Target {
        needed,
        interpreter: None,
    };
    stamp_file_to(path, &target, read_only)
}

/// What a stamp writes: the DT_NEEDED list, and optionally a new PT_INTERP.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The whole new DT_NEEDED list: the first entries replace the existing slots in order,
    /// the rest are inserted after them.
    pub needed: &'a [String],
    /// The program interpreter the stamped file names (PT_INTERP, and the `.interp` section);
    /// `None` keeps the original's. Plans start from originals, so `None` on a file whose
    /// earlier stamp set one gives that file its original interpreter back.
    pub interpreter: Option<&'a str>,
}

/// Stamps `path` with `target` (see [`Target`]), `read_only` saying what to do with a
/// read-only file. The whole read-plan-write runs under an exclusive lock on the file
/// (`crate::lock`): what is written depends only on bytes read under it, whatever other runs
/// do at the same time. A new interpreter is written by the in-place layout only (`inplace.rs`);
/// a file without PT_INTERP (a library) cannot be given one.
pub fn stamp_file_to(
    path: &Path,
    target: &Target,
    read_only: ReadOnly,
) -> Result<Outcome, WriteError> {
    // Held until we return: no other run reads or writes the file meanwhile. A read-only file
    // is locked through a second descriptor (`_locked`), opened for reading.
    let (file, _locked) = open_for_writing(path, read_only)?;
    let ef = read_cleared(path, &file)?;
    if let Some(p) = target.interpreter {
        settable_interpreter(&ef, p)?;
    }
    let needed = target.needed;
    let ours = record::ours(&file, &ef)?;
    // The interpreter the result names: the target's, else the original's (a file changed
    // after its stamp has no original to ask: its own).
    let wanted_interpreter = |ours: &record::Ours| -> Result<Option<String>, WriteError> {
        Ok(match (target.interpreter, ours) {
            (Some(p), _) => Some(p.to_string()),
            (None, record::Ours::Original(original)) => original.info.interpreter.clone(),
            (None, _) => ef.info.interpreter.clone(),
        })
    };
    if ef.info.needed == needed && ef.info.interpreter == wanted_interpreter(&ours)? {
        return Ok(Outcome::Unchanged);
    }
    // Our own earlier stamp: go back to the original and stamp it afresh, so stamping never
    // stacks stamps and the result depends only on the original and the target.
    let (restored, before) = match ours {
        record::Ours::No => (None, None),
        record::Ours::Original(original) => {
            // Only an original we could stamp is put back: one that cannot be read, or whose
            // headers break a rule, was never ours to write (the stamped file was changed in a
            // way its record does not see; found by fuzzing).
            verify::input(&original, &read_elf_source(&original)?)?;
            let before = restore::Before::save(&original)?;
            (Some(restore::restore(&original, path)?), Some(before))
        }
        record::Ours::Changed(_) => {
            return Err(WriteError::Unsupported(
                "it was changed after it was stamped (stripped?), so its original cannot be restored; stamp the unstripped file".into(),
            ))
        }
    };
    // Restoring a shifted or spare stamp replaced the file: the new one comes back locked, and
    // the stamped one stays open, as `before` needs it.
    let (file, stamped) = match restored {
        Some(Some(replaced)) => (replaced, Some(file)),
        _ => (file, None),
    };
    let result = read_elf_file(&file)
        .map_err(WriteError::from)
        .and_then(|ef| {
            let new_interpreter = target
                .interpreter
                .filter(|&p| ef.info.interpreter.as_deref() != Some(p));
            if before.is_some() && ef.info.needed == needed && new_interpreter.is_none() {
                // Restored, and the target keeps the original's entries and interpreter: the
                // original is what one run on it leaves (not a segment that changes nothing).
                return Ok(Outcome::Stamped { grew_by: 0 });
            }
            write_plan(path, &file, &ef, needed, new_interpreter)
        });
    if let (Err(_), Some(before)) = (&result, before) {
        // The new target failed on the restored original (a header rule, no room, a write
        // error): the stamped bytes go back exactly as they were, so a failed run leaves the
        // file as it found it — also one changed where its record does not look, which
        // stamping the original with the previous target again would not give back (found by
        // fuzzing). Best effort: the error reported is the new target's.
        let _ = before.put_back(path, &file, stamped.as_ref());
    }
    result
}

/// Refuses an interpreter that cannot be set on `ef`: a file without PT_INTERP (a library,
/// whose loader is whatever program loads it), or a string the loader cannot take.
fn settable_interpreter(ef: &ElfFile, interpreter: &str) -> Result<(), WriteError> {
    let refuse = |why: String| Err(WriteError::Unsupported(why));
    if ef.info.interpreter.is_none() {
        return refuse(format!(
            "it has no PT_INTERP to set to {interpreter} (a library is run by the loader of the program that loads it)"
        ));
    }
    // The kernel reads at most MAX_INTERP bytes, NUL included.
    if interpreter.is_empty()
        || interpreter.contains('\0')
        || interpreter.len() as u64 >= crate::elf::MAX_INTERP
    {
        return refuse(format!(
            "{interpreter:?} cannot be a program interpreter (empty, too long or holding a NUL)"
        ));
    }
    Ok(())
}

/// What unwrapping a file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwrapped {
    /// The original is back, byte for byte.
    Original,
    /// The file was changed after it was stamped (stripped): the original's DT_NEEDED list
    /// and `vn_file` names are back, not its bytes.
    Names,
    /// No stamp of ours in it: nothing was written.
    NotStamped,
}

/// Puts back the original of a file we stamped, under the exclusive lock: byte for byte when
/// the file is as the stamp left it (`restore.rs`); when it was changed afterwards (stripped),
/// its names (DT_NEEDED list and order, `vn_file`, the string table's length) as the record
/// gives them, written to a new file swapped in (`restore::names`). A read-only file is refused.
pub fn unwrap_file(path: &Path) -> Result<Unwrapped, WriteError> {
    unwrap_as(path, restore::Commit::NewFile)
}

/// [`unwrap_file`] on a private copy no other run sees until it is renamed into place (`-o
/// OUT`): a changed file's names are written into it directly, not into yet another copy.
pub fn unwrap_copy(path: &Path) -> Result<Unwrapped, WriteError> {
    unwrap_as(path, restore::Commit::InPlace)
}

fn unwrap_as(path: &Path, commit: restore::Commit) -> Result<Unwrapped, WriteError> {
    let (file, _locked) = open_for_writing(path, ReadOnly::Refuse)?;
    let ef = read_cleared(path, &file)?;
    match record::ours(&file, &ef)? {
        record::Ours::No => Ok(Unwrapped::NotStamped),
        record::Ours::Original(original) => {
            restore::restore(&original, path)?;
            Ok(Unwrapped::Original)
        }
        record::Ours::Changed(names) => {
            restore::names(path, &file, &ef, names.as_ref(), commit)?;
            Ok(Unwrapped::Names)
        }
    }
}

/// Reads `file` (open at `path`, under the caller's exclusive lock) after clearing what a
/// killed run left: a shifted stamp's temporary file beside it, or an appended segment it
/// never committed.
fn read_cleared(path: &Path, file: &File) -> Result<ElfFile, WriteError> {
    replace::clear_leftover(path);
    let ef = read_elf_file(file)?;
    match record::unfinished_tail(file, &ef)? {
        // The appended bytes are not referenced, and no live run is appending them (it would
        // hold the lock).
        Some(original_size) => {
            file.set_len(original_size)?;
            Ok(read_elf_file(file)?)
        }
        None => Ok(ef),
    }
}

/// Writes `needed` and, when it is `Some`, the `new_interpreter` (which differs from the file's)
/// into `file` (read as `ef`, under the caller's lock), whose DT_NEEDED list or interpreter
/// differs from them: in place, or shifted when that grows a non-PIE executable less.
fn write_plan(
    path: &Path,
    file: &File,
    ef: &ElfFile,
    needed: &[String],
    new_interpreter: Option<&str>,
) -> Result<Outcome, WriteError> {
    // Every layout places its bytes by these headers: they must keep the loader's rules.
    verify::input(file, ef)?;
    // A new interpreter is written by the in-place layout only: the spare layout has no room
    // of its own for the string (and adds no segment to put it in), and the shifted one would
    // have to grow `.interp` where it is, in front of every other table. Both decline it.
    let renames_only = new_interpreter.is_none();
    // A stamp that only renames entries (a library's) fits in the padding after a read-only
    // segment, if there is enough: nothing added for the loader to map, nothing grows.
    let spare = if renames_only {
        spare::build(file, ef, needed)?
    } else {
        None
    };
    if let Some(spare) = spare {
        let interpreter = ef.info.interpreter.as_deref();
        match spare::write(path, file, &spare, interpreter, needed) {
            Ok(()) => return Ok(Outcome::Stamped { grew_by: 0 }),
            // Not replaceable (hard links, attributes, directory), or refused on reading back:
            // the in-place layout below.
            Err(WriteError::KeepInPlace(_) | WriteError::Unsupported(_)) => {}
            Err(e) => return Err(e),
        }
    }
    // The in-place layout, unless shifting a non-PIE executable grows it less.
    let stamp = inplace::build(file, ef, needed, new_interpreter);
    let in_place_growth = stamp
        .as_ref()
        .ok()
        .map(|s| (s.tail_offset + s.tail.len() as u64).saturating_sub(ef.size));
    let shifted = if renames_only {
        shift::build(file, ef, needed)?
    } else {
        None
    };
    if let Some(shifted) = shifted.filter(|s| in_place_growth.is_none_or(|g| s.inserted < g)) {
        match shift::write(path, file, &shifted, needed) {
            Ok(()) => {
                return Ok(Outcome::Stamped {
                    grew_by: shifted.inserted,
                })
            }
            Err(WriteError::KeepInPlace(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let stamp = stamp?;
    let original_size = ef.size;
    if let Err(e) = file.write_all_at(&stamp.tail, stamp.tail_offset) {
        // A full disk or a file size limit: what was appended is not referenced; cut it off.
        let _ = file.set_len(original_size);
        return Err(e.into());
    }
    // The commit point.
    if let Err(e) = file.write_all_at(&stamp.head, 0) {
        let _ = file.set_len(original_size);
        return Err(e.into());
    }
    let new_size = stamp.tail_offset + stamp.tail.len() as u64;
    Ok(Outcome::Stamped {
        grew_by: new_size.saturating_sub(original_size),
    })
}

/// `path` opened for writing and locked exclusively. A read-only file (`fixup` stamps those)
/// can only be locked through a descriptor opened for reading: its write bit is lent, under
/// that lock, for the writing descriptor to be opened, and given back; that locked
/// descriptor is returned too, and must be kept as long as the other.
fn open_for_writing(path: &Path, read_only: ReadOnly) -> Result<(File, Option<File>), WriteError> {
    let rw = || {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        o
    };
    let denied = match lock::open_locked_with(path, Lock::Exclusive, &rw()) {
        Ok(file) => return Ok((file, None)),
        Err(e)
            if e.kind() == io::ErrorKind::PermissionDenied
                && read_only == ReadOnly::MakeWritable =>
        {
            e
        }
        Err(e) => return Err(e.into()),
    };
    let locked = lock::open_locked(path, Lock::Exclusive)?;
    let mode = locked.metadata()?.mode() & 0o7777;
    if mode & 0o200 != 0 {
        // Writable by mode, yet not openable for writing: not something lending the bit fixes.
        return Err(denied.into());
    }
    // Changed and given back under the lock, so another run never takes the borrowed write
    // bit for the file's own; the descriptor keeps its write access.
    locked.set_permissions(Permissions::from_mode(mode | 0o200))?;
    let file = rw().open(path);
    locked.set_permissions(Permissions::from_mode(mode))?;
    let file = file?;
    // Under our lock no run replaces the file; anything else that did is not ours to stamp.
    let (a, b) = (file.metadata()?, locked.metadata()?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return Err(WriteError::Io(io::Error::other(
            "it was replaced by another program while being stamped",
        )));
    }
    Ok((file, Some(locked)))
}
