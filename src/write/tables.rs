//! The tables both layouts write: the new dynamic string table, the new `.dynamic`, the new
//! `.gnu.version_r`, and the small helpers for laying bytes out.

use std::collections::HashMap;

use goblin::container::Ctx;
use goblin::elf::dynamic::{self, Dyn};
use scroll::{Pread, Pwrite};

use crate::elf::stamped::{list_hash, Names};
use crate::elf::{ElfError, ElfFile, Source};

use super::WriteError;

pub(super) fn align(v: u64, a: u64) -> u64 {
    if a <= 1 {
        v
    } else {
        v.div_ceil(a) * a
    }
}

pub(super) fn pad_to(buf: &mut Vec<u8>, a: usize) {
    while buf.len() % a != 0 {
        buf.push(0);
    }
}

/// `items` encoded one after another, `size` bytes each, in the file's class and byte order
/// (`elf::encode`), with `what` named in the error.
pub(super) fn encode_all<T>(
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
pub(super) fn encode_error(what: &str) -> impl Fn(goblin::error::Error) -> WriteError + '_ {
    move |e| WriteError::Unsupported(format!("writing {what}: {e}"))
}

/// Whether the section headers can be trusted to say what the file holds: they describe its
/// dynamic string table. A table cut short or made up (`e_shnum` 1: only the null entry) says
/// nothing, and the bytes it does not claim are not free for that.
pub(super) fn described_by_sections(ef: &ElfFile) -> bool {
    ef.shdrs.iter().any(|s| {
        s.sh_flags & u64::from(goblin::elf::section_header::SHF_ALLOC) != 0
            && s.sh_size > 0
            && s.sh_addr == ef.dynstr_addr
    })
}

/// Indexes of the DT_NEEDED entries in `.dynamic`; the plan must cover each of them.
pub(super) fn needed_slots(ef: &ElfFile, needed: &[String]) -> Result<Vec<usize>, WriteError> {
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
pub(super) fn string_table<'a>(
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
pub(super) fn new_dynamic(
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
pub(super) fn new_verneed(
    file: &dyn Source,
    ef: &ElfFile,
    needed: &[String],
    offsets: &HashMap<&str, u64>,
) -> Result<Option<Vec<u8>>, WriteError> {
    let Some((_, mut v)) = read_verneed(file, ef)? else {
        return Ok(None);
    };
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

/// Points each `vn_file` whose library got a new DT_NEEDED string at that same string: glibc
/// matches `vn_file` against the names the library was loaded under.
pub(super) fn rewrite_vn_file(
    v: &mut [u8],
    dynstr: &[u8],
    renames: &HashMap<&str, u64>,
    le: scroll::Endian,
) -> Result<(), WriteError> {
    for at in vn_file_fields(v, le)? {
        let file_off: u32 = v.pread_with(at, le).map_err(|_| corrupt_verneed())?;
        if let Some(&new) = cstr(dynstr, file_off as usize).and_then(|n| renames.get(n)) {
            v.pwrite_with(new as u32, at, le)
                .map_err(|_| corrupt_verneed())?;
        }
    }
    Ok(())
}

/// The version-needs table's file offset and bytes, if the file has one.
pub(super) fn read_verneed(
    file: &dyn Source,
    ef: &ElfFile,
) -> Result<Option<(u64, Vec<u8>)>, WriteError> {
    let Some((off, len)) = ef.verneed else {
        return Ok(None);
    };
    let mut v = vec![0u8; len as usize];
    file.read_exact_at(&mut v, off)?;
    Ok(Some((off, v)))
}

/// Where each entry's `vn_file` field lies in a version-needs table (byte offsets into `v`),
/// in table order.
pub(super) fn vn_file_fields(v: &[u8], le: scroll::Endian) -> Result<Vec<usize>, WriteError> {
    let mut fields = Vec::new();
    let mut off = 0usize;
    loop {
        if off + 16 > v.len() {
            return Err(corrupt_verneed());
        }
        fields.push(off + 4);
        let next: u32 = v.pread_with(off + 12, le).map_err(|_| corrupt_verneed())?;
        if next == 0 {
            return Ok(fields);
        }
        off += next as usize;
    }
}

fn corrupt_verneed() -> WriteError {
    WriteError::Elf(ElfError::Corrupt("version-needs table".into()))
}

/// The original's names for the record (`elf::stamped::Names`), for an unwrap after the
/// stamped file is changed: its DT_STRSZ, the offsets of its DT_NEEDED and `vn_file` strings,
/// and the fingerprint of `needed`, the list the stamp writes.
pub(super) fn record_names(
    file: &dyn Source,
    ef: &ElfFile,
    needed: &[String],
) -> Result<Names, WriteError> {
    let vn_files = match read_verneed(file, ef)? {
        Some((_, v)) => vn_file_fields(&v, ef.ctx.le)?
            .into_iter()
            .map(|at| v.pread_with::<u32>(at, ef.ctx.le))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt_verneed())?,
        None => Vec::new(),
    };
    Ok(Names {
        strsz: ef.dynstr.len() as u64,
        needed: ef
            .dynamic
            .iter()
            .filter(|d| d.d_tag == dynamic::DT_NEEDED)
            .map(|d| d.d_val)
            .collect(),
        vn_files,
        stamped_len: u32::try_from(needed.len())
            .map_err(|_| WriteError::Unsupported("too many DT_NEEDED entries".into()))?,
        stamped_hash: list_hash(needed),
    })
}

pub(super) fn cstr(table: &[u8], off: usize) -> Option<&str> {
    let rest = table.get(off..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}
