//! Stamping never changes which files load or their order, for programs that are stamped and
//! for programs that are not but use stamped libraries; and a second run has nothing to do.
//!
//! The fixture is built so that order shows in behaviour: `prog → libfoo, libbar; libfoo →
//! libx → liby; libbar → libz`, with `which()` defined in both liby and libz. The loader's
//! breadth-first order puts libz before liby, so libz's `which` wins. Had stamping listed
//! libfoo's whole closure in libfoo, an unstamped `prog` would load liby first and print `y`.

mod common;

use std::path::{Path, PathBuf};

use common::{
    have, have_loader, loader_paths, readelf_needed, run, run_program, Cc, Store, LOADER,
};

const WHICH_Y: &str = "const char *which(void) { return \"y\"; }\n";
const WHICH_Z: &str = "const char *which(void) { return \"z\"; }\n";
const LIBX: &str = "int x(void) { return 1; }\n";
const LIBFOO: &str = "extern const char *which(void);\nconst char *foo(void) { return which(); }\n";
const LIBBAR: &str = "int bar(void) { return 2; }\n";
const PROG: &str = "#include <stdio.h>\nextern const char *foo(void);\nextern int bar(void);\n\
                    int main(void) { puts(foo()); return bar(); }\n";

struct Fixture {
    st: Store,
    /// The package holding the libraries (what `fixup` stamps).
    libs_pkg: PathBuf,
    libs: Vec<PathBuf>,
    prog: PathBuf,
}

/// The libraries in one package; `prog` in `prog_pkg`'s `bin/` (the same package, or another).
fn build(prog_in_libs_pkg: bool) -> Fixture {
    let st = Store::new();
    let libs_pkg = std::fs::canonicalize(st.package("libs")).unwrap();
    let lib = libs_pkg.join("lib");
    let rp = st.runpath(&[&lib.display().to_string()]);
    let link_path = format!("-Wl,-rpath-link,{}", lib.display());
    let so = |src: &str, name: &str, deps: &[&Path]| {
        let mut c = Cc::new("cc", src, lib.join(name))
            .shared(Some(name))
            .runpath(&rp)
            .arg("-Wl,--no-as-needed");
        for d in deps {
            c = c.link(d);
        }
        c.build()
    };
    let liby = so(WHICH_Y, "liby.so.1", &[]);
    let libz = so(WHICH_Z, "libz-which.so.1", &[]);
    let libx = so(LIBX, "libx.so.1", &[&liby]);
    let libfoo = so(LIBFOO, "libfoo.so.1", &[&libx]);
    let libbar = so(LIBBAR, "libbar.so.1", &[&libz]);
    let bin = if prog_in_libs_pkg {
        libs_pkg.join("bin")
    } else {
        std::fs::canonicalize(st.package("prog"))
            .unwrap()
            .join("bin")
    };
    let prog = Cc::new("cc", PROG, bin.join("prog"))
        .runpath(&rp)
        .arg("-Wl,--no-as-needed")
        .arg(&link_path)
        .link(&libfoo)
        .link(&libbar)
        .build();
    Fixture {
        st,
        libs_pkg,
        libs: vec![libfoo, libbar, libx, liby, libz],
        prog,
    }
}

fn fixup(dir: &Path) -> String {
    let o = run(common::shrinkwrap().arg("fixup").arg(dir).args(["-j", "2"]));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "fixup {}: {err}", dir.display());
    err
}

fn ready() -> bool {
    have("cc") && have("readelf") && have_loader()
}

#[test]
fn an_unstamped_program_loads_the_same_when_its_libraries_are_stamped() {
    if !ready() {
        return;
    }
    let f = build(false);
    let order = loader_paths(LOADER, &f.prog).unwrap();
    // The fixture shows order: libz (from libbar) before liby (from libx, one level deeper).
    let pos = |name: &str| order.iter().position(|p| p.ends_with(name)).unwrap();
    assert!(pos("libz-which.so.1") < pos("liby.so.1"), "{order:?}");
    assert_eq!(run_program(&f.prog), (Some(2), "z\n".into()));
    let own: Vec<Vec<String>> = f.libs.iter().map(|l| readelf_needed(l)).collect();

    fixup(&f.libs_pkg);
    // Each library was stamped with its own entries only, now absolute, in their slots.
    for (l, before) in f.libs.iter().zip(&own) {
        let now = readelf_needed(l);
        assert_eq!(
            now.len(),
            before.len(),
            "{}: {before:?} → {now:?}",
            l.display()
        );
        assert!(now.iter().all(|n| n.starts_with('/')), "{now:?}");
        for (b, n) in before.iter().zip(&now) {
            assert!(n.ends_with(&format!("/{b}")), "{b} → {n}");
        }
    }
    // The unstamped program: same files, same order, same symbol winner.
    assert_eq!(loader_paths(LOADER, &f.prog).unwrap(), order);
    assert_eq!(run_program(&f.prog), (Some(2), "z\n".into()));

    // Stamped too: still the same.
    let o = run(common::shrinkwrap().arg("stamp").arg(&f.prog));
    assert!(o.status.success(), "{o:?}");
    let needed = readelf_needed(&f.prog);
    assert!(
        needed.len() > 2,
        "the program lists its closure: {needed:?}"
    );
    assert_eq!(loader_paths(LOADER, &f.prog).unwrap(), order);
    assert_eq!(run_program(&f.prog), (Some(2), "z\n".into()));
    drop(f.st);
}

#[test]
fn a_second_fixup_of_programs_and_their_libraries_writes_nothing() {
    if !ready() {
        return;
    }
    let f = build(true);
    let order = loader_paths(LOADER, &f.prog).unwrap();
    let err = fixup(&f.libs_pkg);
    assert!(err.contains("stamped 6 files"), "{err}");
    let bytes = |p: &PathBuf| std::fs::read(p).unwrap();
    let once: Vec<Vec<u8>> = f.libs.iter().chain([&f.prog]).map(bytes).collect();
    assert_eq!(loader_paths(LOADER, &f.prog).unwrap(), order);
    assert_eq!(run_program(&f.prog), (Some(2), "z\n".into()));

    let err = fixup(&f.libs_pkg);
    assert!(err.contains("stamped 0 files (6 already stamped"), "{err}");
    let twice: Vec<Vec<u8>> = f.libs.iter().chain([&f.prog]).map(bytes).collect();
    assert!(once == twice, "a second run changed the files");

    // `tree` of the stamped program agrees with the loader too.
    let doc = common::tree_json(&[&f.prog], &[], 0);
    assert_eq!(common::paths(&doc["files"][0]), order);
}
