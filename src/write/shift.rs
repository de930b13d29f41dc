//! The shifted layout, for non-PIE executables (ET_EXEC) whose in-place stamp would cost more:
//! whole pages are inserted right after `.dynstr`, so the table grows where it is instead of
//! being copied (a copy is what makes the in-place stamp of a program exporting a large symbol
//! table, like node, grow by megabytes).
//!
//! Everything before the insertion point (ELF header, program headers, `.interp`, notes, hash
//! tables, `.dynsym`, `.dynstr`) keeps its file offset and moves down in memory by the inserted
//! length; the first PT_LOAD starts that much lower. Everything after it keeps its address and
//! moves later in the file. An ET_EXEC is loaded at fixed addresses, so the room below its first
//! segment is free. This is what patchelf does for executables, without its writable first
//! segment: `.dynamic` stays where it is (still writable) and takes the new entries in its spare
//! DT_NULL slots, so the layout applies only when there are enough of them.
//!
//! Every offset after the insertion point changes, so the result goes to a new file that
//! replaces the old one (`replace.rs`); a file that cannot be replaced keeps the in-place layout.

use std::fs::File;
use std::path::Path;

use goblin::elf::dynamic::{self, Dyn};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{self as ph, ProgramHeader};
use goblin::elf::section_header::{self as sh, SectionHeader};
use scroll::ctx::SizeWith;
use scroll::Pwrite;

use super::replace::{replace_file, Piece, Rewrite};
use super::tables::{
    align, described_by_sections, encode_all, encode_error, needed_slots, new_dynamic, new_verneed,
    record_names, string_table,
};
use super::WriteError;
use crate::elf::encode::encode_addr;
use crate::elf::stamped::{symtab_values, Record};
use crate::elf::{vaddr_to_offset, ElfFile, Source};

/// Lowest address a segment may start at (Linux's default `vm.mmap_min_addr`).
const MIN_ADDR: u64 = 0x10000;
/// Largest segment alignment we insert whole units of: old x86_64 files align to 2 MiB, and
/// inserting that much costs more than the copy it saves.
const MAX_UNIT: u64 = 0x10000;

/// Dynamic tags whose value is an address (`DT_RELR` and the `DT_TLSDESC_*`/`DT_SYMINFO`
/// tags by number: goblin does not name them all).
pub(super) const ADDRESS_TAGS: &[u64] = &[
    dynamic::DT_PLTGOT,
    dynamic::DT_HASH,
    dynamic::DT_STRTAB,
    dynamic::DT_SYMTAB,
    dynamic::DT_RELA,
    dynamic::DT_INIT,
    dynamic::DT_FINI,
    dynamic::DT_REL,
    dynamic::DT_JMPREL,
    dynamic::DT_INIT_ARRAY,
    dynamic::DT_FINI_ARRAY,
    dynamic::DT_PREINIT_ARRAY,
    36, // DT_RELR
    dynamic::DT_GNU_HASH,
    dynamic::DT_VERSYM,
    dynamic::DT_VERDEF,
    dynamic::DT_VERNEED,
    0x6fff_fef6, // DT_TLSDESC_PLT
    0x6fff_fef7, // DT_TLSDESC_GOT
    0x6fff_feff, // DT_SYMINFO
];

/// A shifted stamp, ready to write.
pub struct Shifted {
    /// Insertion point: the end of `.dynstr` in the original file.
    at: u64,
    /// Bytes inserted there: whole units of the largest segment alignment.
    pub inserted: u64,
    /// The start of the inserted bytes (new strings, then the record); zeros follow.
    strings: Vec<u8>,
    /// New bytes, at original file offsets.
    edits: Vec<(u64, Vec<u8>)>,
    original_size: u64,
    /// The original's PT_INTERP, which the new file must keep.
    interpreter: Option<String>,
}

/// The shifted stamp of `ef`, or `None` when the file does not fit this layout.
pub fn build(
    file: &dyn Source,
    ef: &ElfFile,
    needed: &[String],
) -> Result<Option<Shifted>, WriteError> {
    let ctx = ef.ctx;
    let hdr = &ef.header;
    if hdr.e_type != header::ET_EXEC || !described_by_sections(ef) || ef.dynamic.is_empty() {
        return Ok(None);
    }
    let loads: Vec<&ProgramHeader> = ef
        .phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .collect();
    let Some(first) = loads.iter().copied().min_by_key(|p| p.p_vaddr) else {
        return Ok(None);
    };
    // Whole units of the largest alignment go in (the input's alignments are powers of two:
    // `verify::input` has run).
    let unit = super::verify::max_load_align(&ef.phdrs);
    if first.p_offset != 0 || unit > MAX_UNIT {
        return Ok(None);
    }

    // The insertion point: the end of the dynamic string table, inside the first segment, with
    // only tables the loader finds through a program header or a dynamic tag before it.
    let strsz = ef.dynstr.len() as u64;
    let Some(str_off) = vaddr_to_offset(&ef.phdrs, ef.dynstr_addr, strsz) else {
        return Ok(None);
    };
    let at = str_off + strsz;
    let phent = ProgramHeader::size(ctx) as u64;
    if ef.dynstr_addr.checked_sub(first.p_vaddr) != Some(str_off)
        || at > first.p_filesz
        || hdr.e_shoff < at
        || hdr.e_phoff + phent * u64::from(hdr.e_phnum) > at
    {
        return Ok(None);
    }
    // Every section offset moves by the insertion: none may lie past the end (`.bss` too).
    if !head_holds_only_tables(ef, first, at) || ef.shdrs.iter().any(|s| s.sh_offset > ef.size) {
        return Ok(None);
    }

    // `.dynamic` takes the new entries in its spare slots.
    let Some(dyn_ph) = ef.phdrs.iter().find(|p| p.p_type == ph::PT_DYNAMIC) else {
        return Ok(None);
    };
    let dyn_size = Dyn::size_with(&ctx) as u64;
    let capacity = dyn_ph.p_filesz / dyn_size;
    let slots = needed_slots(ef, needed)?;
    let count = (ef.dynamic.len() + needed.len() - slots.len()) as u64 + 1;
    if dyn_ph.p_offset < at || count > capacity {
        return Ok(None);
    }

    // What is inserted: the new strings, then the record of what the edits replace.
    let (dynstr, offsets) = string_table(ef, &slots, needed);
    let mut regions = vec![
        (0, crate::elf::header_size(ef.ctx)),
        (hdr.e_phoff, phent * u64::from(hdr.e_phnum)),
        (dyn_ph.p_offset, capacity * dyn_size),
    ];
    if let Some((off, len)) = ef.verneed {
        regions.push((off, len));
    }
    let mut patches = Vec::new();
    for (off, len) in regions {
        let mut b = vec![0u8; len as usize];
        file.read_exact_at(&mut b, off)?;
        patches.push((off, b));
    }
    let mut record = Record {
        original_size: ef.size,
        stamped_size: 0,
        at,
        inserted: 0,
        patches,
        names: Some(record_names(file, ef, needed)?),
        replace: false,
    };
    // The record's length does not depend on the sizes it holds.
    let record_len = record.to_string_bytes().len() as u64;
    let inserted = align(dynstr.len() as u64 - strsz + record_len, unit);
    if first.p_vaddr < MIN_ADDR + inserted {
        return Ok(None);
    }
    record.inserted = inserted;
    record.stamped_size = ef.size + inserted;
    let mut strings = dynstr[ef.dynstr.len()..].to_vec();
    strings.extend_from_slice(&record.to_string_bytes());
    let new_strsz = strsz + strings.len() as u64;

    // Addresses in the first segment before the insertion point move down.
    let head_end = first.p_vaddr + at;
    let new_addr = |a: u64| {
        if a >= first.p_vaddr && a < head_end {
            a - inserted
        } else {
            a
        }
    };
    let mut edits: Vec<(u64, Vec<u8>)> = Vec::new();

    // `.dynamic`, in place.
    let mut dyns = new_dynamic(ef, &slots, needed, &offsets, new_strsz, |d| {
        if ADDRESS_TAGS.contains(&d.d_tag) {
            new_addr(d.d_val)
        } else {
            d.d_val
        }
    });
    dyns.resize(
        capacity as usize,
        Dyn {
            d_tag: dynamic::DT_NULL,
            d_val: 0,
        },
    );
    edits.push((
        dyn_ph.p_offset,
        encode_all(dyns, dyn_size as usize, ctx, ".dynamic")?,
    ));

    // `.gnu.version_r`, in place.
    if let (Some(v), Some((off, _))) = (new_verneed(file, ef, needed, &offsets)?, ef.verneed) {
        edits.push((off, v));
    }

    // Program headers: the first segment grows downwards; the rest follow their bytes.
    let phdrs = ef.phdrs.iter().map(|p0| {
        let mut p = p0.clone();
        if std::ptr::eq(p0, first) {
            p.p_vaddr -= inserted;
            p.p_paddr = p.p_paddr.wrapping_sub(inserted);
            p.p_filesz += inserted;
            p.p_memsz += inserted;
        } else if p.p_filesz == 0 && p.p_memsz == 0 {
            // PT_GNU_STACK and the like describe no bytes.
        } else if p.p_offset >= at {
            p.p_offset += inserted;
        } else {
            p.p_vaddr = p.p_vaddr.wrapping_sub(inserted);
            p.p_paddr = p.p_paddr.wrapping_sub(inserted);
        }
        p
    });
    edits.push((
        hdr.e_phoff,
        encode_all(phdrs, phent as usize, ctx, "program headers")?,
    ));

    // Section headers, where they were (they come after the insertion point).
    let shdrs = ef.shdrs.iter().map(|s| {
        let mut s = s.clone();
        let is_dynstr = s.sh_type == sh::SHT_STRTAB && s.sh_offset == str_off && s.sh_size == strsz;
        shift_section(&mut s, at, inserted);
        if is_dynstr {
            // The section runs on over the zeros that pad the inserted pages (empty strings;
            // DT_STRSZ stays exact, so the record is still the table's last string). Left
            // unclaimed, that room is where patchelf 0.14.3 puts a grown `.dynamic`, without
            // making the read-only first segment writable: the loader then crashes writing
            // DT_DEBUG. Claimed, patchelf makes room of its own, in a writable segment.
            s.sh_size = strsz + inserted;
        }
        s
    });
    edits.push((
        hdr.e_shoff,
        encode_all(shdrs, SectionHeader::size(ctx), ctx, "section headers")?,
    ));

    // Symbols in `.symtab` that point into the moved part (section symbols, `__ehdr_start`).
    for (off, value) in symtab_values(file, ef, first.p_vaddr, head_end)? {
        edits.push((off, encode_addr(ef.ctx, value - inserted)));
    }

    let mut new_hdr: Header = *hdr;
    new_hdr.e_shoff += inserted;
    let mut bytes = vec![0u8; crate::elf::header_size(ef.ctx) as usize];
    bytes
        .pwrite_with(new_hdr, 0, ctx.le)
        .map_err(encode_error("the ELF header"))?;
    edits.push((0, bytes));

    Ok(Some(Shifted {
        at,
        inserted,
        strings,
        edits,
        original_size: ef.size,
        interpreter: ef.info.interpreter.clone(),
    }))
}

/// Whether everything in the file before `at` is a table the loader finds through a program
/// header or a dynamic tag (so it may move in memory), and nothing straddles `at`.
fn head_holds_only_tables(ef: &ElfFile, first: &ProgramHeader, at: u64) -> bool {
    let interp = ef.phdrs.iter().find(|p| p.p_type == ph::PT_INTERP);
    let alloc = u64::from(sh::SHF_ALLOC);
    let mut saw_dynstr = false;
    for s in ef.shdrs.iter().skip(1) {
        if s.sh_offset >= at || s.sh_type == sh::SHT_NOBITS || s.sh_size == 0 {
            continue;
        }
        let end = s.sh_offset + s.sh_size;
        let table = match s.sh_type {
            sh::SHT_NOTE
            | sh::SHT_DYNSYM
            | sh::SHT_GNU_HASH
            | sh::SHT_HASH
            | sh::SHT_GNU_VERSYM
            | sh::SHT_GNU_VERDEF
            | sh::SHT_GNU_VERNEED
            | sh::SHT_RELA
            | sh::SHT_REL => true,
            sh::SHT_STRTAB => {
                let is = s.sh_addr == ef.dynstr_addr && end == at;
                saw_dynstr |= is;
                is
            }
            sh::SHT_PROGBITS => {
                interp.is_some_and(|p| p.p_offset == s.sh_offset && p.p_filesz == s.sh_size)
            }
            _ => false,
        };
        if !table || s.sh_flags & alloc == 0 || end > at {
            return false;
        }
    }
    saw_dynstr
        && ef.phdrs.iter().all(|p| {
            std::ptr::eq(p, first)
                || (p.p_filesz == 0 && p.p_memsz == 0)
                || p.p_offset >= at
                || (p.p_offset + p.p_filesz <= at
                    && matches!(
                        p.p_type,
                        ph::PT_PHDR | ph::PT_INTERP | ph::PT_NOTE | ph::PT_GNU_PROPERTY
                    ))
        })
}

/// A section header after `inserted` bytes went in at `at`: sections after it move in the
/// file, sections before it move down in memory. (`.dynstr`'s size is the caller's.)
fn shift_section(s: &mut SectionHeader, at: u64, inserted: u64) {
    if s.sh_offset >= at {
        s.sh_offset += inserted;
    } else if s.sh_flags & u64::from(sh::SHF_ALLOC) != 0 && s.sh_addr != 0 {
        // Wrapping: a section header may hold any address (the loader never reads them).
        s.sh_addr = s.sh_addr.wrapping_sub(inserted);
    }
}

impl Shifted {
    fn rewrite(&self) -> Rewrite {
        let mut inserted = self.strings.clone();
        inserted.resize(self.inserted as usize, 0);
        let at = self.at;
        Rewrite {
            pieces: vec![
                Piece::Copy { from: 0, len: at },
                Piece::Bytes(inserted),
                Piece::Copy {
                    from: at,
                    len: self.original_size - at,
                },
            ],
            patches: self
                .edits
                .iter()
                .map(|(off, b)| {
                    (
                        if *off < at { *off } else { off + self.inserted },
                        b.clone(),
                    )
                })
                .collect(),
        }
    }
}

/// Writes the shifted stamp of the file open as `file` at `path`, checking that the new file
/// reads back with exactly `needed` before it replaces the old one.
pub fn write(
    path: &Path,
    file: &File,
    stamp: &Shifted,
    needed: &[String],
) -> Result<(), WriteError> {
    replace_file(path, file, &stamp.rewrite(), |new| {
        // Read back strictly (planned DT_NEEDED, PT_INTERP, the loader's rules), and with
        // our record in it.
        let ef = super::verify::output(new, stamp.interpreter.as_deref(), needed, None)?;
        match Record::find(&ef.dynstr) {
            Some(_) => Ok(()),
            None => Err(WriteError::Unsupported(
                "the rewritten file did not read back as planned; left unchanged".into(),
            )),
        }
    })
    .map(drop)
}
