//! Choosing, for every library a program built elsewhere needs, one file of the pool — in the
//! loader's breadth-first order, transitively, with one glibc for the whole closure.
//!
//! Per name: the pool's libraries that answer to it (soname, else file name) and fit the
//! program (class, machine, byte order). One file under several names (a soname link and its
//! target) and identical copies count once. A pinned choice (the lock) is taken as it is;
//! otherwise `--prefer DIR` and `--prefer-name GLOB` narrow the candidates, then the user is
//! asked, and without anyone to ask the run fails listing them. No exact match: the nearest
//! versions of the same library are offered, marked inexact — never taken silently.
//!
//! glibc: its parts (`libc.so.6`, the loader, `libm.so.6`, …) come from one directory, and a
//! chosen library whose RUNPATH names another glibc's directory was built against that one: a
//! conflict. With several glibc copies in the pool, each is tried and the ones the closure
//! agrees with remain; when none does, the run fails naming the conflict.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::index::{Index, Lib};
use super::pins::{self, Pins};
use crate::elf::ElfInfo;
use crate::plan::glob;
use crate::resolve::{is_glibc_part, GLIBC_PARTS};

/// What narrows a choice.
#[derive(Default)]
pub struct Preferences<'a> {
    pub dirs: &'a [PathBuf],
    pub names: &'a [String],
    /// Choices pinned by a lock file, by requested name.
    pub pins: Option<&'a Pins>,
    /// Re-choose the pinned names whose file is gone or changed instead of failing.
    pub update_pins: bool,
}

/// One library of the adopted closure, in load order.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The DT_NEEDED name it was first requested under.
    pub name: String,
    /// Index into the pool.
    pub lib: usize,
    /// False when its soname is not the name asked for (a nearest version the user chose).
    pub exact: bool,
    /// Who asked first: the program's path, or a chosen library's.
    pub needed_by: String,
}

/// A closure chosen from the pool.
#[derive(Debug)]
pub struct Adoption {
    pub libraries: Vec<Chosen>,
    /// The glibc directory (where `libc.so.6` was chosen), if the closure has glibc.
    pub glibc: Option<PathBuf>,
}

/// Why a closure could not be chosen; each names what the user must decide or fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// Several files fit and nothing decides between them.
    Ambiguous {
        name: String,
        needed_by: String,
        candidates: Vec<PathBuf>,
    },
    /// No file answers to the name; `near` are the nearest versions (inexact).
    NotFound {
        name: String,
        needed_by: String,
        near: Vec<PathBuf>,
    },
    /// A chosen library was built against another glibc than the closure's.
    GlibcConflict {
        library: PathBuf,
        built_against: PathBuf,
        glibc: PathBuf,
    },
    /// A library asks for a name only a library without a soname has as its file name: the
    /// loader matches a library's request by soname, and would search for it.
    NoSoname {
        name: String,
        needed_by: String,
        path: PathBuf,
    },
    /// A library asks by name for what only another version answers to: the program's own
    /// entry can name that file, but the loader matches the library's request by soname.
    InexactForLibrary {
        name: String,
        needed_by: String,
        chosen: PathBuf,
    },
    /// A pinned file is not in the pool any more, or its content changed.
    PinBroken {
        name: String,
        path: PathBuf,
        why: String,
    },
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Trouble::Ambiguous {
                name,
                needed_by,
                candidates,
            } => write!(
                f,
                "{name} (needed by {needed_by}): {} candidates, choose with --prefer DIR or --prefer-name GLOB, or run on a terminal: {}",
                candidates.len(),
                list(candidates)
            ),
            Trouble::NotFound {
                name,
                needed_by,
                near,
            } if near.is_empty() => write!(f, "{name} (needed by {needed_by}): not in the pool"),
            Trouble::NotFound {
                name,
                needed_by,
                near,
            } => write!(
                f,
                "{name} (needed by {needed_by}): no exact match in the pool; nearest (inexact, taken only when chosen on a terminal or pinned in a lock): {}",
                list(near)
            ),
            Trouble::GlibcConflict {
                library,
                built_against,
                glibc,
            } => write!(
                f,
                "{} was built against the glibc in {}, but the closure's glibc is {}: one process cannot mix them",
                library.display(),
                built_against.display(),
                glibc.display()
            ),
            Trouble::NoSoname {
                name,
                needed_by,
                path,
            } => write!(
                f,
                "{name} (needed by {needed_by}): only {} answers to it, by its file name (it has no soname), and the loader would search for a library's request by name instead",
                path.display()
            ),
            Trouble::InexactForLibrary {
                name,
                needed_by,
                chosen,
            } => write!(
                f,
                "{name} (needed by {needed_by}): only another version is chosen for it ({}), and the loader would not take it for a library's request by name",
                chosen.display()
            ),
            Trouble::PinBroken { name, path, why } => write!(
                f,
                "{name} is pinned to {} in the lock, but {why} (--update-lock chooses it again)",
                path.display()
            ),
        }
    }
}

/// Asks the user to pick one of `candidates` for `name` (`exact`: they answer to it); `None`
/// when nobody can be asked or they declined.
pub type Ask<'a> = dyn FnMut(&str, &[&Lib], bool) -> Option<usize> + 'a;

/// Chooses the closure of `root` from `index`. Where several glibc copies fit, each is tried,
/// and the one the whole closure agrees with is taken; several agreeing are one more choice.
pub fn choose(
    root: &ElfInfo,
    root_path: &str,
    index: &Index,
    prefs: &Preferences,
    ask: &mut Ask,
) -> Result<Adoption, Vec<Trouble>> {
    let fits: Vec<usize> = (0..index.libs.len())
        .filter(|&i| fits(root, &index.libs[i].info))
        .collect();
    let mut w = Walk {
        index,
        fits: &fits,
        prefs,
        hashes: HashMap::new(),
    };
    // The glibc copies the pool offers, each as its libc.so.6's directory.
    let glibcs: Vec<usize> = w.distinct(w.answering("libc.so.6"));
    if glibcs.len() <= 1 {
        return w.closure(root, root_path, glibcs.first().copied(), ask);
    }
    // A pinned or preferred libc decides; else the copies the closure agrees with.
    let decided = w.decide_quietly("libc.so.6", &glibcs);
    let tries: Vec<usize> = match decided {
        Some(Ok(i)) => vec![i],
        Some(Err(t)) => return Err(vec![t]),
        None => glibcs.clone(),
    };
    // Each glibc tried with every other choice settled at random (the first candidate): only
    // conflicts with the glibc tell whether the closure agrees with it; the user is asked
    // about the rest once the glibc is settled.
    let mut agreeing = Vec::new();
    let mut first_trouble = None;
    for &g in &tries {
        let conflicts: Vec<Trouble> =
            match w.closure(root, root_path, Some(g), &mut |_, _, _| Some(0)) {
                Ok(_) => Vec::new(),
                Err(t) => t
                    .into_iter()
                    .filter(|t| matches!(t, Trouble::GlibcConflict { .. }))
                    .collect(),
            };
        if conflicts.is_empty() {
            agreeing.push(g);
        } else {
            first_trouble.get_or_insert(conflicts);
        }
    }
    let glibc = match agreeing.as_slice() {
        [] => return Err(first_trouble.unwrap_or_default()),
        [one] => *one,
        many => {
            let libs: Vec<&Lib> = many.iter().map(|&i| &index.libs[i]).collect();
            match ask("libc.so.6", &libs, true) {
                Some(k) if k < many.len() => many[k],
                _ => {
                    return Err(vec![Trouble::Ambiguous {
                        name: "libc.so.6".into(),
                        needed_by: root_path.into(),
                        candidates: libs.iter().map(|l| l.path.clone()).collect(),
                    }])
                }
            }
        }
    };
    w.closure(root, root_path, Some(glibc), ask)
}

struct Walk<'a> {
    index: &'a Index,
    /// Pool indexes that fit the program.
    fits: &'a [usize],
    prefs: &'a Preferences<'a>,
    /// Content hashes computed so far (identical copies count once).
    hashes: HashMap<usize, String>,
}

impl Walk<'_> {
    fn lib(&self, i: usize) -> &Lib {
        &self.index.libs[i]
    }

    /// The fitting libraries that answer to `name`.
    fn answering(&self, name: &str) -> Vec<usize> {
        self.fits
            .iter()
            .copied()
            .filter(|&i| self.lib(i).answers_to(name))
            .collect()
    }

    /// `candidates` with one file under several names, and identical copies, counted once:
    /// a preferred path first (`--prefer`, `--prefer-name`), then one spelled by its soname
    /// (the path the loader would open by that name), then the first by path.
    fn distinct(&mut self, mut candidates: Vec<usize>) -> Vec<usize> {
        candidates.sort_by_key(|&i| {
            let l = self.lib(i);
            (
                !self.preferred(l),
                Some(&l.name) != l.info.soname.as_ref(),
                l.path.clone(),
            )
        });
        let mut kept: Vec<usize> = Vec::new();
        for i in candidates {
            let dup = kept.iter().any(|&k| {
                let (a, b) = (self.lib(k), self.lib(i));
                a.file_id == b.file_id
            });
            if dup {
                continue;
            }
            let size = self.lib(i).size;
            let same_size: Vec<usize> = kept
                .iter()
                .copied()
                .filter(|&k| self.lib(k).size == size)
                .collect();
            let mut identical = false;
            for k in same_size {
                if self.hash(k).is_some() && self.hash(k) == self.hash(i) {
                    identical = true;
                    break;
                }
            }
            if !identical {
                kept.push(i);
            }
        }
        kept
    }

    /// Whether the user prefers `l`: under a `--prefer` directory, or matching a
    /// `--prefer-name` glob by file name or path.
    fn preferred(&self, l: &Lib) -> bool {
        self.prefs.dirs.iter().any(|d| l.path.starts_with(d))
            || glob::any(self.prefs.names, &l.name)
            || glob::any(self.prefs.names, &l.path.to_string_lossy())
    }

    fn hash(&mut self, i: usize) -> Option<String> {
        if let Some(h) = self.hashes.get(&i) {
            return Some(h.clone());
        }
        let h = pins::sha256_file(&self.index.libs[i].path).ok()?;
        self.hashes.insert(i, h.clone());
        Some(h)
    }

    /// What decides among `candidates` for `name` without asking: a pin (checked), or the
    /// preferences narrowing them to one. `None`: still undecided.
    fn decide_quietly(
        &mut self,
        name: &str,
        candidates: &[usize],
    ) -> Option<Result<usize, Trouble>> {
        if let Some(pin) = self.prefs.pins.and_then(|p| p.libraries.get(name)) {
            let found = self
                .fits
                .iter()
                .copied()
                .find(|&i| self.lib(i).path == pin.path);
            let broken = |why: &str| Trouble::PinBroken {
                name: name.into(),
                path: pin.path.clone(),
                why: why.into(),
            };
            match found {
                Some(i) if self.hash(i).as_deref() == Some(pin.sha256.as_str()) => {
                    return Some(Ok(i))
                }
                _ if self.prefs.update_pins => {}
                Some(_) => return Some(Err(broken("its content changed"))),
                None => return Some(Err(broken("it is not in the pool any more"))),
            }
        }
        let preferred: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| self.preferred(self.lib(i)))
            .collect();
        match preferred.as_slice() {
            [one] => Some(Ok(*one)),
            _ => None,
        }
    }

    /// The breadth-first closure with `glibc` (a `libc.so.6` in the pool) fixed.
    fn closure(
        &mut self,
        root: &ElfInfo,
        root_path: &str,
        glibc: Option<usize>,
        ask: &mut Ask,
    ) -> Result<Adoption, Vec<Trouble>> {
        let glibc_dir = glibc.map(|g| real_dir(self.lib(g).dir()));
        let glibc_dirs = self.glibc_dirs();
        let mut chosen: Vec<Chosen> = Vec::new();
        let mut troubles = Vec::new();
        let mut queue: Vec<(String, String)> = root
            .needed
            .iter()
            .map(|n| (n.clone(), root_path.to_string()))
            .collect();
        let mut next = 0;
        while next < queue.len() {
            let (name, needed_by) = queue[next].clone();
            next += 1;
            let loaded = |c: &&Chosen| {
                c.name == name
                    || self.index.libs[c.lib].answers_to(&name)
                    || self.index.libs[c.lib].path.to_string_lossy() == name
            };
            if let Some(c) = chosen.iter().find(loaded) {
                // The program names an inexact choice by path; a library asks by name.
                if !c.exact && needed_by != root_path && !self.lib(c.lib).answers_to(&name) {
                    troubles.push(Trouble::InexactForLibrary {
                        name: name.clone(),
                        needed_by: needed_by.clone(),
                        chosen: self.lib(c.lib).path.clone(),
                    });
                }
                continue;
            }
            if name.contains('/') {
                // A path: the loader opens it as it is. In the pool, it is part of the
                // closure; elsewhere it is not there to adopt from.
                match self
                    .fits
                    .iter()
                    .copied()
                    .find(|&i| self.lib(i).path == Path::new(&name))
                {
                    Some(lib) => {
                        for n in &self.lib(lib).info.needed {
                            queue.push((n.clone(), name.clone()));
                        }
                        chosen.push(Chosen {
                            name,
                            lib,
                            exact: true,
                            needed_by,
                        });
                    }
                    None => troubles.push(Trouble::NotFound {
                        name,
                        needed_by,
                        near: Vec::new(),
                    }),
                }
                continue;
            }
            // A library asks by soname only: one without a soname that matched by its file
            // name would be searched for by the loader, not matched.
            let by_name = self.answering(&name);
            let from_library = needed_by != root_path;
            let answering: Vec<usize> = by_name
                .iter()
                .copied()
                .filter(|&i| !from_library || self.lib(i).info.soname.as_deref() == Some(&name))
                .collect();
            if answering.is_empty() && !by_name.is_empty() {
                troubles.push(Trouble::NoSoname {
                    name: name.clone(),
                    needed_by: needed_by.clone(),
                    path: self.lib(by_name[0]).path.clone(),
                });
                continue;
            }
            // The glibc first, then one of each identical file: a copy in another glibc's
            // directory must not stand for the one in ours.
            let glibc_part = is_glibc_part(&name);
            let fits_glibc = |w: &Self, i: usize| {
                let Some(dir) = &glibc_dir else { return true };
                let l = w.lib(i);
                match glibc_part {
                    true => &real_dir(l.dir()) == dir,
                    false => built_against(l, &glibc_dirs).is_none_or(|b| &b == dir),
                }
            };
            let agreeing: Vec<usize> = answering
                .iter()
                .copied()
                .filter(|&i| fits_glibc(self, i))
                .collect();
            if let Some(dir) = &glibc_dir {
                // Only copies built against another glibc, or the one the user prefers is:
                // name it, rather than take another or nothing in silence.
                let refused = answering.iter().copied().find(|&i| {
                    !fits_glibc(self, i)
                        && (agreeing.is_empty() || self.preferred(self.lib(i)))
                        && !agreeing.iter().any(|&a| self.preferred(self.lib(a)))
                });
                if let (Some(i), false) = (refused, glibc_part) {
                    let l = self.lib(i);
                    troubles.push(Trouble::GlibcConflict {
                        library: l.path.clone(),
                        built_against: built_against(l, &glibc_dirs).unwrap_or_default(),
                        glibc: dir.clone(),
                    });
                    continue;
                }
            }
            let candidates = self.distinct(agreeing);
            let pick = if name == "libc.so.6" && glibc.is_some() {
                glibc.map(|g| (g, true))
            } else {
                self.pick(&name, &needed_by, &candidates, ask)
                    .map_err(|t| troubles.push(t))
                    .ok()
            };
            let Some((lib, exact)) = pick else { continue };
            for n in &self.lib(lib).info.needed {
                queue.push((n.clone(), self.lib(lib).path.to_string_lossy().into_owned()));
            }
            chosen.push(Chosen {
                name,
                lib,
                exact,
                needed_by,
            });
        }
        if troubles.is_empty() {
            Ok(Adoption {
                libraries: chosen,
                glibc: glibc_dir,
            })
        } else {
            Err(troubles)
        }
    }

    /// One library for `name` among `candidates`: the only one, a pinned or preferred one, or
    /// the user's pick; with none, the nearest versions, only if the user picks one.
    fn pick(
        &mut self,
        name: &str,
        needed_by: &str,
        candidates: &[usize],
        ask: &mut Ask,
    ) -> Result<(usize, bool), Trouble> {
        if let Some(decided) = self.decide_quietly(name, candidates) {
            let i = decided?;
            return Ok((i, self.lib(i).answers_to(name)));
        }
        match candidates {
            [one] => return Ok((*one, true)),
            [] => {}
            many => {
                let libs: Vec<&Lib> = many.iter().map(|&i| self.lib(i)).collect();
                return match ask(name, &libs, true) {
                    Some(k) if k < many.len() => Ok((many[k], true)),
                    _ => Err(Trouble::Ambiguous {
                        name: name.into(),
                        needed_by: needed_by.into(),
                        candidates: libs.iter().map(|l| l.path.clone()).collect(),
                    }),
                };
            }
        }
        let near = self.nearest(name);
        let libs: Vec<&Lib> = near.iter().map(|&i| self.lib(i)).collect();
        if !libs.is_empty() {
            if let Some(k) = ask(name, &libs, false).filter(|&k| k < near.len()) {
                return Ok((near[k], false));
            }
        }
        Err(Trouble::NotFound {
            name: name.into(),
            needed_by: needed_by.into(),
            near: libs.iter().map(|l| l.path.clone()).collect(),
        })
    }

    /// Other versions of the library `name` names (same stem: `libssl.so` for
    /// `libssl.so.1.1`), nearest version first, at most five.
    fn nearest(&mut self, name: &str) -> Vec<usize> {
        let Some((stem, version)) = split_version(name) else {
            return Vec::new();
        };
        let mut near: Vec<(Vec<u64>, usize)> = self
            .fits
            .iter()
            .copied()
            .filter_map(|i| {
                let l = self.lib(i);
                let soname = l.info.soname.as_deref().unwrap_or(&l.name);
                let (s, v) = split_version(soname)?;
                (s == stem && soname != name).then_some((v, i))
            })
            .collect();
        near.sort_by_key(|(v, i)| (distance(&version, v), self.lib(*i).path.clone()));
        let ids = self.distinct(near.into_iter().map(|(_, i)| i).collect());
        ids.into_iter().take(5).collect()
    }

    /// The real directories of every `libc.so.6` in the pool: what a RUNPATH must name to say
    /// which glibc a library was built against.
    fn glibc_dirs(&self) -> Vec<PathBuf> {
        self.fits
            .iter()
            .filter(|&&i| self.lib(i).answers_to(GLIBC_PARTS[0]))
            .map(|&i| real_dir(self.lib(i).dir()))
            .collect()
    }
}

/// Whether a library can be loaded into the program: same class, byte order and machine, and
/// an OS ABI the program's loader takes (System V, GNU/Linux — glibc's own libraries say GNU
/// — or the program's own).
fn fits(root: &ElfInfo, lib: &ElfInfo) -> bool {
    const SYSV: u8 = 0;
    const GNU: u8 = 3;
    root.compatible_with(lib) && (matches!(lib.os_abi, SYSV | GNU) || lib.os_abi == root.os_abi)
}

/// The glibc a library was built against: the first directory of its RUNPATH (or RPATH) that
/// holds one of the pool's `libc.so.6`.
fn built_against(lib: &Lib, glibc_dirs: &[PathBuf]) -> Option<PathBuf> {
    let list = lib.info.runpath.as_deref().or(lib.info.effective_rpath())?;
    let origin = lib.dir().to_string_lossy().into_owned();
    list.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
        .map(|d| real_dir(Path::new(&d)))
        .find(|d| glibc_dirs.contains(d))
}

/// `dir` with symlinks resolved (as given when it cannot be).
pub(crate) fn real_dir(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `libssl.so.1.1` → (`libssl.so`, [1, 1]); `libfoo.so` → (`libfoo.so`, []).
fn split_version(name: &str) -> Option<(&str, Vec<u64>)> {
    let at = name.find(".so")? + 3;
    let (stem, rest) = name.split_at(at);
    let version = rest
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some((stem, version))
}

/// How far version `b` is from `a`: the first differing part, then how much it differs.
fn distance(a: &[u64], b: &[u64]) -> (usize, u64) {
    let n = a.len().max(b.len());
    for k in 0..n {
        let (x, y) = (
            a.get(k).copied().unwrap_or(0),
            b.get(k).copied().unwrap_or(0),
        );
        if x != y {
            return (n - k, x.abs_diff(y));
        }
    }
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_split_and_nearest_sort_first() {
        assert_eq!(
            split_version("libssl.so.1.1"),
            Some(("libssl.so", vec![1, 1]))
        );
        assert_eq!(split_version("libfoo.so"), Some(("libfoo.so", vec![])));
        assert_eq!(split_version("libfoo.so.x"), None);
        // 1.1 is nearer to 1.0 than to 3, and 3 nearer than 9.
        assert!(distance(&[1, 1], &[1, 0]) < distance(&[1, 1], &[3]));
        assert!(distance(&[1, 1], &[3]) < distance(&[1, 1], &[9]));
    }
}
