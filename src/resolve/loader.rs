//! What the dynamic loader named by a file's `PT_INTERP` searches by default: its trusted
//! system directories, the `ld.so.cache` it reads (if any), and its `$LIB`/`$PLATFORM`.
//!
//! glibc ≥ 2.33 prints this with `ld.so --help`, so a loader that can run here is asked. One
//! that cannot (another architecture, a musl loader) gets a conservative guess, and the report
//! says it was guessed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::ldcache::LdCache;
use crate::elf::{self, ElfInfo, Kind};

/// The default search behaviour of one dynamic loader.
#[derive(Debug)]
pub struct LoaderConfig {
    /// The interpreter path as the file names it (also the loader's own `l_name`).
    pub interpreter: String,
    /// Trusted default directories, each ending in `/`.
    pub system_dirs: Vec<String>,
    /// The system cache the loader reads; `None` for loaders that read none (Nix's glibc).
    pub cache_path: Option<PathBuf>,
    pub cache: Arc<LdCache>,
    pub lib: String,
    pub platform: String,
    /// The capability subdirectories the loader tries, in order, inside every search directory
    /// before the directory itself (`glibc-hwcaps/x86-64-v3/`, and on glibc < 2.37 the legacy
    /// `tls/x86_64/`-style ones), ending with `""`, the directory itself. They depend on the
    /// CPU this runs on; a guessed loader has only `""`.
    pub subdirs: Vec<String>,
    /// True when the loader could not be asked and this is an educated guess.
    pub guessed: bool,
    /// The loader's own ELF facts (it is the first loaded object). Where its file cannot be
    /// read here (another machine's loader), it is still loaded at run time: a stand-in,
    /// named by the file name of PT_INTERP.
    pub object: Arc<super::probe::Object>,
}

impl LoaderConfig {
    /// Works out the configuration of `interpreter` for objects like `main`.
    pub fn discover(
        interpreter: &str,
        main: &ElfInfo,
        object: Option<Arc<super::probe::Object>>,
    ) -> LoaderConfig {
        let asked = object
            .as_ref()
            .filter(|o| looks_like_glibc_loader(interpreter, &o.info))
            .and_then(|_| ask(interpreter));
        let (help, guessed) = match asked {
            Some(help) => (help, false),
            None => {
                let (dirs, cache) = guess(interpreter, main);
                let subdirs = vec![String::new()];
                (
                    Help {
                        dirs,
                        cache,
                        subdirs,
                    },
                    true,
                )
            }
        };
        let Help {
            dirs: system_dirs,
            cache: cache_path,
            subdirs,
        } = help;
        let cache = Arc::new(cache_path.as_deref().map(LdCache::load).unwrap_or_default());
        let object = object.unwrap_or_else(|| stand_in(interpreter, main));
        LoaderConfig {
            interpreter: interpreter.to_string(),
            lib: lib_token(&system_dirs),
            platform: platform_token(main),
            system_dirs,
            cache_path,
            cache,
            subdirs,
            guessed,
            object,
        }
    }
}

/// A loader that cannot be read, as an object like `main` (same class and machine) whose
/// soname is the file name of its path.
fn stand_in(interpreter: &str, main: &ElfInfo) -> Arc<super::probe::Object> {
    let base = interpreter.rsplit('/').next().unwrap_or(interpreter);
    Arc::new(super::probe::Object {
        info: ElfInfo {
            needed: Vec::new(),
            soname: Some(base.to_string()),
            interpreter: None,
            rpath: None,
            runpath: None,
            flags_1: 0,
            version_needs: Vec::new(),
            kind: Kind::SharedLibrary,
            ..main.clone()
        },
        // Matches no real file.
        file_id: (u64::MAX, u64::MAX, 0),
    })
}

/// Only run a file we are fairly sure is a glibc loader: the interpreter path of an untrusted
/// ELF could name any program.
fn looks_like_glibc_loader(path: &str, info: &ElfInfo) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    let soname = info.soname.as_deref().unwrap_or("");
    info.kind == Kind::SharedLibrary
        && info.needed.is_empty()
        && (base.starts_with("ld-linux")
            || base.starts_with("ld64.so")
            || base.starts_with("ld.so"))
        && (soname.starts_with("ld-linux")
            || soname.starts_with("ld64.so")
            || soname.starts_with("ld.so"))
}

/// What `ld.so --help` says about searching.
struct Help {
    dirs: Vec<String>,
    cache: Option<PathBuf>,
    subdirs: Vec<String>,
}

/// Runs `interpreter --help` and reads its search path and subdirectory sections.
fn ask(interpreter: &str) -> Option<Help> {
    let out = Command::new(interpreter)
        .arg("--help")
        .env_clear()
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_help(&String::from_utf8_lossy(&out.stdout))
}

/// The indented lines of the section of `text` headed by a line starting with `heading`.
fn section<'a>(text: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(heading));
    lines.next()?;
    Some(
        lines
            .take_while(|l| l.starts_with("  "))
            .map(str::trim)
            .collect(),
    )
}

fn parse_help(text: &str) -> Option<Help> {
    let mut dirs = Vec::new();
    let mut cache = None;
    for line in section(text, "Shared library search path:")? {
        if let Some(rest) = line.strip_prefix("(libraries located via ") {
            cache = Some(PathBuf::from(rest.trim_end_matches(')')));
        } else if let Some(dir) = line.strip_suffix(" (system search path)") {
            dirs.push(format!("{}/", dir.trim_end_matches('/')));
        }
    }
    let first_word = |line: &str| line.split(' ').next().unwrap_or("").to_string();
    let mut subdirs: Vec<String> = section(text, "Subdirectories of glibc-hwcaps directories")
        .unwrap_or_default()
        .iter()
        .filter(|l| l.ends_with("searched)"))
        .map(|l| format!("glibc-hwcaps/{}/", first_word(l)))
        .collect();
    let legacy = section(text, "Legacy HWCAP subdirectories").unwrap_or_default();
    subdirs.extend(legacy_subdirs(&legacy, first_word));
    subdirs.push(String::new());
    Some(Help {
        dirs,
        cache,
        subdirs,
    })
}

/// glibc < 2.37's legacy subdirectories: every combination of the searched hardware
/// capabilities, the platform and `tls`, largest first. Each path names its parts in reverse
/// (`tls`, then the platform, then the capabilities, last one first); the combinations count
/// down as a binary number whose highest bit is `tls` and lowest the first capability, which is
/// how `ld.so` orders them (the same path can come twice: each is probed).
fn legacy_subdirs(lines: &[&str], first_word: impl Fn(&str) -> String) -> Vec<String> {
    let searched: Vec<&&str> = lines.iter().filter(|l| l.ends_with("searched)")).collect();
    let mut parts: Vec<String> = searched
        .iter()
        .filter(|l| !l.contains("AT_PLATFORM") && first_word(l) != "tls")
        .map(|l| first_word(l))
        .collect();
    parts.extend(
        searched
            .iter()
            .filter(|l| l.contains("AT_PLATFORM"))
            .map(|l| first_word(l)),
    );
    if searched.iter().any(|l| first_word(l) == "tls") {
        parts.push("tls".into());
    }
    if parts.is_empty() {
        return Vec::new();
    }
    let n = parts.len();
    (1..1u32 << n)
        .rev()
        .map(|set| {
            (0..n)
                .rev()
                .filter(|&i| set & (1 << i) != 0)
                .map(|i| format!("{}/", parts[i]))
                .collect()
        })
        .collect()
}

/// Defaults for a loader that cannot be asked.
fn guess(interpreter: &str, main: &ElfInfo) -> (Vec<String>, Option<PathBuf>) {
    let interp_dir = interpreter.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    // A Nix glibc: its own lib directory, and no system cache.
    if interp_dir.contains("/nix/store/") || interp_dir.starts_with("/nix/") {
        return (vec![format!("{interp_dir}/")], None);
    }
    let cache = Some(PathBuf::from("/etc/ld.so.cache"));
    if let Some(triplet) = multiarch_triplet(main) {
        if Path::new("/lib").join(triplet).is_dir() || Path::new("/usr/lib").join(triplet).is_dir()
        {
            let dirs = vec![
                format!("/lib/{triplet}/"),
                format!("/usr/lib/{triplet}/"),
                "/lib/".into(),
                "/usr/lib/".into(),
            ];
            return (dirs, cache);
        }
    }
    let dirs = match main.class {
        elf::Class::Elf64 => vec!["/lib64/".into(), "/usr/lib64/".into()],
        elf::Class::Elf32 => vec!["/lib/".into(), "/usr/lib/".into()],
    };
    (dirs, cache)
}

fn multiarch_triplet(main: &ElfInfo) -> Option<&'static str> {
    use goblin::elf::header::*;
    Some(match (main.machine, main.class) {
        (EM_X86_64, elf::Class::Elf64) => "x86_64-linux-gnu",
        (EM_386, _) => "i386-linux-gnu",
        (EM_AARCH64, _) => "aarch64-linux-gnu",
        (EM_ARM, _) => "arm-linux-gnueabihf",
        (EM_S390, elf::Class::Elf64) => "s390x-linux-gnu",
        (EM_PPC64, _) => "powerpc64le-linux-gnu",
        (EM_RISCV, elf::Class::Elf64) => "riscv64-linux-gnu",
        _ => return None,
    })
}

/// `$LIB`: the library directory relative to `/` of the loader's first default directory
/// (`lib/x86_64-linux-gnu` on Debian, `lib64` on Fedora, `lib` in Nix).
fn lib_token(system_dirs: &[String]) -> String {
    let first = system_dirs
        .first()
        .map(|d| d.trim_end_matches('/'))
        .unwrap_or("/lib");
    let comps: Vec<&str> = first.split('/').collect();
    match comps.iter().rposition(|c| c.starts_with("lib")) {
        Some(i) => comps[i..].join("/"),
        None => "lib".into(),
    }
}

/// `$PLATFORM`: glibc uses the machine name (`AT_PLATFORM`).
fn platform_token(main: &ElfInfo) -> String {
    use goblin::elf::header::*;
    match main.machine {
        EM_386 | crate::elf::EM_486 => "i686".into(),
        m => elf::machine_name(m),
    }
}

/// The usual interpreter for a file that names none (a shared library).
pub fn default_interpreter(main: &ElfInfo) -> Option<&'static str> {
    use goblin::elf::header::*;
    Some(match (main.machine, main.class) {
        (EM_X86_64, elf::Class::Elf64) => "/lib64/ld-linux-x86-64.so.2",
        (EM_386, _) => "/lib/ld-linux.so.2",
        (EM_AARCH64, _) => "/lib/ld-linux-aarch64.so.1",
        (EM_ARM, _) => "/lib/ld-linux-armhf.so.3",
        (EM_RISCV, elf::Class::Elf64) => "/lib/ld-linux-riscv64-lp64d.so.1",
        (EM_S390, elf::Class::Elf64) => "/lib/ld64.so.1",
        (EM_PPC64, _) => "/lib64/ld64.so.2",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ld_so_help() {
        let text = "Usage...\n\nShared library search path:\n  (libraries located via /etc/ld.so.cache)\n  /lib/x86_64-linux-gnu (system search path)\n  /usr/lib (system search path)\n\nSubdirectories of glibc-hwcaps directories, in priority order:\n  x86-64-v4\n";
        let help = parse_help(text).unwrap();
        let dirs = help.dirs;
        assert_eq!(dirs, vec!["/lib/x86_64-linux-gnu/", "/usr/lib/"]);
        assert_eq!(help.cache.unwrap(), PathBuf::from("/etc/ld.so.cache"));
        assert_eq!(help.subdirs, vec![""], "no level is marked searched");
        assert_eq!(lib_token(&dirs), "lib/x86_64-linux-gnu");
        assert_eq!(lib_token(&["/nix/store/abc-glibc/lib/".into()]), "lib");
        assert_eq!(lib_token(&["/lib64/".into()]), "lib64");
    }

    /// What glibc 2.36's `ld.so --help` prints on an x86-64-v4 machine, and the subdirectories
    /// its loader was seen to probe there (under strace), in that order.
    #[test]
    fn reads_capability_subdirectories() {
        let text = "Shared library search path:\n  /lib (system search path)\n\nSubdirectories of glibc-hwcaps directories, in priority order:\n  x86-64-v4 (supported, searched)\n  x86-64-v3 (supported, searched)\n  x86-64-v2 (supported, searched)\n  x86-64-v1 (supported)\n\nLegacy HWCAP subdirectories under library search path directories:\n  x86_64 (AT_PLATFORM; supported, searched)\n  tls (supported, searched)\n  avx512_1\n  x86_64 (supported, searched)\n";
        let subdirs = parse_help(text).unwrap().subdirs;
        let want = [
            "glibc-hwcaps/x86-64-v4/",
            "glibc-hwcaps/x86-64-v3/",
            "glibc-hwcaps/x86-64-v2/",
            "tls/x86_64/x86_64/",
            "tls/x86_64/",
            "tls/x86_64/",
            "tls/",
            "x86_64/x86_64/",
            "x86_64/",
            "x86_64/",
            "",
        ];
        assert_eq!(subdirs, want);
        // The order of the parts, where they differ: capabilities a, b; platform p.
        let parts = [
            "p (AT_PLATFORM; supported, searched)",
            "tls (supported, searched)",
            "a (supported, searched)",
            "b (supported, searched)",
        ];
        let word = |l: &str| l.split(' ').next().unwrap().to_string();
        let got = legacy_subdirs(&parts, word);
        assert_eq!(got[0], "tls/p/b/a/");
        assert_eq!(got[1], "tls/p/b/");
        assert_eq!(got[2], "tls/p/a/");
        assert_eq!(got.len(), 15);
        assert_eq!(got[14], "a/");
    }
}
