//! Command-line definitions. Parsing only; the work happens in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Make dynamically linked programs start without searching for their libraries.
///
/// Exit codes: 0 success, 1 a file could not be processed, 2 usage error.
#[derive(Parser, Debug)]
#[command(name = "shrinkwrap", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the library closure of FILE in the loader's order, and where each library was found.
    Tree(TreeArgs),
    /// Write the closure into FILE as absolute DT_NEEDED paths, in the loader's order.
    Stamp(StampArgs),
    /// Stamp every ELF file under output directories, in parallel (what the Nix hook runs).
    Fixup(FixupArgs),
    /// Verify that stamped files still hold: their libraries exist and fit, and a fresh
    /// resolution gives what the stamp names.
    Check(CheckArgs),
    /// Undo a stamp: put back the file as it was before stamping (DT_NEEDED names, order,
    /// vn_file), so LD_LIBRARY_PATH and similar swaps work on it again.
    Unwrap(UnwrapArgs),
    /// Give a program built elsewhere its libraries from a pool of store paths: choose one
    /// file per library (one glibc for all), pin the choices, and stamp it with them.
    Adopt(AdoptArgs),
    /// Count the file-system calls the loader makes to load FILE's libraries, from its rules:
    /// per library and in total, unstamped and stamped.
    Explain(ExplainArgs),
}

/// Options that decide how libraries are found. Shared by every command that resolves.
#[derive(Args, Debug, Clone, Default)]
pub struct ResolveArgs {
    /// Extra library directory, searched after a file's own RPATH/RUNPATH and before the
    /// system cache and default directories. Repeatable.
    #[arg(long = "search", value_name = "DIR")]
    pub search: Vec<PathBuf>,
    /// Resolve as if LD_LIBRARY_PATH were set to PATHS. The environment's own
    /// LD_LIBRARY_PATH is never used.
    #[arg(long = "ld-library-path", value_name = "PATHS")]
    pub ld_library_path: Option<String>,
    /// Resolve as if loaded by this dynamic loader instead of the file's PT_INTERP.
    #[arg(long, value_name = "PATH")]
    pub interpreter: Option<String>,
    /// The Nix store directory [default: $NIX_STORE_DIR, else /nix/store].
    #[arg(long = "store-dir", value_name = "DIR")]
    pub store_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TreeArgs {
    /// ELF executables or shared libraries.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print JSON (format documented in the README) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub resolve: ResolveArgs,
}

/// What may be stamped, and what is left alone. Shared by `stamp` and `fixup`.
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// Leave libraries whose soname matches GLOB as bare names, and do not lift them
    /// (repeatable). Added to the default list of system driver libraries.
    #[arg(long = "keep", value_name = "GLOB")]
    pub keep: Vec<String>,
    /// Do not use the default keep list (NVIDIA driver libraries; see the README).
    #[arg(long = "no-default-keep")]
    pub no_default_keep: bool,
    /// Leave missing libraries matching GLOB as bare names, with a warning, instead of failing.
    #[arg(long = "allow-missing", value_name = "GLOB")]
    pub allow_missing: Vec<String>,
    /// Stamp even when two different files in the closure have the same soname.
    #[arg(long = "allow-soname-collision")]
    pub allow_soname_collision: bool,
}

#[derive(Args, Debug)]
pub struct StampArgs {
    /// ELF executables or shared libraries, stamped in place.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the stamped file to OUT instead (one FILE only).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Print the plan (entries replaced and added) and write nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Set PT_INTERP to PATH (an absolute path to a dynamic loader) in the same write, as
    /// patchelf --set-interpreter does. Programs only. Implies --interpreter PATH: the closure
    /// is resolved as PATH will load it.
    #[arg(long = "set-interpreter", value_name = "PATH")]
    pub set_interpreter: Option<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub resolve: ResolveArgs,
}

#[derive(Args, Debug)]
pub struct FixupArgs {
    /// Output directories (or single files) to walk and stamp.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Parallel jobs [default: $NIX_BUILD_CORES, else the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Write a JSON report: per file, the libraries stamped in order and every warning.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print only errors: no start line, progress or summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Stamp programs only; leave shared libraries as they are (when every program that loads
    /// them is stamped, a library's stamp only costs start-up time; see the README).
    #[arg(long = "programs-only")]
    pub programs_only: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub resolve: ResolveArgs,
}

/// Arguments of `check`: the policy and resolve options a stamp was made with, so a fresh
/// resolution can be compared with it.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Stamped files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A file that is not stamped is a problem too (exit 1), not just said.
    #[arg(long = "require-stamped")]
    pub require_stamped: bool,
    /// Print JSON (format documented in the README) instead of text; problems still go to
    /// stderr as well.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub resolve: ResolveArgs,
}

/// Arguments of `unwrap`.
#[derive(Args, Debug)]
pub struct UnwrapArgs {
    /// Files stamped by shrinkwrap, unwrapped in place.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the unwrapped file to OUT instead (one FILE only).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
}

/// Arguments of `adopt`.
#[derive(Args, Debug, Clone)]
pub struct AdoptArgs {
    /// Programs (or libraries) built outside the store, adopted in place.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where the libraries come from (repeatable): a store path, a store directory (every
    /// path's lib/), or any directory, searched recursively.
    #[arg(long = "from", value_name = "DIR", required = true)]
    pub from: Vec<PathBuf>,
    /// Pin the choices in FILE (JSON); when it exists, take them from it and ask nothing.
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
    /// With --lock: choose again the pinned libraries whose file is gone or changed.
    #[arg(long = "update-lock", requires = "lock")]
    pub update_lock: bool,
    /// Where several files fit, take the one under DIR (repeatable).
    #[arg(long = "prefer", value_name = "DIR")]
    pub prefer: Vec<PathBuf>,
    /// Where several files fit, take the one whose name or path matches GLOB (repeatable).
    #[arg(long = "prefer-name", value_name = "GLOB")]
    pub prefer_name: Vec<String>,
    /// The program interpreter to set [default: the chosen glibc's loader].
    #[arg(long, value_name = "PATH")]
    pub interpreter: Option<String>,
    /// Keep every store path used alive: an indirect GC root for each in DIR (through
    /// `nix-store --add-root`), so garbage collection cannot delete them.
    #[arg(long = "gc-root", value_name = "DIR", conflicts_with = "dry_run")]
    pub gc_root: Option<PathBuf>,
    /// Do not modify FILE: print NIX_LD and NIX_LD_LIBRARY_PATH for nix-ld instead.
    #[arg(long = "print-env", conflicts_with = "dry_run")]
    pub print_env: bool,
    /// Print the choices and write nothing (not even the lock).
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The Nix store directory [default: $NIX_STORE_DIR, else /nix/store].
    #[arg(long = "store-dir", value_name = "DIR")]
    pub store_dir: Option<PathBuf>,
    /// Read every library of the pool afresh, and keep no index cache
    /// ($XDG_CACHE_HOME/shrinkwrap/pool-index.json).
    #[arg(long = "no-cache")]
    pub no_cache: bool,
}

/// Arguments of `explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// ELF executables or shared libraries (read only).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print JSON (format documented in the README) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also start each program under strace (stopped before its own code runs) and print the
    /// calls counted there; the stamped (or unstamped) other state is measured on a temporary
    /// copy beside the file. Executables only.
    #[arg(long)]
    pub measure: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub resolve: ResolveArgs,
}
