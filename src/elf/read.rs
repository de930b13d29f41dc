//! Positioned reads of the dynamic-linking metadata, generic over class and byte order.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use goblin::container::{Container, Ctx};
use goblin::elf::dynamic::{self, Dyn};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{self, ProgramHeader};
use goblin::elf::section_header::{SectionHeader, SHT_NOBITS};
use scroll::Pread;

use super::{Class, ElfError, ElfInfo, Endian, Kind, VersionNeed, DF_1_PIE};

/// Longest PT_INTERP we accept; anything longer is corrupt (PATH_MAX is 4096).
pub(crate) const MAX_INTERP: u64 = 4096;

/// Reads the dynamic-linking facts of the ELF file at `path`.
pub fn read_elf(path: &Path) -> Result<ElfInfo, ElfError> {
    let file = File::open(path)?;
    read_elf_from(&file)
}

/// Reads the dynamic-linking facts from an open file.
pub fn read_elf_from(file: &File) -> Result<ElfInfo, ElfError> {
    read_elf_file(file).map(|f| f.info)
}

/// Reads the facts and the raw structures a writer needs (headers, dynamic entries, the
/// dynamic string table, the version-needs table, section headers).
pub fn read_elf_file(file: &File) -> Result<ElfFile, ElfError> {
    read_elf_source(file)
}

/// Where ELF bytes come from: a file, or a view of one (the original behind our own stamp,
/// `elf::stamped::Original`).
pub trait Source {
    fn size(&self) -> std::io::Result<u64>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl Source for File {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

/// [`read_elf_file`] for any [`Source`].
pub fn read_elf_source(src: &dyn Source) -> Result<ElfFile, ElfError> {
    let size = src.size()?;
    Reader { file: src, size }.read()
}

/// `(file offset, length)` of a table in the file.
pub type Region = (u64, u64);

/// An ELF file's dynamic-linking structures, as read.
#[derive(Debug)]
pub struct ElfFile {
    pub info: ElfInfo,
    /// Class and byte order, for goblin's parsers and writers.
    pub ctx: Ctx,
    pub header: Header,
    pub phdrs: Vec<ProgramHeader>,
    /// Entries of PT_DYNAMIC up to (not including) the first DT_NULL.
    pub dynamic: Vec<Dyn>,
    /// The dynamic string table and its address.
    pub dynstr: Vec<u8>,
    pub dynstr_addr: u64,
    /// `(file offset, length)` of the version-needs table, all entries included.
    pub verneed: Option<Region>,
    /// Section headers, empty when the file has none (or they are unreadable).
    pub shdrs: Vec<SectionHeader>,
    /// File size when read.
    pub size: u64,
}

struct Reader<'a> {
    file: &'a dyn Source,
    size: u64,
}

impl Reader<'_> {
    /// Reads `len` bytes at `offset`, or says which structure (`what`) lies past the end.
    fn bytes(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>, ElfError> {
        let end = offset.checked_add(len).ok_or_else(|| {
            ElfError::Corrupt(format!(
                "{what} has an impossible offset ({offset:#x}+{len:#x})"
            ))
        })?;
        if end > self.size {
            return Err(ElfError::Truncated(format!(
                "{what} at {offset:#x}..{end:#x} extends past the end of the file ({:#x} bytes)",
                self.size
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn read(&self) -> Result<ElfFile, ElfError> {
        let ident_len = self.size.min(header::SIZEOF_IDENT as u64);
        let ident = self.bytes(0, ident_len, "ELF identification")?;
        if ident.len() < header::SELFMAG || &ident[..header::SELFMAG] != header::ELFMAG {
            return Err(ElfError::NotElf);
        }
        if ident.len() < header::SIZEOF_IDENT {
            return Err(ElfError::Truncated(
                "the ELF identification is cut short".into(),
            ));
        }
        let (class, container) = match ident[header::EI_CLASS] {
            header::ELFCLASS32 => (Class::Elf32, Container::Little),
            header::ELFCLASS64 => (Class::Elf64, Container::Big),
            c => return Err(ElfError::Unsupported(format!("unknown ELF class {c}"))),
        };
        let (endian, le) = match ident[header::EI_DATA] {
            header::ELFDATA2LSB => (Endian::Little, scroll::LE),
            header::ELFDATA2MSB => (Endian::Big, scroll::BE),
            d => return Err(ElfError::Unsupported(format!("unknown byte order {d}"))),
        };
        let ctx = Ctx::new(container, le);
        let hdr = self.header(ctx)?;
        let phdrs = self.program_headers(&hdr, ctx)?;
        let shdrs = self.section_headers(&hdr, ctx);
        let debug_file = self.is_debug_file(&hdr, &shdrs);
        self.check_extent(&hdr, &phdrs, debug_file)?;

        let interpreter = match phdrs.iter().find(|p| p.p_type == program_header::PT_INTERP) {
            Some(p) if !debug_file => Some(self.interpreter(p)?),
            _ => None,
        };
        let dynamic = match phdrs
            .iter()
            .find(|p| p.p_type == program_header::PT_DYNAMIC)
        {
            Some(p) if !debug_file => Some(self.dynamic(p, &phdrs, ctx)?),
            _ => None,
        };
        let dynamic = dynamic.unwrap_or_default();

        let kind = match hdr.e_type {
            header::ET_REL => Kind::Relocatable,
            header::ET_EXEC | header::ET_DYN if debug_file => Kind::DebugFile,
            header::ET_EXEC | header::ET_DYN if !dynamic.present => Kind::Static,
            header::ET_EXEC => Kind::Executable { pie: false },
            header::ET_DYN if dynamic.flags_1 & DF_1_PIE != 0 => match interpreter {
                Some(_) => Kind::Executable { pie: true },
                None => Kind::Static, // static-pie: relocates itself, needs nothing
            },
            // Older linkers do not set DF_1_PIE: a PIE has an interpreter and no soname.
            // (libc.so.6 has an interpreter too, but also a soname.)
            header::ET_DYN if interpreter.is_some() && dynamic.soname.is_none() => {
                Kind::Executable { pie: true }
            }
            header::ET_DYN => Kind::SharedLibrary,
            _ => Kind::Other,
        };

        let info = ElfInfo {
            class,
            endian,
            machine: hdr.e_machine,
            os_abi: ident[header::EI_OSABI],
            kind,
            interpreter,
            needed: dynamic.needed,
            rpath: dynamic.rpath,
            runpath: dynamic.runpath,
            soname: dynamic.soname,
            flags_1: dynamic.flags_1,
            version_needs: dynamic.version_needs,
        };
        Ok(ElfFile {
            info,
            ctx,
            header: hdr,
            phdrs,
            dynamic: dynamic.entries,
            dynstr: dynamic.strtab,
            dynstr_addr: dynamic.strtab_addr,
            verneed: dynamic.verneed,
            shdrs,
            size: self.size,
        })
    }

    fn header(&self, ctx: Ctx) -> Result<Header, ElfError> {
        let len = Header::size(ctx) as u64;
        let buf = self.bytes(0, len, "ELF header")?;
        let hdr: Header = match ctx.container {
            Container::Little => buf
                .pread_with::<goblin::elf32::header::Header>(0, ctx.le)
                .map(Into::into),
            Container::Big => buf
                .pread_with::<goblin::elf64::header::Header>(0, ctx.le)
                .map(Into::into),
        }
        .map_err(|e| ElfError::Corrupt(format!("ELF header: {e}")))?;
        Ok(hdr)
    }

    fn program_headers(&self, hdr: &Header, ctx: Ctx) -> Result<Vec<ProgramHeader>, ElfError> {
        if hdr.e_phnum == 0 {
            return Ok(Vec::new());
        }
        if hdr.e_phnum == 0xffff {
            return Err(ElfError::Unsupported(
                "extended program header numbering (PN_XNUM)".into(),
            ));
        }
        let entsize = ProgramHeader::size(ctx) as u64;
        if u64::from(hdr.e_phentsize) != entsize {
            return Err(ElfError::Corrupt(format!(
                "program header entry size is {}, expected {entsize}",
                hdr.e_phentsize
            )));
        }
        let len = entsize * u64::from(hdr.e_phnum);
        let buf = self.bytes(hdr.e_phoff, len, "program header table")?;
        ProgramHeader::parse(&buf, 0, hdr.e_phnum as usize, ctx)
            .map_err(|e| ElfError::Corrupt(format!("program headers: {e}")))
    }

    /// A file cut short is refused even where the loader would only fail later (or crash):
    /// every segment's bytes and the section header table must be in the file.
    fn check_extent(
        &self,
        hdr: &Header,
        phdrs: &[ProgramHeader],
        debug_file: bool,
    ) -> Result<(), ElfError> {
        let past_end = |off: u64, len: u64| off.checked_add(len).is_none_or(|end| end > self.size);
        for (i, p) in phdrs.iter().enumerate() {
            // Debug files keep the program headers of the original, whose contents are gone.
            // Any segment: the writer copies notes and `.interp` by their program headers.
            if p.p_filesz > 0 && past_end(p.p_offset, p.p_filesz) {
                if debug_file {
                    return Ok(());
                }
                return Err(ElfError::Truncated(format!(
                    "segment {i} ({} at {:#x}+{:#x}) extends past the end of the file ({:#x} bytes)",
                    program_header::pt_to_str(p.p_type),
                    p.p_offset,
                    p.p_filesz,
                    self.size
                )));
            }
        }
        let sh_len = u64::from(hdr.e_shentsize) * u64::from(hdr.e_shnum);
        if hdr.e_shoff != 0 && past_end(hdr.e_shoff, sh_len) {
            return Err(ElfError::Truncated(format!(
                "section header table ({:#x}+{sh_len:#x}) extends past the end of the file ({:#x} bytes)",
                hdr.e_shoff, self.size
            )));
        }
        Ok(())
    }

    /// Section headers are optional (the loader never reads them): any trouble reading them
    /// means "none".
    fn section_headers(&self, hdr: &Header, ctx: Ctx) -> Vec<SectionHeader> {
        let entsize = SectionHeader::size(ctx) as u64;
        if hdr.e_shoff == 0 || hdr.e_shnum == 0 || u64::from(hdr.e_shentsize) != entsize {
            return Vec::new();
        }
        // A section whose bytes run past the end of the file is trouble too: the writer
        // copies sections by their headers.
        self.bytes(hdr.e_shoff, entsize * u64::from(hdr.e_shnum), "")
            .ok()
            .and_then(|buf| SectionHeader::parse_from(&buf, 0, hdr.e_shnum as usize, ctx).ok())
            .filter(|shdrs| {
                shdrs.iter().all(|s| {
                    s.sh_type == SHT_NOBITS
                        || s.sh_offset
                            .checked_add(s.sh_size)
                            .is_some_and(|e| e <= self.size)
                })
            })
            .unwrap_or_default()
    }

    /// Separate debug files keep the program headers but turn the loaded sections into
    /// `NOBITS`; the offsets in their program headers point at nothing.
    fn is_debug_file(&self, hdr: &Header, shdrs: &[SectionHeader]) -> bool {
        let Some(strtab) = shdrs.get(hdr.e_shstrndx as usize) else {
            return false;
        };
        if strtab.sh_type == SHT_NOBITS || strtab.sh_size > 1 << 20 {
            return false;
        }
        let Ok(names) = self.bytes(strtab.sh_offset, strtab.sh_size, "") else {
            return false;
        };
        shdrs.iter().any(|s| {
            s.sh_type == SHT_NOBITS
                && matches!(
                    cstr_at(&names, s.sh_name as u64),
                    Some(b".dynamic" | b".text")
                )
        })
    }

    fn interpreter(&self, p: &ProgramHeader) -> Result<String, ElfError> {
        if p.p_filesz > MAX_INTERP {
            return Err(ElfError::Corrupt(format!(
                "PT_INTERP is {} bytes long",
                p.p_filesz
            )));
        }
        let buf = self.bytes(p.p_offset, p.p_filesz, "PT_INTERP")?;
        let s = buf.split(|&b| b == 0).next().unwrap_or_default();
        utf8(s.to_vec(), "PT_INTERP")
    }

    fn dynamic(
        &self,
        p: &ProgramHeader,
        phdrs: &[ProgramHeader],
        ctx: Ctx,
    ) -> Result<Dynamic, ElfError> {
        let buf = self.bytes(p.p_offset, p.p_filesz, "PT_DYNAMIC")?;
        let mut entries = Vec::new();
        let mut off = 0usize;
        while off < buf.len() {
            let d: Dyn = buf
                .gread_with(&mut off, ctx)
                .map_err(|_| ElfError::Truncated("PT_DYNAMIC ends inside an entry".into()))?;
            if d.d_tag == dynamic::DT_NULL {
                break;
            }
            entries.push(d);
        }
        let tag = |t: u64| entries.iter().find(|d| d.d_tag == t).map(|d| d.d_val);

        let mut out = Dynamic {
            present: true,
            flags_1: tag(dynamic::DT_FLAGS_1).unwrap_or(0),
            ..Dynamic::default()
        };
        let strtab_addr = tag(dynamic::DT_STRTAB);
        let strsz = tag(dynamic::DT_STRSZ);
        let strings_needed = entries.iter().any(|d| {
            matches!(
                d.d_tag,
                dynamic::DT_NEEDED | dynamic::DT_RPATH | dynamic::DT_RUNPATH | dynamic::DT_SONAME
            )
        }) || tag(dynamic::DT_VERNEED).is_some();
        if !strings_needed {
            out.entries = entries;
            return Ok(out);
        }
        let (Some(addr), Some(strsz)) = (strtab_addr, strsz) else {
            return Err(ElfError::Corrupt(
                "PT_DYNAMIC names strings but has no DT_STRTAB/DT_STRSZ".into(),
            ));
        };
        let str_off = vaddr_to_offset(phdrs, addr, strsz).ok_or_else(|| {
            ElfError::Corrupt(format!(
                "DT_STRTAB {addr:#x} (+{strsz:#x}) is not inside a loaded part of the file"
            ))
        })?;
        let strtab = self.bytes(str_off, strsz, "dynamic string table")?;
        let string = |off: u64, what: &str| -> Result<String, ElfError> {
            let s = cstr_at(&strtab, off).ok_or_else(|| {
                ElfError::Corrupt(format!(
                    "{what} string offset {off:#x} is outside the dynamic string table"
                ))
            })?;
            utf8(s.to_vec(), what)
        };
        for d in &entries {
            match d.d_tag {
                dynamic::DT_NEEDED => out.needed.push(string(d.d_val, "DT_NEEDED")?),
                dynamic::DT_RPATH if out.rpath.is_none() => {
                    out.rpath = Some(string(d.d_val, "DT_RPATH")?)
                }
                dynamic::DT_RUNPATH if out.runpath.is_none() => {
                    out.runpath = Some(string(d.d_val, "DT_RUNPATH")?)
                }
                dynamic::DT_SONAME if out.soname.is_none() => {
                    out.soname = Some(string(d.d_val, "DT_SONAME")?)
                }
                _ => {}
            }
        }
        if let Some(addr) = tag(dynamic::DT_VERNEED) {
            let count = tag(dynamic::DT_VERNEEDNUM);
            let (needs, extent) = self.version_needs(phdrs, addr, count, ctx.le, &string)?;
            out.version_needs = needs;
            out.verneed = Some(extent);
        }
        out.strtab = strtab;
        out.strtab_addr = addr;
        out.entries = entries;
        Ok(out)
    }

    /// Walks the `Elf_Verneed` chain. Its layout is the same for ELF32 and ELF64.
    fn version_needs(
        &self,
        phdrs: &[ProgramHeader],
        addr: u64,
        count: Option<u64>,
        le: scroll::Endian,
        string: &dyn Fn(u64, &str) -> Result<String, ElfError>,
    ) -> Result<(Vec<VersionNeed>, Region), ElfError> {
        const ENTRY: u64 = 16;
        let corrupt = || ElfError::Corrupt(format!("DT_VERNEED {addr:#x} is not in the file"));
        let mut off = vaddr_to_offset(phdrs, addr, ENTRY).ok_or_else(corrupt)?;
        let start = off;
        let mut end = off;
        // Every entry takes 16 bytes, so a count larger than the file can hold is corrupt.
        let limit = count.unwrap_or(u64::MAX).min(self.size / ENTRY + 1);
        // The table is small: read a block once and parse from it, falling back to reads of
        // single entries for anything past the block.
        let block_len = (self.size - start).min(4096);
        let block = self.bytes(start, block_len, "version-needs table")?;
        let entry = |at: u64, what: &str| -> Result<Vec<u8>, ElfError> {
            match at.checked_sub(start) {
                Some(rel) if rel + ENTRY <= block_len => {
                    Ok(block[rel as usize..(rel + ENTRY) as usize].to_vec())
                }
                _ => self.bytes(at, ENTRY, what),
            }
        };
        let mut needs = Vec::new();
        for _ in 0..limit {
            let e = entry(off, "version-needs entry")?;
            end = end.max(off + ENTRY);
            let cnt: u16 = e.pread_with(2, le).map_err(|_| corrupt())?;
            let file: u32 = e.pread_with(4, le).map_err(|_| corrupt())?;
            let aux: u32 = e.pread_with(8, le).map_err(|_| corrupt())?;
            let next: u32 = e.pread_with(12, le).map_err(|_| corrupt())?;
            let mut versions = Vec::with_capacity(cnt as usize);
            let mut aoff = off + u64::from(aux);
            for _ in 0..cnt {
                let a = entry(aoff, "version-needs aux entry")?;
                end = end.max(aoff + ENTRY);
                let name: u32 = a.pread_with(8, le).map_err(|_| corrupt())?;
                let anext: u32 = a.pread_with(12, le).map_err(|_| corrupt())?;
                versions.push(string(u64::from(name), "vna_name")?);
                if anext == 0 {
                    break;
                }
                aoff += u64::from(anext);
            }
            needs.push(VersionNeed {
                file: string(u64::from(file), "vn_file")?,
                versions,
            });
            if next == 0 {
                break;
            }
            off += u64::from(next);
        }
        Ok((needs, (start, end - start)))
    }
}

#[derive(Default)]
struct Dynamic {
    present: bool,
    entries: Vec<Dyn>,
    strtab: Vec<u8>,
    strtab_addr: u64,
    verneed: Option<Region>,
    needed: Vec<String>,
    rpath: Option<String>,
    runpath: Option<String>,
    soname: Option<String>,
    flags_1: u64,
    version_needs: Vec<VersionNeed>,
}

/// File offset of `len` bytes at virtual address `addr`, through the PT_LOAD that holds them.
///
/// The bytes may run on into the next PT_LOADs when those continue the first one exactly, in
/// the file and in memory (each starts where the previous one's file bytes end, and the
/// previous one has no zero-filled tail): the loader then maps one unbroken copy of the file
/// range, which is what Debian's patchelf 0.14.3 `--set-rpath` leaves for `.dynstr`.
pub fn vaddr_to_offset(phdrs: &[ProgramHeader], addr: u64, len: u64) -> Option<u64> {
    let end = addr.checked_add(len)?;
    let loads = || phdrs.iter().filter(|p| p.p_type == program_header::PT_LOAD);
    let ends = |p: &ProgramHeader| p.p_vaddr.saturating_add(p.p_filesz);
    if let Some(p) = loads().find(|p| p.p_vaddr <= addr && end <= ends(p)) {
        return Some(addr - p.p_vaddr + p.p_offset);
    }
    let first = loads().find(|p| p.p_vaddr <= addr && addr < ends(p))?;
    let mut cur = first;
    while end > ends(cur) {
        if cur.p_memsz != cur.p_filesz {
            return None;
        }
        let next_off = cur.p_offset.checked_add(cur.p_filesz)?;
        cur =
            loads().find(|p| p.p_vaddr == ends(cur) && p.p_offset == next_off && p.p_filesz > 0)?;
    }
    Some(addr - first.p_vaddr + first.p_offset)
}

/// The NUL-terminated string at `off` in `table`, without its NUL.
fn cstr_at(table: &[u8], off: u64) -> Option<&[u8]> {
    let rest = table.get(usize::try_from(off).ok()?..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..end])
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, ElfError> {
    String::from_utf8(bytes)
        .map_err(|_| ElfError::Unsupported(format!("{what} is not valid UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> ProgramHeader {
        ProgramHeader {
            p_type: program_header::PT_LOAD,
            p_offset: offset,
            p_vaddr: vaddr,
            p_filesz: filesz,
            p_memsz: memsz,
            ..ProgramHeader::default()
        }
    }

    #[test]
    fn a_range_may_run_on_into_a_segment_that_continues_its_own_exactly() {
        // Debian's patchelf 0.14.3 --set-rpath on a non-PIE program: `.dynstr` starts in its
        // new first segment and ends in the old one, which follows it in file and memory.
        let phdrs = [
            load(0, 0x3fe000, 0x2000, 0x2000),
            load(0x2000, 0x400000, 0x3f000, 0x3f000),
        ];
        assert_eq!(vaddr_to_offset(&phdrs, 0x3fe388, 0x27c3d), Some(0x388));
        assert_eq!(vaddr_to_offset(&phdrs, 0x3fe388, 0x10), Some(0x388));
        // Past the end of the second: no.
        assert_eq!(vaddr_to_offset(&phdrs, 0x3fe388, 0x50000), None);
        // The next segment elsewhere in the file, or with a gap in memory: no.
        let moved = [
            load(0, 0x3fe000, 0x2000, 0x2000),
            load(0x3000, 0x400000, 0x3f000, 0x3f000),
        ];
        assert_eq!(vaddr_to_offset(&moved, 0x3fe388, 0x27c3d), None);
        let gap = [
            load(0, 0x3fe000, 0x1000, 0x1000),
            load(0x1000, 0x400000, 0x3f000, 0x3f000),
        ];
        assert_eq!(vaddr_to_offset(&gap, 0x3fe388, 0x27c3d), None);
        // A zero-filled tail in between: no.
        let bss = [
            load(0, 0x3fe000, 0x2000, 0x2100),
            load(0x2000, 0x400000, 0x3f000, 0x3f000),
        ];
        assert_eq!(vaddr_to_offset(&bss, 0x3fe388, 0x27c3d), None);
    }
}
