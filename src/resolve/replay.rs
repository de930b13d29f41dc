//! The loader's file-system calls at start-up, replayed from the searches a resolution recorded
//! (`Options::trace`): what `explain` counts, without running anything.
//!
//! glibc keeps one table for every search directory it has met (RPATH, RUNPATH and its default
//! directories alike, keyed by the directory's spelling), with a state per capability
//! subdirectory: unknown, there, or not there. For each name it searches, in each directory,
//! it tries every subdirectory not known to be missing (`open`); when an open fails where the
//! state is still unknown, it `stat`s that subdirectory once and remembers the answer. So the
//! first search through a long RUNPATH costs about two calls per subdirectory per directory,
//! and every later search one call per directory. `ld.so.cache` is opened once, on the first
//! search that reaches it. These are the calls `strace` shows (`openat`, `stat`), in the same
//! order.

use std::collections::HashMap;
use std::path::Path;

use super::{Closure, Held, Search, Step};

/// File-system calls, and how many of them failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Calls {
    pub calls: usize,
    pub failed: usize,
}

impl Calls {
    fn add(&mut self, ok: bool) {
        self.calls += 1;
        self.failed += usize::from(!ok);
    }

    pub fn plus(self, o: Calls) -> Calls {
        Calls {
            calls: self.calls + o.calls,
            failed: self.failed + o.failed,
        }
    }
}

/// What one search cost.
#[derive(Clone, Debug)]
pub struct Cost<'a> {
    pub search: &'a Search,
    pub calls: Calls,
    /// The directories (and the cache) that were tried and did not give the library.
    pub tried: Vec<String>,
    /// The path the loader took, when it differs from the one the resolver chose: a
    /// `glibc-hwcaps` variant this CPU prefers.
    pub took_variant: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Unknown,
    There,
    NotThere,
}

/// The loader's directory table and cache state during one start-up.
struct Loader<'a> {
    subdirs: &'a [String],
    dirs: HashMap<String, Vec<State>>,
    cache_opened: bool,
}

/// Replays `closure`'s searches in order; one cost per search. The closure must have been
/// resolved with `Options::trace`.
pub fn replay(closure: &Closure) -> Vec<Cost<'_>> {
    let only_dir = [String::new()];
    let subdirs = match &closure.loader {
        Some(l) => l.subdirs.as_slice(),
        None => &only_dir,
    };
    let mut loader = Loader {
        subdirs,
        dirs: HashMap::new(),
        cache_opened: false,
    };
    closure.searches.iter().map(|s| loader.search(s)).collect()
}

/// The sum of `costs`.
pub fn total(costs: &[Cost]) -> Calls {
    costs
        .iter()
        .fold(Calls::default(), |sum, c| sum.plus(c.calls))
}

impl Loader<'_> {
    fn search<'s>(&mut self, search: &'s Search) -> Cost<'s> {
        let mut cost = Cost {
            search,
            calls: Calls::default(),
            tried: Vec::new(),
            took_variant: None,
        };
        for step in &search.steps {
            let stop = match step {
                Step::Open { held, .. } => {
                    cost.calls.add(*held != Held::Nothing);
                    *held != Held::WrongClass
                }
                Step::Cache { cache, hit } => {
                    if !self.cache_opened {
                        self.cache_opened = true;
                        cost.calls.add(cache.is_file());
                    }
                    match hit {
                        Some((_, held)) => {
                            cost.calls.add(*held != Held::Nothing);
                            if *held == Held::Library {
                                true
                            } else {
                                cost.tried.push(cache.display().to_string());
                                *held == Held::Invalid
                            }
                        }
                        None => {
                            cost.tried.push(cache.display().to_string());
                            false
                        }
                    }
                }
                Step::Dir { dir, held, .. } => {
                    let stop = self.dir(dir, &search.name, *held, &mut cost);
                    if !stop || *held == Held::Invalid {
                        cost.tried.push(dir.clone());
                    }
                    stop
                }
            };
            if stop {
                break;
            }
        }
        cost
    }

    /// One directory of a search: its capability subdirectories, then itself. True when the
    /// search ends here.
    fn dir(&mut self, dir: &str, name: &str, held: Held, cost: &mut Cost) -> bool {
        let states = self
            .dirs
            .entry(dir.to_string())
            .or_insert_with(|| vec![State::Unknown; self.subdirs.len()]);
        for (i, sub) in self.subdirs.iter().enumerate() {
            if states[i] == State::NotThere {
                continue;
            }
            let base = sub.is_empty();
            // The directory itself holds what the resolver saw; a capability subdirectory is
            // looked at here (the resolver never picks one: it depends on the CPU).
            let variant = format!("{dir}{sub}{name}");
            let opened = match base {
                true => held != Held::Nothing,
                false => Path::new(&variant).is_file(),
            };
            cost.calls.add(opened);
            let taken = opened && (!base || held == Held::Library);
            if states[i] == State::Unknown {
                states[i] = if taken {
                    State::There
                } else {
                    // Failed (or skipped the file): is the subdirectory there at all?
                    let path = format!("{dir}{sub}");
                    let there = Path::new(path.trim_end_matches('/')).is_dir();
                    cost.calls.add(there);
                    if there {
                        State::There
                    } else {
                        State::NotThere
                    }
                };
            }
            if taken {
                if !base {
                    cost.took_variant = Some(variant);
                }
                return true;
            }
            if base && held == Held::Invalid {
                return true;
            }
        }
        false
    }
}
