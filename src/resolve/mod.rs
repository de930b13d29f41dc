//! Resolving: an ELF file's whole shared-library closure, computed the way glibc's loader
//! would compute it at start-up (breadth-first, with its search rules and de-duplication),
//! without running anything. `../shared/design/loader.md` is the specification.

mod ldcache;
mod loader;
mod probe;
pub mod replay;
mod search;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use ldcache::{cache_flags, CacheHit, LdCache};
pub use loader::{default_interpreter, LoaderConfig};
pub use probe::{file_id, open_file, probe_file, FileId, Object, Probe, ProbeCache};
use search::{origin_of, split_dirs, Tokens};

use crate::elf::{ElfError, ElfInfo};
use crate::store::StoreDir;

/// Inputs to resolution that do not come from the files themselves.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra directories, searched after a requester's own RPATH/RUNPATH and before the
    /// system cache and default directories.
    pub search: Vec<PathBuf>,
    /// An `LD_LIBRARY_PATH` to resolve as if it were set (never read from the environment).
    pub ld_library_path: Option<String>,
    /// Use this interpreter instead of the file's `PT_INTERP` (or the default one for
    /// libraries, which name none).
    pub interpreter: Option<String>,
    pub store: StoreDir,
    /// Libraries of the trees being stamped (`fixup`), by the name they are requested under:
    /// used only where the loader's own search finds nothing, never in its place, so that
    /// stamping never changes which file a name resolves to.
    pub tree: HashMap<String, String>,
    /// Read every file as its original when it carries our stamp (planning), not as the
    /// loader sees it now (`tree`): a plan must not depend on what earlier runs stamped.
    pub originals: bool,
    /// Record every search the loader makes ([`Closure::searches`]), for `explain`.
    pub trace: bool,
}

/// How a library was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The DT_NEEDED entry is a path (contains `/`).
    Path,
    /// A library of the trees being stamped (`Options::tree`), found where the loader's own
    /// search found nothing.
    Tree,
    Rpath,
    LdLibraryPath,
    Runpath,
    /// A `--search` directory.
    Search,
    /// The loader's `ld.so.cache`.
    Cache,
    /// One of the loader's trusted default directories.
    DefaultDirs,
    /// The dynamic loader itself, which is always loaded.
    Interpreter,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Path => "path",
            Via::Tree => "tree",
            Via::Rpath => "rpath",
            Via::LdLibraryPath => "ld-library-path",
            Via::Runpath => "runpath",
            Via::Search => "search",
            Via::Cache => "cache",
            Via::DefaultDirs => "default-dirs",
            Via::Interpreter => "interpreter",
        }
    }
}

/// One library of the closure, in load order.
#[derive(Clone, Debug)]
pub struct Library {
    /// The name it was first requested under (a DT_NEEDED string).
    pub name: String,
    /// The path the loader would open, spelled as the loader spells it.
    pub path: String,
    /// Index of the requester (0 is the root file; otherwise `libraries[i - 1]`).
    pub needed_by: usize,
    pub via: Via,
    /// 1 for the root file's own DT_NEEDED entries, 2 for theirs, …
    pub depth: usize,
    pub object: Arc<Object>,
    /// What each of its DT_NEEDED entries resolved to: an index into `libraries`, or `None`
    /// (missing, or the root file itself).
    pub needs: Vec<Option<usize>>,
}

/// One search the loader makes for a DT_NEEDED name not already loaded (recorded with
/// `Options::trace`): where it looked, in order, up to where it stopped.
#[derive(Clone, Debug)]
pub struct Search {
    pub name: String,
    /// Index of the requester (0 is the root file; otherwise `libraries[i - 1]`).
    pub needed_by: usize,
    pub steps: Vec<Step>,
    /// The path it ended with; `None` when nothing was found.
    pub found: Option<String>,
}

/// One place a search looked.
#[derive(Clone, Debug)]
pub enum Step {
    /// A search directory (`dir` ends in `/`); the loader also tries its capability
    /// subdirectories first. `held` is what the directory itself has under the name.
    Dir { dir: String, via: Via, held: Held },
    /// The loader's `ld.so.cache` at `cache`, and the path it named (then opened), if any.
    Cache {
        cache: PathBuf,
        hit: Option<(String, Held)>,
    },
    /// A name with a `/`, opened as it is.
    Open { path: String, held: Held },
}

/// What a probed path held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Nothing,
    /// A library the loader takes.
    Library,
    /// An ELF file of another class or machine: opened, read and skipped.
    WrongClass,
    /// Something the loader stops at.
    Invalid,
}

impl Held {
    fn of(probe: &Probe, compatible: impl Fn(&Object) -> bool) -> Held {
        match probe {
            Probe::Absent => Held::Nothing,
            Probe::Found(o) if compatible(o) => Held::Library,
            Probe::Found(_) => Held::WrongClass,
            Probe::Invalid(_) => Held::Invalid,
        }
    }
}

/// A name nothing could satisfy.
#[derive(Clone, Debug)]
pub struct Missing {
    pub name: String,
    /// Index of the requester (0 is the root file; otherwise `libraries[i - 1]`).
    pub needed_by: usize,
    /// Why, when it is more than "not found" (e.g. a candidate that is not ELF stops the loader).
    pub reason: Option<String>,
}

/// Something the user should know about a closure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A library without DT_SONAME: requests by name still cost a search.
    NoSoname { path: String },
    /// Two different files with one soname in the closure.
    SonameCollision {
        soname: String,
        first: String,
        second: String,
    },
    /// The loader would prefer a `glibc-hwcaps` variant on a capable CPU; the portable file
    /// was chosen instead.
    HwcapsSkipped {
        name: String,
        variant: String,
        chosen: String,
    },
    /// A candidate of the wrong class or machine was passed over, as the loader does.
    WrongArchSkipped { name: String, path: String },
    /// The root is in the Nix store but this library is not.
    OutsideStore { path: String },
    /// The interpreter could not be asked for its search path; defaults were guessed.
    LoaderGuessed { interpreter: String },
    /// The file has no interpreter and no default is known for its machine.
    NoInterpreter,
    /// A library of the trees being stamped, used because the loader's search found nothing.
    FromTree {
        name: String,
        path: String,
        needed_by: String,
    },
    /// Parts of glibc (libc, the interpreter, libm, libpthread, …) from two directories: two
    /// builds of glibc in one process, which does not work.
    MixedGlibc { first: String, second: String },
}

impl Warning {
    /// Stable identifier used in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Warning::NoSoname { .. } => "no-soname",
            Warning::SonameCollision { .. } => "soname-collision",
            Warning::HwcapsSkipped { .. } => "hwcaps-skipped",
            Warning::WrongArchSkipped { .. } => "wrong-arch-skipped",
            Warning::OutsideStore { .. } => "outside-store",
            Warning::LoaderGuessed { .. } => "loader-guessed",
            Warning::NoInterpreter => "no-interpreter",
            Warning::FromTree { .. } => "from-tree",
            Warning::MixedGlibc { .. } => "mixed-glibc",
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::NoSoname { path } => {
                write!(
                    f,
                    "{path} has no DT_SONAME: requests for it by name still search"
                )
            }
            Warning::SonameCollision {
                soname,
                first,
                second,
            } => {
                write!(
                    f,
                    "soname {soname} is provided by two files: {first} and {second}"
                )
            }
            Warning::HwcapsSkipped {
                name,
                variant,
                chosen,
            } => write!(
                f,
                "{name}: chose the portable {chosen}, not the CPU-specific {variant}"
            ),
            Warning::WrongArchSkipped { name, path } => {
                write!(f, "{name}: skipped {path} (wrong ELF class or machine)")
            }
            Warning::OutsideStore { path } => {
                write!(f, "{path} is outside the store")
            }
            Warning::LoaderGuessed { interpreter } => write!(
                f,
                "could not ask {interpreter} for its search path; assumed the usual defaults"
            ),
            Warning::NoInterpreter => {
                f.write_str("no interpreter known for this file; system directories not searched")
            }
            Warning::FromTree {
                name,
                path,
                needed_by,
            } => write!(
                f,
                "{name} (needed by {needed_by}) is found only in the tree being stamped, at {path}: the loader would not find it there"
            ),
            Warning::MixedGlibc { first, second } => write!(
                f,
                "two copies of glibc in one closure: {first} and {second}"
            ),
        }
    }
}

/// The resolved closure of one root file.
#[derive(Debug)]
pub struct Closure {
    /// The root file's path, absolute.
    pub file: String,
    pub root: Arc<Object>,
    pub loader: Option<Arc<LoaderConfig>>,
    /// Every library in load order (the interpreter included, where the loader lists it).
    pub libraries: Vec<Library>,
    /// What each of the root file's DT_NEEDED entries resolved to, as in `Library::needs`.
    pub root_needs: Vec<Option<usize>>,
    pub missing: Vec<Missing>,
    pub warnings: Vec<Warning>,
    /// Every search the loader makes, in order (only with `Options::trace`).
    pub searches: Vec<Search>,
}

impl Closure {
    /// Path of a requester index as used in `Library::needed_by` and `Missing::needed_by`.
    pub fn requester_path(&self, idx: usize) -> &str {
        if idx == 0 {
            &self.file
        } else {
            &self.libraries[idx - 1].path
        }
    }

    /// A short label for a requester: its soname, or its file name.
    pub fn requester_label(&self, idx: usize) -> &str {
        let (path, obj) = if idx == 0 {
            (self.file.as_str(), &self.root)
        } else {
            let l = &self.libraries[idx - 1];
            (l.path.as_str(), &l.object)
        };
        obj.info
            .soname
            .as_deref()
            .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path))
    }
}

/// Why a root file could not be resolved at all.
#[derive(Debug)]
pub enum ResolveError {
    Elf(ElfError),
    /// Not a dynamically linked executable or library: nothing to resolve.
    NotDynamic(&'static str),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Elf(e) => e.fmt(f),
            ResolveError::NotDynamic(kind) => {
                write!(f, "{kind} file: not dynamically linked, nothing to resolve")
            }
        }
    }
}

/// Resolves closures; holds the caches shared by every file it resolves, across threads.
pub struct Resolver {
    opts: Options,
    probes: ProbeCache,
    loaders: Mutex<HashMap<String, Arc<LoaderConfig>>>,
    /// The real directory of each glibc part met (`None`: not there), for [`mixed_glibc`]:
    /// the same few files come up in every closure.
    real_dirs: Mutex<HashMap<String, Option<PathBuf>>>,
}

/// A loaded object during the walk (the loader's `link_map`).
struct Node {
    /// `l_name`.
    path: String,
    /// Names it was requested under (`l_libname`).
    names: Vec<String>,
    object: Arc<Object>,
    /// Who loaded it (`l_loader`); `None` for the root and the interpreter.
    loader: Option<usize>,
    /// Position in the output: 0 for the root, `libraries` index + 1 otherwise; `None` for an
    /// interpreter nothing has asked for yet.
    slot: Option<usize>,
    depth: usize,
    /// The node each DT_NEEDED entry resolved to (`None`: missing).
    needs: Vec<Option<usize>>,
}

enum Lookup {
    Loaded(usize),
    New {
        path: String,
        via: Via,
        object: Arc<Object>,
    },
    Missing(Option<String>),
}

impl Resolver {
    pub fn new(opts: Options) -> Resolver {
        Resolver {
            probes: ProbeCache::new(opts.originals),
            opts,
            loaders: Mutex::new(HashMap::new()),
            real_dirs: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Sets the trees' libraries, used where the loader's search finds nothing (see
    /// `Options::tree`).
    pub fn set_tree(&mut self, tree: HashMap<String, String>) {
        self.opts.tree = tree;
    }

    /// Opens and parses `path` through the shared cache.
    pub fn probe(&self, path: &Path) -> Probe {
        self.probes.probe(path)
    }

    /// Resolves the closure of `file` in the loader's order.
    pub fn resolve(&self, file: &Path) -> Result<Closure, ResolveError> {
        let file = real_path(file);
        let root = probe::probe_file(&file, false).map_err(ResolveError::Elf)?;
        self.resolve_read(&file, root)
    }

    /// Remembers what a caller already read at `path` (see [`ProbeCache::insert`]).
    pub fn remember(&self, path: &Path, probe: Probe) {
        self.probes.insert(path, probe);
    }

    /// Resolves the closure of `file`, read by the caller as `root` (for a stamped file, the
    /// facts of its original). `file` must be absolute and real: the loader computes the
    /// executable's $ORIGIN from /proc/self/exe, which has every symlink resolved.
    pub fn resolve_read(&self, file: &Path, root: Arc<Object>) -> Result<Closure, ResolveError> {
        let file_str = file.to_string_lossy().into_owned();
        if !root.info.kind.is_dynamic() {
            return Err(ResolveError::NotDynamic(root.info.kind.name()));
        }
        let mut warnings = Vec::new();
        // The interpreter the file will really run under; a library's default one is a guess
        // (whatever program loads it brings its own).
        let explicit_interp = self
            .opts
            .interpreter
            .clone()
            .or_else(|| root.info.interpreter.clone());
        let interp = explicit_interp
            .clone()
            .or_else(|| default_interpreter(&root.info).map(str::to_string));
        let loader = interp.map(|i| self.loader_config(&i, &root.info));
        match &loader {
            Some(l) if l.guessed => warnings.push(Warning::LoaderGuessed {
                interpreter: l.interpreter.clone(),
            }),
            None => warnings.push(Warning::NoInterpreter),
            _ => {}
        }

        let mut w = Walk {
            r: self,
            loader: loader.as_deref(),
            nodes: vec![Node {
                path: file_str.clone(),
                names: vec![file_str.clone()],
                object: root.clone(),
                loader: None,
                slot: Some(0),
                depth: 0,
                needs: Vec::new(),
            }],
            libraries: Vec::new(),
            missing: Vec::new(),
            warnings,
            dirs: HashMap::new(),
            searches: Vec::new(),
            steps: Vec::new(),
        };
        // The loader maps itself before anything else, under its PT_INTERP name and soname.
        if let Some(l) = &loader {
            let obj = l.object.clone();
            let mut names = vec![l.interpreter.clone()];
            names.extend(obj.info.soname.clone());
            w.nodes.push(Node {
                path: names[0].clone(),
                names,
                object: obj,
                loader: None,
                slot: None,
                depth: 0,
                needs: Vec::new(),
            });
        }
        w.run();
        let root_needs = w.library_indexes(0);
        let Walk {
            libraries,
            missing,
            mut warnings,
            searches,
            ..
        } = w;
        let closure_warnings = closure_warnings(&self.opts.store, file, &libraries);
        warnings.extend(mixed_glibc(
            // A library that can also be run (libc.so.6, libcap.so.2) gets its PT_INTERP
            // only when run: as a library, whatever loads it brings the loader.
            explicit_interp
                .as_deref()
                .filter(|_| self.opts.interpreter.is_some() || root.info.is_program()),
            &libraries,
            |p| self.real_dir(p),
        ));
        warnings.extend(closure_warnings);
        Ok(Closure {
            file: file_str,
            root,
            loader,
            libraries,
            root_needs,
            missing,
            warnings,
            searches,
        })
    }

    /// The directory `path` is in, with symlinks resolved; `None` when it is not there.
    fn real_dir(&self, path: &str) -> Option<PathBuf> {
        if let Some(d) = self.real_dirs.lock().unwrap().get(path) {
            return d.clone();
        }
        let dir = std::fs::canonicalize(path)
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf));
        self.real_dirs
            .lock()
            .unwrap()
            .insert(path.to_string(), dir.clone());
        dir
    }

    fn loader_config(&self, interp: &str, main: &ElfInfo) -> Arc<LoaderConfig> {
        let key = format!("{interp}\0{}\0{:?}", main.machine, main.class);
        if let Some(l) = self.loaders.lock().unwrap().get(&key) {
            return l.clone();
        }
        let object = match self.probes.probe(Path::new(interp)) {
            Probe::Found(o) => Some(o),
            _ => None,
        };
        let cfg = Arc::new(LoaderConfig::discover(interp, main, object));
        self.loaders
            .lock()
            .unwrap()
            .entry(key)
            .or_insert(cfg)
            .clone()
    }
}

/// The state of one breadth-first walk.
struct Walk<'a> {
    r: &'a Resolver,
    loader: Option<&'a LoaderConfig>,
    nodes: Vec<Node>,
    libraries: Vec<Library>,
    missing: Vec<Missing>,
    warnings: Vec<Warning>,
    /// Each node's DT_RPATH / DT_RUNPATH directories, split and expanded once per walk (a
    /// node asks for each of its DT_NEEDED names through the same list).
    dirs: HashMap<(usize, bool), Arc<Vec<String>>>,
    /// Searches so far, with `Options::trace`.
    searches: Vec<Search>,
    /// The steps of the search under way, with `Options::trace`.
    steps: Vec<Step>,
}

impl Walk<'_> {
    fn run(&mut self) {
        // Breadth-first over objects in the order they were first loaded: that order is the
        // global scope, the init order and what `ld.so --list` prints.
        let mut queue = vec![0usize];
        let mut next = 0;
        while next < queue.len() {
            let req = queue[next];
            next += 1;
            let needed = self.nodes[req].object.info.needed.clone();
            for name in needed {
                let resolved = match self.lookup(&name, req) {
                    Lookup::Loaded(i) => {
                        if self.nodes[i].slot.is_none() {
                            // The interpreter, asked for the first time: it takes its place here.
                            self.place(i, req, Via::Interpreter, &name);
                            queue.push(i);
                        }
                        Some(i)
                    }
                    Lookup::New { path, via, object } => {
                        let i = self.nodes.len();
                        self.nodes.push(Node {
                            path,
                            names: vec![name.clone()],
                            object,
                            loader: Some(req),
                            slot: None,
                            depth: 0,
                            needs: Vec::new(),
                        });
                        self.place(i, req, via, &name);
                        queue.push(i);
                        Some(i)
                    }
                    Lookup::Missing(reason) => {
                        let needed_by = self.nodes[req].slot.unwrap_or(0);
                        if !self
                            .missing
                            .iter()
                            .any(|m| m.name == name && m.needed_by == needed_by)
                        {
                            self.missing.push(Missing {
                                name,
                                needed_by,
                                reason,
                            });
                        }
                        None
                    }
                };
                self.nodes[req].needs.push(resolved);
            }
        }
        // Each library's edges, as indexes into `libraries`.
        for n in 0..self.nodes.len() {
            let Some(slot) = self.nodes[n].slot.filter(|&s| s > 0) else {
                continue;
            };
            self.libraries[slot - 1].needs = self.library_indexes(n);
        }
        // An interpreter nobody asked for is still mapped, but the loader unlinks it from the
        // list of objects (and `ld.so --list` does not show it): it is not part of the closure.
    }

    /// A node's edges as indexes into `libraries` (the root and missing names are `None`).
    fn library_indexes(&self, node: usize) -> Vec<Option<usize>> {
        self.nodes[node]
            .needs
            .iter()
            .map(|d| {
                d.and_then(|j| self.nodes[j].slot)
                    .and_then(|s| s.checked_sub(1))
            })
            .collect()
    }

    fn place(&mut self, i: usize, req: usize, via: Via, name: &str) {
        let depth = self.nodes[req].depth + 1;
        self.nodes[i].depth = depth;
        self.nodes[i].slot = Some(self.libraries.len() + 1);
        self.libraries.push(Library {
            name: name.to_string(),
            path: self.nodes[i].path.clone(),
            needed_by: self.nodes[req].slot.unwrap_or(0),
            via,
            depth,
            object: self.nodes[i].object.clone(),
            needs: Vec::new(),
        });
    }

    /// `_dl_map_object`: an already-loaded object by name or soname, else a search.
    fn lookup(&mut self, name: &str, req: usize) -> Lookup {
        if let Some(i) = self.loaded_by_name(name) {
            return Lookup::Loaded(i);
        }
        let found = if name.contains('/') {
            self.open_path(name, req)
        } else {
            self.search(name, req)
        };
        if self.r.opts.trace {
            self.searches.push(Search {
                name: name.to_string(),
                needed_by: self.nodes[req].slot.unwrap_or(0),
                steps: std::mem::take(&mut self.steps),
                found: found.as_ref().ok().map(|(path, _, _)| path.clone()),
            });
        }
        match found {
            Ok((path, via, object)) => {
                // Same file under another name: the loader matches (st_dev, st_ino).
                if let Some(i) = self
                    .nodes
                    .iter()
                    .position(|n| n.object.file_id == object.file_id)
                {
                    self.nodes[i].names.push(name.to_string());
                    return Lookup::Loaded(i);
                }
                Lookup::New { path, via, object }
            }
            Err(reason) => Lookup::Missing(reason),
        }
    }

    fn loaded_by_name(&mut self, name: &str) -> Option<usize> {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if n.path == name || n.names.iter().any(|x| x == name) {
                return Some(i);
            }
            if n.object.info.soname.as_deref() == Some(name) {
                n.names.push(name.to_string());
                return Some(i);
            }
        }
        None
    }

    fn tokens(&self, node: usize) -> Tokens<'_> {
        Tokens {
            origin: origin_of(&self.nodes[node].path),
            lib: self.loader.map(|l| l.lib.as_str()).unwrap_or("lib"),
            platform: self.loader.map(|l| l.platform.as_str()).unwrap_or(""),
        }
    }

    /// A DT_NEEDED with a `/`: expanded and opened as is, no search.
    fn open_path(&mut self, name: &str, req: usize) -> Found {
        let Some(path) = search::expand(name, &self.tokens(req)) else {
            return Err(Some("uses $ORIGIN, which is unknown here".into()));
        };
        let probe = self.r.probes.probe(Path::new(&path));
        self.step(|w| Step::Open {
            path: path.clone(),
            held: w.held(&probe),
        });
        match probe {
            Probe::Found(o) if self.compatible(&o) => Ok((path, Via::Path, o)),
            Probe::Found(_) => Err(Some(format!("{path} has the wrong ELF class or machine"))),
            Probe::Absent => Err(None),
            Probe::Invalid(e) => Err(Some(format!("{path}: {e}"))),
        }
    }

    /// A name without `/`: the loader's search, then (`fixup` only) the trees' own libraries
    /// where that search finds nothing, with a warning — the loader itself would fail there.
    fn search(&mut self, name: &str, req: usize) -> Found {
        match self.loader_search(name, req) {
            Err(None) => {}
            found => return found,
        }
        let Some(path) = self.r.opts.tree.get(name) else {
            return Err(None);
        };
        match self.r.probes.probe(Path::new(path)) {
            Probe::Found(o) if self.compatible(&o) => {
                let needed_by = self.nodes[req].path.clone();
                self.warn(Warning::FromTree {
                    name: name.into(),
                    path: path.clone(),
                    needed_by,
                });
                Ok((path.clone(), Via::Tree, o))
            }
            _ => Err(None),
        }
    }

    /// `node`'s DT_RUNPATH (`runpath`) or effective DT_RPATH directories, expanded for it.
    fn dirs_of(&mut self, node: usize, runpath: bool) -> Option<Arc<Vec<String>>> {
        if let Some(d) = self.dirs.get(&(node, runpath)) {
            return Some(d.clone());
        }
        let info = &self.nodes[node].object.info;
        let list = if runpath {
            info.runpath.as_deref()
        } else {
            info.effective_rpath()
        }?;
        let d = Arc::new(split_dirs(list, &[':'], &self.tokens(node)));
        self.dirs.insert((node, runpath), d.clone());
        Some(d)
    }

    /// `_dl_map_object`'s search for a name without `/`, in the loader's order.
    fn loader_search(&mut self, name: &str, req: usize) -> Found {
        let info = &self.nodes[req].object.info;
        // 1. DT_RPATH of the requester and of its loader chain, then of the executable; only
        //    when the requester has no DT_RUNPATH.
        if info.runpath.is_none() {
            let mut did_main = false;
            let mut at = Some(req);
            while let Some(i) = at {
                if let Some(dirs) = self.dirs_of(i, false) {
                    if let Some(hit) = self.try_dirs(&dirs, name, Via::Rpath)? {
                        return Ok(hit);
                    }
                    did_main |= i == 0;
                }
                at = self.nodes[i].loader;
            }
            if !did_main {
                if let Some(dirs) = self.dirs_of(0, false) {
                    if let Some(hit) = self.try_dirs(&dirs, name, Via::Rpath)? {
                        return Ok(hit);
                    }
                }
            }
        }
        // 2. LD_LIBRARY_PATH, only when the user gave one.
        if let Some(llp) = self.r.opts.ld_library_path.clone() {
            let dirs = split_dirs(&llp, &[':', ';'], &self.tokens(0));
            if let Some(hit) = self.try_dirs(&dirs, name, Via::LdLibraryPath)? {
                return Ok(hit);
            }
        }
        // 3. DT_RUNPATH of the requester only.
        if let Some(dirs) = self.dirs_of(req, true) {
            if let Some(hit) = self.try_dirs(&dirs, name, Via::Runpath)? {
                return Ok(hit);
            }
        }
        // 3½. The user's --search directories (not something the loader does).
        if !self.r.opts.search.is_empty() {
            let dirs: Vec<String> = self
                .r
                .opts
                .search
                .iter()
                .map(|d| format!("{}/", d.to_string_lossy().trim_end_matches('/')))
                .collect();
            if let Some(hit) = self.try_dirs(&dirs, name, Via::Search)? {
                return Ok(hit);
            }
        }
        // 4./5. The system cache and the trusted directories, unless DF_1_NODEFLIB.
        let Some(loader) = self.loader else {
            return Err(None);
        };
        if self.nodes[req].object.info.nodeflib() {
            return Err(None);
        }
        let root = &self.nodes[0].object.info;
        let want = cache_flags(root.machine, root.class == crate::elf::Class::Elf64);
        let hit = loader.cache.lookup(name, want);
        if let Some(cache) = &loader.cache_path {
            let probe = hit
                .path
                .as_ref()
                .map(|p| (p, self.r.probes.probe(Path::new(p))));
            self.step(|w| Step::Cache {
                cache: cache.clone(),
                hit: probe.map(|(p, probe)| (p.clone(), w.held(&probe))),
            });
        }
        if let Some(path) = hit.path {
            if let Probe::Found(o) = self.r.probes.probe(Path::new(&path)) {
                if self.compatible(&o) {
                    for v in hit.skipped_variants {
                        self.warn(Warning::HwcapsSkipped {
                            name: name.into(),
                            variant: v,
                            chosen: path.clone(),
                        });
                    }
                    return Ok((path, Via::Cache, o));
                }
            }
        }
        match self.try_dirs(&loader.system_dirs, name, Via::DefaultDirs)? {
            Some(hit) => Ok(hit),
            None => Err(None),
        }
    }

    /// `open_path`: the first directory holding a loadable `name`. `Err` when a candidate
    /// stops the loader (a file that is there but is not ELF).
    fn try_dirs(
        &mut self,
        dirs: &[String],
        name: &str,
        via: Via,
    ) -> Result<Option<Hit>, Option<String>> {
        for dir in dirs {
            let path = format!("{dir}{name}");
            // glibc tries dir/glibc-hwcaps/<level>/ first; we never pick those (they depend on
            // the build machine's CPU) but say so when one is there.
            let dir_path = Path::new(if dir.is_empty() { "." } else { dir.as_str() });
            let dir_info = self.r.probes.dir(dir_path);
            let levels = &dir_info.hwcaps;
            let variants: Vec<String> = levels
                .iter()
                .map(|l| format!("{dir}glibc-hwcaps/{l}/{name}"))
                .filter(|v| matches!(self.r.probes.probe(Path::new(v)), Probe::Found(_)))
                .collect();
            let probe = self.r.probes.probe_in(&dir_info, name, Path::new(&path));
            self.step(|w| Step::Dir {
                dir: dir.clone(),
                via,
                held: w.held(&probe),
            });
            match probe {
                Probe::Absent => {
                    for variant in variants {
                        self.warn(Warning::HwcapsSkipped {
                            name: name.into(),
                            variant,
                            chosen: "(a later directory)".into(),
                        });
                    }
                }
                Probe::Found(o) if self.compatible(&o) => {
                    for variant in variants {
                        self.warn(Warning::HwcapsSkipped {
                            name: name.into(),
                            variant,
                            chosen: path.clone(),
                        });
                    }
                    return Ok(Some((path, via, o)));
                }
                Probe::Found(_) => self.warn(Warning::WrongArchSkipped {
                    name: name.into(),
                    path,
                }),
                Probe::Invalid(e) => {
                    return Err(Some(format!("the loader would stop at {path}: {e}")))
                }
            }
        }
        Ok(None)
    }

    fn compatible(&self, o: &Object) -> bool {
        self.nodes[0].object.info.compatible_with(&o.info)
    }

    fn held(&self, probe: &Probe) -> Held {
        Held::of(probe, |o| self.compatible(o))
    }

    /// Records a step of the search under way, with `Options::trace` (built only then).
    fn step(&mut self, make: impl FnOnce(&Self) -> Step) {
        if self.r.opts.trace {
            let step = make(self);
            self.steps.push(step);
        }
    }

    fn warn(&mut self, w: Warning) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }
}

type Hit = (String, Via, Arc<Object>);
type Found = Result<Hit, Option<String>>;

/// Warnings about the closure as a whole: sonames, collisions, store boundaries.
fn closure_warnings(store: &StoreDir, root: &Path, libs: &[Library]) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut by_soname: HashMap<&str, &str> = HashMap::new();
    let root_in_store = store.contains(root);
    for l in libs {
        match l.object.info.soname.as_deref() {
            None => out.push(Warning::NoSoname {
                path: l.path.clone(),
            }),
            Some(s) => {
                if let Some(first) = by_soname.insert(s, &l.path) {
                    out.push(Warning::SonameCollision {
                        soname: s.into(),
                        first: first.into(),
                        second: l.path.clone(),
                    });
                }
            }
        }
        if root_in_store && !store.contains(Path::new(&l.path)) {
            out.push(Warning::OutsideStore {
                path: l.path.clone(),
            });
        }
    }
    out
}

/// Sonames of glibc's own libraries: built together with its loader and `libc.so.6`, and only
/// working with those same builds (they share private symbols and internal layouts).
/// glibc's libraries, by soname: one build's parts must come from one directory.
pub const GLIBC_PARTS: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libmvec.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libresolv.so.2",
    "libutil.so.1",
    "libanl.so.1",
    "libnsl.so.1",
    "libBrokenLocale.so.1",
    "libc_malloc_debug.so.0",
    "libthread_db.so.1",
];

/// Whether a soname is one of glibc's loaders (`ld-linux-x86-64.so.2`, `ld64.so.1`, …).
/// Whether `soname` is one of glibc's parts (its loader included).
pub fn is_glibc_part(soname: &str) -> bool {
    GLIBC_PARTS.contains(&soname) || is_glibc_loader(soname)
}

/// Whether `soname` is one of glibc's dynamic loaders.
pub fn is_glibc_loader(soname: &str) -> bool {
    soname.starts_with("ld-linux") || soname.starts_with("ld64.so.") || soname == "ld.so.1"
}

/// Two of glibc's parts in a closure from different directories (compared with symlinks
/// resolved, so `/lib64/ld-linux-x86-64.so.2` and `/lib/x86_64-linux-gnu/libc.so.6` on Debian
/// agree). The interpreter counts when a program names one (or the user chose it); a
/// library's default interpreter is only a guess, so its loader is left out. The root file
/// itself is not part of its closure: a copy of `libm.so.6` stamped elsewhere is still one
/// build with the `libc.so.6` it loads.
fn mixed_glibc(
    interp: Option<&str>,
    libs: &[Library],
    real_dir: impl Fn(&str) -> Option<PathBuf>,
) -> Option<Warning> {
    let is_part = is_glibc_part;
    let mut parts: Vec<&str> = Vec::new();
    // Files that are not there (a cross program's interpreter, run under qemu with another
    // root) say nothing about where their glibc lives.
    if let Some(i) = interp {
        parts.push(i);
    }
    for l in libs {
        let part = l.object.info.soname.as_deref().is_some_and(is_part);
        let guessed_loader = l.via == Via::Interpreter && interp.is_none();
        if part && !guessed_loader {
            parts.push(&l.path);
        }
    }
    let mut dirs = parts.into_iter().filter_map(|p| Some((p, real_dir(p)?)));
    let (first, first_dir) = dirs.next()?;
    dirs.find(|(_, d)| *d != first_dir)
        .map(|(second, _)| Warning::MixedGlibc {
            first: first.to_string(),
            second: second.to_string(),
        })
}

/// The path the loader knows a root file by: every symlink resolved (or, where that fails,
/// at least absolute).
pub fn real_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| absolute(path))
}

/// `path` made absolute against the current directory, without resolving symlinks or `..`.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}
