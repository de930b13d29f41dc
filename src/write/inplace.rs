//! The in-place layout (see `../shared/design/stamping.md`): the new dynamic string table
//! (old bytes + appended paths), the new `.dynamic`, a copy of `.gnu.version_r` with `vn_file`
//! rewritten, and the few sections moved out of the way of one more program header go into one
//! new writable PT_LOAD appended to the file, with a copy of the section header table after it.
//! Nothing the loader reads in the old part of the file changes until one final `pwrite` at
//! offset 0 (ELF header + program headers): that write is the commit point.

use goblin::container::Container;
use goblin::elf::dynamic::{self, Dyn};
use goblin::elf::header::Header;
use goblin::elf::program_header::{self as ph, ProgramHeader};
use goblin::elf::section_header::{self as sh, SectionHeader};
use scroll::ctx::SizeWith;
use scroll::Pwrite;

use crate::elf::stamped::{self as record, Record};
use crate::elf::{ElfFile, Source};

use super::tables::{
    align, described_by_sections, encode_all, encode_error, needed_slots, new_dynamic, new_verneed,
    pad_to, record_names, string_table,
};
use super::{shift, verify, WriteError};

/// Alignment of the new segment in the file (`elf::stamped` looks for a killed run's tail at
/// it).
const FILE_ALIGN: u64 = record::SEGMENT_FILE_ALIGN;
/// The ELF header + program header region we are willing to rewrite in one write.
const MAX_HEAD: u64 = 1 << 20;

/// The bytes to write: `tail` at `tail_offset` (past the end of the file), then `head` at 0.
pub(super) struct Stamp {
    pub(super) tail_offset: u64,
    pub(super) tail: Vec<u8>,
    pub(super) head: Vec<u8>,
}

/// Builds the in-place stamp of `ef` with `needed` and, when `Some`, a new PT_INTERP string
/// (`interpreter`, which differs from the file's): the string goes into the new segment, and
/// PT_INTERP and the `.interp` section header point at it (the old string stays where it was,
/// unreferenced, so restoring the head restores the original's interpreter).
pub(super) fn build(
    file: &dyn Source,
    ef: &ElfFile,
    needed: &[String],
    interpreter: Option<&str>,
) -> Result<Stamp, WriteError> {
    let ctx = ef.ctx;
    let is64 = ctx.container == Container::Big;
    let dyn_size = Dyn::size_with(&ctx) as u64;
    let phent = ProgramHeader::size(ctx) as u64;
    let hdr = &ef.header;

    if ef.dynamic.is_empty() || !ef.info.kind.is_dynamic() {
        return Err(WriteError::Unsupported("not dynamically linked".into()));
    }
    let slots = needed_slots(ef, needed)?;
    // The PT_INTERP a new interpreter replaces: (offset, address, length).
    let old_interp = interpreter
        .map(|_| {
            ef.phdrs
                .iter()
                .find(|p| p.p_type == ph::PT_INTERP)
                .map(|p| (p.p_offset, p.p_vaddr, p.p_filesz))
                .ok_or_else(|| WriteError::Unsupported("it has no PT_INTERP to change".into()))
        })
        .transpose()?;

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
    let head_len = crate::elf::header_size(ef.ctx).max(new_ph_end);
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
    let max_align = verify::max_load_align(&ef.phdrs);
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
            // The old `.interp`, being replaced, is not copied: the new string goes below.
            if old_interp.is_some_and(|(off, _, len)| (a, b) == (off, off + len)) {
                continue;
            }
            pad_to(&mut seg, 16);
            let rel = seg.len() as u64 + a % 16;
            seg.resize(rel as usize, 0);
            let start = seg.len();
            seg.resize(start + (b - a) as usize, 0);
            file.read_exact_at(&mut seg[start..], a)?;
            relocations.push((a, b, rel));
        }
    }
    // The new interpreter, after the moved pieces (where a moved `.interp` would be): NUL
    // terminated, read by the kernel through p_offset and by the loader through p_vaddr, both
    // of which point here.
    let interp_rel = interpreter.map(|p| {
        let rel = seg.len() as u64;
        seg.extend_from_slice(p.as_bytes());
        seg.push(0);
        rel
    });
    let interp_len = interpreter.map_or(0, |p| p.len() as u64 + 1);
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
        if let (ph::PT_INTERP, Some(rel)) = (p.p_type, interp_rel) {
            p.p_offset = seg_off + rel;
            p.p_vaddr = addr(rel);
            p.p_paddr = addr(rel);
            p.p_filesz = interp_len;
            p.p_memsz = interp_len;
            continue;
        }
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
    let ehsize = crate::elf::header_size(ef.ctx) as usize;
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
        names: Some(record_names(file, ef, needed)?),
        replace: false,
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
        if let (Some(rel), Some((off, vaddr, len))) = (interp_rel, old_interp) {
            if is_interp_section(&s, off, vaddr, len) {
                s.sh_offset = seg_off + rel;
                s.sh_addr = addr(rel);
                s.sh_size = interp_len;
                return s;
            }
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
        interpreter.or(ef.info.interpreter.as_deref()),
        needed,
        Some(seg_off),
    )?;
    Ok(Stamp {
        tail_offset: seg_off,
        tail,
        head,
    })
}

/// Whether `s` is the `.interp` section of the PT_INTERP at `off`/`vaddr`, `len` bytes long:
/// the allocated section holding exactly that string (matched by place, not by name, so a
/// file whose section names were stripped is handled too).
fn is_interp_section(s: &SectionHeader, off: u64, vaddr: u64, len: u64) -> bool {
    s.sh_type == sh::SHT_PROGBITS
        && s.sh_flags & u64::from(sh::SHF_ALLOC) != 0
        && s.sh_offset == off
        && s.sh_addr == vaddr
        && s.sh_size == len
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
    if !described_by_sections(ef) {
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

    if !described_by_sections(ef) {
        // Without section headers (that describe the file) nothing says what unclaimed bytes hold: every byte of the
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
    }
    // A non-empty range in the room that is not among the moved (or replaced) bytes: in the way.
    let blocks = |a: u64, len: u64| {
        let b = a.saturating_add(len);
        len > 0 && a < need_end && b > ph_end && !inside_taken(a, b)
    };
    // With section headers, bytes no section claims are free (patchelf leaves such gaps);
    // everything that is claimed must move.
    if ef
        .shdrs
        .iter()
        .any(|s| s.sh_type != sh::SHT_NOBITS && blocks(s.sh_offset, s.sh_size))
    {
        return no_room("a section that cannot move follows the program header table");
    }
    if ef.phdrs.iter().any(|p| {
        !matches!(p.p_type, ph::PT_LOAD | ph::PT_PHDR | ph::PT_DYNAMIC)
            && blocks(p.p_offset, p.p_filesz)
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
