//! Reading ELF files: the dynamic-linking facts the resolver needs.
//!
//! Only the few kilobytes that matter are read (headers, `PT_DYNAMIC`, the dynamic string table
//! and the version-needs table), with positioned reads, so a 100 MB library costs as much as a
//! small one. ELF32/ELF64 and both byte orders go through one code path: goblin's `Ctx` carries
//! class and endianness into every parse.

pub mod encode;
mod error;
mod read;
pub mod stamped;

pub use error::ElfError;
pub(crate) use read::MAX_INTERP;
pub use read::{
    read_elf, read_elf_file, read_elf_from, read_elf_source, vaddr_to_offset, ElfFile, Source,
};

/// The ELF header's size for the file's class (52 or 64 bytes): what the kernel and the loader
/// read, whatever the untrusted `e_ehsize` says. The writer saves and rewrites this many bytes
/// (a file claiming 0 once lost its original header from the stamp record; found by fuzzing).
pub fn header_size(ctx: goblin::container::Ctx) -> u64 {
    use scroll::ctx::SizeWith;
    goblin::elf::header::Header::size_with(&ctx) as u64
}

/// ELF class: 32- or 64-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Class {
    Elf32,
    Elf64,
}

/// Byte order of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Endian {
    Little,
    Big,
}

/// What a file is, as far as dynamic linking is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// A dynamically linked executable; `pie` for position-independent ones (`ET_DYN`).
    Executable { pie: bool },
    /// A shared library (`ET_DYN` that is not a PIE executable).
    SharedLibrary,
    /// No `PT_DYNAMIC`, or a static-pie: nothing for the loader to resolve.
    Static,
    /// A separate debug file (`objcopy --only-keep-debug`): its loadable sections are `NOBITS`.
    DebugFile,
    /// A relocatable object (`.o`).
    Relocatable,
    /// Anything else (core dumps, unknown `e_type`).
    Other,
}

impl Kind {
    /// Stable name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Executable { pie: true } => "pie-executable",
            Kind::Executable { pie: false } => "executable",
            Kind::SharedLibrary => "shared-library",
            Kind::Static => "static",
            Kind::DebugFile => "debug-file",
            Kind::Relocatable => "relocatable",
            Kind::Other => "other",
        }
    }

    /// Whether the loader resolves DT_NEEDED entries for this file.
    pub fn is_dynamic(self) -> bool {
        matches!(self, Kind::Executable { .. } | Kind::SharedLibrary)
    }
}

/// One `Elf_Verneed` entry: a library named in `vn_file` and the versions required from it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionNeed {
    pub file: String,
    pub versions: Vec<String>,
}

/// `DF_1_NODEFLIB`: do not search the system cache or default directories for this object's needs.
pub const DF_1_NODEFLIB: u64 = 0x800;
/// `DF_1_PIE`: the object is a position-independent executable.
pub const DF_1_PIE: u64 = 0x0800_0000;

/// Everything shrinkwrap needs to know about one ELF file.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ElfInfo {
    pub class: Class,
    pub endian: Endian,
    /// `e_machine`.
    pub machine: u16,
    /// `e_ident[EI_OSABI]`.
    pub os_abi: u8,
    pub kind: Kind,
    /// `PT_INTERP`, without the trailing NUL.
    pub interpreter: Option<String>,
    /// DT_NEEDED entries, in file order.
    pub needed: Vec<String>,
    /// DT_RPATH as written (the loader ignores it when DT_RUNPATH is present; see `effective_rpath`).
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    pub soname: Option<String>,
    /// DT_FLAGS_1 (0 when absent).
    pub flags_1: u64,
    /// `.gnu.version_r`, in file order.
    pub version_needs: Vec<VersionNeed>,
}

impl ElfInfo {
    /// DT_RPATH as the loader uses it: glibc drops DT_RPATH when DT_RUNPATH is also present.
    pub fn effective_rpath(&self) -> Option<&str> {
        match self.runpath {
            Some(_) => None,
            None => self.rpath.as_deref(),
        }
    }

    /// A program: an executable without a soname. It lists its whole closure when stamped,
    /// and its PT_INTERP is the loader it runs under. Anything else (even `libc.so.6`, which
    /// can be run) is loaded as a library by programs that bring their own loader.
    pub fn is_program(&self) -> bool {
        matches!(self.kind, Kind::Executable { .. }) && self.soname.is_none()
    }

    pub fn nodeflib(&self) -> bool {
        self.flags_1 & DF_1_NODEFLIB != 0
    }

    /// Whether a library with `other`'s class, byte order and machine can satisfy this file's
    /// needs. The loader skips candidates that fail this and keeps searching.
    pub fn compatible_with(&self, other: &ElfInfo) -> bool {
        self.class == other.class
            && self.endian == other.endian
            && machines_compatible(self.machine, other.machine)
    }

    /// A short human name for the machine, e.g. `x86_64`, `i386`, `aarch64`.
    pub fn machine_name(&self) -> String {
        machine_name(self.machine)
    }
}

fn machines_compatible(a: u16, b: u16) -> bool {
    use goblin::elf::header::EM_386;
    // glibc's i386 loader accepts EM_386 and EM_486 alike.
    let norm = |m| if m == EM_486 { EM_386 } else { m };
    norm(a) == norm(b)
}

/// `EM_486`, which glibc's i386 loader accepts like `EM_386` (goblin does not name it).
pub const EM_486: u16 = 6;

/// A short name for an `e_machine` value.
pub fn machine_name(machine: u16) -> String {
    use goblin::elf::header::*;
    match machine {
        EM_X86_64 => "x86_64".into(),
        EM_386 | EM_486 => "i386".into(),
        EM_AARCH64 => "aarch64".into(),
        EM_ARM => "arm".into(),
        EM_RISCV => "riscv".into(),
        EM_PPC => "powerpc".into(),
        EM_PPC64 => "powerpc64".into(),
        EM_S390 => "s390".into(),
        EM_MIPS => "mips".into(),
        EM_SPARCV9 => "sparc64".into(),
        EM_LOONGARCH => "loongarch".into(),
        other => format!("machine-{other}"),
    }
}
