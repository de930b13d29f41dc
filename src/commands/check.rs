//! `shrinkwrap check`: does each stamped file still hold what its stamp promised?

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::{check_options, plan_options, policy, print, Outcome};
use crate::cli::CheckArgs;
use crate::elf::stamped::{self, StampState};
use crate::elf::{read_elf_file, ElfInfo};
use crate::lock;
use crate::plan::{self, Policy};
use crate::report::check::FileEntry;
use crate::resolve::{probe_file, real_path, Object, Resolver};

/// Checks every FILE. For a stamped file: each absolute DT_NEEDED exists and is ELF of the
/// file's class and machine; each entry that replaced a bare name is a library with that name
/// as its soname (so later requests for it still match it); no soname is named twice; every
/// `vn_file` is one of the DT_NEEDED strings (glibc asserts otherwise); and a fresh resolution
/// from the original's names and RUNPATH, with the same options, still gives exactly what the
/// stamp names (no drift). Each problem is one line on stderr naming the file; exit 1 if any.
/// A file that is not stamped is said so (exit 0, or 1 with `--require-stamped`).
pub fn run(args: &CheckArgs) -> Outcome {
    if let Err(outcome) = check_options(&args.resolve) {
        return outcome;
    }
    let resolver = Resolver::new(plan_options(&args.resolve));
    let policy = policy(&args.policy);
    let mut outcome = Outcome::Success;
    let mut entries = Vec::new();
    for file in &args.files {
        let entry = match check_one(&resolver, &policy, file) {
            Ok(Some(n)) => {
                if !args.json {
                    print(&format!(
                        "{}: ok, {n} stamped entries hold\n",
                        file.display()
                    ));
                }
                FileEntry::new(file, "ok", Some(n), Vec::new())
            }
            Ok(None) => {
                let mut problems = Vec::new();
                if args.require_stamped {
                    eprintln!("shrinkwrap: {}: not stamped", file.display());
                    problems.push("not stamped".to_string());
                    outcome = Outcome::FileFailed;
                } else if !args.json {
                    print(&format!("{}: not stamped\n", file.display()));
                }
                FileEntry::new(file, "not-stamped", None, problems)
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("shrinkwrap: {}: {p}", file.display());
                }
                outcome = Outcome::FileFailed;
                FileEntry::new(file, "problems", None, problems)
            }
        };
        entries.push(entry);
    }
    if args.json {
        print(&crate::report::files_json(&entries));
    }
    outcome
}

/// `Ok(Some(n))`: stamped, `n` absolute entries, all good; `Ok(None)`: not stamped; `Err`: the
/// problems, each a line.
fn check_one(
    resolver: &Resolver,
    policy: &Policy,
    file: &Path,
) -> Result<Option<usize>, Vec<String>> {
    let one = |e: String| vec![e];
    let real = real_path(file);
    let (f, file_id) = lock::open_to_read(&real).map_err(|e| one(e.to_string()))?;
    let ef = read_elf_file(&f).map_err(|e| one(e.to_string()))?;
    let original = match stamped::stamp_state(&f, &ef)
        .map_err(|e| one(format!("reading its original: {e}")))?
    {
        StampState::NotStamped => return Ok(None),
        StampState::Changed => {
            return Err(one(
                "it was changed after it was stamped (stripped?): its original, and so the stamp's promise, cannot be read back".into(),
            ))
        }
        StampState::Stamped(info) => info,
    };
    let own = &ef.info;
    let mut problems = Vec::new();

    // The libraries the stamp names.
    let mut by_soname: HashMap<String, &str> = HashMap::new();
    for (i, n) in own.needed.iter().enumerate() {
        if !n.starts_with('/') {
            continue;
        }
        let lib = match probe_file(Path::new(n), false) {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{n}: {e}"));
                continue;
            }
        };
        if !own.compatible_with(&lib.info) {
            problems.push(format!("{n}: wrong ELF class or machine for this file"));
        }
        if let Some(so) = &lib.info.soname {
            if let Some(first) = by_soname.insert(so.clone(), n) {
                problems.push(format!("soname {so} is named twice: {first} and {n}"));
            }
        }
        // An entry that replaced a bare name: requests for that name elsewhere in the
        // process match the library by its soname.
        if let Some(asked) = original.needed.get(i).filter(|a| !a.contains('/')) {
            if lib.info.soname.as_deref().is_some_and(|so| so != asked) {
                problems.push(format!(
                    "{n} has soname {}, but the file asked for {asked}",
                    lib.info.soname.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    problems.extend(vn_file_problems(own));

    // Drift: what a stamp made now would name, planned from what was read above.
    let read = plan::Read {
        own: Arc::new(Object {
            info: own.clone(),
            file_id,
        }),
        original: Some(original),
    };
    match plan::plan_read(resolver, policy, &real, &read) {
        Ok(p) => {
            let now = p.values();
            if now != own.needed {
                let differ: Vec<String> = (0..now.len().max(own.needed.len()))
                    .filter(|&i| now.get(i).copied() != own.needed.get(i).map(String::as_str))
                    .map(|i| {
                        format!(
                            "entry {}: stamped {}, now {}",
                            i + 1,
                            own.needed.get(i).map_or("(none)", String::as_str),
                            now.get(i).copied().unwrap_or("(none)")
                        )
                    })
                    .collect();
                problems.push(format!(
                    "drift: a fresh resolution differs from the stamp ({})",
                    differ.join("; ")
                ));
            }
        }
        Err(e) => problems.push(format!("drift: a fresh resolution fails: {e}")),
    }
    if problems.is_empty() {
        Ok(Some(
            own.needed.iter().filter(|n| n.starts_with('/')).count(),
        ))
    } else {
        Err(problems)
    }
}

/// One problem line for each `.gnu.version_r` entry whose `vn_file` is not one of `info`'s
/// DT_NEEDED strings. glibc's loader looks each `vn_file` up among the loaded objects by the
/// names they answer to and asserts when none does (the program does not start). This is
/// stricter than the loader, which also accepts a name only another object asked for; a
/// stamp rewrites each `vn_file` to the very string its DT_NEEDED entry now holds, so
/// anything else means the stamp or a later edit broke the file. The line says which entry (counted from 1, in file order), the
/// versions it asks for (which tell what library it meant), and the `vn_file` quoted (an
/// empty or odd string stays visible).
fn vn_file_problems(info: &ElfInfo) -> Vec<String> {
    info.version_needs
        .iter()
        .enumerate()
        .filter(|(_, vn)| !info.needed.contains(&vn.file))
        .map(|(i, vn)| {
            let versions = if vn.versions.is_empty() {
                String::new()
            } else {
                format!(" (for {})", vn.versions.join(", "))
            };
            format!(
                ".gnu.version_r entry {}{versions}: vn_file {:?} is not one of the DT_NEEDED strings",
                i + 1,
                vn.file
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{Class, Endian, Kind, VersionNeed};

    fn need(file: &str, versions: &[&str]) -> VersionNeed {
        VersionNeed {
            file: file.into(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// Entries that name a DT_NEEDED string pass; the others are each a line with their
    /// place in the table, their versions and the `vn_file` quoted, even when it is empty.
    #[test]
    fn each_vn_file_outside_dt_needed_is_a_line_naming_its_entry() {
        let info = ElfInfo {
            class: Class::Elf64,
            endian: Endian::Little,
            machine: 62,
            os_abi: 0,
            kind: Kind::Executable { pie: true },
            interpreter: None,
            needed: vec!["/s/libc.so.6".into(), "libm.so.6".into()],
            rpath: None,
            runpath: None,
            soname: None,
            flags_1: 0,
            version_needs: vec![
                need("/s/libc.so.6", &["GLIBC_2.34"]),
                need("libc.so.6", &["GLIBC_2.2.5", "GLIBC_2.34"]),
                need("libm.so.6", &["GLIBC_2.29"]),
                need("", &[]),
            ],
        };
        assert_eq!(
            vn_file_problems(&info),
            [
                ".gnu.version_r entry 2 (for GLIBC_2.2.5, GLIBC_2.34): vn_file \"libc.so.6\" is not one of the DT_NEEDED strings",
                ".gnu.version_r entry 4: vn_file \"\" is not one of the DT_NEEDED strings",
            ]
        );
    }
}
