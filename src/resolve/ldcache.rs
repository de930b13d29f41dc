//! `/etc/ld.so.cache`, the file `ldconfig` writes and glibc's loader consults after the
//! requester's own search paths.
//!
//! Only the "new" format (`glibc-ld.so.cache1.1`) is read, also when it follows the old libc5
//! table. Entries are kept in file order; glibc's binary search lands on the first entry with a
//! matching name and walks forward, so the first suitable entry in file order is its answer.

use std::collections::HashMap;
use std::path::Path;

use scroll::Pread;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;

/// `FLAG_ELF_LIBC6`: the type field every glibc entry carries.
const FLAG_ELF_LIBC6: u32 = 0x0003;
const FLAG_TYPE_MASK: u32 = 0x00ff;
const FLAG_ARCH_MASK: u32 = 0xff00;
/// Bit in `hwcap` marking an entry in a `glibc-hwcaps/<level>/` subdirectory.
#[cfg(test)]
const HWCAP_EXTENSION: u64 = 1 << 62;

/// One cache entry that can satisfy a lookup.
#[derive(Clone, Debug)]
struct Entry {
    flags: u32,
    hwcap: u64,
    path: String,
}

/// The parsed cache: name → entries in file order.
#[derive(Debug, Default)]
pub struct LdCache {
    entries: HashMap<String, Vec<Entry>>,
}

/// Result of a cache lookup.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CacheHit {
    /// The portable (non-hwcaps) entry, if any.
    pub path: Option<String>,
    /// hwcaps or legacy-hwcap entries the loader might have preferred on some CPU.
    pub skipped_variants: Vec<String>,
}

impl LdCache {
    /// Reads and parses a cache file. A missing or unreadable cache is an empty cache, exactly
    /// as the loader treats it.
    pub fn load(path: &Path) -> LdCache {
        std::fs::read(path)
            .ok()
            .and_then(|b| LdCache::parse(&b))
            .unwrap_or_default()
    }

    /// Parses cache bytes; `None` when the format is not recognised.
    pub fn parse(bytes: &[u8]) -> Option<LdCache> {
        let start = if bytes.starts_with(NEW_MAGIC) {
            0
        } else if bytes.starts_with(OLD_MAGIC) {
            // Old header: 12-byte magic + u32 count, then 12-byte entries; the new cache
            // follows, aligned to 8.
            let n: u32 = bytes.pread_with(12, scroll::NATIVE).ok()?;
            let end = 16usize.checked_add((n as usize).checked_mul(12)?)?;
            let aligned = end.checked_add(7)? & !7;
            if !bytes.get(aligned..)?.starts_with(NEW_MAGIC) {
                return None;
            }
            aligned
        } else {
            return None;
        };
        let new = &bytes[start..];
        // The cache is written in the byte order of the machine that runs ldconfig.
        let le = match new.get(28) {
            Some(3) => scroll::BE,
            Some(2) => scroll::LE,
            _ => scroll::NATIVE,
        };
        let nlibs: u32 = new.pread_with(20, le).ok()?;
        let mut cache = LdCache::default();
        for i in 0..nlibs as usize {
            let off = NEW_HEADER.checked_add(i.checked_mul(NEW_ENTRY)?)?;
            let flags: i32 = new.pread_with(off, le).ok()?;
            let key: u32 = new.pread_with(off + 4, le).ok()?;
            let value: u32 = new.pread_with(off + 8, le).ok()?;
            let hwcap: u64 = new.pread_with(off + 16, le).ok()?;
            let (Some(key), Some(value)) = (cstr(new, key), cstr(new, value)) else {
                continue;
            };
            cache.entries.entry(key).or_default().push(Entry {
                flags: flags as u32,
                hwcap,
                path: value,
            });
        }
        Some(cache)
    }

    /// Looks `name` up for an object whose cache flags are `want` (see [`cache_flags`]).
    /// hwcaps variants are never chosen; they are reported.
    pub fn lookup(&self, name: &str, want: Option<u32>) -> CacheHit {
        let mut hit = CacheHit::default();
        for e in self.entries.get(name).into_iter().flatten() {
            if !flags_match(e.flags, want) {
                continue;
            }
            if e.hwcap != 0 {
                hit.skipped_variants.push(e.path.clone());
            } else if hit.path.is_none() {
                hit.path = Some(e.path.clone());
            }
        }
        hit
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn flags_match(flags: u32, want: Option<u32>) -> bool {
    match want {
        Some(w) => flags == w || (w == FLAG_ELF_LIBC6 && flags == 1),
        // Unknown architecture: accept any glibc entry; the class/machine check of the file
        // itself still rejects wrong ones, as it does in the loader.
        None => flags & FLAG_TYPE_MASK == FLAG_ELF_LIBC6,
    }
}

/// The cache flags glibc's loader accepts for objects of this class and machine, where known.
pub fn cache_flags(machine: u16, class64: bool) -> Option<u32> {
    use goblin::elf::header::*;
    let arch = match (machine, class64) {
        (EM_X86_64, true) => 0x0300,
        (EM_X86_64, false) => 0x0800, // x32
        (EM_386 | crate::elf::EM_486, false) => 0,
        (EM_AARCH64, true) => 0x0a00,
        (EM_S390, true) => 0x0400,
        (EM_S390, false) => 0,
        (EM_PPC64, true) => 0x0500,
        (EM_PPC, false) => 0,
        (EM_SPARCV9, true) => 0x0100,
        _ => return None,
    };
    debug_assert_eq!(arch & !FLAG_ARCH_MASK, 0);
    Some(FLAG_ELF_LIBC6 | arch)
}

fn cstr(bytes: &[u8], off: u32) -> Option<String> {
    let rest = bytes.get(off as usize..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a new-format cache with the given (name, path, flags, hwcap) entries.
    fn build(entries: &[(&str, &str, u32, u64)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let base = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut table = Vec::new();
        for (name, path, flags, hwcap) in entries {
            let k = base + strings.len();
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let v = base + strings.len();
            strings.extend_from_slice(path.as_bytes());
            strings.push(0);
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&(k as u32).to_le_bytes());
            table.extend_from_slice(&(v as u32).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&hwcap.to_le_bytes());
        }
        let mut out = NEW_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&[0u8; 16]);
        assert_eq!(out.len(), NEW_HEADER);
        out.extend(table);
        out.extend(strings);
        out
    }

    #[test]
    fn picks_portable_entry_of_the_right_arch() {
        let x86_64 = cache_flags(goblin::elf::header::EM_X86_64, true);
        let bytes = build(&[
            ("libz.so.1", "/lib32/libz.so.1", 3, 0),
            ("libz.so.1", "/v3/libz.so.1", 0x303, HWCAP_EXTENSION | 1),
            ("libz.so.1", "/lib/libz.so.1", 0x303, 0),
        ]);
        let cache = LdCache::parse(&bytes).unwrap();
        let hit = cache.lookup("libz.so.1", x86_64);
        assert_eq!(hit.path.as_deref(), Some("/lib/libz.so.1"));
        assert_eq!(hit.skipped_variants, vec!["/v3/libz.so.1".to_string()]);
        let i386 = cache_flags(goblin::elf::header::EM_386, false);
        assert_eq!(
            cache.lookup("libz.so.1", i386).path.as_deref(),
            Some("/lib32/libz.so.1")
        );
        assert_eq!(cache.lookup("libq.so", x86_64), CacheHit::default());
    }

    #[test]
    fn garbage_is_not_a_cache() {
        assert!(LdCache::parse(b"nonsense").is_none());
        assert!(LdCache::parse(&NEW_MAGIC[..10]).is_none());
    }
}
