//! `shrinkwrap stamp`: resolve, plan and write each file.

use std::path::{Path, PathBuf};

use super::{check_loader_option, check_options, plan_options, policy, print, Outcome};
use crate::cli::StampArgs;
use crate::lock;
use crate::plan::{self, NotPlanned, Plan, Policy};
use crate::report::stamp as rep;
use crate::resolve::Resolver;
use crate::write::{self, WriteError};

/// What happened to one file.
enum Done {
    Stamped {
        plan: Plan,
        grew_by: u64,
        /// The PT_INTERP written (`--set-interpreter`).
        interpreter: Option<String>,
    },
    /// Nothing was written: already stamped, or (`why`) the plan changes nothing.
    Unchanged {
        plan: Plan,
        why: Option<&'static str>,
    },
    Planned {
        plan: Plan,
        interpreter: Option<String>,
    },
    NothingToDo(&'static str),
    /// The file the error is about (FILE, or OUT for an error writing it) and why.
    Failed(PathBuf, String),
}

/// Stamps every FILE (or writes one to `-o OUT`). Each failure is one line on stderr naming
/// the file it is about (OUT for an error writing it); the file is left untouched and the
/// exit code is 1.
pub fn run(args: &StampArgs) -> Outcome {
    if args.output.is_some() && args.files.len() != 1 {
        eprintln!("shrinkwrap: -o/--output takes exactly one FILE");
        return Outcome::Usage;
    }
    let set_interpreter = args.set_interpreter.as_deref();
    let mut resolve = args.resolve.clone();
    if let Some(p) = set_interpreter {
        // The closure is resolved as the new interpreter will load it, so glibc's parts come
        // from its build; resolving as another loader would plan a closure the file never gets.
        if !p.starts_with('/') {
            eprintln!("shrinkwrap: --set-interpreter {p}: must be an absolute path (the kernel resolves a relative one against the working directory)");
            return Outcome::Usage;
        }
        if let Err(outcome) = check_loader_option("--set-interpreter", p) {
            return outcome;
        }
        match &resolve.interpreter {
            Some(q) if q != p => {
                eprintln!("shrinkwrap: --set-interpreter {p} and --interpreter {q} disagree: the closure is resolved as the interpreter the file will have");
                return Outcome::Usage;
            }
            _ => resolve.interpreter = Some(p.to_string()),
        }
    }
    if let Err(outcome) = check_options(&resolve) {
        return outcome;
    }
    let resolver = Resolver::new(plan_options(&resolve));
    let policy = policy(&args.policy);
    let mut outcome = Outcome::Success;
    let mut done_all = Vec::new();
    for file in &args.files {
        let target = args.output.clone().unwrap_or_else(|| file.clone());
        let done = stamp_one(
            &resolver,
            &policy,
            file,
            &target,
            set_interpreter,
            args.dry_run,
        );
        if let Done::Failed(about, why) = &done {
            eprintln!("shrinkwrap: {}: {why}", about.display());
            outcome = Outcome::FileFailed;
        }
        if !args.json {
            print(&human(&target, &done));
        }
        done_all.push((target, done));
    }
    if args.json {
        let doc = rep::Report {
            files: done_all.iter().map(|(t, d)| report(t, d)).collect(),
            version: 1,
        };
        print(&doc.to_text());
    }
    outcome
}

fn stamp_one(
    resolver: &Resolver,
    policy: &Policy,
    file: &Path,
    target: &Path,
    interpreter: Option<&str>,
    dry_run: bool,
) -> Done {
    let plan = match plan::plan_file_to(resolver, policy, file, interpreter) {
        Ok(p) => p,
        Err(NotPlanned::NothingToDo(kind)) => return Done::NothingToDo(kind),
        Err(e) => return Done::Failed(file.to_path_buf(), e.to_string()),
    };
    let interpreter = interpreter.map(str::to_string);
    if dry_run {
        return Done::Planned { plan, interpreter };
    }
    let values: Vec<String> = plan.needed.iter().map(|n| n.value.clone()).collect();
    let to = write::Target {
        needed: &values,
        interpreter: interpreter.as_deref(),
    };
    let write = |f: &Path| write::stamp_file_to(f, &to, write::ReadOnly::Refuse);
    let result = if target == file {
        write(file).map_err(|e| (file, e))
    } else {
        write_copy(file, target, write)
    };
    match result {
        Ok(write::Outcome::Stamped { grew_by }) => Done::Stamped {
            plan,
            grew_by,
            interpreter,
        },
        Ok(write::Outcome::Unchanged) => {
            let why = plan.nothing_to_stamp(policy);
            Done::Unchanged { plan, why }
        }
        Err((about, e)) => Done::Failed(about.to_path_buf(), e.to_string()),
    }
}

/// Runs `write` (a stamp or an unwrap) on a copy of `file` and renames it to `target`, so
/// `target` never holds a half-written file. An error names `file` when it is about reading
/// it or about its contents, `target` when it is about writing there.
pub(super) fn write_copy<'a, T>(
    file: &'a Path,
    target: &'a Path,
    write: impl FnOnce(&Path) -> Result<T, WriteError>,
) -> Result<T, (&'a Path, WriteError)> {
    let on_input = |e: std::io::Error| (file, WriteError::Io(e));
    let on_output = |e: std::io::Error| (target, WriteError::Io(e));
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    // The name a killed run's leftover has everywhere, so `fixup` passes it over.
    let tmp: PathBuf = dir.join(crate::elf::stamped::temp_name(&name));
    // Runs writing into one directory take turns: two into the same OUT would share `tmp`.
    // Under this lock, a `tmp` already there is a killed run's.
    let dir_lock = std::fs::File::open(dir).map_err(on_output)?;
    lock::flock(&dir_lock, lock::Lock::Exclusive).map_err(on_output)?;
    // Copied under a shared lock, so never half of another run's stamp.
    let src = lock::open_locked(file, lock::Lock::Shared).map_err(on_input)?;
    let mut dst = std::fs::File::create(&tmp).map_err(on_output)?;
    let result = (|| {
        // std's copy uses copy_file_range, in the kernel. Its error cannot say which side
        // failed; a copy out of a file we could open and lock failing is writing's fault.
        std::io::copy(&mut &src, &mut dst).map_err(on_output)?;
        let perms = src.metadata().map_err(on_input)?.permissions();
        dst.set_permissions(perms).map_err(on_output)?;
        drop(src);
        // Errors about the ELF contents are the input's; I/O errors are writing OUT.
        let o = write(&tmp).map_err(|e| match e {
            WriteError::Io(_) => (target, e),
            e => (file, e),
        })?;
        std::fs::rename(&tmp, target).map_err(on_output)?;
        Ok(o)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn human(target: &Path, done: &Done) -> String {
    let t = target.display();
    let mut s = match done {
        // Our earlier stamp undone, the plan being to change nothing.
        Done::Stamped {
            plan,
            interpreter: None,
            ..
        } if plan.changes_nothing() => {
            format!("{t}: restored its original, which has nothing to stamp\n")
        }
        Done::Stamped {
            plan,
            grew_by,
            interpreter,
        } => {
            let (replaced, added) = counts(plan);
            let interp = interpreter
                .as_ref()
                .map(|p| format!(", interpreter {p}"))
                .unwrap_or_default();
            format!("{t}: stamped {replaced} replaced, {added} added{interp} (+{grew_by} bytes)\n")
        }
        Done::Unchanged { why: None, .. } => format!("{t}: already stamped, unchanged\n"),
        Done::Unchanged { why: Some(why), .. } => format!("{t}: nothing to stamp: {why}\n"),
        Done::Planned { plan, interpreter } => {
            let mut s = format!("{t}: would write {} DT_NEEDED entries\n", plan.needed.len());
            if let Some(p) = interpreter {
                s.push_str(&format!("    interpreter {p}\n"));
            }
            for n in &plan.needed {
                match &n.original {
                    Some(o) if *o == n.value => s.push_str(&format!("    keep    {o}\n")),
                    Some(o) => s.push_str(&format!("    replace {o} => {}\n", n.value)),
                    None => s.push_str(&format!("    add     {}\n", n.value)),
                }
            }
            s
        }
        Done::NothingToDo(kind) => format!("{t}: {kind}, not dynamically linked: nothing to do\n"),
        Done::Failed(..) => String::new(),
    };
    if let Done::Stamped { plan, .. } | Done::Unchanged { plan, .. } | Done::Planned { plan, .. } =
        done
    {
        for w in &plan.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
    }
    s
}

fn counts(plan: &Plan) -> (usize, usize) {
    let replaced = plan
        .needed
        .iter()
        .filter(|n| n.original.as_ref().is_some_and(|o| *o != n.value))
        .count();
    let added = plan.needed.iter().filter(|n| n.original.is_none()).count();
    (replaced, added)
}

fn report<'a>(target: &'a Path, done: &'a Done) -> rep::FileEntry<'a> {
    match done {
        Done::Stamped {
            plan,
            grew_by,
            interpreter,
        } => rep::FileEntry {
            grew_by: Some(*grew_by),
            interpreter: interpreter.as_deref(),
            ..rep::FileEntry::new(target, "stamped", Some(plan))
        },
        Done::Unchanged { plan, why } => rep::FileEntry {
            reason: Some(why.unwrap_or("already stamped")),
            ..rep::FileEntry::new(target, "unchanged", Some(plan))
        },
        Done::Planned { plan, interpreter } => rep::FileEntry {
            interpreter: interpreter.as_deref(),
            ..rep::FileEntry::new(target, "planned", Some(plan))
        },
        Done::NothingToDo(kind) => rep::FileEntry {
            kind: Some(kind),
            ..rep::FileEntry::new(target, "nothing-to-do", None)
        },
        Done::Failed(_, why) => rep::FileEntry {
            error: Some(why),
            ..rep::FileEntry::new(target, "failed", None)
        },
    }
}
