//! The loader's rules for program headers, checked on the way in and on the way out.
//!
//! Input headers are untrusted: the loader tolerates much that the writer must not build on (a
//! `p_align` that is not a power of two is ignored by glibc ≥ 2.35 and by the kernel, but the
//! writer aligns its new segment by it; a PT_INTERP whose address disagrees with its offset is
//! harmless until the interpreter's absolute path becomes a DT_NEEDED entry, which glibc then
//! matches against the string at that address). So [`input`] refuses what the writer cannot
//! place safely, and [`output`] re-reads the headers of the stamped file before anything is
//! committed, refusing it when they break a rule — a stamp that exits 0 gives a file the loader
//! accepts.
//!
//! The rules are those of Linux's `binfmt_elf.c` and glibc's `dl-load.c`/`rtld.c`, made strict
//! where they are lax: PT_LOAD segments sorted by address and not overlapping, `p_filesz <=
//! p_memsz`, no overflow, inside the file and the user address space, `p_align` a power of two
//! (or 0/1) with `p_vaddr ≡ p_offset` modulo it and modulo the page size; PT_PHDR, PT_INTERP,
//! PT_DYNAMIC, PT_NOTE and PT_GNU_PROPERTY inside one PT_LOAD at the same offset and address
//! (the kernel reads them by offset, glibc by address); the tables the dynamic section points
//! at inside a loaded part of the file.

use goblin::container::Container;
use goblin::elf::dynamic;
use goblin::elf::program_header::{self as ph, ProgramHeader};

use super::WriteError;
use crate::elf::{read_elf_source, vaddr_to_offset, ElfFile, Source};

/// The smallest page size of any Linux target: segments must be congruent modulo it.
pub const PAGE: u64 = 0x1000;
/// The largest `p_align` accepted: 1 GiB, the largest huge page. More only pushes the new
/// segment (aligned like the others) absurdly far.
const MAX_ALIGN: u64 = 1 << 30;

/// Dynamic tags whose value is the address of a table the loader reads.
const TABLE_TAGS: &[(u64, &str)] = &[
    (dynamic::DT_STRTAB, "DT_STRTAB"),
    (dynamic::DT_SYMTAB, "DT_SYMTAB"),
    (dynamic::DT_HASH, "DT_HASH"),
    (dynamic::DT_GNU_HASH, "DT_GNU_HASH"),
    (dynamic::DT_VERSYM, "DT_VERSYM"),
    (dynamic::DT_VERNEED, "DT_VERNEED"),
    (dynamic::DT_VERDEF, "DT_VERDEF"),
];

/// Refuses an input whose headers break a loader rule: the writer places its segment and
/// moves `.interp`, notes and tables by these headers, so it must be able to trust them.
pub fn input(file: &dyn Source, ef: &ElfFile) -> Result<(), WriteError> {
    rules(file, ef).map_err(|why| {
        WriteError::Unsupported(format!(
            "its headers break a loader rule the stamp relies on ({why})"
        ))
    })
}

/// Re-reads the stamped file `stamped` (the bytes as they will be once committed) strictly:
/// it must read back with exactly `needed` and the original's `interpreter`, and keep every
/// loader rule; `new_segment` is the file offset of the segment the stamp added, which must not
/// share a page with any other.
pub fn output(
    stamped: &dyn Source,
    interpreter: Option<&str>,
    needed: &[String],
    new_segment: Option<u64>,
) -> Result<ElfFile, WriteError> {
    let fail = |why: String| {
        WriteError::Unsupported(format!(
            "the stamped headers would break a loader rule ({why}); nothing was written"
        ))
    };
    let ef = read_elf_source(stamped).map_err(|e| fail(format!("re-reading them: {e}")))?;
    if ef.info.needed != needed {
        return Err(fail(
            "they do not read back with the planned DT_NEEDED".into(),
        ));
    }
    if ef.info.interpreter.as_deref() != interpreter {
        return Err(fail(format!(
            "PT_INTERP reads back as {:?}",
            ef.info.interpreter
        )));
    }
    rules(stamped, &ef).map_err(fail)?;
    if let Some(off) = new_segment {
        own_segment(&ef, off).map_err(fail)?;
    }
    Ok(ef)
}

/// The largest alignment of the PT_LOADs, counting, like the kernel, only powers of two, and
/// at least a page: what a new segment's address must be congruent to its offset modulo.
pub fn max_load_align(phdrs: &[ProgramHeader]) -> u64 {
    phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .map(|p| p.p_align)
        .filter(|a| a.is_power_of_two())
        .max()
        .unwrap_or(PAGE)
        .max(PAGE)
}

/// The segment the stamp added is the highest in memory, starts on a page of its own, and its
/// address is congruent to its offset modulo the largest alignment of the others.
fn own_segment(ef: &ElfFile, off: u64) -> Result<(), String> {
    let loads: Vec<&ProgramHeader> = ef
        .phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD && p.p_memsz > 0)
        .collect();
    let Some(pos) = loads.iter().position(|p| p.p_offset == off) else {
        return Err("the new segment is missing".into());
    };
    let new = loads[pos];
    if pos + 1 != loads.len() {
        return Err("the new segment is not the highest in memory".into());
    }
    let align = new.p_align.max(PAGE);
    if let Some(prev) = pos.checked_sub(1).map(|i| loads[i]) {
        let prev_end = prev.p_vaddr + prev.p_memsz;
        if new.p_vaddr / PAGE * PAGE < prev_end.div_ceil(PAGE) * PAGE {
            return Err(format!(
                "the new segment at {:#x} shares a page with the segment ending at {prev_end:#x}",
                new.p_vaddr
            ));
        }
    }
    let max_align = max_load_align(&ef.phdrs);
    if align < max_align.min(MAX_ALIGN) {
        return Err(format!(
            "the new segment is aligned to {align:#x}, less than the others' {max_align:#x}"
        ));
    }
    Ok(())
}

/// The loader's rules, strictly (see the module documentation); `Err` names the first one
/// broken, in one line.
fn rules(file: &dyn Source, ef: &ElfFile) -> Result<(), String> {
    let hdr = &ef.header;
    let limit: u64 = match ef.ctx.container {
        Container::Big => 1 << 47,
        Container::Little => 1 << 32,
    };
    let name = |i: usize, p: &ProgramHeader| format!("segment {i} ({})", ph::pt_to_str(p.p_type));

    // PT_LOAD: each on its own.
    let mut loads: Vec<(usize, &ProgramHeader)> = Vec::new();
    for (i, p) in ef.phdrs.iter().enumerate() {
        if p.p_type != ph::PT_LOAD {
            continue;
        }
        let n = name(i, p);
        if p.p_filesz > p.p_memsz {
            return Err(format!(
                "{n} has p_filesz {:#x} larger than p_memsz {:#x}",
                p.p_filesz, p.p_memsz
            ));
        }
        if p.p_offset
            .checked_add(p.p_filesz)
            .is_none_or(|e| e > ef.size)
        {
            return Err(format!("{n} extends past the end of the file"));
        }
        if p.p_vaddr.checked_add(p.p_memsz).is_none_or(|e| e > limit) {
            return Err(format!(
                "{n} at {:#x}+{:#x} ends beyond the user address space ({limit:#x})",
                p.p_vaddr, p.p_memsz
            ));
        }
        if p.p_align > 1 && !p.p_align.is_power_of_two() {
            return Err(format!(
                "{n} has p_align {:#x}, not a power of two",
                p.p_align
            ));
        }
        if p.p_align > MAX_ALIGN {
            return Err(format!(
                "{n} has p_align {:#x}, larger than any page ({MAX_ALIGN:#x})",
                p.p_align
            ));
        }
        let skew = p.p_vaddr.wrapping_sub(p.p_offset);
        if p.p_align > 1 && skew % p.p_align != 0 {
            return Err(format!(
                "{n}: p_vaddr {:#x} and p_offset {:#x} differ modulo p_align {:#x}",
                p.p_vaddr, p.p_offset, p.p_align
            ));
        }
        if skew % PAGE != 0 {
            return Err(format!(
                "{n}: p_vaddr {:#x} and p_offset {:#x} differ modulo the page size",
                p.p_vaddr, p.p_offset
            ));
        }
        if p.p_memsz > 0 {
            loads.push((i, p));
        }
    }
    // … and together: the loader maps them in table order, as one span.
    if loads.is_empty() {
        return Err("there is no PT_LOAD".into());
    }
    for w in loads.windows(2) {
        let ((i, a), (j, b)) = (w[0], w[1]);
        if b.p_vaddr < a.p_vaddr {
            return Err(format!(
                "PT_LOAD segments {i} and {j} are not in address order"
            ));
        }
        if a.p_vaddr + a.p_memsz > b.p_vaddr {
            return Err(format!("PT_LOAD segments {i} and {j} overlap in memory"));
        }
    }

    // Segments the kernel reads by offset and glibc by address: the two must agree.
    let mapped = |p: &ProgramHeader| {
        ef.phdrs.iter().any(|l| {
            l.p_type == ph::PT_LOAD
                && l.p_offset <= p.p_offset
                && p.p_offset
                    .checked_add(p.p_filesz)
                    .is_some_and(|e| e <= l.p_offset + l.p_filesz)
                && p.p_vaddr.checked_sub(l.p_vaddr) == Some(p.p_offset - l.p_offset)
        })
    };
    let phent = u64::from(hdr.e_phentsize);
    let mut count = [0usize; 3];
    for (i, p) in ef.phdrs.iter().enumerate() {
        let n = name(i, p);
        match p.p_type {
            ph::PT_PHDR => {
                count[0] += 1;
                if p.p_offset != hdr.e_phoff || p.p_filesz != phent * u64::from(hdr.e_phnum) {
                    return Err(format!("{n} does not describe the program header table"));
                }
            }
            ph::PT_INTERP => {
                count[1] += 1;
                if p.p_filesz < 2 || p.p_filesz > crate::elf::MAX_INTERP {
                    return Err(format!("{n} is {:#x} bytes long", p.p_filesz));
                }
                let mut last = [0u8; 1];
                file.read_exact_at(&mut last, p.p_offset + p.p_filesz - 1)
                    .map_err(|e| format!("{n}: {e}"))?;
                if last[0] != 0 {
                    return Err(format!("{n} does not end in a NUL byte"));
                }
            }
            ph::PT_DYNAMIC => count[2] += 1,
            ph::PT_NOTE | ph::PT_GNU_PROPERTY if p.p_filesz > 0 => {}
            _ => continue,
        }
        if p.p_filesz > p.p_memsz {
            return Err(format!(
                "{n} has p_filesz {:#x} larger than p_memsz {:#x}",
                p.p_filesz, p.p_memsz
            ));
        }
        if !mapped(p) {
            return Err(format!(
                "{n} at offset {:#x}, address {:#x} is not inside a PT_LOAD at that same offset and address",
                p.p_offset, p.p_vaddr
            ));
        }
    }
    for (k, what) in [(0, "PT_PHDR"), (1, "PT_INTERP"), (2, "PT_DYNAMIC")] {
        if count[k] > 1 {
            return Err(format!("there are {} {what} segments", count[k]));
        }
    }

    // The tables the dynamic section points at: the writer moves or copies some of them.
    for d in &ef.dynamic {
        if let Some(&(_, tag)) = TABLE_TAGS.iter().find(|(t, _)| *t == d.d_tag) {
            if vaddr_to_offset(&ef.phdrs, d.d_val, 1).is_none() {
                return Err(format!(
                    "{tag} {:#x} is not inside a loaded part of the file",
                    d.d_val
                ));
            }
        }
    }
    Ok(())
}

/// The bytes of a file as they will be after an in-place stamp is written: `head` at offset 0
/// and `tail` at `tail_offset` over the current file (`base`), zeros between its end and the
/// tail.
pub struct Overlay<'a> {
    pub base: &'a dyn Source,
    pub base_size: u64,
    pub head: &'a [u8],
    pub tail_offset: u64,
    pub tail: &'a [u8],
}

impl Source for Overlay<'_> {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.tail_offset + self.tail.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size().unwrap_or(0))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        let mut at = offset;
        while at < end {
            let i = (at - offset) as usize;
            // The piece holding `at`, and where it ends.
            let stop = if at < self.head.len() as u64 {
                let stop = end.min(self.head.len() as u64);
                buf[i..(stop - offset) as usize]
                    .copy_from_slice(&self.head[at as usize..stop as usize]);
                stop
            } else if at >= self.tail_offset {
                let rel = (at - self.tail_offset) as usize;
                let n = buf.len() - i;
                buf[i..].copy_from_slice(&self.tail[rel..rel + n]);
                end
            } else if at < self.base_size {
                let stop = end.min(self.base_size).min(self.tail_offset);
                self.base
                    .read_exact_at(&mut buf[i..(stop - offset) as usize], at)?;
                stop
            } else {
                let stop = end.min(self.tail_offset);
                buf[i..(stop - offset) as usize].fill(0);
                stop
            };
            at = stop;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Every range read from an overlay equals the same range of the file it stands for.
    #[test]
    fn overlay_reads_like_the_written_file() {
        let base_bytes: Vec<u8> = (0..100u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&base_bytes).unwrap();
        let head = [0xaa; 10];
        let tail = [0xbb, 0xcc, 0xdd, 0xee, 0xff];
        let ov = Overlay {
            base: &f,
            base_size: 100,
            head: &head,
            tail_offset: 128,
            tail: &tail,
        };
        let mut want = base_bytes.clone();
        want[..10].copy_from_slice(&head);
        want.resize(128, 0);
        want.extend_from_slice(&tail);
        assert_eq!(ov.size().unwrap(), want.len() as u64);
        for start in 0..want.len() {
            for end in start..=want.len() {
                let mut got = vec![1u8; end - start];
                ov.read_exact_at(&mut got, start as u64).unwrap();
                assert_eq!(got, want[start..end], "{start}..{end}");
            }
        }
        let mut past = [0u8; 2];
        assert!(ov.read_exact_at(&mut past, want.len() as u64 - 1).is_err());
    }
}
