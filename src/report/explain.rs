//! `explain`: the loader's file-system calls to start a file, unstamped and stamped, per
//! search and in total; as text (a short table and a total line) or JSON (version 1, documented
//! in the README).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::resolve::replay::{self, Calls, Cost};
use crate::resolve::{Closure, Step};

/// One file, in both states.
#[derive(Serialize)]
pub struct FileEntry {
    pub file: String,
    /// Whether the file on disk is stamped (then `stamped` is it as it is, and `unstamped` its
    /// original; otherwise the other way round).
    pub is_stamped: bool,
    pub unstamped: State,
    /// `None` when it cannot be stamped (`not_stampable` says why).
    pub stamped: Option<State>,
    pub not_stampable: Option<String>,
    /// With `--measure`: the calls counted under strace, each state that could be run.
    pub measured: Option<Measured>,
}

/// The calls of one start-up.
#[derive(Serialize)]
pub struct State {
    pub calls: usize,
    pub failed: usize,
    pub searches: Vec<SearchEntry>,
}

/// One search the loader makes, in order.
#[derive(Serialize)]
pub struct SearchEntry {
    pub name: String,
    pub needed_by: String,
    /// The path it took (`null`: not found).
    pub found: Option<String>,
    /// How it was found: `rpath`, `runpath`, `cache`, `default-dirs`, `path`, ….
    pub via: Option<&'static str>,
    /// The directories tried before, in order (also the cache, when it had nothing).
    pub tried: Vec<String>,
    pub calls: usize,
    pub failed: usize,
}

#[derive(Serialize, Default)]
pub struct Measured {
    pub unstamped: Option<Calls>,
    pub stamped: Option<Calls>,
    /// Why a state was not measured.
    pub notes: Vec<String>,
}

impl State {
    pub fn new(closure: &Closure) -> State {
        let costs = replay::replay(closure);
        let total = replay::total(&costs);
        State {
            calls: total.calls,
            failed: total.failed,
            searches: costs.iter().map(|c| SearchEntry::new(closure, c)).collect(),
        }
    }

    fn total(&self) -> Calls {
        Calls {
            calls: self.calls,
            failed: self.failed,
        }
    }
}

impl SearchEntry {
    fn new(closure: &Closure, cost: &Cost) -> SearchEntry {
        let s = cost.search;
        let via = s.found.as_ref().and_then(|_| match s.steps.last()? {
            Step::Dir { via, .. } => Some(via.name()),
            Step::Cache { .. } => Some("cache"),
            Step::Open { .. } => Some("path"),
        });
        SearchEntry {
            name: s.name.clone(),
            needed_by: closure.requester_path(s.needed_by).to_string(),
            found: cost.took_variant.clone().or_else(|| s.found.clone()),
            via,
            tried: cost.tried.clone(),
            calls: cost.calls.calls,
            failed: cost.calls.failed,
        }
    }
}

impl FileEntry {
    pub fn new(file: &Path, is_stamped: bool, unstamped: State) -> FileEntry {
        FileEntry {
            file: file.to_string_lossy().into_owned(),
            is_stamped,
            unstamped,
            stamped: None,
            not_stampable: None,
            measured: None,
        }
    }

    /// The table: one row per library searched for (in the unstamped load order), its calls
    /// unstamped and stamped, then the total line `N calls (F failed) → M calls (G failed)`.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} ({})\n",
            self.file,
            match self.is_stamped {
                true => "stamped; unstamped is its original",
                false => "not stamped; stamped is as `shrinkwrap stamp` would write it",
            }
        );
        // A stamped search names the library by path; match it to the unstamped one by the
        // file it found.
        let mut after: HashMap<&str, Calls> = HashMap::new();
        for s in self.stamped.iter().flat_map(|s| &s.searches) {
            let key = s.found.as_deref().unwrap_or(&s.name);
            let c = after.entry(key).or_default();
            *c = c.plus(Calls {
                calls: s.calls,
                failed: s.failed,
            });
        }
        let mut rows = vec![[
            "library".to_string(),
            "found via".into(),
            "dirs tried".into(),
            "calls (failed)".into(),
            "stamped".into(),
        ]];
        let stamped_col = |key: &str, after: &mut HashMap<&str, Calls>| match &self.stamped {
            None => "-".to_string(),
            Some(_) => show(after.remove(key).unwrap_or_default()),
        };
        for s in &self.unstamped.searches {
            let key = s.found.as_deref().unwrap_or(&s.name);
            rows.push([
                s.name.clone(),
                s.via.unwrap_or("NOT FOUND").to_string(),
                s.tried.len().to_string(),
                show(Calls {
                    calls: s.calls,
                    failed: s.failed,
                }),
                stamped_col(key, &mut after),
            ]);
        }
        // Searches only the stamped file makes.
        for s in self.stamped.iter().flat_map(|s| &s.searches) {
            let key = s.found.as_deref().unwrap_or(&s.name);
            if let Some(c) = after.remove(key) {
                rows.push([s.name.clone(), "-".into(), "-".into(), "-".into(), show(c)]);
            }
        }
        let widths: Vec<usize> = (0..5)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for r in &rows {
            let mut line = String::from(" ");
            for (i, cell) in r.iter().enumerate() {
                line.push(' ');
                line.push_str(cell);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 1));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let stamped = match (&self.stamped, &self.not_stampable) {
            (Some(s), _) => probes(s.total()),
            (None, Some(why)) => format!("not stampable: {why}"),
            (None, None) => "not stampable".into(),
        };
        out.push_str(&format!(
            "  {} → {stamped}\n",
            probes(self.unstamped.total())
        ));
        if let Some(m) = &self.measured {
            let side = |c: Option<Calls>| c.map(probes).unwrap_or_else(|| "not measured".into());
            out.push_str(&format!(
                "  measured: {} → {}\n",
                side(m.unstamped),
                side(m.stamped)
            ));
            for n in &m.notes {
                out.push_str(&format!("  ({n})\n"));
            }
        }
        out
    }
}

fn show(c: Calls) -> String {
    format!("{} ({})", c.calls, c.failed)
}

fn probes(c: Calls) -> String {
    format!("{} probes ({} failed)", c.calls, c.failed)
}
