//! Planning: from a resolved closure and the user's policy, the DT_NEEDED list a stamped file
//! should have — or the reasons it must not be stamped.

pub mod glob;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::elf::{read_elf_file, ElfError, ElfInfo};
use crate::resolve::{real_path, Closure, Object, ResolveError, Resolver, Via, Warning};

/// Driver libraries that come from the running system, never from the closure (on NixOS they
/// live in /run/opengl-driver/lib). Left as bare sonames, and not lifted.
pub const DEFAULT_KEEP: &[&str] = &[
    "libcuda.so*",
    "libnvcuvid.so*",
    "libnvidia-*",
    "libnvoptix.so*",
    "libGLX_nvidia.so*",
    "libEGL_nvidia.so*",
    "libGLESv1_CM_nvidia.so*",
    "libGLESv2_nvidia.so*",
    "libvdpau_nvidia.so*",
];

/// What the user allows and asks for.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Soname globs left as they are and not lifted (the default list included unless
    /// the user dropped it).
    pub keep: Vec<String>,
    /// Missing sonames to leave as bare names, with a warning, instead of failing.
    pub allow_missing: Vec<String>,
    /// Stamp even when two different files share a soname in the closure.
    pub allow_soname_collision: bool,
}

/// One DT_NEEDED entry of the planned file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needed {
    /// The string to write.
    pub value: String,
    /// The string it replaces, for entries that had a slot in the original; `None` for lifted
    /// entries.
    pub original: Option<String>,
}

/// The stamp for one file.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The full new DT_NEEDED list, in order: the original slots first, then lifted entries.
    pub needed: Vec<Needed>,
    /// Warnings for the user (allowed missing libraries, libraries without soname, …).
    pub warnings: Vec<String>,
    /// The closure it was planned from, in load order: name, path, how it was found.
    pub libraries: Vec<(String, String, Via)>,
}

impl Plan {
    /// The new DT_NEEDED strings in order.
    pub fn values(&self) -> Vec<&str> {
        self.needed.iter().map(|n| n.value.as_str()).collect()
    }

    /// Whether the plan keeps every entry as it is and adds none.
    pub fn changes_nothing(&self) -> bool {
        self.needed
            .iter()
            .all(|n| n.original.as_deref() == Some(n.value.as_str()))
    }

    /// Why a file whose stamp left it as it was had nothing to stamp, when that is the reason
    /// (`None`: its stamp was already there). Said instead of "already stamped", which would
    /// be false for a file that never was.
    pub fn nothing_to_stamp(&self, policy: &Policy) -> Option<&'static str> {
        if self.needed.is_empty() {
            return Some("no dependencies");
        }
        if !self.changes_nothing() {
            return None;
        }
        if self
            .needed
            .iter()
            .all(|n| glob::any(&policy.keep, &n.value))
        {
            Some("all dependencies kept")
        } else if self.needed.iter().any(|n| n.value.contains('/')) {
            // Paths already (a stamp whose record strip removed, or another tool's).
            None
        } else {
            // Kept, allowed missing, or the loader by its soname: bare names that stay.
            Some("no entry to change")
        }
    }
}

/// Why a file must not be stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Every missing library, with who needs it.
    Missing(Vec<(String, String)>),
    /// Two files with one soname.
    SonameCollision {
        soname: String,
        first: String,
        second: String,
    },
    /// musl's loader does not match requests by soname against objects loaded by path.
    Musl { interpreter: String },
    /// Two of glibc's parts from different directories.
    MixedGlibc { first: String, second: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing(list) => {
                let items: Vec<String> = list
                    .iter()
                    .map(|(name, by)| format!("{name} (needed by {by})"))
                    .collect();
                write!(f, "missing libraries: {}", items.join(", "))
            }
            Refusal::SonameCollision { soname, first, second } => write!(
                f,
                "soname {soname} is provided by two files, {first} and {second} (--allow-soname-collision to stamp anyway)"
            ),
            Refusal::MixedGlibc { first, second } => write!(
                f,
                "the closure takes parts of glibc from two directories, {first} and {second}: two glibc builds cannot run in one process"
            ),
            Refusal::Musl { interpreter } => write!(
                f,
                "uses musl's loader ({interpreter}), which does not match libraries loaded by path against later requests by soname: stamping would not remove searches and could load libraries twice"
            ),
        }
    }
}

/// Why a file gets no plan.
#[derive(Debug)]
pub enum NotPlanned {
    /// Not dynamically linked (static, object, debug file): nothing to do.
    NothingToDo(&'static str),
    /// The file could not be read.
    Failed(String),
    /// The policy forbids stamping it.
    Refused(Refusal),
}

impl fmt::Display for NotPlanned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotPlanned::NothingToDo(kind) => {
                write!(f, "{kind}, not dynamically linked: nothing to do")
            }
            NotPlanned::Failed(why) => f.write_str(why),
            NotPlanned::Refused(r) => r.fmt(f),
        }
    }
}

/// A file read once for planning: its own facts (what the loader sees when another file
/// needs it) and, for a file we stamped before, those of its original, which a plan starts
/// from.
pub struct Read {
    pub own: Arc<Object>,
    pub original: Option<ElfInfo>,
}

impl Read {
    /// The facts a plan starts from, and that other files' plans see: the original's.
    pub fn original_object(&self) -> Arc<Object> {
        match &self.original {
            Some(info) => Arc::new(Object {
                info: info.clone(),
                file_id: self.own.file_id,
            }),
            None => self.own.clone(),
        }
    }
}

/// Opens and parses `path` once, for planning.
pub fn read(path: &Path) -> Result<Read, ElfError> {
    let (file, file_id) = crate::lock::open_to_read(path)?;
    let ef = read_elf_file(&file)?;
    let original = crate::elf::stamped::original_info(&file, &ef)?;
    Ok(Read {
        own: Arc::new(Object {
            info: ef.info,
            file_id,
        }),
        original,
    })
}

/// Resolves and plans one file (a file we stamped before: from its original).
pub fn plan_file(resolver: &Resolver, policy: &Policy, file: &Path) -> Result<Plan, NotPlanned> {
    plan_file_to(resolver, policy, file, None)
}

/// [`plan_file`] for a stamp that also sets the file's PT_INTERP to `interpreter`: planned as
/// the file will be, a program of that interpreter, so the loader is lifted under that name
/// (the one it gives itself). A file without PT_INTERP keeps none (the writer refuses to set
/// one).
pub fn plan_file_to(
    resolver: &Resolver,
    policy: &Policy,
    file: &Path,
    interpreter: Option<&str>,
) -> Result<Plan, NotPlanned> {
    let file = real_path(file);
    let mut r = read(&file).map_err(|e| NotPlanned::Failed(e.to_string()))?;
    if let Some(p) = interpreter {
        let mut info = r.original.take().unwrap_or_else(|| r.own.info.clone());
        if info.interpreter.is_some() {
            info.interpreter = Some(p.to_string());
        }
        r.original = Some(info);
    }
    plan_read(resolver, policy, &file, &r)
}

/// Resolves and plans a file already read; `file` is its real, absolute path.
pub fn plan_read(
    resolver: &Resolver,
    policy: &Policy,
    file: &Path,
    r: &Read,
) -> Result<Plan, NotPlanned> {
    let root = r.original_object();
    let closure = resolver.resolve_read(file, root).map_err(|e| match e {
        ResolveError::NotDynamic(kind) => NotPlanned::NothingToDo(kind),
        e => NotPlanned::Failed(e.to_string()),
    })?;
    plan(&closure, policy).map_err(NotPlanned::Refused)
}

/// Plans the stamp of `closure`'s root file under `policy`.
pub fn plan(c: &Closure, policy: &Policy) -> Result<Plan, Refusal> {
    if let Some(l) = &c.loader {
        let base = l.interpreter.rsplit('/').next().unwrap_or("");
        if base.starts_with("ld-musl-") {
            return Err(Refusal::Musl {
                interpreter: l.interpreter.clone(),
            });
        }
    }
    let mut warnings = Vec::new();
    let mut missing = Vec::new();
    for m in &c.missing {
        let by = c.requester_path(m.needed_by).to_string();
        if glob::any(&policy.keep, &m.name) {
            continue;
        }
        if glob::any(&policy.allow_missing, &m.name) {
            warnings.push(format!(
                "{} is missing (needed by {by}); left as a bare name",
                m.name
            ));
        } else {
            missing.push((m.name.clone(), by));
        }
    }
    if !missing.is_empty() {
        return Err(Refusal::Missing(missing));
    }
    for w in &c.warnings {
        match w {
            Warning::SonameCollision {
                soname,
                first,
                second,
            } if !policy.allow_soname_collision => {
                return Err(Refusal::SonameCollision {
                    soname: soname.clone(),
                    first: first.clone(),
                    second: second.clone(),
                })
            }
            Warning::MixedGlibc { first, second } => {
                return Err(Refusal::MixedGlibc {
                    first: first.clone(),
                    second: second.clone(),
                })
            }
            Warning::NoSoname { path } => warnings.push(format!(
                "{path} has no soname: requests for it by name still search"
            )),
            w @ Warning::FromTree { .. } => warnings.push(w.to_string()),
            _ => {}
        }
    }

    // What each closure entry is written as. A kept library stays a bare name and is not
    // lifted, and neither is what only kept libraries bring in (the system provides those,
    // too): an entry is lifted when the root reaches it without passing through a kept one.
    // The interpreter is always loaded already. A program writes it as its own PT_INTERP
    // string (the name the loader gave itself); a library — even one with a PT_INTERP, as
    // libc.so.6 has — as its soname, since the program that loads it may name the same
    // loader by another path: either way it matches without a probe and keeps its place.
    //
    // Only a program lists its whole closure. A library keeps its own entries (each now the
    // path it resolved to) and nothing more: a program that loads it but is not stamped walks
    // the same breadth-first order as before, where lifted entries would be loaded early and
    // could change which of two definitions of a symbol wins.
    let program = c.root.info.is_program();
    let libs = &c.libraries;
    let kept: Vec<bool> = libs
        .iter()
        .map(|l| {
            glob::any(&policy.keep, &l.name)
                || l.object
                    .info
                    .soname
                    .as_deref()
                    .is_some_and(|s| glob::any(&policy.keep, s))
        })
        .collect();
    let mut reached = vec![false; libs.len()];
    let mut queue: Vec<usize> = c.root_needs.iter().flatten().copied().collect();
    while let Some(i) = queue.pop() {
        if reached[i] || kept[i] {
            continue;
        }
        reached[i] = true;
        queue.extend(libs[i].needs.iter().flatten());
    }
    let own_interp = c.root.info.interpreter.as_deref().filter(|_| program);
    let stamped: Vec<Option<String>> = libs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if !reached[i] {
                None
            } else if l.via == Via::Interpreter && own_interp != Some(l.path.as_str()) {
                Some(
                    l.object
                        .info
                        .soname
                        .clone()
                        .unwrap_or_else(|| l.name.clone()),
                )
            } else {
                Some(l.path.clone())
            }
        })
        .collect();

    let mut needed: Vec<Needed> = Vec::new();
    for (name, target) in c.root.info.needed.iter().zip(&c.root_needs) {
        // The library this slot resolved to, as the walk found it.
        let value = target
            .and_then(|i| stamped[i].clone())
            .unwrap_or_else(|| name.clone());
        needed.push(Needed {
            value,
            original: Some(name.clone()),
        });
    }
    for value in stamped.into_iter().flatten().filter(|_| program) {
        if !needed.iter().any(|n| n.value == value) {
            needed.push(Needed {
                value,
                original: None,
            });
        }
    }
    let libraries = libs
        .iter()
        .map(|l| (l.name.clone(), l.path.clone(), l.via))
        .collect();
    Ok(Plan {
        needed,
        warnings,
        libraries,
    })
}
