//! One module per subcommand: each glues the pipeline stages together for its command and
//! decides its exit status.

pub mod fixup;
pub mod stamp;
pub mod tree;

use std::io::{self, Write};
use std::process::ExitCode;

use crate::cli::{PolicyArgs, ResolveArgs};
use crate::plan::{Policy, DEFAULT_KEEP};
use crate::resolve::Options;
use crate::store::StoreDir;

/// How a command ended. Exit codes: 0 success, 1 a file could not be processed, 2 usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    FileFailed,
    Usage,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::FileFailed => ExitCode::from(1),
            Outcome::Usage => ExitCode::from(2),
        }
    }
}

/// A command whose issue has not landed yet.
pub fn pending(name: &str) -> Outcome {
    eprintln!("shrinkwrap: `{name}` is not implemented yet");
    Outcome::Usage
}

/// Resolver options from the command line.
pub fn resolve_options(args: &ResolveArgs) -> Options {
    Options {
        search: args.search.clone(),
        ld_library_path: args.ld_library_path.clone(),
        interpreter: args.interpreter.clone(),
        store: args
            .store_dir
            .clone()
            .map(StoreDir::new)
            .unwrap_or_else(StoreDir::from_env),
        tree: Default::default(),
        originals: false,
    }
}

/// Resolver options for planning a stamp: as for `tree`, but every file we stamped before is
/// read as its original, so a plan never depends on earlier runs.
pub fn plan_options(args: &ResolveArgs) -> Options {
    Options {
        originals: true,
        ..resolve_options(args)
    }
}

/// Writes `text` to stdout. A closed pipe (`shrinkwrap tree … | head`) ends the program
/// quietly with success, as other Unix tools do.
pub fn print(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("shrinkwrap: writing output: {e}");
        std::process::exit(1);
    }
}

/// The stamping policy from the command line: the user's keep globs, plus the default keep
/// list unless `--no-default-keep`.
pub fn policy(args: &PolicyArgs) -> Policy {
    let mut keep = args.keep.clone();
    if !args.no_default_keep {
        keep.extend(DEFAULT_KEEP.iter().map(|s| s.to_string()));
    }
    Policy {
        keep,
        allow_missing: args.allow_missing.clone(),
        allow_soname_collision: args.allow_soname_collision,
    }
}
