//! What each fuzz target does with one input, and the invariants it checks: shared by the
//! libFuzzer targets (`fuzz/fuzz_targets/`) and by `tests/fuzz_regressions.rs`, which replays
//! every input the fuzzers found through the same checks in a normal `cargo test`. Needs only
//! shrinkwrap's public API and `tempfile`, so both crates can include it (`#[path]`).
//!
//! A broken invariant is returned as `Err(what)`; the fuzz targets panic with it (libFuzzer
//! saves the input), the regression test fails with it. A panic inside shrinkwrap is a
//! finding either way.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use shrinkwrap::elf::stamped::{self, Record};
use shrinkwrap::elf::{read_elf_file, Class, ElfFile};
use shrinkwrap::resolve::{cache_flags, LdCache, Options, Resolver};
use shrinkwrap::write::{stamp_file, stamp_file_to, Outcome, ReadOnly, Target};

/// The synthetic store, embedded: x86_64 `libfa.so.1 → libfb.so.1` in `lib/`, i686 builds of
/// the same in `lib32/` (made by `fuzz/seeds.sh`, which also builds the seeds to find them:
/// their RUNPATH is `$ORIGIN/../lib32:$ORIGIN/../lib`).
const LIBS: &[(&str, &[u8])] = &[
    ("lib/libfa.so.1", include_bytes!("../store/lib/libfa.so.1")),
    ("lib/libfb.so.1", include_bytes!("../store/lib/libfb.so.1")),
    (
        "lib32/libfa.so.1",
        include_bytes!("../store/lib32/libfa.so.1"),
    ),
    (
        "lib32/libfb.so.1",
        include_bytes!("../store/lib32/libfb.so.1"),
    ),
];

/// Resolutions one resolver serves before it is replaced: its caches (probes by path, search
/// directory listings, loader configurations) would otherwise grow with every fuzzed RUNPATH.
const RESOLVER_RUNS: u32 = 1000;

/// A temporary directory laid out as `lib/`, `lib32/` (the store) and `in/` (where inputs go),
/// made once per process.
pub struct Store {
    dir: tempfile::TempDir,
    resolvers: Option<(Resolver, Resolver)>,
    runs: u32,
    serial: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// Writes the store into a new temporary directory.
    pub fn new() -> Store {
        let dir = tempfile::Builder::new()
            .prefix("shrinkwrap-fuzz")
            .tempdir()
            .expect("a temporary directory");
        for sub in ["lib", "lib32", "in"] {
            fs::create_dir(dir.path().join(sub)).expect("store directory");
        }
        for (name, bytes) in LIBS {
            fs::write(dir.path().join(name), bytes).expect("store library");
        }
        Store {
            dir,
            resolvers: None,
            runs: 0,
            serial: 0,
        }
    }

    fn lib_dir(&self, class: Class) -> PathBuf {
        self.dir.path().join(match class {
            Class::Elf64 => "lib",
            Class::Elf32 => "lib32",
        })
    }

    /// Target `resolve`: `data` as a file in `in/`, resolved as `tree` sees it and as planning
    /// does (stamped files read as their originals), with `lib/` as a `--search` directory.
    /// The invariant is that it returns: no panic, no hang.
    pub fn resolve(&mut self, data: &[u8]) -> Result<(), String> {
        if self.runs == 0 {
            let opts = |originals| Options {
                search: vec![self.dir.path().join("lib")],
                originals,
                ..Options::default()
            };
            self.resolvers = Some((Resolver::new(opts(false)), Resolver::new(opts(true))));
        }
        self.runs = (self.runs + 1) % RESOLVER_RUNS;
        // A new name each time: the resolvers cache what they probed by path.
        self.serial += 1;
        let path = self
            .dir
            .path()
            .join("in")
            .join(format!("in{}", self.serial));
        fs::write(&path, data).map_err(|e| format!("writing the input: {e}"))?;
        let (now, originals) = self.resolvers.as_ref().expect("made above");
        let _ = now.resolve(&path);
        let _ = originals.resolve(&path);
        let _ = fs::remove_file(&path);
        Ok(())
    }

    /// Target `stamp`: `data` as a file in `in/`, stamped with a plan like the real one's
    /// shape: its (original's) own DT_NEEDED names made absolute into the store directory of
    /// its class, and for a program one more library added; inputs whose length is a
    /// multiple of 3 also get a new interpreter. Invariants: on `Stamped`, the file reads back
    /// with exactly the plan and the expected PT_INTERP, its PT_LOADs keep the loader's rules,
    /// and stamping it again changes nothing (`Unchanged`, same bytes); on `Unchanged`, the
    /// bytes are the input's; on an error, the bytes are the input's (what a killed run left
    /// appended, which any run cuts off first, excepted).
    pub fn stamp(&mut self, data: &[u8]) -> Result<(), String> {
        let path = self.dir.path().join("in").join("file");
        fs::write(&path, data).map_err(|e| format!("writing the input: {e}"))?;
        let plan = self.plan(&path, data);
        let target = Target {
            needed: &plan.needed,
            interpreter: plan.new_interpreter.as_deref(),
        };
        let result = stamp_file_to(&path, &target, ReadOnly::Refuse);
        let after = fs::read(&path).map_err(|e| format!("reading the result: {e}"))?;
        let untouched = &data[..plan.cleared_size.min(data.len())];
        let out = match result {
            Ok(Outcome::Unchanged) if after != untouched => {
                Err("`Unchanged`, but the bytes changed".to_string())
            }
            Ok(Outcome::Unchanged) => Ok(()),
            Ok(Outcome::Stamped { .. }) => stamped_holds(&path, &after, &plan),
            Err(e) if after != untouched => Err(format!("failed ({e}) and changed the file")),
            Err(_) => Ok(()),
        };
        let _ = fs::remove_file(&path);
        out
    }

    fn plan(&self, path: &Path, data: &[u8]) -> Plan {
        let read = File::open(path).ok().and_then(|f| {
            let ef = read_elf_file(&f).ok()?;
            Some((f, ef))
        });
        let Some((file, ef)) = read else {
            // Not readable as ELF: the writer must refuse it, untouched.
            return Plan {
                needed: vec![self
                    .lib_dir(Class::Elf64)
                    .join("libfa.so.1")
                    .display()
                    .to_string()],
                new_interpreter: None,
                interpreter: None,
                cleared_size: data.len(),
            };
        };
        let cleared_size = stamped::unfinished_tail(&file, &ef)
            .ok()
            .flatten()
            .map_or(data.len(), |n| n as usize);
        let own_interpreter = ef.info.interpreter.clone();
        // Plans start from originals (as `stamp` makes them).
        let info = match stamped::original_info(&file, &ef) {
            Ok(Some(original)) => original,
            _ => ef.info,
        };
        let lib = self.lib_dir(info.class);
        let absolute = |name: &str| match name.contains('/') {
            true => name.to_string(),
            false => lib.join(name).display().to_string(),
        };
        let mut needed: Vec<String> = info.needed.iter().map(|n| absolute(n)).collect();
        if info.is_program() {
            let extra = absolute("libfb.so.1");
            if !needed.contains(&extra) {
                needed.push(extra);
            }
        }
        let new_interpreter = (data.len() % 3 == 0 && own_interpreter.is_some())
            .then(|| lib.join("ld-fuzz.so.2").display().to_string());
        Plan {
            needed,
            interpreter: new_interpreter.clone().or(info.interpreter),
            new_interpreter,
            cleared_size,
        }
    }
}

/// A stamp to make, and what the result must say.
struct Plan {
    needed: Vec<String>,
    /// The interpreter to set (`Target::interpreter`).
    new_interpreter: Option<String>,
    /// The PT_INTERP the result must have: the new one, else the original's.
    interpreter: Option<String>,
    /// The input's size once a killed run's tail is cut off.
    cleared_size: usize,
}

/// The invariants of a file `stamp` said it stamped, holding `bytes`.
fn stamped_holds(path: &Path, bytes: &[u8], plan: &Plan) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("reopening the result: {e}"))?;
    let ef = read_elf_file(&file).map_err(|e| format!("the result does not read back: {e}"))?;
    if ef.info.needed != plan.needed {
        return Err(format!(
            "the result reads back with DT_NEEDED {:?}, planned {:?}",
            ef.info.needed, plan.needed
        ));
    }
    if ef.info.interpreter != plan.interpreter {
        return Err(format!(
            "the result's PT_INTERP is {:?}, expected {:?}",
            ef.info.interpreter, plan.interpreter
        ));
    }
    load_rules(&ef)?;
    let target = Target {
        needed: &plan.needed,
        interpreter: plan.new_interpreter.as_deref(),
    };
    match stamp_file_to(path, &target, ReadOnly::Refuse) {
        Ok(Outcome::Unchanged) => {}
        other => return Err(format!("stamping the result again gave {other:?}")),
    }
    let again = fs::read(path).map_err(|e| format!("reading the restamp: {e}"))?;
    if again != bytes {
        return Err("stamping the result again changed its bytes".into());
    }
    // The plain entry point agrees when no interpreter is set.
    if plan.new_interpreter.is_none() {
        match stamp_file(path, &plan.needed) {
            Ok(Outcome::Unchanged) => {}
            other => return Err(format!("stamp_file on the result gave {other:?}")),
        }
    }
    Ok(())
}

const PT_LOAD: u32 = 1;
const PAGE: u64 = 0x1000;

/// The loader's rules for PT_LOAD, as the kernel and glibc apply them (strictly): `p_align`
/// 0, 1 or a power of two, `p_vaddr ≡ p_offset` modulo it and modulo the page, `p_filesz <=
/// p_memsz`, inside the file, and (those that occupy memory) in address order without
/// overlapping.
fn load_rules(ef: &ElfFile) -> Result<(), String> {
    let mut prev_end: Option<u64> = None;
    for (i, p) in ef.phdrs.iter().enumerate() {
        if p.p_type != PT_LOAD {
            continue;
        }
        let fail = |why: &str| Err(format!("segment {i} (PT_LOAD) {why}: {p:?}"));
        if p.p_align > 1 && !p.p_align.is_power_of_two() {
            return fail("has an alignment that is not a power of two");
        }
        if p.p_align > 1 && p.p_vaddr % p.p_align != p.p_offset % p.p_align {
            return fail("has p_vaddr not congruent to p_offset modulo p_align");
        }
        if p.p_vaddr % PAGE != p.p_offset % PAGE {
            return fail("has p_vaddr not congruent to p_offset modulo the page");
        }
        if p.p_filesz > p.p_memsz {
            return fail("has p_filesz > p_memsz");
        }
        if p.p_offset
            .checked_add(p.p_filesz)
            .is_none_or(|e| e > ef.size)
        {
            return fail("reaches past the end of the file");
        }
        if p.p_memsz == 0 {
            continue;
        }
        let end = p
            .p_vaddr
            .checked_add(p.p_memsz)
            .ok_or_else(|| format!("segment {i} (PT_LOAD) wraps around the address space"))?;
        if prev_end.is_some_and(|e| p.p_vaddr < e) {
            return fail("overlaps or precedes the previous PT_LOAD in memory");
        }
        prev_end = Some(end);
    }
    Ok(())
}

/// Target `parsers`: `data` as `/etc/ld.so.cache` ([`LdCache::parse`], then lookups) and as
/// the end of a dynamic string table ([`Record::find`]). Invariants: no panic or unbounded
/// allocation; a record found encodes to a string that decodes to the same record.
pub fn parsers(data: &[u8]) -> Result<(), String> {
    if let Some(cache) = LdCache::parse(data) {
        for name in ["libc.so.6", "libz.so.1", ""] {
            // x86_64, i386, and any architecture.
            for want in [cache_flags(62, true), cache_flags(3, false), None] {
                let _ = cache.lookup(name, want);
            }
        }
    }
    if let Some(record) = Record::find(data) {
        // As long a table as the input: a run of zeros is never longer than its table.
        let mut table = vec![0; data.len()];
        table.extend(record.to_string_bytes());
        let again = Record::find(&table).ok_or("a record found does not decode once re-encoded")?;
        if again != record {
            return Err(format!(
                "a record changes through encode/decode: {record:?} became {again:?}"
            ));
        }
    }
    Ok(())
}
