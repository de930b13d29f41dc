//! The record at the start of a stamped segment: how to find our own work again, and the
//! original bytes of the region the commit write replaced.
//!
//! Layout (little-endian whatever the file's byte order, 64 bytes):
//! magic (16) · version u32 · reserved u32 · original size u64 · stamped size u64 ·
//! undo offset u64 (relative to the segment) · undo length u64 · reserved (8).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use goblin::elf::program_header as ph;

use crate::elf::ElfFile;

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
        head,
        size: rec.original_size,
    }))
}

/// The original file behind our own stamp, as a view: the saved header bytes over the file,
/// cut at the original size.
pub struct Original<'a> {
    file: &'a File,
    head: Vec<u8>,
    size: u64,
}

impl Original<'_> {
    /// Puts the original back: the saved header bytes, and the original length.
    pub fn restore(&self) -> io::Result<()> {
        self.file.write_all_at(&self.head, 0)?;
        self.file.set_len(self.size)
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
        FileExt::read_exact_at(self.file, buf, offset)?;
        let head_len = self.head.len() as u64;
        if offset < head_len {
            let n = (head_len.min(end) - offset) as usize;
            buf[..n].copy_from_slice(&self.head[offset as usize..offset as usize + n]);
        }
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
