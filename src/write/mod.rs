//! Writing the stamp. See `../shared/design/stamping.md` for the in-place layout, which this
//! module builds; `shift.rs` builds the other, for non-PIE executables; `stamp_file` writes
//! whichever grows the file less.
//!
//! In place: the new dynamic string table (old bytes + appended paths), the new `.dynamic`, a
//! copy of `.gnu.version_r` with `vn_file` rewritten, and the few sections moved out of the way
//! of one more program header go into one new writable PT_LOAD appended to the file. A copy of
//! the section header table follows it. Nothing the loader reads in the old part of the file
//! changes until one final `pwrite` at offset 0 (ELF header + program headers): that write is
//! the commit point, so a killed run leaves the file either as it was or fully stamped. The
//! last string of the new `.dynstr` is a record of what the stamp replaced (`elf::stamped`), so a
//! later run can recognise its own work, restore the original, and stamp afresh rather than
//! stacking stamps.

mod replace;
mod restore;
mod shift;
mod verify;

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

use goblin::container::{Container, Ctx};
use goblin::elf::dynamic::{self, Dyn};
use goblin::elf::header::Header;
use goblin::elf::program_header::{self as ph, ProgramHeader};
use goblin::elf::section_header::{self as sh, SectionHeader};
use scroll::{Pread, Pwrite};

use crate::elf::stamped::{self as record, Record};
use crate::elf::{read_elf_file, ElfError, ElfFile, Source};
use crate::lock::{self, Lock};

const FILE_ALIGN: u64 = record::SEGMENT_FILE_ALIGN;
/// The ELF header + program header region we are willing to rewrite in one write.
const MAX_HEAD: u64 = 1 << 20;

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
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Io(e) => write!(f, "{e}"),
            WriteError::Elf(e) => write!(f, "{e}"),
            WriteError::NoRoom(why) => write!(f, "no room for another program header: {why}"),
            WriteError::Unsupported(why) => write!(f, "cannot stamp: {why}"),
            WriteError::KeepInPlace(why) => write!(f, "cannot replace the file: {why}"),
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

/// [`stamp_file`], with `read_only` saying what to do with a read-only file. The whole
/// read-plan-write runs under an exclusive lock on the file (`crate::lock`): what is written
/// depends only on bytes read under it, whatever other runs do at the same time.
pub fn stamp_file_as(
    path: &Path,
    needed: &[String],
    read_only: ReadOnly,
) -> Result<Outcome, WriteError> {
    // Held until we return: no other run reads or writes the file meanwhile.
    let locked = lock::open_locked(path, Lock::Exclusive)?;
    let file = open_for_writing(path, &locked, read_only)?;
    replace::clear_leftover(path);
    let mut ef = read_elf_file(&file)?;
    if let Some(original_size) = record::unfinished_tail(&file, &ef)? {
        // A run was killed before its commit: the appended bytes are not referenced, and no
        // live run is appending them (it would hold the lock).
        file.set_len(original_size)?;
        ef = read_elf_file(&file)?;
    }
    if ef.info.needed == needed {
        return Ok(Outcome::Unchanged);
    }
    // Our own earlier stamp: go back to the original and stamp it afresh, so stamping never
    // stacks stamps and the result depends only on the original and the plan.
    let previous = ef.info.needed.clone();
    let restored = match record::ours(&file, &ef)? {
        record::Ours::No => None,
        record::Ours::Original(original) => Some(restore::restore(&original, path)?),
        record::Ours::Changed => {
            return Err(WriteError::Unsupported(
                "it was changed after it was stamped (stripped?), so its original cannot be restored; stamp the unstripped file".into(),
            ))
        }
    };
    let was_restored = restored.is_some();
    let (file, ef) = match restored {
        None => (file, ef),
        // Restoring a shifted stamp replaced the file: the new one comes back locked.
        Some(replaced) => {
            let file = replaced.unwrap_or(file);
            let ef = read_elf_file(&file)?;
            (file, ef)
        }
    };
    if ef.info.needed == needed {
        // Restored, and the plan keeps the original's entries: the original is what one run
        // on it leaves (not a segment that changes nothing).
        return Ok(Outcome::Stamped { grew_by: 0 });
    }
    let result = write_plan(path, &file, &ef, needed);
    if result.is_err() && was_restored {
        // The new plan failed on the restored original (a header rule, no room, a write
        // error): stamp the original with the previous plan again, which gives back the bytes
        // of the earlier stamp (stamping is deterministic), so a failed run leaves the file as
        // it found it. Best effort: the error reported is the new plan's.
        if let Ok(ef) = read_elf_file(&file) {
            let _ = write_plan(path, &file, &ef, &previous);
        }
    }
    result
}

/// Writes `needed` into `file` (read as `ef`, under the caller's lock), whose DT_NEEDED list
/// differs from it: in place, or shifted when that grows a non-PIE executable less.
fn write_plan(
    path: &Path,
    file: &File,
    ef: &ElfFile,
    needed: &[String],
) -> Result<Outcome, WriteError> {
    // The in-place layout, unless shifting a non-PIE executable grows it less.
    let stamp = build(file, ef, needed);
    let in_place_growth = stamp
        .as_ref()
        .ok()
        .map(|s| (s.tail_offset + s.tail.len() as u64).saturating_sub(ef.size));
    if let Some(shifted) =
        shift::build(file, ef, needed)?.filter(|s| in_place_growth.is_none_or(|g| s.inserted < g))
    {
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

/// A descriptor to write `path` through; `locked`, open on the same file, holds its lock.
fn open_for_writing(path: &Path, locked: &File, read_only: ReadOnly) -> Result<File, WriteError> {
    let open = || OpenOptions::new().read(true).write(true).open(path);
    let file = match open() {
        Ok(f) => f,
        Err(e)
            if e.kind() == io::ErrorKind::PermissionDenied
                && read_only == ReadOnly::MakeWritable =>
        {
            let mode = locked.metadata()?.mode() & 0o7777;
            if mode & 0o200 != 0 {
                return Err(e.into());
            }
            // Changed and given back under the lock, so another run never takes the
            // borrowed write bit for the file's own; the descriptor keeps its write access.
            locked.set_permissions(Permissions::from_mode(mode | 0o200))?;
            let file = open();
            locked.set_permissions(Permissions::from_mode(mode))?;
            file?
        }
        Err(e) => return Err(e.into()),
    };
    // Under our lock no run replaces the file; anything else that did is not ours to stamp.
    let (a, b) = (file.metadata()?, locked.metadata()?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return Err(WriteError::Io(io::Error::other(
            "it was replaced by another program while being stamped",
        )));
    }
    Ok(file)
}

/// The bytes to write: `tail` at `tail_offset` (past the end of the file), then `head` at 0.
struct Stamp {
    tail_offset: u64,
    tail: Vec<u8>,
    head: Vec<u8>,
}

fn align(v: u64, a: u64) -> u64 {
    if a <= 1 {
        v
    } else {
        v.div_ceil(a) * a
    }
}

fn pad_to(buf: &mut Vec<u8>, a: usize) {
    while buf.len() % a != 0 {
        buf.push(0);
    }
}

/// `items` encoded one after another, `size` bytes each, in the file's class and byte order
/// (`elf::encode`), with `what` named in the error.
fn encode_all<T>(
    items: impl IntoIterator<Item = T>,
    size: usize,
    ctx: Ctx,
    what: &str,
) -> Result<Vec<u8>, WriteError>
where
    T: scroll::ctx::TryIntoCtx<Ctx, Error = goblin::error::Error>,
{
    crate::elf::encode::encode_all(items, size, ctx).map_err(encode_error(what))
}

/// The error for a structure goblin could not encode.
fn encode_error(what: &str) -> impl Fn(goblin::error::Error) -> WriteError + '_ {
    move |e| WriteError::Unsupported(format!("writing {what}: {e}"))
}

fn build(file: &dyn Source, ef: &ElfFile, needed: &[String]) -> Result<Stamp, WriteError> {
    let ctx = ef.ctx;
    let is64 = ctx.container == Container::Big;
    let dyn_size = Dyn::size_with(&ctx) as u64;
    let phent = ProgramHeader::size(ctx) as u64;
    let hdr = &ef.header;

    if ef.dynamic.is_empty() || !ef.info.kind.is_dynamic() {
        return Err(WriteError::Unsupported("not dynamically linked".into()));
    }
    let slots = needed_slots(ef, needed)?;
    verify::input(file, ef)?;

    // 1. The new string table: old bytes unchanged, new strings appended once each (the
    // record follows them, last).
    let (mut dynstr, offsets) = string_table(ef, &slots, needed);

    // 2. A slot for the new PT_LOAD, first choice first: the entry of a PT_LOAD our move
    // leaves holding nothing (patchelf's segment for `.dynstr`/`.dynamic`: left in place,
    // strip would shrink it to nothing at an offset the loader rejects); a PT_NULL after the
    // last PT_LOAD; one more entry, with the bytes after the table moved away; or, when those
    // cannot move, the entry of a PT_NOTE merged into the one it continues.
    let phoff = hdr.e_phoff;
    let old_phnum = usize::from(hdr.e_phnum);
    let last_load = ef.phdrs.iter().rposition(|p| p.p_type == ph::PT_LOAD);
    let old_ph_end = phoff + phent * old_phnum as u64;
    let mut dropped = emptied_loads(ef, old_ph_end);
    let reuse_null = ef
        .phdrs
        .iter()
        .enumerate()
        .position(|(i, p)| p.p_type == ph::PT_NULL && last_load.is_none_or(|l| i > l))
        .filter(|_| dropped.is_empty());
    let mut merged_note = None;
    let moved = if !dropped.is_empty() || reuse_null.is_some() {
        None
    } else {
        match room_after_phdrs(ef, old_ph_end, old_ph_end + phent) {
            Ok(m) => Some(m),
            Err(WriteError::NoRoom(why)) => {
                let (keep, drop) = mergeable_notes(ef).ok_or(WriteError::NoRoom(why))?;
                merged_note = Some(keep);
                dropped.push(drop);
                None
            }
            Err(e) => return Err(e),
        }
    };
    let new_phnum = old_phnum + usize::from(dropped.is_empty() && reuse_null.is_none());
    let new_ph_end = phoff + phent * new_phnum as u64;
    // The commit write covers the ELF header and the program header table; moved bytes past
    // the table's new end stay where they were, unreferenced.
    let head_len = u64::from(hdr.e_ehsize).max(new_ph_end);
    if head_len > MAX_HEAD {
        return Err(WriteError::Unsupported(format!(
            "the program header table ends {head_len:#x} bytes into the file"
        )));
    }
    let mut original_head = vec![0u8; head_len as usize];
    file.read_exact_at(&mut original_head, 0)?;

    // 3. Lay out the new segment: tail marker, moved pieces, .dynamic, .dynstr,
    // .gnu.version_r.
    let loads: Vec<&ProgramHeader> = ef
        .phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .collect();
    // Like the kernel, count only alignments that are powers of two, and at least a page.
    let max_align = loads
        .iter()
        .map(|p| p.p_align)
        .filter(|a| a.is_power_of_two())
        .max()
        .unwrap_or(1)
        .max(verify::PAGE);
    let max_end = loads
        .iter()
        .map(|p| p.p_vaddr.saturating_add(p.p_memsz))
        .max()
        .unwrap_or(0);
    let seg_off = align(ef.size, FILE_ALIGN);
    let seg_vaddr = align(max_end, max_align) + seg_off % max_align;
    let word = if is64 { 8 } else { 4 };
    let addr = |rel: u64| seg_vaddr + rel;

    let mut seg = record::tail_marker(ef.size).to_vec();
    // Moved pieces first, each congruent to its old offset mod 16 (notes need 4 or 8).
    let mut relocations: Vec<(u64, u64, u64)> = Vec::new(); // (old start, old end, new rel)
    if let Some(m) = &moved {
        for &(a, b) in m {
            pad_to(&mut seg, 16);
            let rel = seg.len() as u64 + a % 16;
            seg.resize(rel as usize, 0);
            let start = seg.len();
            seg.resize(start + (b - a) as usize, 0);
            file.read_exact_at(&mut seg[start..], a)?;
            relocations.push((a, b, rel));
        }
    }
    pad_to(&mut seg, word * 2);
    let dyn_rel = seg.len() as u64;
    let n_dyn = ef.dynamic.len() + (needed.len() - slots.len()) + 1;
    seg.resize(seg.len() + n_dyn * dyn_size as usize, 0);
    // `.dynstr` (its length known once the record is), then `.gnu.version_r`: a section after
    // `.dynstr` in the file is what patchelf needs to grow the tables of a non-PIE executable
    // (it asserts one follows the last table it replaces).
    let str_rel = seg.len() as u64;
    let vn_copy = new_verneed(file, ef, needed, &offsets)?;
    let verneed = vn_copy.is_some();

    let first_load = loads.first().copied();
    // Where a moved byte went: (delta of the file offset, delta of the address).
    let moved_to = |off: u64| -> Option<(u64, u64)> {
        let l = first_load?;
        relocations
            .iter()
            .find(|&&(a, b, _)| off >= a && off < b)
            .map(|&(a, _, rel)| {
                // Wrapping: the output check refuses what a lying first segment makes of it.
                let old_addr = a.wrapping_sub(l.p_offset).wrapping_add(l.p_vaddr);
                (
                    (seg_off + rel).wrapping_sub(a),
                    addr(rel).wrapping_sub(old_addr),
                )
            })
    };
    // The new address of a moved table, by its old address.
    let moved_addr = |old: u64| -> Option<u64> {
        let l = first_load?;
        let off = old.checked_sub(l.p_vaddr)? + l.p_offset;
        moved_to(off).map(|(_, d_addr)| old.wrapping_add(d_addr))
    };

    // 4. Program headers; the new PT_LOAD (its size known once the record is) goes after
    // every other entry, so the others keep their slots and the record stays small.
    let mut phdrs: Vec<ProgramHeader> = ef.phdrs.clone();
    if let Some(keep) = merged_note {
        let drop = dropped[dropped.len() - 1];
        let end = ef.phdrs[drop].p_offset + ef.phdrs[drop].p_filesz;
        phdrs[keep].p_filesz = end - phdrs[keep].p_offset;
        phdrs[keep].p_memsz = phdrs[keep].p_filesz;
    }
    for p in &mut phdrs {
        match p.p_type {
            ph::PT_DYNAMIC => {
                p.p_offset = seg_off + dyn_rel;
                p.p_vaddr = addr(dyn_rel);
                p.p_paddr = addr(dyn_rel);
                p.p_filesz = n_dyn as u64 * dyn_size;
                p.p_memsz = p.p_filesz;
            }
            ph::PT_PHDR => {
                p.p_filesz = new_phnum as u64 * phent;
                p.p_memsz = p.p_filesz;
            }
            ph::PT_LOAD | ph::PT_NULL => {}
            _ => {
                if let Some((d_off, d_addr)) = moved_to(p.p_offset).filter(|_| p.p_filesz > 0) {
                    p.p_offset = p.p_offset.wrapping_add(d_off);
                    p.p_vaddr = p.p_vaddr.wrapping_add(d_addr);
                    p.p_paddr = p.p_paddr.wrapping_add(d_addr);
                }
            }
        }
    }
    // Freed entries leave the table; the new PT_LOAD goes after every other entry (PT_LOADs
    // must stay in address order), and PT_NULLs keep the table's length.
    let mut phdrs: Vec<ProgramHeader> = phdrs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, p)| p)
        .collect();
    let load_slot = reuse_null.unwrap_or(phdrs.len());
    if reuse_null.is_none() {
        phdrs.push(ProgramHeader::default());
    }
    phdrs.resize(new_phnum, ProgramHeader::default());
    let mut head = original_head.clone();
    let table = encode_all(phdrs, phent as usize, ctx, "program headers")?;
    head[phoff as usize..][..table.len()].copy_from_slice(&table);

    // 5. The record: the original ELF header, and the original bytes of every program header
    // slot that changes (the new PT_LOAD's always does).
    let slot =
        |i: usize| (phoff + i as u64 * phent) as usize..(phoff + (i as u64 + 1) * phent) as usize;
    let ehsize = usize::from(hdr.e_ehsize);
    let mut patches = vec![(0, original_head[..ehsize].to_vec())];
    for i in 0..new_phnum {
        let r = slot(i);
        if i == load_slot || head[r.clone()] != original_head[r.clone()] {
            patches.push((r.start as u64, original_head[r].to_vec()));
        }
    }
    let mut rec = Record {
        original_size: ef.size,
        stamped_size: 0,
        at: ef.size,
        inserted: 0,
        patches,
    };
    let record_len = rec.to_string_bytes().len();
    let strsz = (dynstr.len() + record_len) as u64;
    let vn_rel = align(str_rel + strsz, 4);
    let seg_len = match &vn_copy {
        Some(v) => vn_rel + v.len() as u64,
        None => str_rel + strsz,
    };

    // 6. Section headers: a fixed-up copy after the segment (the old table is left as is).
    let sht_rel = align(seg_len, 8);
    let sht = ef.shdrs.iter().map(|s| {
        let mut s = s.clone();
        match moved_table(ef, &s) {
            Some(Table::Dynamic) => {
                s.sh_offset = seg_off + dyn_rel;
                s.sh_addr = addr(dyn_rel);
                s.sh_size = n_dyn as u64 * dyn_size;
                return s;
            }
            Some(Table::Dynstr) => {
                s.sh_offset = seg_off + str_rel;
                s.sh_addr = addr(str_rel);
                s.sh_size = strsz;
                return s;
            }
            Some(Table::Verneed) => {
                s.sh_offset = seg_off + vn_rel;
                s.sh_addr = addr(vn_rel);
                return s;
            }
            None => {}
        }
        if let Some((d_off, d_addr)) =
            moved_to(s.sh_offset).filter(|_| s.sh_type != sh::SHT_NOBITS && s.sh_size > 0)
        {
            s.sh_offset = s.sh_offset.wrapping_add(d_off);
            s.sh_addr = s.sh_addr.wrapping_add(d_addr);
        }
        s
    });
    let sht = encode_all(sht, SectionHeader::size(ctx), ctx, "section headers")?;
    let (new_shoff, stamped_size) = if ef.shdrs.is_empty() {
        (hdr.e_shoff, seg_off + seg_len)
    } else {
        (seg_off + sht_rel, seg_off + sht_rel + sht.len() as u64)
    };

    // 7. Fill in: .dynamic, .dynstr with the record, the new PT_LOAD, the ELF header.
    let mut dyns = new_dynamic(ef, &slots, needed, &offsets, strsz, |d| match d.d_tag {
        dynamic::DT_STRTAB => addr(str_rel),
        dynamic::DT_VERNEED if verneed => addr(vn_rel),
        t if MOVABLE_TAGS.contains(&t) => moved_addr(d.d_val).unwrap_or(d.d_val),
        _ => d.d_val,
    });
    dyns.push(Dyn {
        d_tag: dynamic::DT_NULL,
        d_val: 0,
    });
    let table = encode_all(dyns, dyn_size as usize, ctx, ".dynamic")?;
    seg[dyn_rel as usize..][..table.len()].copy_from_slice(&table);
    rec.stamped_size = stamped_size;
    dynstr.extend_from_slice(&rec.to_string_bytes());
    seg.extend_from_slice(&dynstr);
    if let Some(v) = &vn_copy {
        pad_to(&mut seg, 4);
        seg.extend_from_slice(v);
    }
    let new_load = ProgramHeader {
        p_type: ph::PT_LOAD,
        p_flags: ph::PF_R | ph::PF_W,
        p_offset: seg_off,
        p_vaddr: seg_vaddr,
        p_paddr: seg_vaddr,
        p_filesz: seg_len,
        p_memsz: seg_len,
        p_align: max_align,
    };
    head.pwrite_with(new_load, slot(load_slot).start, ctx)
        .map_err(encode_error("program headers"))?;
    let mut new_hdr: Header = *hdr;
    new_hdr.e_phnum = new_phnum as u16;
    new_hdr.e_shoff = new_shoff;
    head.pwrite_with(new_hdr, 0, ctx.le)
        .map_err(encode_error("the ELF header"))?;

    let mut tail = seg;
    if !ef.shdrs.is_empty() {
        tail.resize(sht_rel as usize, 0);
        tail.extend_from_slice(&sht);
    }
    debug_assert_eq!(seg_off + tail.len() as u64, stamped_size);
    let stamped = verify::Overlay {
        base: file,
        base_size: ef.size,
        head: &head,
        tail_offset: seg_off,
        tail: &tail,
    };
    verify::output(
        &stamped,
        ef.info.interpreter.as_deref(),
        needed,
        Some(seg_off),
    )?;
    Ok(Stamp {
        tail_offset: seg_off,
        tail,
        head,
    })
}

/// The tables whose section headers move to the new segment.
enum Table {
    Dynamic,
    Dynstr,
    Verneed,
}

/// Which of the tables the new segment takes a copy of `s` is, if any.
fn moved_table(ef: &ElfFile, s: &SectionHeader) -> Option<Table> {
    let alloc = s.sh_flags & u64::from(sh::SHF_ALLOC) != 0;
    match s.sh_type {
        sh::SHT_DYNAMIC => Some(Table::Dynamic),
        sh::SHT_STRTAB if alloc && s.sh_addr == ef.dynstr_addr => Some(Table::Dynstr),
        sh::SHT_GNU_VERNEED if ef.verneed.is_some() => Some(Table::Verneed),
        _ => None,
    }
}

/// PT_LOADs that hold nothing once `.dynamic`, `.dynstr` and `.gnu.version_r` have moved to
/// the new segment: patchelf puts those tables in a segment of their own, and its later runs
/// can leave a segment holding nothing at all (`--set-interpreter` moving `.interp` again).
/// Such a segment, left in the table, has no section in it; strip then shrinks it to nothing
/// at an offset no longer congruent to its address, and the loader refuses the file ("ELF load
/// command address/offset not page-aligned"). Its entry is dropped instead (its bytes stay in
/// the file, unreferenced). Only with section headers, which say what a segment holds, and
/// only when nothing else refers to its addresses: no other section or segment, no dynamic
/// tag, not the entry point, not the program header table.
fn emptied_loads(ef: &ElfFile, ph_end: u64) -> Vec<usize> {
    if ef.shdrs.is_empty() {
        return Vec::new();
    }
    let alloc = u64::from(sh::SHF_ALLOC);
    let overlaps = |p: &ProgramHeader, a: u64, len: u64| {
        a < p.p_vaddr.saturating_add(p.p_memsz) && a.saturating_add(len.max(1)) > p.p_vaddr
    };
    let rewritten_tags = [dynamic::DT_STRTAB, dynamic::DT_VERNEED];
    ef.phdrs
        .iter()
        .enumerate()
        .filter(|&(_, p)| {
            // Only a plain copy of file bytes: a segment with a zero-filled part may be there
            // to reserve address space.
            p.p_type == ph::PT_LOAD
                && p.p_filesz > 0
                && p.p_memsz == p.p_filesz
                && p.p_offset >= ph_end
                && !overlaps(p, ef.header.e_entry, 1)
        })
        .filter(|&(_, p)| {
            ef.shdrs.iter().all(|s| {
                s.sh_flags & alloc == 0
                    || s.sh_size == 0
                    || moved_table(ef, s).is_some()
                    || !overlaps(p, s.sh_addr, s.sh_size)
            })
        })
        .filter(|&(i, p)| {
            ef.phdrs.iter().enumerate().all(|(j, q)| {
                i == j
                    || matches!(q.p_type, ph::PT_LOAD | ph::PT_DYNAMIC)
                    || q.p_memsz == 0
                    || !overlaps(p, q.p_vaddr, q.p_memsz)
            })
        })
        .filter(|&(_, p)| {
            ef.dynamic.iter().all(|d| {
                !shift::ADDRESS_TAGS.contains(&d.d_tag)
                    || rewritten_tags.contains(&d.d_tag)
                    || !overlaps(p, d.d_val, 1)
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// Two PT_NOTEs where the second continues the first exactly (in the file and in memory, same
/// alignment, the first a whole number of aligned notes): the second's entry can be freed by
/// growing the first over it, as linkers lay out notes anyway. `(first, second)`.
fn mergeable_notes(ef: &ElfFile) -> Option<(usize, usize)> {
    let notes: Vec<(usize, &ProgramHeader)> = ef
        .phdrs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p_type == ph::PT_NOTE && p.p_filesz > 0 && p.p_filesz == p.p_memsz)
        .collect();
    notes.iter().find_map(|&(i, a)| {
        let align = a.p_align.max(4);
        notes
            .iter()
            .find(|&&(_, b)| {
                b.p_align.max(4) == align
                    && a.p_filesz % align == 0
                    && b.p_offset == a.p_offset + a.p_filesz
                    && b.p_vaddr == a.p_vaddr.wrapping_add(a.p_filesz)
            })
            .map(|&(j, _)| (i, j))
    })
}

/// Indexes of the DT_NEEDED entries in `.dynamic`; the plan must cover each of them.
fn needed_slots(ef: &ElfFile, needed: &[String]) -> Result<Vec<usize>, WriteError> {
    let slots: Vec<usize> = ef
        .dynamic
        .iter()
        .enumerate()
        .filter(|(_, d)| d.d_tag == dynamic::DT_NEEDED)
        .map(|(i, _)| i)
        .collect();
    if slots.is_empty() || needed.len() < slots.len() {
        return Err(WriteError::Unsupported(
            "the plan does not cover every DT_NEEDED entry".into(),
        ));
    }
    Ok(slots)
}

/// The new dynamic string table (old bytes unchanged, each new string appended once) and the
/// offset of every name the new `.dynamic` refers to.
fn string_table<'a>(
    ef: &'a ElfFile,
    slots: &[usize],
    needed: &'a [String],
) -> (Vec<u8>, HashMap<&'a str, u64>) {
    let mut dynstr = ef.dynstr.clone();
    let mut offsets: HashMap<&str, u64> = HashMap::new();
    for (k, &i) in slots.iter().enumerate() {
        offsets
            .entry(ef.info.needed[k].as_str())
            .or_insert(ef.dynamic[i].d_val);
    }
    for s in needed {
        offsets.entry(s.as_str()).or_insert_with(|| {
            let off = dynstr.len() as u64;
            dynstr.extend_from_slice(s.as_bytes());
            dynstr.push(0);
            off
        });
    }
    (dynstr, offsets)
}

/// The new `.dynamic` entries (no DT_NULL): every DT_NEEDED slot points at its plan entry, the
/// rest of the plan follows the last slot, DT_STRSZ is the new table's size, and `map` gives
/// every other entry its new value.
fn new_dynamic(
    ef: &ElfFile,
    slots: &[usize],
    needed: &[String],
    offsets: &HashMap<&str, u64>,
    strsz: u64,
    map: impl Fn(&Dyn) -> u64,
) -> Vec<Dyn> {
    let last_slot = *slots.last().unwrap();
    let mut dyns: Vec<Dyn> = Vec::with_capacity(ef.dynamic.len() + needed.len());
    let mut k = 0;
    for (i, d) in ef.dynamic.iter().enumerate() {
        let mut d = d.clone();
        match d.d_tag {
            dynamic::DT_NEEDED => {
                d.d_val = offsets[needed[k].as_str()];
                k += 1;
            }
            dynamic::DT_STRSZ => d.d_val = strsz,
            _ => d.d_val = map(&d),
        }
        dyns.push(d);
        if i == last_slot {
            for s in &needed[slots.len()..] {
                dyns.push(Dyn {
                    d_tag: dynamic::DT_NEEDED,
                    d_val: offsets[s.as_str()],
                });
            }
        }
    }
    dyns
}

/// A copy of the version-needs table with `vn_file` rewritten for renamed libraries.
fn new_verneed(
    file: &dyn Source,
    ef: &ElfFile,
    needed: &[String],
    offsets: &HashMap<&str, u64>,
) -> Result<Option<Vec<u8>>, WriteError> {
    let Some((off, len)) = ef.verneed else {
        return Ok(None);
    };
    let mut v = vec![0u8; len as usize];
    file.read_exact_at(&mut v, off)?;
    let renames: HashMap<&str, u64> = ef
        .info
        .needed
        .iter()
        .zip(needed)
        .filter(|(old, new)| old != new)
        .map(|(old, new)| (old.as_str(), offsets[new.as_str()]))
        .collect();
    rewrite_vn_file(&mut v, &ef.dynstr, &renames, ef.ctx.le)?;
    Ok(Some(v))
}

/// Dynamic tags whose target may move: the loader finds these tables only through the tag.
const MOVABLE_TAGS: &[u64] = &[
    dynamic::DT_SYMTAB,
    dynamic::DT_GNU_HASH,
    dynamic::DT_HASH,
    dynamic::DT_VERSYM,
    dynamic::DT_VERNEED,
];

/// The bytes right after the program header table (`.interp`, notes, tables reached through
/// a dynamic tag) that move into the new segment to make room for one more program header,
/// until at least `need_end` is covered: the file ranges that move, in the order they are
/// placed (notes first, then `.interp`, which keeps `objcopy --only-keep-debug` content with
/// the section order).
fn room_after_phdrs(
    ef: &ElfFile,
    ph_end: u64,
    need_end: u64,
) -> Result<Vec<(u64, u64)>, WriteError> {
    let no_room = |why: &str| Err(WriteError::NoRoom(why.to_string()));
    let first_load_end = ef
        .phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD && p.p_offset <= ef.header.e_phoff)
        .map(|p| p.p_offset + p.p_filesz)
        .max()
        .unwrap_or(0);
    if need_end > first_load_end {
        return no_room("the segment holding the program header table ends right after it");
    }
    let interp = ef
        .phdrs
        .iter()
        .find(|p| p.p_type == ph::PT_INTERP)
        .map(|p| p.p_offset);
    // Movable ranges: .interp and notes (known from program headers, so this works without
    // section headers), and tables reached only through a dynamic tag (their extent comes
    // from section headers).
    let mut movable: Vec<(u64, u64)> = ef
        .phdrs
        .iter()
        .filter(|p| matches!(p.p_type, ph::PT_INTERP | ph::PT_NOTE | ph::PT_GNU_PROPERTY))
        .filter(|p| p.p_filesz > 0)
        .map(|p| (p.p_offset, p.p_offset + p.p_filesz))
        .collect();
    let tag_addrs: Vec<u64> = ef
        .dynamic
        .iter()
        .filter(|d| MOVABLE_TAGS.contains(&d.d_tag))
        .map(|d| d.d_val)
        .collect();
    movable.extend(
        ef.shdrs
            .iter()
            .filter(|s| {
                s.sh_type != sh::SHT_NOBITS && s.sh_size > 0 && tag_addrs.contains(&s.sh_addr)
            })
            .map(|s| (s.sh_offset, s.sh_offset + s.sh_size)),
    );
    movable.sort();
    // Merge overlaps (PT_GNU_PROPERTY lies inside a PT_NOTE), keep those in the way.
    let mut taken: Vec<(u64, u64)> = Vec::new();
    for (a, b) in movable {
        match taken.last_mut() {
            Some(last) if a < last.1 => last.1 = last.1.max(b),
            _ => taken.push((a, b)),
        }
    }
    taken.retain(|&(a, b)| a < need_end && b > ph_end);
    // The old `.dynamic` need not move: the stamp writes a new one and points PT_DYNAMIC at
    // it in the same commit, so its bytes may be overwritten (the record keeps them). patchelf
    // puts it right after the program header table when it rewrites a non-PIE executable.
    let replaced: Option<(u64, u64)> = ef
        .phdrs
        .iter()
        .find(|p| p.p_type == ph::PT_DYNAMIC && p.p_filesz > 0)
        .map(|p| (p.p_offset, p.p_offset.saturating_add(p.p_filesz)));
    let inside_taken = |a: u64, b: u64| {
        taken
            .iter()
            .chain(replaced.as_ref())
            .any(|&(x, y)| a >= x && b <= y)
    };

    if ef.shdrs.is_empty() {
        // Without section headers nothing says what unclaimed bytes hold: every byte of the
        // room must be a movable piece, or alignment padding between two.
        let mut cursor = ph_end;
        let mut pieces: Vec<(u64, u64)> = taken.iter().chain(replaced.as_ref()).copied().collect();
        pieces.sort();
        for &(a, b) in &pieces {
            if a > cursor && a - cursor >= 16 {
                break;
            }
            cursor = cursor.max(b);
        }
        if cursor < need_end {
            return no_room("the program header table is not followed by .interp or notes");
        }
    } else {
        // Bytes no section claims are free (patchelf leaves such gaps); everything that is
        // claimed must move.
        let overlaps = |a: u64, b: u64| a < need_end && b > ph_end;
        if ef.shdrs.iter().any(|s| {
            let (a, b) = (s.sh_offset, s.sh_offset.saturating_add(s.sh_size));
            s.sh_type != sh::SHT_NOBITS && s.sh_size > 0 && overlaps(a, b) && !inside_taken(a, b)
        }) {
            return no_room("a section that cannot move follows the program header table");
        }
    }
    if ef.phdrs.iter().any(|p| {
        let (a, b) = (p.p_offset, p.p_offset.saturating_add(p.p_filesz));
        !matches!(p.p_type, ph::PT_LOAD | ph::PT_PHDR | ph::PT_DYNAMIC)
            && p.p_filesz > 0
            && a < need_end
            && b > ph_end
            && !inside_taken(a, b)
    }) {
        return no_room("a segment that cannot move follows the program header table");
    }
    // Notes first, then .interp, then the tables.
    let is_note = |a: u64| {
        ef.phdrs
            .iter()
            .any(|p| p.p_type == ph::PT_NOTE && p.p_offset <= a && a < p.p_offset + p.p_filesz)
    };
    taken.sort_by_key(|&(a, _)| (!is_note(a), Some(a) != interp, a));
    Ok(taken)
}

/// Points each `vn_file` whose library got a new DT_NEEDED string at that same string: glibc
/// matches `vn_file` against the names the library was loaded under.
fn rewrite_vn_file(
    v: &mut [u8],
    dynstr: &[u8],
    renames: &HashMap<&str, u64>,
    le: scroll::Endian,
) -> Result<(), WriteError> {
    let corrupt = || WriteError::Elf(ElfError::Corrupt("version-needs table".into()));
    let mut off = 0usize;
    loop {
        let file_off: u32 = v.pread_with(off + 4, le).map_err(|_| corrupt())?;
        let next: u32 = v.pread_with(off + 12, le).map_err(|_| corrupt())?;
        if let Some(&new) = cstr(dynstr, file_off as usize).and_then(|n| renames.get(n)) {
            v.pwrite_with(new as u32, off + 4, le)
                .map_err(|_| corrupt())?;
        }
        if next == 0 {
            return Ok(());
        }
        off += next as usize;
        if off + 16 > v.len() {
            return Err(corrupt());
        }
    }
}

fn cstr(table: &[u8], off: usize) -> Option<&str> {
    let rest = table.get(off..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

use scroll::ctx::SizeWith;
