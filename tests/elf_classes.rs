//! ELF32 and ELF64, little- and big-endian, through one code path: a library and a program
//! built with Debian's cross compilers are read and resolved through a wide RUNPATH.

mod common;

use std::path::Path;

use common::{have, tree_json, Cc, Store};

struct Target {
    gcc: &'static str,
    /// Where Debian's cross toolchain keeps that target's libc.
    sysroot_lib: &'static str,
    class: &'static str,
    endian: &'static str,
    machine: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        gcc: "cc",
        sysroot_lib: "/lib/x86_64-linux-gnu",
        class: "elf64",
        endian: "little",
        machine: "x86_64",
    },
    Target {
        gcc: "i686-linux-gnu-gcc",
        sysroot_lib: "/usr/i686-linux-gnu/lib",
        class: "elf32",
        endian: "little",
        machine: "i386",
    },
    Target {
        gcc: "aarch64-linux-gnu-gcc",
        sysroot_lib: "/usr/aarch64-linux-gnu/lib",
        class: "elf64",
        endian: "little",
        machine: "aarch64",
    },
    Target {
        gcc: "s390x-linux-gnu-gcc",
        sysroot_lib: "/usr/s390x-linux-gnu/lib",
        class: "elf64",
        endian: "big",
        machine: "s390",
    },
    Target {
        gcc: "powerpc-linux-gnu-gcc",
        sysroot_lib: "/usr/powerpc-linux-gnu/lib",
        class: "elf32",
        endian: "big",
        machine: "powerpc",
    },
];

#[test]
fn every_class_and_byte_order_reads_and_resolves() {
    let mut checked = 0;
    for t in TARGETS {
        if !have(t.gcc) {
            continue;
        }
        let st = Store::new();
        let lib_dir = st.lib_dir(&format!("leaf-{}", t.machine));
        let lib = Cc::new(
            t.gcc,
            "int leaf(void) { return 0; }\n",
            lib_dir.join("libleaf.so.1"),
        )
        .shared(Some("libleaf.so.1"))
        .runpath(&st.runpath(&[]))
        .build();
        let prog = Cc::new(
            t.gcc,
            "int leaf(void);\nint main(void) { return leaf(); }\n",
            st.package(&format!("app-{}", t.machine)).join("bin/app"),
        )
        .runpath(&st.runpath(&[&lib_dir.display().to_string()]))
        .link(&lib)
        .build();

        let doc = tree_json(&[&prog], &["--search", t.sysroot_lib], 0);
        let f = &doc["files"][0];
        let what = format!("{}: {f:#}", t.gcc);
        assert_eq!(f["class"], t.class, "{what}");
        assert_eq!(f["endian"], t.endian, "{what}");
        assert_eq!(f["machine"], t.machine, "{what}");
        assert!(
            f["kind"].as_str().unwrap().ends_with("executable"),
            "{what}"
        );
        assert!(
            f["interpreter"].as_str().unwrap().starts_with('/'),
            "{what}"
        );
        assert_eq!(f["needed"][0], "libleaf.so.1", "{what}");
        assert!(
            f["runpath"].as_str().unwrap().split(':').count() > 30,
            "{what}"
        );
        let libs = f["libraries"].as_array().unwrap();
        assert_eq!(libs[0]["path"], lib.display().to_string(), "{what}");
        assert_eq!(libs[0]["soname"], "libleaf.so.1", "{what}");
        assert_eq!(libs[0]["via"], "runpath", "{what}");
        // libc comes from the target's own libc directory, never from the host's.
        let libc = libs
            .iter()
            .find(|l| l["name"] == "libc.so.6")
            .unwrap_or_else(|| panic!("no libc: {what}"));
        let libc_path = libc["path"].as_str().unwrap();
        assert!(
            Path::new(libc_path).starts_with(t.sysroot_lib)
                || (t.machine == "x86_64" && libc_path.contains("x86_64-linux-gnu")),
            "{what}"
        );
        assert!(f["missing"].as_array().unwrap().is_empty(), "{what}");
        checked += 1;
    }
    println!("{checked} of {} targets checked", TARGETS.len());
    assert!(checked >= 1);
}
