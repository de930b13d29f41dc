//! Keeping runs that overlap apart. Every run that stamps a file holds an exclusive `flock` on
//! it from before it reads the file until after its last write; a run that only reads a file
//! to plan holds a shared one while it reads. So no run reads half a stamp, two runs never
//! write one file at once, and an unreferenced tail found under the exclusive lock can only be
//! a killed run's (a live one would hold the lock).
//!
//! A lock belongs to an inode, and the shifted layout puts a new inode at the path. A run
//! that waited for the old inode's lock finds the path naming another file once it gets it:
//! it lets go and starts again with the file the path names now. The run that swaps a new
//! file in locks that new file before the swap and keeps the lock until it has cleared the
//! old one away, so nobody sees the new file before it is finished with.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Shared (reading) or exclusive (stamping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    Shared,
    Exclusive,
}

/// How often the path may turn out to name a new file before we give up: each retry means
/// another run finished a stamp, so this bounds nothing a real run would reach.
const MAX_RETRIES: usize = 1000;

/// Opens `path` for reading and locks it, waiting for other runs; the path is checked to
/// still name the locked file. The lock lasts as long as the returned `File`.
pub fn open_locked(path: &Path, lock: Lock) -> io::Result<File> {
    open_locked_with(path, lock, OpenOptions::new().read(true))
}

/// [`open_locked`], opening with `options` (to write through the locked descriptor itself).
pub fn open_locked_with(path: &Path, lock: Lock, options: &OpenOptions) -> io::Result<File> {
    for _ in 0..MAX_RETRIES {
        let file = open_regular(path, options)?;
        let meta = file.metadata()?;
        flock(&file, lock)?;
        let now = std::fs::metadata(path)?;
        if (now.dev(), now.ino()) == (meta.dev(), meta.ino()) {
            return Ok(file);
        }
    }
    Err(io::Error::other(
        "the file kept being replaced while waiting for its lock",
    ))
}

/// Opens `path` with `options` if it is a regular file. Anything else is one clear error: a
/// directory, a FIFO or socket (opening a FIFO to read waits for a writer, forever: the open
/// does not block, `O_NONBLOCK`, which regular files ignore), or a device.
pub fn open_regular(path: &Path, options: &OpenOptions) -> io::Result<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut options = options.clone();
    options.custom_flags(libc::O_NONBLOCK);
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    let not = |why: &'static str| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    if kind.is_file() {
        Ok(file)
    } else if kind.is_dir() {
        Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ))
    } else if kind.is_fifo() {
        not("is a FIFO (named pipe), not a regular file")
    } else if kind.is_socket() {
        not("is a socket, not a regular file")
    } else {
        not("is a device, not a regular file")
    }
}

/// [`open_locked`] with a shared lock, and the file's identity: what planning reads a file
/// through, so it never sees half a stamp.
pub fn open_to_read(path: &Path) -> Result<(File, crate::resolve::FileId), crate::elf::ElfError> {
    let file = open_locked(path, Lock::Shared)?;
    let meta = file.metadata()?;
    Ok((file, crate::resolve::file_id(&meta)))
}

/// Takes `lock` on `file`, waiting as long as another run holds a conflicting one.
pub fn flock(file: &File, lock: Lock) -> io::Result<()> {
    let op = match lock {
        Lock::Shared => libc::LOCK_SH,
        Lock::Exclusive => libc::LOCK_EX,
    };
    loop {
        // SAFETY: a valid open descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
