//! Hostile headers: compiled fixtures (a PIE program, a non-PIE program, a non-PIE program
//! exporting enough names to take the shifted layout, a shared library) with header fields
//! mutated — `p_align`, `p_memsz`/`p_filesz`, the offset or address of PT_INTERP, PT_DYNAMIC,
//! PT_NOTE and PT_PHDR disagreeing with their segment, `e_phoff`/`e_phnum`, section headers,
//! dynamic entries. For every mutant the loader accepts (trace mode lists it, the program runs),
//! `shrinkwrap stamp` either refuses it (exit 1, one line naming the file, bytes unchanged) or
//! stamps it into a file the loader accepts: the same libraries in the same order, the same
//! run. Mutants the loader refuses must not panic, hang, or change on a failed stamp either.
//!
//! The deterministic cases run in the suite; `SHRINKWRAP_FUZZ=N` (with `--ignored`) runs N
//! random mutants (seed from `SHRINKWRAP_FUZZ_SEED`) and prints what it found.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, le_at as get, run, shrinkwrap, Cc, Store, LOADER};

/// The library calls into libc so it has a DT_NEEDED to stamp (a library with none is left
/// as it is, and its mutants would prove nothing about the writer).
const LIB: &str = "#include <unistd.h>\nint fz(void) { return getpid() > 0 ? 7 : 0; }\n";
const PROG: &str =
    "#include <stdio.h>\nint fz(void);\nint main(void) { printf(\"%d\\n\", fz()); return 0; }\n";
/// Seconds any one program (the loader, a mutant, shrinkwrap) may take: a hang is a failure.
const TIMEOUT: &str = "20";

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const PT_GNU_PROPERTY: u32 = 0x6474_e553;

fn set(b: &mut [u8], at: usize, width: usize, value: u64) {
    b[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

/// One field of an ELF64 little-endian file, by its file offset and width.
#[derive(Clone, Copy, Debug)]
struct Field {
    at: usize,
    width: usize,
    name: &'static str,
}

/// A change to one field: `value(original)`.
#[derive(Clone, Debug)]
struct Mutation {
    field: Field,
    value: u64,
    what: String,
}

/// The fields worth lying about, found in `b` (program headers, ELF header, section headers,
/// dynamic entries), each with the segment type it belongs to (0 for none).
fn fields(b: &[u8]) -> Vec<(Field, u32, String)> {
    let mut out = Vec::new();
    let f = |at, width, name| Field { at, width, name };
    for (at, width, name) in [
        (32, 8, "e_phoff"),
        (40, 8, "e_shoff"),
        (56, 2, "e_phnum"),
        (60, 2, "e_shnum"),
        (62, 2, "e_shstrndx"),
    ] {
        out.push((f(at, width, name), 0, name.to_string()));
    }
    let (phoff, phnum) = (get(b, 32, 8) as usize, get(b, 56, 2) as usize);
    for i in 0..phnum {
        let h = phoff + i * 56;
        let ty = get(b, h, 4) as u32;
        for (off, width, name) in [
            (4, 4, "p_flags"),
            (8, 8, "p_offset"),
            (16, 8, "p_vaddr"),
            (32, 8, "p_filesz"),
            (40, 8, "p_memsz"),
            (48, 8, "p_align"),
        ] {
            out.push((f(h + off, width, name), ty, format!("phdr {i} ({ty:#x})")));
        }
    }
    let (shoff, shnum) = (get(b, 40, 8) as usize, get(b, 60, 2) as usize);
    for j in 0..shnum {
        let h = shoff + j * 64;
        for (off, width, name) in [
            (4, 4, "sh_type"),
            (16, 8, "sh_addr"),
            (24, 8, "sh_offset"),
            (32, 8, "sh_size"),
            (48, 8, "sh_addralign"),
        ] {
            out.push((f(h + off, width, name), 0, format!("shdr {j}")));
        }
    }
    if let Some(d) = (0..phnum)
        .map(|i| phoff + i * 56)
        .find(|&h| get(b, h, 4) as u32 == PT_DYNAMIC)
    {
        let (off, size) = (get(b, d + 8, 8) as usize, get(b, d + 32, 8) as usize);
        for k in 0..size / 16 {
            let tag = get(b, off + k * 16, 8);
            if tag == 0 {
                break;
            }
            out.push((
                f(off + k * 16 + 8, 8, "d_val"),
                0,
                format!("dyn {k} (tag {tag:#x})"),
            ));
        }
    }
    out
}

/// Hostile values for a field whose value is `v`.
fn hostile_values(v: u64) -> Vec<u64> {
    vec![
        v.wrapping_add(1),
        v.wrapping_sub(1),
        v.wrapping_add(8),
        v.wrapping_add(0x1000),
        v.wrapping_sub(0x1000),
        v.wrapping_add(0x10_0000),
        v.wrapping_mul(2),
        0,
        1,
        3,
        0x1001,
        0x3000,
        0x20_0000,
        1 << 40,
        1 << 46,
        1 << 62,
        u64::MAX,
    ]
}

/// The deterministic cases: the classes fuzzing found (non-power-of-two and huge `p_align`,
/// huge `p_memsz`, PT_INTERP/PT_DYNAMIC/PT_NOTE/PT_PHDR whose address or offset disagrees
/// with their segment) and a few neighbours, on every segment that can carry them.
fn targeted(b: &[u8]) -> Vec<Mutation> {
    let mut out = Vec::new();
    for (field, ty, owner) in fields(b) {
        let v = get(b, field.at, field.width);
        let values: Vec<u64> = match (ty, field.name) {
            (PT_LOAD, "p_align") => vec![3, 0x1001, 0x3000, 0x1800, 8, 1 << 30, 1 << 40, 1 << 62],
            (PT_LOAD, "p_memsz") => vec![1 << 30, 1 << 40, 1 << 46, v + 0x20_0000],
            (PT_INTERP | PT_DYNAMIC | PT_NOTE | PT_PHDR | PT_GNU_PROPERTY, "p_vaddr") => {
                vec![v + 8, v + 0x40, v + 0x1000, v.wrapping_sub(0x40)]
            }
            (PT_INTERP | PT_NOTE | PT_PHDR | PT_GNU_PROPERTY, "p_offset") => {
                vec![v + 8, v + 0x40, v.wrapping_sub(0x40)]
            }
            (PT_INTERP | PT_NOTE | PT_DYNAMIC | PT_PHDR, "p_align") => vec![3, 1 << 40],
            (PT_INTERP | PT_DYNAMIC | PT_NOTE, "p_memsz") => vec![v + 0x40, 1 << 40],
            _ => continue,
        };
        for value in values {
            if value != v {
                out.push(Mutation {
                    field,
                    value,
                    what: format!("{owner} {} {v:#x} -> {value:#x}", field.name),
                });
            }
        }
    }
    out
}

/// A small deterministic generator (xorshift64*), so a seed names a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One or two random mutations of `b`.
fn random(b: &[u8], rng: &mut Rng) -> Vec<Mutation> {
    let all = fields(b);
    let n = 1 + rng.below(2);
    (0..n)
        .map(|_| {
            let (field, _, owner) = all[rng.below(all.len())].clone();
            let v = get(b, field.at, field.width);
            let vals = hostile_values(v);
            let value = vals[rng.below(vals.len())];
            Mutation {
                field,
                value,
                what: format!("{owner} {} {v:#x} -> {value:#x}", field.name),
            }
        })
        .collect()
}

fn apply(b: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut out = b.to_vec();
    for m in ms {
        set(&mut out, m.field.at, m.field.width, m.value);
    }
    out
}

/// The fixtures: the library and the programs that use it.
struct Fixtures {
    st: Store,
    lib: PathBuf,
    /// A PIE program that uses the library (the consumer that runs a mutated library).
    consumer: PathBuf,
    /// (name, unmutated bytes, path the mutants are written to, is a library).
    subjects: Vec<(&'static str, Vec<u8>, PathBuf, bool)>,
}

fn fixtures() -> Fixtures {
    let st = Store::new();
    let lib_dir = st.lib_dir("fz");
    let lib = Cc::new("gcc", LIB, lib_dir.join("libfz.so.1"))
        .shared(Some("libfz.so.1"))
        .build();
    let rp = lib_dir.display().to_string();
    let bin = st.package("app").join("bin");
    let build = |name: &str, source: &str, args: &[&str]| {
        let mut cc = Cc::new("gcc", source, bin.join(name))
            .runpath(&rp)
            .link(&lib);
        for a in args {
            cc = cc.arg(a);
        }
        cc.build()
    };
    let consumer = build("consumer", PROG, &["-pie", "-fPIE"]);
    let pie = build("pie", PROG, &["-pie", "-fPIE"]);
    let nopie = build("nopie", PROG, &["-no-pie"]);
    // Enough exported names that inserting a page after `.dynstr` beats copying it.
    let mut exporting = String::new();
    for i in 0..300 {
        exporting.push_str(&format!(
            "int hostile_headers_exported_function_number_{i:04}(void) {{ return {i}; }}\n"
        ));
    }
    exporting.push_str(PROG);
    let shifted = build("shifted", &exporting, &["-no-pie", "-rdynamic"]);
    let mutants = st.package("mutants");
    let mut subjects = Vec::new();
    for (name, path, is_lib) in [
        ("pie", &pie, false),
        ("nopie", &nopie, false),
        ("shifted", &shifted, false),
        ("lib", &lib, true),
    ] {
        let dir = mutants.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = if is_lib {
            dir.join("libfz.so.1")
        } else {
            dir.join(name)
        };
        subjects.push((name, std::fs::read(path).unwrap(), file, is_lib));
    }
    Fixtures {
        st,
        lib,
        consumer,
        subjects,
    }
}

/// Runs `cmd` under `timeout -s KILL`; (exit code, stdout, stderr). A hang is exit 137 (the
/// KILL signal's 128 + 9: `timeout` returns 124 only when the command dies of its TERM).
fn timed(cmd: &mut Command) -> (i32, String, String) {
    let mut t = Command::new("timeout");
    t.args(["-s", "KILL", TIMEOUT]).arg(cmd.get_program());
    t.args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        t.current_dir(dir);
    }
    t.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            t.env(k, v);
        }
    }
    let out = run(&mut t);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the loader makes of a subject: its library list in trace mode and what running it
/// (or, for the library, the consumer that loads it) prints. `Err` when it does not load, does
/// not find a library, or does not print what the fixture prints.
fn loader_view(fx: &Fixtures, file: &Path, is_lib: bool) -> Result<Vec<String>, String> {
    // The loader in trace mode (what `common::ld_so_list` runs), under the same timeout.
    let (code, stdout, stderr) = timed(
        Command::new(LOADER)
            .arg(file)
            .env("LD_TRACE_LOADED_OBJECTS", "1"),
    );
    if hung(code) {
        return Err(format!("the loader hung or was killed (exit {code})"));
    }
    if code != 0 {
        return Err(stderr.trim().to_string());
    }
    let list = common::parse_ld_so_list(&stdout);
    if !list.missing.is_empty() {
        return Err(format!("not found: {:?}", list.missing));
    }
    // A mutant may call some other function than it meant to (a mutated symbol table): it
    // runs in its own directory, where any file it makes is harmless.
    let dir = file.parent().unwrap();
    let (code, stdout, stderr) = if is_lib {
        timed(
            Command::new(&fx.consumer)
                .env("LD_LIBRARY_PATH", dir)
                .env("LD_BIND_NOW", "1")
                .current_dir(dir),
        )
    } else {
        timed(Command::new(file).env("LD_BIND_NOW", "1").current_dir(dir))
    };
    if code != 0 || stdout != "7\n" {
        return Err(format!("run: exit {code}, {stdout:?} {}", stderr.trim()));
    }
    Ok(list.paths)
}

/// Whether a [`timed`] run hung or was killed: `timeout -s KILL` exits 137, plain `timeout`
/// 124, and -1 is a death by signal `timeout` did not report.
fn hung(code: i32) -> bool {
    matches!(code, 124 | 137 | -1)
}

/// What happened to one mutant.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Verdict {
    /// The loader refuses the mutant; shrinkwrap failed cleanly or stamped it.
    LoaderRefused,
    /// The loader accepts it; shrinkwrap refused it cleanly.
    Refused,
    /// The loader accepts it; shrinkwrap stamped it (the bytes and the DT_NEEDED list changed)
    /// and the loader accepts the result.
    Stamped,
    /// The loader accepts it; shrinkwrap exited 0 but wrote nothing or left the DT_NEEDED list
    /// as it was: the result still loads the same.
    Unchanged,
}

/// Runs one mutant through the contract; `Err` describes a broken promise.
fn check(fx: &Fixtures, subject: usize, bytes: &[u8]) -> Result<Verdict, String> {
    let (_, _, file, is_lib) = &fx.subjects[subject];
    std::fs::write(file, bytes).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = loader_view(fx, file, *is_lib);
    let needed_before = common::readelf_needed(file);
    let store = fx.st.store.display().to_string();
    let (code, _, stderr) = timed(
        shrinkwrap()
            .args(["stamp", "--store-dir", &store])
            .arg(file),
    );
    if hung(code) {
        return Err(format!("shrinkwrap hung or was killed (exit {code})"));
    }
    if stderr.contains("panicked") || code == 101 {
        return Err(format!(
            "shrinkwrap panicked: {}",
            stderr.replace('\n', " ")
        ));
    }
    let after_bytes = std::fs::read(file).unwrap();
    if code != 0 {
        if after_bytes != bytes {
            return Err(format!(
                "failed (exit {code}) and changed the file: {stderr}"
            ));
        }
        let lines: Vec<&str> = stderr.lines().collect();
        let named = format!("shrinkwrap: {}: ", file.display());
        if code != 1 || lines.len() != 1 || !lines[0].starts_with(&named) {
            return Err(format!(
                "a refusal is exit 1 and one line naming the file: exit {code}, {stderr:?}"
            ));
        }
        if std::env::var_os("SHRINKWRAP_FUZZ_VERBOSE").is_some() {
            eprintln!("refused: {}", lines[0].trim_start_matches(&named));
        }
        return Ok(if before.is_ok() {
            Verdict::Refused
        } else {
            Verdict::LoaderRefused
        });
    }
    let Ok(before) = before else {
        return Ok(Verdict::LoaderRefused);
    };
    let after = loader_view(fx, file, *is_lib)
        .map_err(|e| format!("stamped (exit 0) into a file the loader rejects: {e}"))?;
    if after != before {
        return Err(format!(
            "stamped into a file that loads differently:\n  before {before:?}\n  after  {after:?}"
        ));
    }
    // Exit 0 alone is not a stamp: the file must have been rewritten with other DT_NEEDED
    // entries (the absolute paths), or a run that did nothing would count.
    if after_bytes == bytes || common::readelf_needed(file) == needed_before {
        return Ok(Verdict::Unchanged);
    }
    Ok(Verdict::Stamped)
}

/// Counts of one run, and every broken promise with the mutations behind it.
#[derive(Default)]
struct Tally {
    mutants: usize,
    loader_refused: usize,
    refused: usize,
    stamped: usize,
    unchanged: usize,
    bad: Vec<String>,
}

impl Tally {
    fn add(&mut self, fx: &Fixtures, subject: usize, ms: &[Mutation]) {
        let (name, good, _, _) = &fx.subjects[subject];
        self.mutants += 1;
        match check(fx, subject, &apply(good, ms)) {
            Ok(Verdict::LoaderRefused) => self.loader_refused += 1,
            Ok(Verdict::Refused) => self.refused += 1,
            Ok(Verdict::Stamped) => self.stamped += 1,
            Ok(Verdict::Unchanged) => self.unchanged += 1,
            Err(e) => {
                let what: Vec<&str> = ms.iter().map(|m| m.what.as_str()).collect();
                self.bad.push(format!("{name}: {}: {e}", what.join(", ")));
            }
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} mutants: {} refused by the loader, {} loader-accepted ({} refused by shrinkwrap, {} stamped, {} left unchanged with exit 0), {} bad",
            self.mutants,
            self.loader_refused,
            self.refused + self.stamped + self.unchanged + self.bad.len(),
            self.refused,
            self.stamped,
            self.unchanged,
            self.bad.len()
        )
    }
}

fn tools_present() -> bool {
    if !common::have_loader() {
        return false;
    }
    have("gcc") && have("timeout")
}

/// The unmutated fixtures load, and stamp into files that load the same: what the mutants are
/// measured against.
fn sanity(fx: &Fixtures) {
    assert!(loader_view(fx, &fx.lib, true).is_ok());
    for i in 0..fx.subjects.len() {
        let (name, good, file, _) = &fx.subjects[i];
        std::fs::write(file, good).unwrap();
        let load_before = common::first_load(file).0;
        assert_eq!(
            check(fx, i, &good.clone()),
            Ok(Verdict::Stamped),
            "{name} unmutated"
        );
        // The subject meant to reach the shifted layout does: its first PT_LOAD moved down to
        // make room for the new `.dynstr` in front of the old headers.
        if *name == "shifted" {
            let load_after = common::first_load(file).0;
            assert!(
                load_after < load_before,
                "shifted unmutated: stamped in place (first PT_LOAD {load_after:#x}, was {load_before:#x})"
            );
        }
    }
}

#[test]
fn fuzz_found_header_classes_are_refused_or_stamped_loadable() {
    if !tools_present() {
        return;
    }
    let fx = fixtures();
    sanity(&fx);
    let mut tally = Tally::default();
    for i in 0..fx.subjects.len() {
        let good = fx.subjects[i].1.clone();
        for m in targeted(&good) {
            tally.add(&fx, i, &[m]);
        }
    }
    eprintln!("{}", tally.summary());
    // The cases must reach the writer: many mutants load, and some of them are stamped.
    assert!(tally.mutants > 150, "{}", tally.summary());
    assert!(tally.stamped > 20, "{}", tally.summary());
    assert!(
        tally.bad.is_empty(),
        "{}\n{}",
        tally.summary(),
        tally.bad.join("\n")
    );
}

/// The file offset of field `off` of the `nth` program header of type `ty`.
fn phdr_field(b: &[u8], ty: u32, nth: usize, off: usize) -> usize {
    let (phoff, phnum) = (get(b, 32, 8) as usize, get(b, 56, 2) as usize);
    (0..phnum)
        .map(|i| phoff + i * 56)
        .filter(|&h| get(b, h, 4) as u32 == ty)
        .nth(nth)
        .unwrap_or_else(|| panic!("no program header {nth} of type {ty:#x}"))
        + off
}

/// The classes fuzzing found, each made from a file the loader accepts: refused (exit 1, one
/// line naming the file and the rule, bytes unchanged) — on the writer before this check, each
/// was stamped into a file the loader rejects.
#[test]
fn fuzz_found_classes_are_refused_naming_the_rule() {
    if !tools_present() {
        return;
    }
    let fx = fixtures();
    // (subject, field offset, new value from the old, the rule the refusal names)
    type Case = (usize, fn(&[u8]) -> usize, fn(u64) -> u64, &'static str);
    let cases: [Case; 5] = [
        (
            0,
            |b| phdr_field(b, PT_LOAD, 1, 48),
            |_| 0x1001,
            "p_align 0x1001, not a power of two",
        ),
        (
            2,
            |b| phdr_field(b, PT_LOAD, 2, 48),
            |_| 0x1800,
            "p_align 0x1800, not a power of two",
        ),
        (
            1,
            |b| phdr_field(b, PT_LOAD, 1, 48),
            |_| 1 << 62,
            "larger than any page",
        ),
        (
            0,
            |b| phdr_field(b, PT_INTERP, 0, 16),
            |v| v + 8,
            "(PT_INTERP) at offset",
        ),
        (
            2,
            |b| phdr_field(b, PT_INTERP, 0, 16),
            |v| v + 0x1000,
            "(PT_INTERP) at offset",
        ),
    ];
    for (subject, field, value, rule) in cases {
        let (name, good, file, is_lib) = &fx.subjects[subject];
        let mut b = good.clone();
        let at = field(&b);
        let v = value(get(&b, at, 8));
        set(&mut b, at, 8, v);
        std::fs::write(file, &b).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
        let what = format!("{name}: {rule}");
        assert!(
            loader_view(&fx, file, *is_lib).is_ok(),
            "{what}: the loader must accept the mutant for the case to mean anything"
        );
        let store = fx.st.store.display().to_string();
        let (code, _, stderr) = timed(
            shrinkwrap()
                .args(["stamp", "--store-dir", &store])
                .arg(file),
        );
        assert_eq!(code, 1, "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.starts_with(&format!("shrinkwrap: {}: cannot stamp: ", file.display()))
                && stderr.contains(rule),
            "{what}: {stderr}"
        );
        assert_eq!(std::fs::read(file).unwrap(), b, "{what}: the file changed");
    }
}

#[test]
fn random_mutants_short() {
    if !tools_present() {
        return;
    }
    fuzz(120, 9);
}

/// The long run: `SHRINKWRAP_FUZZ=7500 cargo test --test hostile_headers -- --ignored`
/// (a debug build on purpose: its overflow checks turn arithmetic on hostile fields into
/// panics this test reports).
#[test]
#[ignore]
fn random_mutants_long() {
    if !tools_present() {
        return;
    }
    let n = std::env::var("SHRINKWRAP_FUZZ")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let seed = std::env::var("SHRINKWRAP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    fuzz(n, seed);
}

fn fuzz(n: usize, seed: u64) {
    let fx = fixtures();
    sanity(&fx);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut tally = Tally::default();
    for k in 0..n {
        let i = k % fx.subjects.len();
        let ms = random(&fx.subjects[i].1, &mut rng);
        tally.add(&fx, i, &ms);
    }
    eprintln!("seed {seed}: {}", tally.summary());
    for b in &tally.bad {
        eprintln!("BAD {b}");
    }
    assert!(tally.bad.is_empty(), "{}", tally.summary());
}

/// The file offset of the value of the first `.dynamic` entry with tag `tag`.
fn dyn_value(b: &[u8], tag: u64) -> usize {
    let dynamic = get(b, phdr_field(b, PT_DYNAMIC, 0, 8), 8) as usize;
    (0..)
        .map(|i| dynamic + i * 16)
        .find(|&e| get(b, e, 8) == tag || get(b, e, 8) == 0)
        .filter(|&e| get(b, e, 8) == tag)
        .unwrap_or_else(|| panic!("no dynamic entry {tag:#x}"))
        + 8
}

/// The classes the fuzzer found once the spare layout (a library's stamp written into the
/// padding after a read-only segment) was added, each from a file the loader accepts, kept as
/// they were found: a relocation table whose size runs past its end into that padding, which
/// the loader read as zeros (harmless relocations) and would read as our table; and a section
/// header table cut to its null entry (`e_shnum` 1), whose silence about every byte the
/// in-place layout took for free room, and overwrote; a read-only segment made inaccessible
/// (`p_flags` 0), where the spare layout put the table. Each must now be refused cleanly or
/// stamped into a file that loads the same.
#[test]
fn tables_and_sections_that_lie_keep_every_promise() {
    if !tools_present() {
        return;
    }
    let fx = fixtures();
    let lib = fx.subjects.iter().position(|s| s.0 == "lib").unwrap();
    let pie = fx.subjects.iter().position(|s| s.0 == "pie").unwrap();
    type Case = (usize, &'static str, fn(&mut Vec<u8>));
    let cases: [Case; 5] = [
        (lib, "DT_PLTRELSZ grown by 0x18", |b| {
            let at = dyn_value(b, 2);
            let v = get(b, at, 8);
            set(b, at, 8, v + 0x18);
        }),
        (lib, "DT_RELASZ grown by 0xa8", |b| {
            let at = dyn_value(b, 8);
            let v = get(b, at, 8);
            set(b, at, 8, v + 0xa8);
        }),
        (lib, "e_shnum 1", |b| set(b, 60, 2, 1)),
        (pie, "e_shnum 1", |b| set(b, 60, 2, 1)),
        // As found: a section stretched over the first read-only segment's padding, and the
        // other read-only segment mapped with no access at all (nothing reads it): no place
        // for the table.
        (lib, "shdr 7 sh_size 0x1001, phdr 2 p_flags 0", |b| {
            let shoff = get(b, 40, 8) as usize;
            set(b, shoff + 7 * 64 + 32, 8, 0x1001);
            let phoff = get(b, 32, 8) as usize;
            set(b, phoff + 2 * 56 + 4, 4, 0);
        }),
    ];
    for (subject, what, mutate) in cases {
        let mut b = fx.subjects[subject].1.clone();
        mutate(&mut b);
        let verdict = check(&fx, subject, &b);
        assert!(
            matches!(verdict, Ok(Verdict::Refused | Verdict::Stamped)),
            "{} {what}: {:?}",
            fx.subjects[subject].0,
            verdict.map(|_| "exit 0 without a stamp")
        );
    }
}
