use std::fmt;
use std::io;

/// Why a file could not be read as ELF. The `Display` form is one line, meant to follow
/// `shrinkwrap: <path>: `.
#[derive(Debug)]
pub enum ElfError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// Shorter than an ELF identification, or the magic bytes are wrong.
    NotElf,
    /// A structure the headers point at lies (partly) past the end of the file.
    Truncated(String),
    /// The headers contradict themselves or hold impossible values.
    Corrupt(String),
    /// Valid ELF that shrinkwrap does not handle (unknown class, extended numbering, …).
    Unsupported(String),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Io(e) => write!(f, "{e}"),
            ElfError::NotElf => f.write_str("not an ELF file"),
            ElfError::Truncated(what) => write!(f, "truncated ELF file: {what}"),
            ElfError::Corrupt(what) => write!(f, "corrupt ELF file: {what}"),
            ElfError::Unsupported(what) => write!(f, "unsupported ELF file: {what}"),
        }
    }
}

impl std::error::Error for ElfError {}

impl From<io::Error> for ElfError {
    fn from(e: io::Error) -> Self {
        ElfError::Io(e)
    }
}
