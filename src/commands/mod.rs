//! One module per subcommand: each glues the pipeline stages together for its command and
//! decides its exit status.

/// `eprintln!` for every command, without its panic when stderr is a closed pipe
/// (`shrinkwrap fixup … 2>&1 | head -1`): the message is dropped, the run goes on, and the exit
/// code still says how it went. It shadows the standard macro in this module and every command
/// module below, so no message can bring the panic back.
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::commands::to_stderr(&format!($($arg)*))
    };
}

pub mod adopt;
pub mod check;
pub mod explain;
pub mod fixup;
pub mod stamp;
pub mod tree;
pub mod unwrap;

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{PolicyArgs, ResolveArgs};
use crate::elf::{read_elf_file, Kind};
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

/// One line on stderr; see the `eprintln!` above.
pub fn to_stderr(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Checks the resolver options before any file is read: an `--interpreter` that is not a
/// dynamic loader is refused (one line on stderr, exit 2).
pub fn check_options(args: &ResolveArgs) -> Result<(), Outcome> {
    match &args.interpreter {
        Some(path) => check_loader_option("--interpreter", path),
        None => Ok(()),
    }
}

/// Refuses (one line on stderr naming `flag`, exit 2) a `path` given as a dynamic loader that
/// is not one.
pub fn check_loader_option(flag: &str, path: &str) -> Result<(), Outcome> {
    check_interpreter(path).map_err(|why| {
        eprintln!("shrinkwrap: {flag} {path}: {why}");
        Outcome::Usage
    })
}

/// Whether `path` can be a dynamic loader: an ELF shared object with an entry point that needs
/// nothing and names no interpreter of its own (glibc's `ld.so`, musl's `libc.so`). Anything
/// else would be resolved, and stamped, as the loader: a program stamped with a library there
/// dies at its first instruction.
fn check_interpreter(path: &str) -> Result<(), String> {
    let file = crate::lock::open_regular(Path::new(path), std::fs::OpenOptions::new().read(true))
        .map_err(|e| e.to_string())?;
    let ef = read_elf_file(&file).map_err(|e| format!("not a dynamic loader: {e}"))?;
    let info = &ef.info;
    if info.kind != Kind::SharedLibrary
        || info.interpreter.is_some()
        || !info.needed.is_empty()
        || ef.header.e_entry == 0
    {
        return Err(format!(
            "not a dynamic loader (a {} that {}); a loader is a shared object with an entry point, no PT_INTERP and no DT_NEEDED, like /lib64/ld-linux-x86-64.so.2",
            info.kind.name(),
            if let Some(i) = &info.interpreter {
                format!("is loaded by {i}")
            } else if !info.needed.is_empty() {
                format!("needs {}", info.needed.join(", "))
            } else {
                "has no entry point".to_string()
            }
        ));
    }
    Ok(())
}

/// Resolver options from the command line (checked by [`check_options`]).
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
        trace: false,
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
