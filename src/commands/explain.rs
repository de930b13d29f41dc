//! `shrinkwrap explain`: what the loader does on the file system to load a file's libraries,
//! counted from its rules without running anything — for the file unstamped and stamped —
//! and, with `--measure`, counted again under strace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::stamp::write_copy;
use super::{check_options, plan_options, policy, print, resolve_options, Outcome};
use crate::cli::ExplainArgs;
use crate::elf::Kind;
use crate::plan::{self, Policy};
use crate::report::explain::{FileEntry, Measured, State};
use crate::resolve::replay::Calls;
use crate::resolve::{real_path, Object, Options, Resolver};
use crate::write;

/// Explains every FILE: the loader's searches for its closure, replayed (`resolve::replay`)
/// for the file as it is and for its other state — as `stamp` would write it, or for a stamped
/// file its original. Libraries are taken as they are on disk. A file that cannot be read is
/// one line on stderr and exit 1; one that cannot be stamped is said in its table.
pub fn run(args: &ExplainArgs) -> Outcome {
    if let Err(outcome) = check_options(&args.resolve) {
        return outcome;
    }
    if args.measure && args.resolve.interpreter.is_some() {
        eprintln!("shrinkwrap: --measure runs the program with its own interpreter; it cannot be used with --interpreter");
        return Outcome::Usage;
    }
    let explain = Explain {
        now: Resolver::new(Options {
            trace: true,
            ..resolve_options(&args.resolve)
        }),
        planner: Resolver::new(plan_options(&args.resolve)),
        policy: policy(&args.policy),
        ld_library_path: args.resolve.ld_library_path.clone(),
    };
    let mut outcome = Outcome::Success;
    let mut entries = Vec::new();
    for file in &args.files {
        match explain.file(file, args.measure) {
            Ok(entry) => {
                if !args.json {
                    print(&entry.to_text());
                }
                entries.push(entry);
            }
            Err(why) => {
                eprintln!("shrinkwrap: {}: {why}", file.display());
                outcome = Outcome::FileFailed;
            }
        }
    }
    if args.json {
        print(&crate::report::files_json(&entries));
    }
    outcome
}

struct Explain {
    /// Sees every file as the loader does now, and records the searches.
    now: Resolver,
    /// Reads stamped files as their originals, as planning a stamp does.
    planner: Resolver,
    policy: Policy,
    ld_library_path: Option<String>,
}

impl Explain {
    fn file(&self, file: &Path, measure: bool) -> Result<FileEntry, String> {
        let path = real_path(file);
        let read = plan::read(&path).map_err(|e| e.to_string())?;
        let is_stamped = read.original.is_some();
        // The DT_NEEDED list of the other state, or why there is none.
        let other: Result<Vec<String>, String> = match &read.original {
            Some(original) => Ok(original.needed.clone()),
            None => plan::plan_read(&self.planner, &self.policy, &path, &read)
                .map(|p| p.values().into_iter().map(str::to_string).collect())
                .map_err(|e| e.to_string()),
        };
        let as_is = self.state(&path, read.own.clone())?;
        let other_state = match &other {
            Ok(needed) => Some(self.state(&path, with_needed(&read.own, needed))?),
            Err(_) => None,
        };
        let (unstamped, stamped) = match is_stamped {
            true => (
                other_state.expect("an original is always there"),
                Some(as_is),
            ),
            false => (as_is, other_state),
        };
        let mut entry = FileEntry::new(file, is_stamped, unstamped);
        entry.stamped = stamped;
        entry.not_stampable = other.as_ref().err().cloned();
        if measure {
            entry.measured = Some(self.measure(&path, &read.own, is_stamped, other.ok()));
        }
        Ok(entry)
    }

    fn state(&self, path: &Path, root: Arc<Object>) -> Result<State, String> {
        let closure = self
            .now
            .resolve_read(path, root)
            .map_err(|e| e.to_string())?;
        Ok(State::new(&closure))
    }

    /// Both states measured under strace: the file as it is, and the other on a copy beside it
    /// (same directory, so `$ORIGIN` is the same), removed afterwards.
    fn measure(
        &self,
        path: &Path,
        own: &Object,
        is_stamped: bool,
        other: Option<Vec<String>>,
    ) -> Measured {
        let mut m = Measured::default();
        if !own.info.is_program() || matches!(own.info.kind, Kind::SharedLibrary) {
            m.notes
                .push("not measured: only programs are run, and this is a library".into());
            return m;
        }
        let as_is = self.strace(path);
        let other = match other {
            None => Err("the other state does not exist".to_string()),
            Some(needed) => {
                let copy = Copy::beside(path);
                match write_copy(path, &copy.0, |tmp| write::stamp_file(tmp, &needed)) {
                    Ok(_) => self.strace(&copy.0),
                    Err((_, e)) => Err(format!("could not write a copy beside it: {e}")),
                }
            }
        };
        let (unstamped, stamped) = match is_stamped {
            true => (other, as_is),
            false => (as_is, other),
        };
        for (name, r) in [("unstamped", &unstamped), ("stamped", &stamped)] {
            if let Err(why) = r {
                m.notes.push(format!("{name} not measured: {why}"));
            }
        }
        m.unstamped = unstamped.ok();
        m.stamped = stamped.ok();
        m
    }

    /// Starts `program` under strace, killed when the loader has mapped every library (its
    /// first `set_tid_address`, before relocation: none of the program's code runs), and
    /// counts the path-based `open`/`stat` calls made until then, and the failed ones. (strace
    /// injects only into calls it traces, hence `set_tid_address` in the set.)
    fn strace(&self, program: &Path) -> Result<Calls, String> {
        let mut cmd = Command::new("strace");
        cmd.args([
            "-qq",
            "-e",
            "trace=open,openat,stat,lstat,newfstatat,stat64,statx,set_tid_address",
        ])
        .args(["-e", "inject=set_tid_address:signal=KILL", "--"])
        .arg(program)
        .env_remove("LD_PRELOAD")
        .env_remove("LD_AUDIT")
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        if let Some(llp) = &self.ld_library_path {
            cmd.env("LD_LIBRARY_PATH", llp);
        }
        let out = cmd.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "strace is not installed".to_string(),
            _ => format!("could not run strace: {e}"),
        })?;
        let text = String::from_utf8_lossy(&out.stderr);
        // The count means something only if strace saw the loader through to its end (ptrace
        // may be forbidden, or the program may not start at all).
        if !text.contains("set_tid_address(") {
            let why = text
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            return Err(format!("strace did not see it start ({})", why.trim()));
        }
        Ok(count_calls(&text))
    }
}

/// The path-based calls in strace output (a call on a descriptor, `AT_EMPTY_PATH`, is not a
/// look at a path), and how many failed.
fn count_calls(strace: &str) -> Calls {
    let mut calls = Calls::default();
    for line in strace.lines() {
        let is_call = line.split_once('(').is_some_and(|(name, args)| {
            !name.contains(' ') && args.contains('"') && !args.contains("AT_EMPTY_PATH")
        });
        if is_call {
            calls.calls += 1;
            calls.failed += usize::from(line.contains(" = -1 "));
        }
    }
    calls
}

/// `own` with another DT_NEEDED list: what the loader reads from the other state's file.
fn with_needed(own: &Arc<Object>, needed: &[String]) -> Arc<Object> {
    let mut info = own.info.clone();
    info.needed = needed.to_vec();
    Arc::new(Object {
        info,
        file_id: own.file_id,
    })
}

/// A temporary copy beside a file, removed when dropped. Its name is one `fixup` passes over
/// should a killed run leave it.
struct Copy(PathBuf);

impl Copy {
    fn beside(path: &Path) -> Copy {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let own = format!("{name}.explain-{}", std::process::id());
        Copy(path.with_file_name(crate::elf::stamped::temp_name(&own)))
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_strace_lines() {
        let text = r#"openat(AT_FDCWD, "/a/libf.so", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)
newfstatat(AT_FDCWD, "/a", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0
openat(AT_FDCWD, "/c/libf.so", O_RDONLY|O_CLOEXEC) = 3
newfstatat(3, "", {st_mode=S_IFREG|0755, st_size=15008, ...}, AT_EMPTY_PATH) = 0
/prog: error while loading shared libraries: libx.so (nothing)
"#;
        assert_eq!(
            count_calls(text),
            Calls {
                calls: 3,
                failed: 1
            }
        );
    }
}
