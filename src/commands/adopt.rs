//! `shrinkwrap adopt`: a program built elsewhere gets its libraries from a pool of store paths.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{print, Outcome};
use crate::cli::AdoptArgs;
use crate::pool::choose::{self, Adoption, Preferences};
use crate::pool::index::{self, Index, Lib};
use crate::pool::pins::{self, Pin, Pins};
use crate::resolve::default_interpreter;
use crate::store::StoreDir;
use crate::write;

/// Indexes the pool once, then for each FILE chooses its closure (pins first, then
/// preferences; what stays undecided fails the file, listing the candidates), and edits the
/// file, prints the nix-ld environment, or only shows the choices. The lock is read before and
/// written after, with every file's choices.
pub fn run(args: &AdoptArgs) -> Outcome {
    // Every path that ends up in a file, the lock or the environment is absolute: the pool as
    // given (`std::path::absolute` keeps soname links, which canonicalizing would not).
    let args = &match absolute_paths(args) {
        Ok(a) => a,
        Err(why) => {
            eprintln!("shrinkwrap: {why}");
            return Outcome::Usage;
        }
    };
    let store = args
        .store_dir
        .clone()
        .map(StoreDir::new)
        .unwrap_or_else(StoreDir::from_env);
    for d in &args.from {
        if !d.is_dir() {
            eprintln!("shrinkwrap: --from {}: not a directory", d.display());
            return Outcome::Usage;
        }
    }
    let mut pinned = match &args.lock {
        Some(path) => match pins::read(path) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("shrinkwrap: --lock {}: {why}", path.display());
                return Outcome::Usage;
            }
        },
        None => None,
    };
    let cache = match args.no_cache {
        true => None,
        false => crate::pool::cache::default_path(),
    };
    let index = index::scan(&args.from, &store, cache.as_deref());
    for (dir, why) in &index.unreadable {
        eprintln!(
            "shrinkwrap: warning: {}: {why}; not searched",
            dir.display()
        );
    }
    let mut outcome = Outcome::Success;
    let mut entries = Vec::new();
    for file in &args.files {
        match adopt_one(args, &store, &index, pinned.as_ref(), file) {
            Ok(entry) => {
                if !args.json {
                    print(&entry.text(args));
                }
                pin(&mut pinned, &index, &entry);
                entries.push(entry);
            }
            Err(lines) => {
                for l in lines {
                    eprintln!("shrinkwrap: {}: {l}", file.display());
                }
                outcome = Outcome::FileFailed;
            }
        }
    }
    if args.json {
        print(&crate::report::files_json(&entries));
    }
    if let (Some(path), Some(p), false) = (&args.lock, &pinned, args.dry_run) {
        if let Err(e) = pins::write(path, p) {
            eprintln!("shrinkwrap: --lock {}: {e}", path.display());
            outcome = Outcome::FileFailed;
        }
    }
    outcome
}

/// `args` with `--from`, `--prefer` and `--gc-root` made absolute; a relative `--interpreter`
/// is refused (the kernel would look for it from wherever the program is started).
fn absolute_paths(args: &AdoptArgs) -> Result<AdoptArgs, String> {
    let abs = |p: &PathBuf| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut a = args.clone();
    a.from = args.from.iter().map(abs).collect::<Result<_, _>>()?;
    a.prefer = args.prefer.iter().map(abs).collect::<Result<_, _>>()?;
    a.gc_root = args.gc_root.as_ref().map(abs).transpose()?;
    if let Some(i) = &args.interpreter {
        if !i.starts_with('/') {
            return Err(format!("--interpreter {i}: must be an absolute path"));
        }
    }
    Ok(a)
}

/// One adopted file, as reported.
#[derive(Serialize)]
struct Entry {
    file: String,
    interpreter: String,
    libraries: Vec<Library>,
    /// `NIX_LD` and `NIX_LD_LIBRARY_PATH`, for running it unmodified under nix-ld.
    env: Env,
    /// `edited`, `unchanged`, or `not edited` (`--print-env`, `--dry-run`).
    status: &'static str,
    /// The GC roots made (`--gc-root`): links in DIR to the store paths used.
    gc_roots: Vec<String>,
}

#[derive(Serialize)]
struct Library {
    name: String,
    path: String,
    soname: Option<String>,
    exact: bool,
    needed_by: String,
}

#[derive(Serialize)]
struct Env {
    #[serde(rename = "NIX_LD")]
    nix_ld: String,
    #[serde(rename = "NIX_LD_LIBRARY_PATH")]
    nix_ld_library_path: String,
}

impl Entry {
    fn text(&self, args: &AdoptArgs) -> String {
        if args.print_env {
            return format!(
                "NIX_LD={}\nNIX_LD_LIBRARY_PATH={}\n",
                shell_quote(&self.env.nix_ld),
                shell_quote(&self.env.nix_ld_library_path)
            );
        }
        let mut out = format!("{}: {}\n", self.file, self.status);
        out.push_str(&format!("    interpreter {}\n", self.interpreter));
        for l in &self.libraries {
            let mark = if l.exact { "" } else { "  (inexact)" };
            out.push_str(&format!("    {} => {}{mark}\n", l.name, l.path));
        }
        for r in &self.gc_roots {
            out.push_str(&format!("    gc root {r}\n"));
        }
        out
    }
}

fn adopt_one(
    args: &AdoptArgs,
    store: &StoreDir,
    index: &Index,
    pinned: Option<&Pins>,
    file: &Path,
) -> Result<Entry, Vec<String>> {
    let one = |e: String| vec![e];
    let path = crate::resolve::real_path(file);
    // A file adopted before is chosen for as the original its stamp records.
    let read = crate::plan::read(&path).map_err(|e| one(e.to_string()))?;
    let root = read.original_object();
    let root_path = path.to_string_lossy().into_owned();
    let prefs = Preferences {
        dirs: &args.prefer,
        names: &args.prefer_name,
        pins: pinned,
        update_pins: args.update_lock,
    };
    // On a terminal the user picks what nothing else decides; without one, the run fails
    // listing the candidates.
    let mut ask = |name: &str, libs: &[&Lib], exact: bool| ask_on_terminal(file, name, libs, exact);
    let adoption = choose::choose(&root.info, &root_path, index, &prefs, &mut ask)
        .map_err(|t| t.iter().map(|t| t.to_string()).collect::<Vec<_>>())?;
    let interpreter = interpreter(args, &root.info, index, &adoption, pinned).map_err(one)?;
    let libraries: Vec<Library> = adoption
        .libraries
        .iter()
        .map(|c| {
            let l: &Lib = &index.libs[c.lib];
            Library {
                name: c.name.clone(),
                path: library_path(l, &interpreter),
                soname: l.info.soname.clone(),
                exact: c.exact,
                needed_by: c.needed_by.clone(),
            }
        })
        .collect();
    let mut dirs: Vec<String> = Vec::new();
    for l in &libraries {
        let dir = Path::new(&l.path)
            .parent()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let env = Env {
        nix_ld: interpreter.clone(),
        nix_ld_library_path: dirs.join(":"),
    };
    let status = if args.print_env || args.dry_run {
        "not edited"
    } else {
        let needed = plan(&root.info.needed, &adoption, &libraries);
        edit(file, &needed, &interpreter).map_err(one)?
    };
    let gc_roots = match &args.gc_root {
        Some(dir) => {
            let used = std::iter::once(interpreter.as_str())
                .chain(libraries.iter().map(|l| l.path.as_str()));
            gc_roots(dir, store, used).map_err(one)?
        }
        None => Vec::new(),
    };
    Ok(Entry {
        file: file.to_string_lossy().into_owned(),
        interpreter,
        libraries,
        env,
        status,
        gc_roots,
    })
}

/// The program interpreter: `--interpreter`, the pinned one, or the chosen glibc's loader
/// (the file name of the one the program names now, in the glibc's directory).
fn interpreter(
    args: &AdoptArgs,
    root: &crate::elf::ElfInfo,
    index: &Index,
    adoption: &Adoption,
    pinned: Option<&Pins>,
) -> Result<String, String> {
    if let Some(i) = &args.interpreter {
        return Ok(i.clone());
    }
    if let Some(i) = pinned.and_then(|p| p.interpreter.as_ref()) {
        if !args.update_lock || i.is_file() {
            return Ok(i.to_string_lossy().into_owned());
        }
    }
    let Some(glibc) = &adoption.glibc else {
        return Err("no glibc in the closure: give the interpreter with --interpreter".into());
    };
    let current = root
        .interpreter
        .as_deref()
        .or_else(|| default_interpreter(root))
        .ok_or("no interpreter known for this machine; give one with --interpreter")?;
    let base = current.rsplit('/').next().unwrap_or(current);
    // The loader as the pool spells it in the glibc's directory.
    index
        .libs
        .iter()
        .find(|l| l.name == base && &choose::real_dir(l.dir()) == glibc)
        .map(|l| l.path.to_string_lossy().into_owned())
        .ok_or_else(|| {
            format!(
                "the chosen glibc ({}) has no {base} to be the interpreter",
                glibc.display()
            )
        })
}

/// A chosen library's path as it will be written: the loader spelled exactly as the
/// interpreter (glibc matches the loader's own entry by that string).
fn library_path(l: &Lib, interpreter: &str) -> String {
    let path = l.path.to_string_lossy().into_owned();
    let same_file = |a: &str, b: &str| {
        let (a, b) = (std::fs::canonicalize(a).ok(), std::fs::canonicalize(b).ok());
        a.is_some() && a == b
    };
    if l.info
        .soname
        .as_deref()
        .is_some_and(crate::resolve::is_glibc_loader)
        && same_file(&path, interpreter)
    {
        return interpreter.to_string();
    }
    path
}

/// The new DT_NEEDED list: the program's own entries first, each the file chosen for it, then
/// every other library of the closure in load order.
fn plan(own: &[String], adoption: &Adoption, libraries: &[Library]) -> Vec<String> {
    let mut needed: Vec<String> = own
        .iter()
        .map(|n| {
            adoption
                .libraries
                .iter()
                .zip(libraries)
                .find(|(c, _)| &c.name == n)
                .map(|(_, l)| l.path.clone())
                .unwrap_or_else(|| n.clone())
        })
        .collect();
    for l in libraries {
        if !needed.contains(&l.path) {
            needed.push(l.path.clone());
        }
    }
    needed
}

/// Writes the plan and the interpreter into `file`: a stamp, with its record, so `unwrap`
/// gives the file back as it was built.
fn edit(file: &Path, needed: &[String], interpreter: &str) -> Result<&'static str, String> {
    let target = write::Target {
        needed,
        interpreter: Some(interpreter),
    };
    match write::stamp_file_to(file, &target, write::ReadOnly::Refuse) {
        Ok(write::Outcome::Stamped { .. }) => Ok("edited"),
        Ok(write::Outcome::Unchanged) => Ok("unchanged"),
        Err(e) => Err(e.to_string()),
    }
}

/// An indirect GC root in `dir` for every store path among `used` (files outside the store
/// need none), made by the Nix installation's own `nix-store --add-root`; the links' paths.
fn gc_roots<'a>(
    dir: &Path,
    store: &StoreDir,
    used: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>, String> {
    let mut objects: Vec<PathBuf> = used
        .filter_map(|p| store.store_object_of(Path::new(p)))
        .collect();
    objects.sort();
    objects.dedup();
    std::fs::create_dir_all(dir).map_err(|e| format!("--gc-root {}: {e}", dir.display()))?;
    let dir =
        std::fs::canonicalize(dir).map_err(|e| format!("--gc-root {}: {e}", dir.display()))?;
    let mut roots = Vec::new();
    for object in objects {
        let link = dir.join(object.file_name().unwrap_or_default());
        let out = std::process::Command::new("nix-store")
            .arg("--realise")
            .arg("--add-root")
            .arg(&link)
            .arg("--indirect")
            .arg(&object)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "--gc-root needs Nix's nix-store, which is not installed".to_string()
                }
                _ => format!("could not run nix-store: {e}"),
            })?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            return Err(format!(
                "nix-store could not add a GC root for {}: {why}",
                object.display()
            ));
        }
        roots.push(link.to_string_lossy().into_owned());
    }
    Ok(roots)
}

/// Puts `entry`'s choices into the pins.
fn pin(pinned: &mut Option<Pins>, index: &Index, entry: &Entry) {
    let p = pinned.get_or_insert_with(|| Pins {
        version: pins::VERSION,
        interpreter: None,
        libraries: Default::default(),
    });
    // This run's choices replace the pins: the same ones where they were pinned, and those
    // `--update-lock` chose again.
    p.interpreter = Some(PathBuf::from(&entry.interpreter));
    for l in &entry.libraries {
        let Some(lib) = index
            .libs
            .iter()
            .find(|x| x.path.to_string_lossy() == l.path)
        else {
            continue;
        };
        let Ok(sha256) = pins::sha256_file(&lib.path) else {
            continue;
        };
        p.libraries.insert(
            l.name.clone(),
            Pin {
                path: lib.path.clone(),
                soname: lib.info.soname.clone(),
                size: lib.size,
                sha256,
                exact: l.exact,
            },
        );
    }
}

/// Asks, on the terminal (stdin and stderr both one), which of `libs` `file` gets for `name`;
/// `None` without a terminal, or when the user escapes. Inexact candidates (other versions)
/// say so.
fn ask_on_terminal(file: &Path, name: &str, libs: &[&Lib], exact: bool) -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    let items: Vec<String> = libs
        .iter()
        .map(|l| match (exact, &l.info.soname) {
            (true, _) => l.path.display().to_string(),
            (false, Some(so)) => format!("{}  (inexact: {so})", l.path.display()),
            (false, None) => format!("{}  (inexact)", l.path.display()),
        })
        .collect();
    let prompt = match exact {
        true => format!("{}: which {name}?", file.display()),
        false => format!(
            "{}: {name} is not in the pool; use another version instead?",
            file.display()
        ),
    };
    dialoguer::Select::new()
        .with_prompt(prompt)
        .items(&items)
        .default(0)
        .interact_on_opt(&dialoguer::console::Term::stderr())
        .ok()
        .flatten()
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
