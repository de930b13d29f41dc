//! `shrinkwrap fixup`: stamp every ELF file of one or more output trees, in parallel.
//!
//! Three phases, so the result does not depend on `-j`: walk the trees; read and plan every
//! file (nothing is written yet, so every plan sees the original tree); then write. Errors are
//! collected and reported once at the end; one bad file never stops the others, and a file
//! that fails is left untouched.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::borrow::Cow;

use super::{check_options, plan_options, policy, Outcome};
use crate::cli::FixupArgs;
use crate::elf::Kind;
use crate::plan::{self, NotPlanned, Plan, Refusal};
use crate::report::fixup as rep;
use crate::resolve::{Probe, Resolver};
use crate::walk::{self, Candidate};
use crate::write;

/// One file of the trees, as read (phase 1).
struct Work<'a> {
    c: &'a Candidate,
    /// What reading it gave (for a file stamped before, its original's facts).
    probe: Probe,
    read: Option<plan::Read>,
}

/// One file and its plan, or what already happened to it (phase 2).
struct Planned<'a> {
    w: Work<'a>,
    plan: Result<Plan, Result_>,
}

/// What happened to one file.
enum Result_ {
    Stamped(Plan),
    Unchanged(Plan),
    Skipped(&'static str),
    /// Why, and the missing libraries with their requesters, if that is why.
    Failed(String, Vec<(String, String)>),
}

fn failed(why: impl ToString) -> Result_ {
    Result_::Failed(why.to_string(), Vec::new())
}

/// Runs the fixup; see the module documentation.
pub fn run(args: &FixupArgs) -> Outcome {
    let jobs = args
        .jobs
        .or_else(|| {
            std::env::var("NIX_BUILD_CORES")
                .ok()?
                .parse()
                .ok()
                .filter(|&n| n > 0)
        })
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("shrinkwrap: cannot start {jobs} threads: {e}");
            return Outcome::FileFailed;
        }
    };
    pool.install(|| fixup(args, jobs))
}

fn fixup(args: &FixupArgs, jobs: usize) -> Outcome {
    let start = Instant::now();
    // The options are checked before anything is written: found out only at the end, a bad
    // one would fail a run that had stamped everything.
    if let Err(outcome) = check_options(&args.resolve) {
        return outcome;
    }
    if let Some(path) = &args.report {
        if let Err(e) = check_writable(path) {
            eprintln!(
                "shrinkwrap: --report {}: {e}; nothing was stamped",
                path.display()
            );
            return Outcome::Usage;
        }
    }
    // Absolute, real paths: they end up in DT_NEEDED.
    let roots: Vec<std::path::PathBuf> = args
        .dirs
        .iter()
        .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
        .collect();
    let tree = match walk::walk(&roots) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("shrinkwrap: {e}");
            return Outcome::FileFailed;
        }
    };
    let dirs: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
    let log = !args.quiet;
    if log {
        // Every ELF file found, as the summary accounts for them (the walk's skipped ones too).
        let found = tree.candidates.len() + tree.skipped.len();
        eprintln!(
            "shrinkwrap: fixing up {} in {} with {}",
            count(found, "ELF file"),
            dirs.join(" "),
            count(jobs, "job")
        );
    }

    // Phase 1: read every candidate once. Plans start from original facts (a file stamped by
    // an earlier run, killed or not, as its original), so those go into the cache resolution
    // uses, and are kept for phase 2. Index the trees' own libraries, used only where the
    // loader's search finds nothing.
    let mut resolver = Resolver::new(plan_options(&args.resolve));
    let files: Vec<Work> = tree
        .candidates
        .par_iter()
        .map(|c| {
            let (probe, read) = match plan::read(&c.path) {
                Ok(r) => (Probe::Found(r.original_object()), Some(r)),
                Err(e) => (Probe::from_result(Err(e)), None),
            };
            Work { c, probe, read }
        })
        .collect();
    for w in &files {
        resolver.remember(&w.c.path, w.probe.clone());
    }
    let libraries = tree_libraries(&resolver, &files);
    resolver.set_tree(libraries);
    let policy = policy(&args.policy);

    // Phase 2: plan everything before writing anything.
    let bar = progress(log, files.len() as u64 * 2);
    let files: Vec<Planned> = files
        .into_par_iter()
        .map(|w| {
            let plan = plan_one(
                &resolver,
                &policy,
                args.programs_only,
                w.c,
                &w.probe,
                &w.read,
            );
            bar.inc(1);
            Planned { w, plan }
        })
        .collect();

    // Between phases: stamps must not make two outputs refer to each other (Nix refuses
    // such a build). Checked before anything is written.
    let cycles = reference_cycles(&roots, &files);
    if !cycles.is_empty() {
        bar.finish_and_clear();
        for c in &cycles {
            eprintln!("shrinkwrap: {c}");
        }
        eprintln!("shrinkwrap: nothing was stamped");
        return Outcome::FileFailed;
    }

    // Phase 3: write.
    let results: Vec<Result_> = files
        .into_par_iter()
        .map(|p| {
            let r = match p.plan {
                Ok(plan) => write_one(p.w.c, plan, &policy),
                Err(r) => r,
            };
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();

    let summary = Summary::new(&tree, &results);
    if let Some(path) = &args.report {
        if let Err(e) = report(&tree, &results, &summary).write(path) {
            eprintln!("shrinkwrap: {}: {e}", path.display());
            return Outcome::FileFailed;
        }
    }
    for (c, r) in tree.candidates.iter().zip(&results) {
        if let Result_::Failed(why, _) = r {
            eprintln!("shrinkwrap: {}: {why}", c.path.display());
        }
    }
    for (name, by) in &summary.missing {
        eprintln!("shrinkwrap: missing {name}, needed by {}", by.join(", "));
    }
    if log {
        // Each warning once, however many files' plans gave it.
        let mut seen = std::collections::HashSet::new();
        for r in &results {
            if let Result_::Stamped(p) | Result_::Unchanged(p) = r {
                for w in &p.warnings {
                    if seen.insert(w.as_str()) {
                        eprintln!("shrinkwrap: warning: {w}");
                    }
                }
            }
        }
    }
    for (path, why) in &tree.skipped {
        if log && *why == "set-uid/set-gid" {
            eprintln!(
                "shrinkwrap: warning: {}: set-uid/set-gid, not stamped",
                path.display()
            );
        }
    }
    if log || summary.failed > 0 {
        eprintln!("{}", summary.line(start.elapsed().as_secs_f64()));
    }
    if summary.failed > 0 {
        Outcome::FileFailed
    } else {
        Outcome::Success
    }
}

/// References between the given directories (Nix outputs) that the planned stamps would turn
/// into a cycle, each described with the files that make it. Existing references (RUNPATH,
/// RPATH) count, since Nix sees them too; a cycle made only of those is not ours to report.
fn reference_cycles(roots: &[std::path::PathBuf], files: &[Planned]) -> Vec<String> {
    let n = roots.len();
    let root_of = |p: &str| roots.iter().position(|r| Path::new(p).starts_with(r));
    // For each ordered pair of outputs: an example (file, target) of a new and an old edge.
    let mut new_edge: BTreeMap<(usize, usize), (String, String)> = BTreeMap::new();
    let mut old_edge = vec![vec![false; n]; n];
    for Planned { w, plan } in files {
        let c = w.c;
        let Some(a) = root_of(&c.path.to_string_lossy()) else {
            continue;
        };
        if let Probe::Found(o) = &w.probe {
            let paths = [o.info.runpath.as_deref(), o.info.rpath.as_deref()];
            for dir in paths.into_iter().flatten().flat_map(|p| p.split(':')) {
                if let Some(b) = root_of(dir).filter(|&b| b != a) {
                    old_edge[a][b] = true;
                }
            }
        }
        if let Ok(plan) = plan {
            for v in plan.values() {
                if let Some(b) = root_of(v).filter(|&b| b != a) {
                    new_edge
                        .entry((a, b))
                        .or_insert_with(|| (c.path.display().to_string(), v.to_string()));
                }
            }
        }
    }
    let closure = |with_new: bool| {
        let mut r = old_edge.clone();
        if with_new {
            for &(a, b) in new_edge.keys() {
                r[a][b] = true;
            }
        }
        for k in 0..n {
            for i in 0..n {
                for j in 0..n {
                    r[i][j] |= r[i][k] && r[k][j];
                }
            }
        }
        r
    };
    let (all, old) = (closure(true), closure(false));
    let mut out = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            if all[a][b] && all[b][a] && !(old[a][b] && old[b][a]) {
                let why: Vec<String> = new_edge
                    .iter()
                    .filter(|((x, y), _)| (*x == a && *y == b) || (*x == b && *y == a))
                    .map(|(_, (file, target))| format!("{file} would need {target}"))
                    .collect();
                out.push(format!(
                    "stamping would make {} and {} refer to each other, which the store (Nix, Guix) refuses: {}",
                    roots[a].display(),
                    roots[b].display(),
                    why.join("; ")
                ));
            }
        }
    }
    out
}

/// The trees' shared libraries by soname and file name, first in path order winning: the
/// last resort for a name the loader's search does not find. A library is named by
/// `dir/soname` where that leads to it (usually a symlink); the resolver is told that name is
/// the file it has already read.
fn tree_libraries(resolver: &Resolver, files: &[Work]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for w in files {
        let (c, p) = (w.c, &w.probe);
        let Probe::Found(o) = p else { continue };
        if o.info.kind != Kind::SharedLibrary {
            continue;
        }
        let dir = c.path.parent().unwrap_or(Path::new("/"));
        let file_name = c
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(soname) = &o.info.soname {
            let by_soname = dir.join(soname);
            let path = match std::fs::metadata(&by_soname) {
                Ok(m) if crate::resolve::file_id(&m) == o.file_id => {
                    resolver.remember(&by_soname, p.clone());
                    by_soname
                }
                // Another file by that name (a newer version): the loader opens that one.
                Ok(_) => by_soname,
                Err(_) => c.path.clone(),
            };
            map.entry(soname.clone())
                .or_insert_with(|| path.to_string_lossy().into_owned());
        }
        map.entry(file_name)
            .or_insert_with(|| c.path.to_string_lossy().into_owned());
    }
    map
}

fn plan_one(
    resolver: &Resolver,
    policy: &plan::Policy,
    programs_only: bool,
    c: &Candidate,
    probe: &Probe,
    read: &Option<plan::Read>,
) -> Result<Plan, Result_> {
    match probe {
        Probe::Found(o) if !o.info.kind.is_dynamic() => {
            return Err(Result_::Skipped(match o.info.kind {
                Kind::Static => "static",
                Kind::DebugFile => "debug file",
                Kind::Relocatable => "object file",
                _ => "not loadable",
            }))
        }
        Probe::Found(o) if o.info.needed.is_empty() => {
            return Err(Result_::Skipped("no dependencies"))
        }
        Probe::Found(o) if programs_only && !o.info.is_program() => {
            return Err(Result_::Skipped("library (--programs-only)"))
        }
        Probe::Found(_) => {}
        Probe::Invalid(e) => return Err(failed(e)),
        Probe::Absent => return Err(failed("cannot be opened")),
    }
    // Only a file that was read is `Found`.
    let Some(read) = read else {
        return Err(failed("cannot be read"));
    };
    // Walked from real roots without following symlinks: `c.path` is real already.
    plan::plan_read(resolver, policy, &c.path, read).map_err(|e| match e {
        // Not reached (the kinds are checked above), but never mislabelled.
        NotPlanned::NothingToDo(kind) => Result_::Skipped(kind),
        NotPlanned::Refused(Refusal::Missing(list)) => Result_::Failed(
            format!("not stamped: {} missing (listed below)", list.len()),
            list,
        ),
        e => failed(e),
    })
}

/// Writes one planned file; a read-only file is made writable for the write and gets its
/// mode back (under the file's lock, so runs at the same time never see the borrowed mode).
fn write_one(c: &Candidate, plan: Plan, policy: &plan::Policy) -> Result_ {
    let values: Vec<String> = plan.needed.iter().map(|n| n.value.clone()).collect();
    let result = write::stamp_file_as(&c.path, &values, write::ReadOnly::MakeWritable);
    match result {
        Ok(write::Outcome::Stamped { .. }) => Result_::Stamped(plan),
        Ok(write::Outcome::Unchanged) => match plan.nothing_to_stamp(policy) {
            // Never stamped, and nothing to stamp: not "already stamped".
            Some(why) => Result_::Skipped(why),
            None => Result_::Unchanged(plan),
        },
        Err(e) => failed(e),
    }
}

/// A progress bar on a terminal; nothing otherwise (build logs get a start and a summary line).
fn progress(log: bool, len: u64) -> ProgressBar {
    // Nix gives builders a pseudo-terminal, but its log is no place for a bar.
    let in_nix_build = std::env::var_os("NIX_BUILD_TOP").is_some();
    if !log || in_nix_build || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("shrinkwrap {bar:40} {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

struct Summary {
    stamped: usize,
    unchanged: usize,
    skipped: BTreeMap<&'static str, usize>,
    failed: usize,
    /// Every missing library with everything that needs it.
    missing: BTreeMap<String, Vec<String>>,
}

impl Summary {
    fn new(tree: &walk::Tree, results: &[Result_]) -> Summary {
        let mut s = Summary {
            stamped: 0,
            unchanged: 0,
            skipped: BTreeMap::new(),
            failed: 0,
            missing: BTreeMap::new(),
        };
        for (_, why) in &tree.skipped {
            *s.skipped.entry(why).or_default() += 1;
        }
        for r in results {
            match r {
                Result_::Stamped(_) => s.stamped += 1,
                Result_::Unchanged(_) => s.unchanged += 1,
                Result_::Skipped(why) => *s.skipped.entry(why).or_default() += 1,
                Result_::Failed(_, missing) => {
                    s.failed += 1;
                    for (name, by) in missing {
                        s.missing.entry(name.clone()).or_default().push(by.clone());
                    }
                }
            }
        }
        // One requester may be named two ways (a tree library by `dir/soname` and by its own
        // path): name each by its real path.
        for by in s.missing.values_mut() {
            for b in by.iter_mut() {
                if let Ok(real) = std::fs::canonicalize(&*b) {
                    *b = real.to_string_lossy().into_owned();
                }
            }
            by.sort();
            by.dedup();
        }
        s
    }

    fn line(&self, secs: f64) -> String {
        let skipped: usize = self.skipped.values().sum();
        let reasons: Vec<String> = self
            .skipped
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let reasons = if reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", reasons.join(", "))
        };
        format!(
            "shrinkwrap: stamped {} ({} already stamped; {skipped} skipped{reasons}; {} failed) in {secs:.2}s",
            count(self.stamped, "file"), self.unchanged, self.failed
        )
    }
}

/// `1 file`, `2 files`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Whether `path` can be written (created, if it does not exist), without changing it.
fn check_writable(path: &Path) -> std::io::Result<()> {
    use std::fs::OpenOptions;
    match OpenOptions::new().append(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            OpenOptions::new().write(true).create_new(true).open(path)?;
            std::fs::remove_file(path)
        }
        Err(e) => Err(e),
    }
}

fn report<'a>(tree: &'a walk::Tree, results: &'a [Result_], s: &'a Summary) -> rep::Report<'a> {
    let mut files = Vec::new();
    for (c, r) in tree.candidates.iter().zip(results) {
        files.push(match r {
            Result_::Stamped(p) => rep::FileEntry::new(&c.path, "stamped", None, Some(p)),
            Result_::Unchanged(p) => rep::FileEntry::new(&c.path, "unchanged", None, Some(p)),
            Result_::Skipped(why) => {
                rep::FileEntry::new(&c.path, "skipped", Some(Cow::Borrowed(why)), None)
            }
            Result_::Failed(why, _) => {
                rep::FileEntry::new(&c.path, "failed", Some(Cow::Borrowed(why)), None)
            }
        });
    }
    for (path, why) in &tree.skipped {
        files.push(rep::FileEntry::new(
            path,
            "skipped",
            Some(Cow::Borrowed(why)),
            None,
        ));
    }
    rep::Report {
        files,
        missing: s
            .missing
            .iter()
            .map(|(name, by)| rep::MissingEntry {
                name,
                needed_by: by,
            })
            .collect(),
        summary: rep::Summary {
            failed: s.failed,
            skipped: s.skipped.values().sum(),
            stamped: s.stamped,
            unchanged: s.unchanged,
        },
        version: 1,
    }
}
