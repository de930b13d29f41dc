//! Records of our own work, so a later run can recognise a stamp, restore the original, and
//! stamp afresh rather than stacking stamps.
//!
//! In place (the usual layout) the record starts the stamped segment and holds the original
//! bytes of the region the commit write replaced. Layout (little-endian whatever the file's
//! byte order, 64 bytes): magic (16) · version u32 · reserved u32 · original size u64 ·
//! stamped size u64 · undo offset u64 (relative to the segment) · undo length u64 · reserved (8).
//!
//! A shifted stamp (see `shift.rs`) keeps its record as the last string of the dynamic string
//! table: `shrinkwrap-undo:` and the base64 of: version u32 (2) · reserved u32 · original size
//! u64 · stamped size u64 · insertion point u64 · inserted length u64 · patch count u32 · per
//! patch: original offset u64, length u32, the original bytes. A string, so `.dynstr` stays a
//! valid string table; inside `.dynstr`, so strip tools keep it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use goblin::elf::program_header as ph;

use crate::elf::ElfFile;

/// Prefix of a shifted stamp's record in the dynamic string table.
pub const UNDO_PREFIX: &[u8] = b"shrinkwrap-undo:";
const SHIFT_VERSION: u32 = 2;

/// A shifted stamp's record: the file was cut at `at` and `inserted` bytes went in; `patches`
/// hold the original bytes of what was edited, at original offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftRecord {
    pub original_size: u64,
    pub stamped_size: u64,
    pub at: u64,
    pub inserted: u64,
    pub patches: Vec<(u64, Vec<u8>)>,
}

impl ShiftRecord {
    /// The NUL-terminated string that goes at the end of the dynamic string table.
    pub fn to_string_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&SHIFT_VERSION.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for v in [self.original_size, self.stamped_size, self.at, self.inserted] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.patches.len() as u32).to_le_bytes());
        for (off, bytes) in &self.patches {
            b.extend_from_slice(&off.to_le_bytes());
            b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            b.extend_from_slice(bytes);
        }
        let mut s = UNDO_PREFIX.to_vec();
        s.extend_from_slice(base64_encode(&b).as_bytes());
        s.push(0);
        s
    }

    /// The record in a dynamic string table, if the table ends with one.
    pub fn find(dynstr: &[u8]) -> Option<ShiftRecord> {
        let body = dynstr.strip_suffix(b"\0")?;
        let start = body.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
        let b = base64_decode(body[start..].strip_prefix(UNDO_PREFIX)?)?;
        let mut r = Cursor(&b);
        if r.u32()? != SHIFT_VERSION {
            return None;
        }
        r.u32()?;
        let (original_size, stamped_size, at, inserted) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let mut patches = Vec::new();
        for _ in 0..r.u32()? {
            let off = r.u64()?;
            let len = r.u32()? as usize;
            patches.push((off, r.take(len)?.to_vec()));
        }
        Some(ShiftRecord {
            original_size,
            stamped_size,
            at,
            inserted,
            patches,
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
pub fn overlay(buf: &mut [u8], at: u64, patches: &[(u64, Vec<u8>)]) {
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

pub const MAGIC: &[u8; 16] = b"\x7fshrinkwrap\x00rec\x00";
const VERSION: u32 = 1;
const LEN: usize = 64;

/// A parsed record, or the values for one being written.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Size of the file before it was stamped.
    pub original_size: u64,
    /// Size right after stamping: anything else means the file was changed since (stripped).
    pub stamped_size: u64,
    pub undo_rel: u64,
    pub undo_len: u64,
}

impl Record {
    /// Zeroed room for a record at the start of a new segment.
    pub fn placeholder() -> Vec<u8> {
        vec![0u8; LEN]
    }

    /// Fills the placeholder at the start of `seg`.
    pub fn write_into(&self, seg: &mut [u8]) {
        seg[..16].copy_from_slice(MAGIC);
        seg[16..20].copy_from_slice(&VERSION.to_le_bytes());
        seg[24..32].copy_from_slice(&self.original_size.to_le_bytes());
        seg[32..40].copy_from_slice(&self.stamped_size.to_le_bytes());
        seg[40..48].copy_from_slice(&self.undo_rel.to_le_bytes());
        seg[48..56].copy_from_slice(&self.undo_len.to_le_bytes());
    }

    fn parse(b: &[u8; LEN]) -> Option<Record> {
        if &b[..16] != MAGIC || u32::from_le_bytes(b[16..20].try_into().ok()?) != VERSION {
            return None;
        }
        let u = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().unwrap());
        Some(Record {
            original_size: u(24..32),
            stamped_size: u(32..40),
            undo_rel: u(40..48),
            undo_len: u(48..56),
        })
    }

    fn read_at(file: &File, off: u64) -> io::Result<Option<Record>> {
        let mut b = [0u8; LEN];
        match file.read_exact_at(&mut b, off) {
            Ok(()) => Ok(Record::parse(&b)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The record of the segment holding PT_DYNAMIC, if that segment is ours; with the
    /// segment's file offset.
    pub fn find(file: &File, ef: &ElfFile) -> io::Result<Option<(Record, u64)>> {
        let Some(d) = ef.phdrs.iter().find(|p| p.p_type == ph::PT_DYNAMIC) else {
            return Ok(None);
        };
        let Some(load) = ef.phdrs.iter().find(|p| {
            p.p_type == ph::PT_LOAD
                && p.p_offset <= d.p_offset
                && d.p_offset < p.p_offset + p.p_filesz
        }) else {
            return Ok(None);
        };
        Ok(Record::read_at(file, load.p_offset)?.map(|r| (r, load.p_offset)))
    }
}

/// What the file's record says about it.
pub enum Ours<'a> {
    /// No record of ours: not stamped by us.
    No,
    /// Stamped by us, and unchanged since: the original can be seen and restored.
    Original(Original<'a>),
    /// Stamped by us, then changed (stripped?): the saved bytes no longer fit.
    Changed,
}

/// Looks for our record and checks that the file is as we left it.
pub fn ours<'a>(file: &'a File, ef: &ElfFile) -> io::Result<Ours<'a>> {
    if let Some(rec) = ShiftRecord::find(&ef.dynstr) {
        if ef.size != rec.stamped_size || rec.original_size + rec.inserted != rec.stamped_size {
            return Ok(Ours::Changed);
        }
        let Some(computed) = super::shift::computed_original(file, ef, rec.at, rec.inserted)
        else {
            return Ok(Ours::Changed);
        };
        let mut patches = rec.patches;
        patches.extend(computed);
        return Ok(Ours::Original(Original {
            file,
            size: rec.original_size,
            at: rec.at,
            inserted: rec.inserted,
            patches,
        }));
    }
    let Some((rec, seg_off)) = Record::find(file, ef)? else {
        return Ok(Ours::No);
    };
    if ef.size != rec.stamped_size || rec.original_size > seg_off {
        return Ok(Ours::Changed);
    }
    let mut head = vec![0u8; rec.undo_len as usize];
    file.read_exact_at(&mut head, seg_off + rec.undo_rel)?;
    Ok(Ours::Original(Original {
        file,
        size: rec.original_size,
        at: rec.original_size,
        inserted: 0,
        patches: vec![(0, head)],
    }))
}

/// The original file behind our own stamp, as a view: the stamped file without the bytes a
/// shifted stamp inserted, with the saved original bytes laid over it, cut at the original size.
pub struct Original<'a> {
    file: &'a File,
    size: u64,
    /// Where a shifted stamp inserted `inserted` bytes (nothing inserted: an in-place stamp).
    at: u64,
    inserted: u64,
    patches: Vec<(u64, Vec<u8>)>,
}

impl Original<'_> {
    /// Puts the original back at `path`: in place (the saved header bytes, and the original
    /// length) for an in-place stamp; as a new file renamed over the old for a shifted one.
    pub fn restore(&self, path: &std::path::Path) -> Result<(), super::WriteError> {
        if self.inserted == 0 {
            for (off, bytes) in &self.patches {
                self.file.write_all_at(bytes, *off)?;
            }
            self.file.set_len(self.size)?;
            return Ok(());
        }
        super::shift::replace_file(path, self.file, self, self.size, |_| Ok(()))
    }
}

impl crate::elf::Source for Original<'_> {
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
    let mut extent = u64::from(ef.header.e_ehsize);
    for p in &ef.phdrs {
        extent = extent.max(p.p_offset.saturating_add(p.p_filesz));
    }
    extent = extent
        .max(ef.header.e_shoff + u64::from(ef.header.e_shentsize) * u64::from(ef.header.e_shnum));
    let at = extent.div_ceil(super::FILE_ALIGN) * super::FILE_ALIGN;
    if at + LEN as u64 > ef.size {
        return Ok(None);
    }
    Ok(Record::read_at(file, at)?
        .filter(|r| r.original_size <= at)
        .map(|r| r.original_size))
}
