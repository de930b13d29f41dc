//! Reading what a stamp left in a file: the record (the last string of `.dynstr`, which says
//! what the stamp replaced), the original it describes, seen as a view without touching the
//! file, a killed run's unreferenced tail, and the temporary names the shifted layout writes
//! beside a file. Planning, writing, walking and every command read stamps through here; only
//! the writer (`write/`) changes files.
//!
//! The record is the last string of the new dynamic string table: inside `.dynstr`, so strip tools keep
//! it; a string, so `.dynstr` stays a valid string table. `shrinkwrap-undo:` and the base64 of
//! (little-endian whatever the file's byte order): version u32 · flags u32 · original size
//! u64 · stamped size u64 · insertion point u64 · inserted length u64 · patch count u32 · per
//! patch: original offset u64, length u32, the original bytes; then (version 4) the original's
//! names ([`Names`]): its DT_STRSZ u64 · DT_NEEDED count u32, each offset u64 · `vn_file` count
//! u32, each offset u32 · the stamped DT_NEEDED count u32 and [`list_hash`] u64. The original
//! file is the stamped one without the inserted bytes (none for an in-place stamp; see
//! `write/shift.rs`), with the patches laid over it, cut at the original size. The names are
//! for a stamped file changed afterwards (stripped), where the patches no longer fit: its
//! string table still starts with the original's, so the offsets still name the original's
//! strings, and the original's DT_NEEDED list and `vn_file` names can be put back. Version 4
//! also has zero runs (a patch whose length has its top bit set is that many zero bytes, not
//! stored: the spare layout's table was written over zero padding) and flag 1: the stamp's
//! edits are spread over the file, so it is undone by writing a new file (`write/spare.rs`),
//! not by rewriting its head.
//!
//! An in-place stamp's segment also starts with a tail marker (magic, original size): a run
//! killed before its commit leaves the segment past the end of the file, unreferenced, and the
//! marker lets the next run cut it off.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use goblin::container::Container;
use goblin::elf::program_header as ph;
use goblin::elf::section_header::{self as sh, SectionHeader};
use scroll::Pread;

use super::encode::{encode_addr, encode_all};
use super::{read_elf_source, ElfError, ElfFile, ElfInfo, Source};

/// Prefix of the record in the dynamic string table.
const UNDO_PREFIX: &[u8] = b"shrinkwrap-undo:";
/// The version written: a record with [`Names`] (and flags, and zero runs).
const VERSION: u32 = 4;
/// The version before it, still read: a record without names.
const VERSION_WITHOUT_NAMES: u32 = 3;
/// A patch length with this bit is a run of zero bytes (version 4).
const ZERO_RUN: u32 = 1 << 31;
/// Zero patches at least this long are stored as runs.
const MIN_ZERO_RUN: usize = 32;
/// Flag: undone by replacing the file.
const FLAG_REPLACE: u32 = 1;

/// A stamp's record: `inserted` bytes went in at `at` (none for an in-place stamp); `patches`
/// hold the original bytes of what was edited, at original offsets; `names` what the
/// original's names were, for a file changed after it was stamped (absent in records written
/// before version 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub original_size: u64,
    pub stamped_size: u64,
    pub at: u64,
    pub inserted: u64,
    pub patches: Vec<(u64, Vec<u8>)>,
    pub names: Option<Names>,
    /// Undone by writing a new file: the edits are spread over the file (`write/spare.rs`).
    pub replace: bool,
}

/// What an unwrap needs once the stamped file was changed afterwards (stripped) and the saved
/// bytes no longer fit: the original's names as offsets into the stamped string table (whose
/// first `strsz` bytes are the original's table: both layouts keep the old bytes and append),
/// and a fingerprint of the list the stamp wrote, so a list changed after stamping (patchelf
/// `--remove-needed`) is not taken for ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The original's DT_STRSZ.
    pub strsz: u64,
    /// The original's DT_NEEDED string offsets, in order.
    pub needed: Vec<u64>,
    /// The original's `vn_file` string offsets, in table order.
    pub vn_files: Vec<u32>,
    /// The number of DT_NEEDED entries the stamp wrote, and their [`list_hash`].
    pub stamped_len: u32,
    pub stamped_hash: u64,
}

impl Names {
    /// Whether `needed` is the DT_NEEDED list the stamp wrote.
    pub fn wrote(&self, needed: &[String]) -> bool {
        needed.len() == self.stamped_len as usize && list_hash(needed) == self.stamped_hash
    }
}

/// FNV-1a (64 bits) of the strings, each ended by a NUL: a fingerprint of a DT_NEEDED list
/// that does not change with the file's byte order or layout.
pub fn list_hash(list: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in list.iter().flat_map(|s| s.bytes().chain([0])) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Record {
    /// The NUL-terminated string that goes at the end of the dynamic string table.
    pub fn to_string_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        let version = match self.names {
            Some(_) => VERSION,
            None => VERSION_WITHOUT_NAMES,
        };
        // Zero runs and flags are version 4's.
        let zero_run = |bytes: &[u8]| {
            version == VERSION && bytes.len() >= MIN_ZERO_RUN && bytes.iter().all(|&b| b == 0)
        };
        b.extend_from_slice(&version.to_le_bytes());
        let flags = if self.replace && version == VERSION {
            FLAG_REPLACE
        } else {
            0
        };
        b.extend_from_slice(&flags.to_le_bytes());
        for v in [
            self.original_size,
            self.stamped_size,
            self.at,
            self.inserted,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.patches.len() as u32).to_le_bytes());
        for (off, bytes) in &self.patches {
            b.extend_from_slice(&off.to_le_bytes());
            if zero_run(bytes) {
                b.extend_from_slice(&(bytes.len() as u32 | ZERO_RUN).to_le_bytes());
            } else {
                b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                b.extend_from_slice(bytes);
            }
        }
        if let Some(n) = &self.names {
            b.extend_from_slice(&n.strsz.to_le_bytes());
            b.extend_from_slice(&(n.needed.len() as u32).to_le_bytes());
            for off in &n.needed {
                b.extend_from_slice(&off.to_le_bytes());
            }
            b.extend_from_slice(&(n.vn_files.len() as u32).to_le_bytes());
            for off in &n.vn_files {
                b.extend_from_slice(&off.to_le_bytes());
            }
            b.extend_from_slice(&n.stamped_len.to_le_bytes());
            b.extend_from_slice(&n.stamped_hash.to_le_bytes());
        }
        let mut s = UNDO_PREFIX.to_vec();
        s.extend_from_slice(base64_encode(&b).as_bytes());
        s.push(0);
        s
    }

    /// The record in a dynamic string table, if the table ends with one.
    pub fn find(dynstr: &[u8]) -> Option<Record> {
        let body = dynstr.strip_suffix(b"\0")?;
        let start = body.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
        let b = base64_decode(body[start..].strip_prefix(UNDO_PREFIX)?)?;
        let mut r = Cursor(&b);
        let version = r.u32()?;
        if version != VERSION && version != VERSION_WITHOUT_NAMES {
            return None;
        }
        let flags = r.u32()?;
        let replace = version == VERSION && flags & FLAG_REPLACE != 0;
        let (original_size, stamped_size, at, inserted) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let mut patches = Vec::new();
        for _ in 0..r.u32()? {
            let off = r.u64()?;
            let len = r.u32()?;
            if version == VERSION && len & ZERO_RUN != 0 {
                // A run stands for padding the table itself was written over, so it is never
                // longer than the table (a header may lie: no allocation beyond that).
                let n = (len & !ZERO_RUN) as usize;
                if n > dynstr.len() {
                    return None;
                }
                patches.push((off, vec![0; n]));
            } else {
                patches.push((off, r.take(len as usize)?.to_vec()));
            }
        }
        let names = match version {
            VERSION => Some(Names {
                strsz: r.u64()?,
                needed: (0..r.u32()?).map(|_| r.u64()).collect::<Option<_>>()?,
                vn_files: (0..r.u32()?).map(|_| r.u32()).collect::<Option<_>>()?,
                stamped_len: r.u32()?,
                stamped_hash: r.u64()?,
            }),
            _ => None,
        };
        Some(Record {
            original_size,
            stamped_size,
            at,
            inserted,
            patches,
            names,
            replace,
        })
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        // A group holds at least one byte: `====` would make the count below wrap (found by
        // fuzzing: a panic in a debug build, a near-endless loop in a release one).
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                B64.iter().position(|&x| x == c)? as u32
            };
            n |= v << (18 - 6 * i);
        }
        for i in 0..3 - pad {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Lays `patches` (bytes at file offsets) over `buf`, which holds the bytes at `at`.
fn overlay(buf: &mut [u8], at: u64, patches: &[(u64, Vec<u8>)]) {
    let end = at + buf.len() as u64;
    for (off, bytes) in patches {
        let p_end = off + bytes.len() as u64;
        if *off >= end || p_end <= at {
            continue;
        }
        let from = (*off).max(at);
        let to = p_end.min(end);
        buf[(from - at) as usize..(to - at) as usize]
            .copy_from_slice(&bytes[(from - off) as usize..(to - off) as usize]);
    }
}

const TAIL_MAGIC: &[u8; 16] = b"\x7fshrinkwrap\x00seg\x00";
/// Length of the tail marker at the start of an in-place stamp's segment.
const TAIL_LEN: usize = 24;

/// The tail marker for a segment appended to a file of `original_size` bytes.
pub fn tail_marker(original_size: u64) -> [u8; TAIL_LEN] {
    let mut m = [0u8; TAIL_LEN];
    m[..16].copy_from_slice(TAIL_MAGIC);
    m[16..].copy_from_slice(&original_size.to_le_bytes());
    m
}

/// What the file's record says about it.
pub enum Ours<'a> {
    /// No record of ours: not stamped by us.
    No,
    /// Stamped by us, and unchanged since: the original can be seen and restored.
    Original(Original<'a>),
    /// Stamped by us, then changed (stripped?): the saved bytes no longer fit; what the record
    /// says of the original's names, if it says it (records before version 4 do not).
    Changed(Option<Names>),
}

/// Looks for our record and checks that the file is as we left it.
pub fn ours<'a>(file: &'a File, ef: &ElfFile) -> io::Result<Ours<'a>> {
    let Some(rec) = Record::find(&ef.dynstr) else {
        return Ok(Ours::No);
    };
    if ef.size != rec.stamped_size
        || rec.original_size + rec.inserted > rec.stamped_size
        || rec.at > rec.original_size
    {
        return Ok(Ours::Changed(rec.names));
    }
    // Patches lie inside the original: the record is untrusted too, and a restore allocates
    // and writes up to the end of the last one (found by fuzzing).
    if rec.patches.iter().any(|(off, bytes)| {
        off.checked_add(bytes.len() as u64)
            .is_none_or(|end| end > rec.original_size)
    }) {
        return Ok(Ours::Changed(rec.names));
    }
    let mut patches = rec.patches;
    if rec.inserted > 0 {
        let Some(computed) = computed_original(file, ef, rec.at, rec.inserted) else {
            return Ok(Ours::Changed(rec.names));
        };
        patches.extend(computed);
    }
    let mut original = Original {
        file,
        size: rec.original_size,
        at: rec.at,
        inserted: rec.inserted,
        patches,
        replace: rec.replace,
        // Replaced by the original's own facts just below, once the view can be read.
        info: ef.info.clone(),
    };
    // The size alone does not prove the file is as we left it: a tool that rewrites it at the
    // same size (objcopy, or strip on a file already stripped) may zero the old tables a
    // stamp left in place but no section claims any more. The original's string table, seen
    // through the saved bytes, must still be the one our table begins with. Read once, its
    // facts are kept for every caller.
    match read_elf_source(&original) {
        Ok(o) if ef.dynstr.starts_with(&o.dynstr) => original.info = o.info,
        _ => return Ok(Ours::Changed(rec.names)),
    }
    Ok(Ours::Original(original))
}

/// The original file behind our own stamp, as a view: the stamped file without the bytes a
/// shifted stamp inserted, with the saved original bytes laid over it, cut at the original size.
pub struct Original<'a> {
    pub(crate) file: &'a File,
    pub(crate) size: u64,
    /// Where a shifted stamp inserted `inserted` bytes (nothing inserted: an in-place stamp).
    pub(crate) at: u64,
    pub(crate) inserted: u64,
    pub(crate) patches: Vec<(u64, Vec<u8>)>,
    /// Put back by writing a new file (the record's flag).
    pub(crate) replace: bool,
    /// The original's dynamic-linking facts, read through this view.
    pub(crate) info: ElfInfo,
}

impl Source for Original<'_> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let split = (self.at.clamp(offset, end) - offset) as usize;
        let (low, high) = buf.split_at_mut(split);
        FileExt::read_exact_at(self.file, low, offset)?;
        FileExt::read_exact_at(self.file, high, offset + split as u64 + self.inserted)?;
        overlay(buf, offset, &self.patches);
        Ok(())
    }
}

/// If the file ends in the segment of a run that was killed before its commit, the size to
/// trim it back to.
pub fn unfinished_tail(file: &File, ef: &ElfFile) -> io::Result<Option<u64>> {
    let mut extent = super::header_size(ef.ctx);
    for p in &ef.phdrs {
        extent = extent.max(p.p_offset.saturating_add(p.p_filesz));
    }
    extent = extent.max(
        ef.header
            .e_shoff
            .saturating_add(u64::from(ef.header.e_shentsize) * u64::from(ef.header.e_shnum)),
    );
    // Headers are untrusted: an extent near the top of the range is no tail of ours.
    let at = extent
        .div_ceil(SEGMENT_FILE_ALIGN)
        .saturating_mul(SEGMENT_FILE_ALIGN);
    if at.saturating_add(TAIL_LEN as u64) > ef.size {
        return Ok(None);
    }
    let mut m = [0u8; TAIL_LEN];
    FileExt::read_exact_at(file, &mut m, at)?;
    let original_size = u64::from_le_bytes(m[16..].try_into().unwrap());
    Ok((&m[..16] == TAIL_MAGIC && original_size <= at).then_some(original_size))
}

/// Alignment of an in-place stamp's segment in the file (not a page: that would bloat small
/// files on 64 KiB-page machines); a killed run's tail is looked for at this alignment.
pub const SEGMENT_FILE_ALIGN: u64 = 64;

/// What a file says of our stamp, with the original's dynamic-linking facts where the record
/// can give them back.
pub enum StampState {
    NotStamped,
    /// Stamped by us, then changed (stripped?): the original cannot be read back.
    Changed,
    Stamped(ElfInfo),
}

/// The [`StampState`] of `file`, read as `ef`.
pub fn stamp_state(file: &File, ef: &ElfFile) -> Result<StampState, ElfError> {
    Ok(match ours(file, ef)? {
        Ours::No => StampState::NotStamped,
        Ours::Changed(_) => StampState::Changed,
        Ours::Original(view) => StampState::Stamped(view.info),
    })
}

/// The dynamic-linking facts of the original behind our own earlier stamp, if `file` carries
/// one that can be undone (a new plan replaces the old stamp instead of building on it).
pub fn original_info(file: &File, ef: &ElfFile) -> Result<Option<ElfInfo>, ElfError> {
    match stamp_state(file, ef)? {
        StampState::Stamped(info) => Ok(Some(info)),
        StampState::NotStamped | StampState::Changed => Ok(None),
    }
}

/// The name of the new file written beside `name` before it is renamed over it.
pub fn temp_name(name: &str) -> String {
    format!(".{name}{TEMP_SUFFIX}")
}

const TEMP_SUFFIX: &str = ".shrinkwrap-new";

/// Whether a file name is one [`temp_name`] makes (left behind by a killed run).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// What a shifted file's own bytes say about the original's, beyond the record: the section
/// header table (the inverse of the shifted layout's move of each section, `.dynstr` cut back to the insertion point)
/// and the `.symtab` values that moved, as patches at original offsets.
fn computed_original(
    file: &dyn Source,
    ef: &ElfFile,
    at: u64,
    inserted: u64,
) -> Option<Vec<(u64, Vec<u8>)>> {
    let shdrs: Option<Vec<SectionHeader>> = ef
        .shdrs
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s.sh_offset >= at + inserted {
                s.sh_offset -= inserted;
            } else if s.sh_flags & u64::from(sh::SHF_ALLOC) != 0 && s.sh_addr != 0 {
                s.sh_addr = s.sh_addr.wrapping_add(inserted);
                if s.sh_type != sh::SHT_NOBITS && s.sh_offset + s.sh_size > at {
                    s.sh_size = at.checked_sub(s.sh_offset)?;
                }
            }
            Some(s)
        })
        .collect();
    let bytes = encode_all(shdrs?, SectionHeader::size(ef.ctx), ef.ctx).ok()?;
    let mut patches = vec![(ef.header.e_shoff.checked_sub(inserted)?, bytes)];
    let first = ef
        .phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .min_by_key(|p| p.p_vaddr)?;
    for (off, value) in symtab_values(file, ef, first.p_vaddr, first.p_vaddr + at).ok()? {
        patches.push((
            off.checked_sub(inserted)?,
            encode_addr(ef.ctx, value + inserted),
        ));
    }
    Some(patches)
}

/// Defined symbols in `.symtab` whose value lies in `lo..hi`: the file offset of each value
/// field, and the value.
pub fn symtab_values(
    file: &dyn Source,
    ef: &ElfFile,
    lo: u64,
    hi: u64,
) -> std::io::Result<Vec<(u64, u64)>> {
    let is64 = ef.ctx.container == Container::Big;
    let (ent, value_at, shndx_at) = if is64 { (24, 8, 6) } else { (16, 4, 14) };
    let le = ef.ctx.le;
    let mut found = Vec::new();
    for s in &ef.shdrs {
        if s.sh_type != sh::SHT_SYMTAB
            || s.sh_entsize != ent as u64
            || s.sh_offset.saturating_add(s.sh_size) > ef.size
        {
            continue;
        }
        let mut table = vec![0u8; s.sh_size as usize];
        file.read_exact_at(&mut table, s.sh_offset)?;
        for (i, sym) in table.chunks_exact(ent).enumerate() {
            let shndx: u16 = sym.pread_with(shndx_at, le).unwrap_or(0);
            // Undefined, absolute, common: not addresses in a section.
            if shndx == 0 || shndx >= 0xff00 {
                continue;
            }
            let value = if is64 {
                sym.pread_with::<u64>(value_at, le).unwrap_or(0)
            } else {
                u64::from(sym.pread_with::<u32>(value_at, le).unwrap_or(0))
            };
            if (lo..hi).contains(&value) {
                found.push((s.sh_offset + (i * ent + value_at) as u64, value));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors_and_round_trips() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), coded);
            assert_eq!(base64_decode(coded.as_bytes()).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(base64_encode(&all).as_bytes()).unwrap(), all);
        assert!(base64_decode(b"Zm9").is_none());
        assert!(base64_decode(b"Zm9*").is_none());
    }

    #[test]
    fn a_record_is_found_at_the_end_of_a_string_table_only() {
        let rec = Record {
            original_size: 1000,
            stamped_size: 5096,
            at: 600,
            inserted: 4096,
            patches: vec![(0, vec![0x7f, b'E', b'L', b'F']), (64, vec![0; 56])],
            names: Some(Names {
                strsz: 11,
                needed: vec![1],
                vn_files: vec![1, 1],
                stamped_len: 2,
                stamped_hash: list_hash(&["/lib/libc.so.6".into(), "/lib/ld.so".into()]),
            }),
            replace: false,
        };
        let mut table = b"\0libc.so.6\0/lib/libc.so.6\0".to_vec();
        assert_eq!(Record::find(&table), None);
        table.extend_from_slice(&rec.to_string_bytes());
        assert_eq!(Record::find(&table), Some(rec.clone()));
        // Not the last string: not ours (a later stamp would have put its own last).
        table.extend_from_slice(b"other\0");
        assert_eq!(Record::find(&table), None);
    }

    #[test]
    fn a_record_without_names_is_the_previous_version_and_still_read() {
        let mut rec = Record {
            original_size: 1000,
            stamped_size: 1200,
            at: 1000,
            inserted: 0,
            patches: vec![(0, vec![1, 2, 3])],
            names: None,
            replace: false,
        };
        let old = rec.to_string_bytes();
        let b = base64_decode(&old[UNDO_PREFIX.len()..old.len() - 1]).unwrap();
        assert_eq!(b[..4], VERSION_WITHOUT_NAMES.to_le_bytes());
        assert_eq!(Record::find(&old), Some(rec.clone()));
        // A version 4 record cut short in its names is no record.
        rec.names = Some(Names {
            strsz: 9,
            needed: vec![1, 5],
            vn_files: vec![],
            stamped_len: 2,
            stamped_hash: 7,
        });
        let new = rec.to_string_bytes();
        let mut b = base64_decode(&new[UNDO_PREFIX.len()..new.len() - 1]).unwrap();
        b.truncate(b.len() - 1);
        let mut cut = UNDO_PREFIX.to_vec();
        cut.extend_from_slice(base64_encode(&b).as_bytes());
        cut.push(0);
        assert_eq!(Record::find(&cut), None);
        assert_eq!(Record::find(&new), Some(rec));
    }

    #[test]
    fn names_recognise_only_the_list_the_stamp_wrote() {
        let list: Vec<String> = vec!["/a/libx.so.1".into(), "/b/liby.so.2".into()];
        let names = Names {
            strsz: 1,
            needed: vec![],
            vn_files: vec![],
            stamped_len: 2,
            stamped_hash: list_hash(&list),
        };
        assert!(names.wrote(&list));
        assert!(!names.wrote(&list[..1]));
        let mut other = list.clone();
        other.swap(0, 1);
        assert!(!names.wrote(&other));
        // The NUL between strings counts: "ab"+"c" is not "a"+"bc".
        assert_ne!(
            list_hash(&["ab".into(), "c".into()]),
            list_hash(&["a".into(), "bc".into()])
        );
    }

    #[test]
    fn overlay_lays_patches_over_any_window() {
        let patches = vec![(2, vec![1, 2, 3]), (10, vec![9])];
        let mut buf = [0u8; 6];
        overlay(&mut buf, 3, &patches);
        assert_eq!(buf, [2, 3, 0, 0, 0, 0]);
        let mut buf = [0u8; 4];
        overlay(&mut buf, 8, &patches);
        assert_eq!(buf, [0, 0, 9, 0]);
    }

    #[test]
    fn zero_runs_and_the_replace_flag_round_trip() {
        let rec = Record {
            original_size: 5000,
            stamped_size: 5000,
            at: 5000,
            inserted: 0,
            patches: vec![(64, vec![1; 56]), (4000, vec![0; 300])],
            names: Some(Names {
                strsz: 11,
                needed: vec![1],
                vn_files: vec![],
                stamped_len: 1,
                stamped_hash: list_hash(&["/lib/libc.so.6".into()]),
            }),
            replace: true,
        };
        let s = rec.to_string_bytes();
        // The run is not stored: far shorter than its 300 bytes in base64.
        assert!(s.len() < 300, "{}", s.len());
        let mut table = vec![0u8; 400];
        table.extend_from_slice(&s);
        assert_eq!(Record::find(&table), Some(rec.clone()));
        // A run longer than the table it is in is a lie: no record.
        let mut long = rec;
        long.patches[1].1 = vec![0; 100_000];
        let mut table = vec![0u8; 400];
        table.extend_from_slice(&long.to_string_bytes());
        assert_eq!(Record::find(&table), None);
    }
}
