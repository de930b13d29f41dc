//! Putting a stamped file's original back (`elf::stamped` reads it; this writes it): byte for
//! byte when the file is as the stamp left it ([`restore`]); its names only when it was
//! changed afterwards ([`names`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use goblin::elf::dynamic::{self, Dyn};
use goblin::elf::program_header as ph;
use scroll::ctx::SizeWith;
use scroll::Pwrite;

use super::replace::{replace_file, Piece, Rewrite};
use super::tables::{cstr, encode_all, read_verneed, vn_file_fields};
use super::{verify, WriteError};
use crate::elf::stamped::{Names, Original, Record};
use crate::elf::{ElfFile, Source};

/// What a restore changes, kept to undo it should the new plan fail on the original: the
/// stamped bytes an in-place restore overwrites (the head, at 0) and cuts off (from the
/// original's size); a restore that writes a new file changes nothing of the stamped one,
/// which the caller keeps open.
pub enum Before {
    InPlace {
        head: Vec<u8>,
        cut: u64,
        tail: Vec<u8>,
    },
    Replaced,
}

impl Before {
    /// Saves what [`restore`] of `original` will change.
    pub fn save(original: &Original<'_>) -> Result<Before, WriteError> {
        if !in_place(original) {
            return Ok(Before::Replaced);
        }
        // `ours` keeps every patch inside the original, whose size is below the stamped one.
        let mut head = vec![0u8; head_end(original) as usize];
        FileExt::read_exact_at(original.file, &mut head, 0)?;
        let size = original.file.metadata()?.len();
        let mut tail = vec![0u8; size.saturating_sub(original.size) as usize];
        FileExt::read_exact_at(original.file, &mut tail, original.size)?;
        Ok(Before::InPlace {
            head,
            cut: original.size,
            tail,
        })
    }

    /// Puts the stamped file back at `path`: in place into `file` (the tail first, then the
    /// head, which commits, as a stamp does), or, when the restore wrote a new file, a copy of
    /// `stamped` (the replaced file, still open) swapped in over `file`.
    pub fn put_back(
        self,
        path: &Path,
        file: &File,
        stamped: Option<&File>,
    ) -> Result<(), WriteError> {
        match (self, stamped) {
            (Before::InPlace { head, cut, tail }, _) => {
                file.write_all_at(&tail, cut)?;
                file.set_len(cut + tail.len() as u64)?;
                file.write_all_at(&head, 0)?;
            }
            (Before::Replaced, Some(stamped)) => {
                let mut bytes = vec![0u8; stamped.metadata()?.len() as usize];
                FileExt::read_exact_at(stamped, &mut bytes, 0)?;
                let rewrite = Rewrite {
                    pieces: vec![Piece::Bytes(bytes)],
                    patches: Vec::new(),
                };
                replace_file(path, file, &rewrite, |_| Ok(()))?;
            }
            (Before::Replaced, None) => {}
        }
        Ok(())
    }
}

/// Whether [`restore`] puts `original` back in place (its head rewritten, its tail cut off)
/// rather than as a new file.
fn in_place(original: &Original<'_>) -> bool {
    original.inserted == 0 && !original.replace
}

/// The end of the last patch: what an in-place restore rewrites from offset 0.
fn head_end(original: &Original<'_>) -> u64 {
    original
        .patches
        .iter()
        .map(|(off, bytes)| off + bytes.len() as u64)
        .max()
        .unwrap_or(0)
}

/// Puts `original` back at `path`: in place (the saved header bytes, and the original length)
/// for an in-place stamp; as a new file renamed over the old for a shifted or spare one
/// (whose edits are not all in the head), which is returned, open for writing and locked.
pub fn restore(original: &Original<'_>, path: &Path) -> Result<Option<File>, WriteError> {
    if in_place(original) {
        // Everything the stamp changed lies in the head (ELF header, program header slots):
        // put it back in one write, the inverse of the stamp's commit, so a run killed during
        // the restore leaves the stamped file or the original with an unreferenced tail
        // (which the next run trims), never a mix of the two headers.
        let mut head = vec![0u8; head_end(original) as usize];
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

/// Puts back the names of the original behind a stamped file changed afterwards (stripped),
/// whose saved bytes no longer fit, as `names` (the record's) gives them: DT_NEEDED becomes
/// the original's list in its order (the entries the stamp added are dropped, the entries
/// after them move up, DT_NULL fills the end), DT_STRSZ the original's, and every `vn_file`
/// the original's. The string table still begins with the original's (strip tools keep it
/// whole), so the record's offsets name the original's strings and no string is written; the
/// paths and the record stay past the table's new end, unreferenced, and the file is no longer
/// ours. The file keeps its layout (the stamp's segment, if it had one, stays), so this is not
/// the original's bytes, but the loader lists and loads it as the original.
///
/// `.dynamic` and `.gnu.version_r` lie apart (in a shifted stamp, the program's code between
/// them), and must change together: glibc asserts when a `vn_file` names no library loaded
/// under that name. So the result is written to a new file, read back and checked, and swapped
/// in (`replace.rs`); a file that cannot be replaced (hard links, extended attributes, an
/// unwritable directory) is refused, to be unwrapped with `-o`. A private copy (`-o`'s,
/// renamed into place only once written) is written directly, `commit` says which.
pub fn names(
    path: &Path,
    file: &File,
    ef: &ElfFile,
    names: Option<&Names>,
    commit: Commit,
) -> Result<(), WriteError> {
    let names = names.ok_or_else(|| {
        changed("its record, from an older shrinkwrap, does not say what its names were")
    })?;
    let NamesBack {
        patches,
        needed,
        vn_files: wanted_vn_files,
    } = names_back(file, ef, names)?;
    // Read back strictly: the original's list, PT_INTERP and `vn_file` names, the loader's
    // rules, and no record of ours left.
    let check = |new: &File| {
        let out = verify::output(new, ef.info.interpreter.as_deref(), &needed, None)?;
        let vn_files: Vec<&str> = out
            .info
            .version_needs
            .iter()
            .map(|v| v.file.as_str())
            .collect();
        if vn_files != wanted_vn_files || Record::find(&out.dynstr).is_some() {
            return Err(WriteError::CannotUnwrap(
                "the unwrapped file did not read back as planned".into(),
            ));
        }
        Ok(())
    };
    if commit == Commit::InPlace {
        for (off, bytes) in &patches {
            file.write_all_at(bytes, *off)?;
        }
        return check(file);
    }
    let rewrite = Rewrite {
        pieces: vec![Piece::Copy {
            from: 0,
            len: ef.size,
        }],
        patches,
    };
    match replace_file(path, file, &rewrite, check) {
        Ok(_) => Ok(()),
        Err(WriteError::KeepInPlace(why)) => Err(WriteError::CannotUnwrap(format!(
            "it was changed after it was stamped, so its unwrap is a new file put in its \
             place, and {why}; unwrap it with -o OUT"
        ))),
        Err(e) => Err(e),
    }
}

/// How [`names`] writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// A new file, checked, then swapped in: the file is shared, and a killed run must leave
    /// it stamped or unwrapped.
    NewFile,
    /// Straight into the file: a private copy, which a failed or killed run never puts in
    /// place.
    InPlace,
}

/// The refusal for a changed file, with the reason.
fn changed(why: &str) -> WriteError {
    WriteError::CannotUnwrap(format!("it was changed after it was stamped, and {why}"))
}

/// What [`names`] writes, and what the result must read back as.
struct NamesBack {
    /// New bytes at file offsets: `.dynamic` and `.gnu.version_r`.
    patches: Vec<(u64, Vec<u8>)>,
    needed: Vec<String>,
    vn_files: Vec<String>,
}

fn names_back(file: &dyn Source, ef: &ElfFile, names: &Names) -> Result<NamesBack, WriteError> {
    let ctx = ef.ctx;
    // A list changed after stamping (patchelf `--remove-needed`, `--replace-needed`) cannot be
    // told apart from ours by position: refused, not guessed.
    if !names.wrote(&ef.info.needed) {
        return Err(changed(
            "its DT_NEEDED list is no longer the one the stamp wrote",
        ));
    }
    let table = usize::try_from(names.strsz)
        .ok()
        .and_then(|n| ef.dynstr.get(..n))
        .ok_or_else(|| changed("its string table no longer holds the original's"))?;
    let name = |off: u64| -> Result<String, WriteError> {
        usize::try_from(off)
            .ok()
            .and_then(|o| cstr(table, o))
            .map(str::to_string)
            .ok_or_else(|| changed("the record names a string its table does not hold"))
    };
    let needed = names
        .needed
        .iter()
        .map(|&off| name(off))
        .collect::<Result<Vec<_>, _>>()?;

    // `.dynamic`, where it is: the first entries keep their slots, the ones the stamp added
    // after them go.
    let dyn_ph = ef
        .phdrs
        .iter()
        .find(|p| p.p_type == ph::PT_DYNAMIC)
        .ok_or_else(|| changed("it has no PT_DYNAMIC"))?;
    let dyn_size = Dyn::size_with(&ctx);
    let capacity = (dyn_ph.p_filesz / dyn_size as u64) as usize;
    let mut slots = names.needed.iter();
    let mut dyns: Vec<Dyn> = Vec::with_capacity(capacity);
    for d in &ef.dynamic {
        let mut d = d.clone();
        match d.d_tag {
            dynamic::DT_NEEDED => match slots.next() {
                Some(&off) => d.d_val = off,
                None => continue,
            },
            dynamic::DT_STRSZ => d.d_val = names.strsz,
            _ => {}
        }
        dyns.push(d);
    }
    if slots.next().is_some() {
        return Err(changed("it has fewer DT_NEEDED entries than the original"));
    }
    // Entries were only dropped, so they fit; DT_NULL fills the rest.
    dyns.resize(
        capacity.max(dyns.len()),
        Dyn {
            d_tag: dynamic::DT_NULL,
            d_val: 0,
        },
    );
    let mut patches = vec![(
        dyn_ph.p_offset,
        encode_all(dyns, dyn_size, ctx, ".dynamic")?,
    )];

    // `.gnu.version_r`, where it is: the stamp changed only `vn_file`, entry for entry.
    let mut vn_files = Vec::new();
    match read_verneed(file, ef)? {
        Some((off, mut v)) => {
            let fields = vn_file_fields(&v, ctx.le)?;
            if fields.len() != names.vn_files.len() {
                return Err(changed(
                    "its version-needs table does not have the original's entries",
                ));
            }
            for (at, &vn_file) in fields.into_iter().zip(&names.vn_files) {
                vn_files.push(name(u64::from(vn_file))?);
                v.pwrite_with(vn_file, at, ctx.le)
                    .map_err(|_| changed("its version-needs table is cut short"))?;
            }
            patches.push((off, v));
        }
        None if !names.vn_files.is_empty() => {
            return Err(changed("it no longer has a version-needs table"))
        }
        None => {}
    }
    // The tables must not run into each other (headers are untrusted).
    if let [(a, x), (b, y)] = &patches[..] {
        if *a < b + y.len() as u64 && *b < a + x.len() as u64 {
            return Err(changed("its .dynamic and version-needs table overlap"));
        }
    }
    Ok(NamesBack {
        patches,
        needed,
        vn_files,
    })
}
