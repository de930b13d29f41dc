//! The spare layout: for a stamp that only renames DT_NEEDED entries (a library gets its own
//! entries made absolute, nothing added), the new dynamic string table goes into the zero
//! padding after a read-only PT_LOAD, which grows over it; `.dynamic` and `.gnu.version_r` are
//! edited where they are. No segment is added and the file does not grow.
//!
//! Why: the in-place layout's extra segment costs every process that loads the library one
//! more mapping, and a copy-on-write page (glibc writes to `.dynamic`, so the segment holding
//! the new one must be writable) — for a library whose every user is stamped, the stamp's only
//! effect. Here the loader maps exactly what it mapped before.
//!
//! The edits are spread over the file (program header, `.dynamic`, `.gnu.version_r`, the
//! `.dynstr` section header, the padding), so no single write can commit them: the file is
//! written anew beside the old one and renamed over it (`replace.rs`), and undone the same way
//! (the record's replace flag). Where that cannot be done (other hard links, extended
//! attributes, a read-only directory) the in-place layout is used instead.

use std::fs::File;
use std::path::Path;

use goblin::elf::dynamic::{self, Dyn};
use goblin::elf::program_header::{self as ph, ProgramHeader};
use goblin::elf::section_header::{self as sh, SectionHeader};
use scroll::ctx::SizeWith;

use super::replace::{replace_file, Piece, Rewrite};
use super::tables::{
    encode_all, needed_slots, new_dynamic, new_verneed, record_names, string_table,
};
use super::{verify, WriteError};
use crate::elf::stamped::Record;
use crate::elf::{ElfFile, Source};

/// A spare stamp: the bytes to lay over a copy of the file.
pub(super) struct Spare {
    patches: Vec<(u64, Vec<u8>)>,
    size: u64,
}

/// The spare stamp of `ef` for `needed`, when it applies: as many entries as the file has
/// DT_NEEDED slots, and zero padding after a read-only PT_LOAD large enough for the new table.
/// `None` when it does not apply (the caller uses another layout).
pub(super) fn build(
    file: &dyn Source,
    ef: &ElfFile,
    needed: &[String],
) -> Result<Option<Spare>, WriteError> {
    if ef.dynamic.is_empty() || !ef.info.kind.is_dynamic() || text_relocations(ef) {
        return Ok(None);
    }
    let slots = needed_slots(ef, needed)?;
    if slots.len() != needed.len() {
        return Ok(None);
    }
    let ctx = ef.ctx;
    let Some(dyn_off) = ef
        .phdrs
        .iter()
        .find(|p| p.p_type == ph::PT_DYNAMIC)
        .map(|p| p.p_offset)
    else {
        return Ok(None);
    };
    let (mut dynstr, offsets) = string_table(ef, &slots, needed);
    let verneed = new_verneed(file, ef, needed, &offsets)?;
    let dynstr_shdr = ef.shdrs.iter().position(|s| {
        s.sh_type == sh::SHT_STRTAB
            && s.sh_flags & u64::from(sh::SHF_ALLOC) != 0
            && s.sh_addr == ef.dynstr_addr
    });
    if !ef.shdrs.is_empty() && dynstr_shdr.is_none() {
        // Section headers that do not describe the table: nothing to point at the new one.
        return Ok(None);
    }

    let Some(any_load) = ef.phdrs.iter().position(|p| p.p_type == ph::PT_LOAD) else {
        return Ok(None);
    };
    let edits =
        |load: usize, at_off: u64, at_addr: u64, strsz: u64| -> Result<Vec<Edit>, WriteError> {
            let mut edits = Vec::new();
            // One edit per entry (of `size` bytes) that `items`, written at `at`, change.
            let mut edit = |at: u64, bytes: Vec<u8>, size: usize| -> Result<(), WriteError> {
                edits.extend(diff(file, at, &bytes, size)?);
                Ok(())
            };
            // The PT_LOAD grows over the table, which starts right at its end.
            let mut p = ef.phdrs[load].clone();
            p.p_filesz += strsz;
            p.p_memsz = p.p_filesz;
            let phent = ProgramHeader::size(ctx);
            let slot = ef.header.e_phoff + (load * phent) as u64;
            edit(slot, encode_all([p], phent, ctx, "program headers")?, phent)?;
            let dyns = new_dynamic(ef, &slots, needed, &offsets, strsz, |d| match d.d_tag {
                dynamic::DT_STRTAB => at_addr,
                _ => d.d_val,
            });
            let dyn_size = Dyn::size_with(&ctx);
            edit(
                dyn_off,
                encode_all(dyns, dyn_size, ctx, ".dynamic")?,
                dyn_size,
            )?;
            if let (Some(v), Some((vn_off, _))) = (&verneed, ef.verneed) {
                edit(vn_off, v.clone(), 4)?;
            }
            if let Some(i) = dynstr_shdr {
                let mut s = ef.shdrs[i].clone();
                s.sh_offset = at_off;
                s.sh_addr = at_addr;
                s.sh_size = strsz;
                let shent = SectionHeader::size(ctx);
                let at = ef.header.e_shoff + (i * shent) as u64;
                edit(at, encode_all([s], shent, ctx, "section headers")?, shent)?;
            }
            Ok(edits)
        };
    // The record: the original bytes of every edit, and the padding the table goes over (a
    // zero run). Its length does not depend on the values in it (fixed-width fields, and the
    // same entries change wherever the table goes), so the table's length is known before
    // where it goes is.
    let names = record_names(file, ef, needed)?;
    let record = |edits: &[Edit], at_off: u64, strsz: u64| {
        let mut patches: Vec<(u64, Vec<u8>)> =
            edits.iter().map(|e| (e.at, e.old.clone())).collect();
        patches.push((at_off, vec![0; strsz as usize]));
        Record {
            original_size: ef.size,
            stamped_size: ef.size,
            at: ef.size,
            inserted: 0,
            patches,
            names: Some(names.clone()),
            replace: true,
        }
        .to_string_bytes()
    };
    let unplaced = dynstr.len() as u64;
    let sizing = edits(any_load, 0, ef.dynstr_addr.wrapping_add(1), unplaced)?;
    let strsz = unplaced + record(&sizing, 0, unplaced).len() as u64;
    let Some((load, at_off, at_addr)) = spare_room(file, ef, strsz)? else {
        return Ok(None);
    };
    let edits = edits(load, at_off, at_addr, strsz)?;
    dynstr.extend_from_slice(&record(&edits, at_off, strsz));
    if dynstr.len() as u64 != strsz || edits.len() != sizing.len() {
        // The sizing run saw a table short enough to save its padding as bytes, not as a
        // zero run: not worth a second pass, the in-place layout takes it.
        return Ok(None);
    }
    let mut patches: Vec<(u64, Vec<u8>)> = edits.into_iter().map(|e| (e.at, e.new)).collect();
    patches.push((at_off, dynstr));
    Ok(Some(Spare {
        patches,
        size: ef.size,
    }))
}

/// Writes the spare stamp of the file open as `file` at `path` as a new file renamed over it,
/// checked first: it must read back with exactly `needed`, keep every loader rule, and carry
/// the record. [`WriteError::KeepInPlace`] when the file cannot be replaced.
pub(super) fn write(
    path: &Path,
    file: &File,
    stamp: &Spare,
    interpreter: Option<&str>,
    needed: &[String],
) -> Result<(), WriteError> {
    let rewrite = Rewrite {
        pieces: vec![Piece::Copy {
            from: 0,
            len: stamp.size,
        }],
        patches: stamp.patches.clone(),
    };
    replace_file(path, file, &rewrite, |new| {
        let ef = verify::output(new, interpreter, needed, None)?;
        match Record::find(&ef.dynstr) {
            Some(_) => Ok(()),
            None => Err(WriteError::Unsupported(
                "the rewritten file did not read back as planned; left unchanged".into(),
            )),
        }
    })
    .map(drop)
}

/// Where the new table of `len` bytes can go: right after a read-only PT_LOAD whose file and
/// memory sizes agree, over bytes that are all zero, that no section, segment or the section
/// header table uses, and that stay clear of every other PT_LOAD's pages (in the file and in
/// memory), so the grown segment maps nothing it did not map before but its own padding.
/// `(index of the PT_LOAD, file offset, address)`; the first that fits, in table order,
/// after a segment that is not executable if one has room (so the table is not mapped
/// executable where it need not be).
fn spare_room(
    file: &dyn Source,
    ef: &ElfFile,
    len: u64,
) -> Result<Option<(usize, u64, u64)>, WriteError> {
    // Clear by the largest page a loader of this file may map with (its largest PT_LOAD
    // alignment, at least 4 KiB): on a 64 KiB-page machine a 4 KiB gap is not a gap.
    let page = verify::max_load_align(&ef.phdrs);
    let page_down = |v: u64| v & !(page - 1);
    let sht_size = SectionHeader::size(ef.ctx) as u64 * ef.shdrs.len() as u64;
    let by_preference = ef
        .phdrs
        .iter()
        .enumerate()
        .filter(|(_, p)| p.p_flags & ph::PF_X == 0)
        .chain(
            ef.phdrs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.p_flags & ph::PF_X != 0),
        );
    for (i, p) in by_preference {
        // Readable (a segment mapped with no access is not somewhere the loader can read the
        // table), not writable.
        if p.p_type != ph::PT_LOAD
            || p.p_flags & ph::PF_R == 0
            || p.p_flags & ph::PF_W != 0
            || p.p_filesz == 0
            || p.p_filesz != p.p_memsz
        {
            continue;
        }
        let (Some(off), Some(addr)) = (
            p.p_offset.checked_add(p.p_filesz),
            p.p_vaddr.checked_add(p.p_memsz),
        ) else {
            continue;
        };
        let (Some(off_end), Some(addr_end)) = (off.checked_add(len), addr.checked_add(len)) else {
            continue;
        };
        if off_end > ef.size {
            continue;
        }
        let clear_of = |a: u64, b: u64, x: u64, y: u64| b <= x || a >= y;
        // Clear of `len` bytes at `start` (none: clear), in the file and in memory.
        let file_clear = |start: u64, len: u64| {
            len == 0 || clear_of(off, off_end, start, start.saturating_add(len))
        };
        let mem_clear = |start: u64, len: u64| {
            len == 0 || clear_of(addr, addr_end, start, start.saturating_add(len))
        };
        let loads_clear = ef.phdrs.iter().enumerate().all(|(j, q)| {
            j == i
                || q.p_type != ph::PT_LOAD
                // Not into another segment's bytes, nor into a page it maps.
                || (file_clear(q.p_offset, q.p_filesz)
                    && clear_of(
                        addr,
                        addr_end,
                        page_down(q.p_vaddr),
                        q.p_vaddr.saturating_add(q.p_memsz),
                    ))
        });
        let others_clear = ef.phdrs.iter().all(|q| {
            q.p_type == ph::PT_LOAD
                || (file_clear(q.p_offset, q.p_filesz) && mem_clear(q.p_vaddr, q.p_memsz))
        });
        let sections_clear = ef
            .shdrs
            .iter()
            .all(|s| s.sh_type == sh::SHT_NOBITS || file_clear(s.sh_offset, s.sh_size));
        let table_clear = file_clear(ef.header.e_shoff, sht_size);
        // Before, the loader could read these bytes only as zeros past the end of a table; a
        // table a header stretches (or points) into them must not read our bytes instead.
        let tables_clear = dynamic_ranges(ef)
            .into_iter()
            .all(|(a, b)| clear_of(addr, addr_end, a, b));
        let head_clear = off
            >= ef
                .header
                .e_phoff
                .saturating_add(u64::from(ef.header.e_phnum) * ProgramHeader::size(ef.ctx) as u64);
        if !(loads_clear
            && others_clear
            && sections_clear
            && table_clear
            && head_clear
            && tables_clear)
        {
            continue;
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, off)?;
        if bytes.iter().all(|&b| b == 0) {
            return Ok(Some((i, off, addr)));
        }
    }
    Ok(None)
}

/// Relocations that write into read-only segments (DT_TEXTREL, DF_TEXTREL): such a file's
/// read-only bytes are written at load time; the spare layout leaves it alone.
fn text_relocations(ef: &ElfFile) -> bool {
    const DF_TEXTREL: u64 = 0x4;
    ef.dynamic.iter().any(|d| {
        d.d_tag == dynamic::DT_TEXTREL
            || (d.d_tag == dynamic::DT_FLAGS && d.d_val & DF_TEXTREL != 0)
    })
}

/// The address ranges the dynamic section points the loader at: every table with a size tag
/// over that size, every other address tag as one byte.
fn dynamic_ranges(ef: &ElfFile) -> Vec<(u64, u64)> {
    const SIZED: &[(u64, u64)] = &[
        (dynamic::DT_RELA, dynamic::DT_RELASZ),
        (dynamic::DT_REL, dynamic::DT_RELSZ),
        (dynamic::DT_JMPREL, dynamic::DT_PLTRELSZ),
        (36, 35), // DT_RELR, DT_RELRSZ
        (dynamic::DT_INIT_ARRAY, dynamic::DT_INIT_ARRAYSZ),
        (dynamic::DT_FINI_ARRAY, dynamic::DT_FINI_ARRAYSZ),
        (dynamic::DT_PREINIT_ARRAY, dynamic::DT_PREINIT_ARRAYSZ),
        (dynamic::DT_STRTAB, dynamic::DT_STRSZ),
    ];
    let value = |tag: u64| ef.dynamic.iter().find(|d| d.d_tag == tag).map(|d| d.d_val);
    let mut ranges: Vec<(u64, u64)> = SIZED
        .iter()
        .filter_map(|&(at, size)| {
            let a = value(at)?;
            Some((a, a.saturating_add(value(size).unwrap_or(0).max(1))))
        })
        .collect();
    ranges.extend(
        ef.dynamic
            .iter()
            .filter(|d| super::shift::ADDRESS_TAGS.contains(&d.d_tag))
            .map(|d| (d.d_val, d.d_val.saturating_add(1))),
    );
    ranges
}

/// One edit of the file: `new` over `old` at `at`.
struct Edit {
    at: u64,
    old: Vec<u8>,
    new: Vec<u8>,
}

/// The edits that write `new` at `at`, one per `chunk`-byte piece that differs from the file
/// there (an entry, a field), so the record keeps no more than what changes.
fn diff(file: &dyn Source, at: u64, new: &[u8], chunk: usize) -> Result<Vec<Edit>, WriteError> {
    let mut old = vec![0u8; new.len()];
    file.read_exact_at(&mut old, at)?;
    Ok(old
        .chunks(chunk)
        .zip(new.chunks(chunk))
        .enumerate()
        .filter(|(_, (o, n))| o != n)
        .map(|(k, (o, n))| Edit {
            at: at + (k * chunk) as u64,
            old: o.to_vec(),
            new: n.to_vec(),
        })
        .collect())
}
