//! Replacing a file with a new one, safely: written beside it, given its owner and mode, checked,
//! and swapped in atomically, so a killed run leaves either the old file or the new one. Used
//! by the shifted layout, whose every offset changes, and to undo one.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rayon::prelude::*;

use super::tables::align;
use super::WriteError;
use crate::elf::stamped::temp_name;
use crate::lock::{flock, Lock};

/// Chunk size for copies through a buffer.
const CHUNK: usize = 1 << 20;

/// A new file described by where its bytes come from: pieces in order (ranges of the current
/// file, or given bytes), then patches laid over them at their offsets in the new file.
pub struct Rewrite {
    pub pieces: Vec<Piece>,
    pub patches: Vec<(u64, Vec<u8>)>,
}

pub enum Piece {
    Copy { from: u64, len: u64 },
    Bytes(Vec<u8>),
}

/// Replaces the file at `path` (open as `current`) with `rewrite`: written to a new file
/// beside it with the same owner and mode, checked by `verify`, then renamed over it.
/// [`WriteError::KeepInPlace`] when the file has other hard links or extended attributes, or
/// the new file cannot get its owner or be created. The caller holds the lock on `current`;
/// the new file, returned, is locked before it is swapped in (`crate::lock`).
pub fn replace_file(
    path: &Path,
    current: &File,
    rewrite: &Rewrite,
    verify: impl FnOnce(&File) -> Result<(), WriteError>,
) -> Result<File, WriteError> {
    let meta = current.metadata()?;
    if meta.nlink() != 1 {
        return Err(WriteError::KeepInPlace("it has other hard links".into()));
    }
    if has_xattrs(current) {
        return Err(WriteError::KeepInPlace(
            "it has extended attributes (capabilities, ACLs or labels)".into(),
        ));
    }
    let real = fs::canonicalize(path)?;
    let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
        return Err(WriteError::KeepInPlace("it has no directory".into()));
    };
    let tmp = dir.join(temp_name(&name.to_string_lossy()));
    // A run killed before its rename leaves this behind.
    let _ = fs::remove_file(&tmp);
    let out = match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(WriteError::KeepInPlace(
                "its directory is not writable".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let result = (|| {
        // Another run may open the new file as soon as it is at `path`: it must wait until
        // the old one is cleared from the temporary name, or it could clear our next one.
        flock(&out, Lock::Exclusive)?;
        let mut at = 0;
        for piece in &rewrite.pieces {
            match piece {
                Piece::Copy { from, len } => copy_range(current, *from, &out, at, *len)?,
                Piece::Bytes(b) => out.write_all_at(b, at)?,
            }
            at += match piece {
                Piece::Copy { len, .. } => *len,
                Piece::Bytes(b) => b.len() as u64,
            };
        }
        for (off, b) in &rewrite.patches {
            out.write_all_at(b, *off)?;
        }
        std::os::unix::fs::fchown(&out, Some(meta.uid()), Some(meta.gid()))
            .map_err(|_| WriteError::KeepInPlace("a new file cannot be given its owner".into()))?;
        out.set_permissions(Permissions::from_mode(meta.mode() & 0o7777))?;
        verify(&out)?;
        swap_in(&tmp, &real)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| out)
}

/// Copies `len` bytes from `from` in `src` to `to` in `dst`. A large copy is split across the
/// threads of the pool it runs in (`fixup -j`), so one big file is not a single long task.
fn copy_range(src: &File, from: u64, dst: &File, to: u64, len: u64) -> io::Result<()> {
    let threads = rayon::current_num_threads() as u64;
    if threads < 2 || len < SPLIT_COPY {
        return copy_span(src, from, dst, to, len);
    }
    let part = align(len.div_ceil(threads), 1 << 20);
    (0..len.div_ceil(part)).into_par_iter().try_for_each(|i| {
        let at = i * part;
        copy_span(src, from + at, dst, to + at, part.min(len - at))
    })
}

/// Copies below this size stay on one thread.
const SPLIT_COPY: u64 = 16 << 20;

/// One span of [`copy_range`]: in the kernel (`copy_file_range`, which shares the blocks on
/// file systems that can), or through a buffer where it cannot.
fn copy_span(src: &File, from: u64, dst: &File, to: u64, len: u64) -> io::Result<()> {
    let (mut from, mut to, mut left) = (from, to, len);
    while left > 0 {
        let mut off_in = from as libc::loff_t;
        let mut off_out = to as libc::loff_t;
        let chunk = left.min(1 << 30) as usize;
        // SAFETY: two open descriptors and pointers to two live offsets.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                chunk,
                0,
            )
        };
        if n <= 0 {
            let e = io::Error::last_os_error();
            if n == 0
                || matches!(
                    e.raw_os_error(),
                    Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                )
            {
                return copy_through_buffer(src, from, dst, to, left);
            }
            return Err(e);
        }
        from += n as u64;
        to += n as u64;
        left -= n as u64;
    }
    Ok(())
}

fn copy_through_buffer(src: &File, from: u64, dst: &File, to: u64, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut done = 0;
    while done < len {
        let n = buf.len().min((len - done) as usize);
        FileExt::read_exact_at(src, &mut buf[..n], from + done)?;
        dst.write_all_at(&buf[..n], to + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Puts `new` at `path`, atomically. Exchanging the two names and then deleting the old file
/// (now at `new`) is the same as renaming over it, but ext4 does not flush the new file's
/// data on an exchange as it does on a rename over an existing file.
fn swap_in(new: &Path, path: &Path) -> io::Result<()> {
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)
    };
    let (a, b) = (c(new)?, c(path)?);
    // SAFETY: two NUL-terminated paths; AT_FDCWD with absolute or relative paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        // The stamp is in place; an old file left under the temporary name is cleared by the
        // next run.
        let _ = fs::remove_file(new);
        return Ok(());
    }
    fs::rename(new, path)
}

/// Deletes what a killed run may have left beside `path`: the new file (killed before the
/// swap) or the old one (killed after it).
pub fn clear_leftover(path: &Path) {
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let _ = fs::remove_file(dir.join(temp_name(&name.to_string_lossy())));
    }
}

/// Whether a file carries extended attributes, which a new file would not have.
fn has_xattrs(file: &File) -> bool {
    // SAFETY: with a null buffer and size 0, flistxattr only returns the size the list needs.
    let n = unsafe { libc::flistxattr(file.as_raw_fd(), std::ptr::null_mut(), 0) };
    // -1: no support for them on this file system (or an error): nothing to lose.
    n > 0
}
