//! The flake, overlays and Nix files, evaluated by a real Nix against a stand-in nixpkgs
//! (`tests/nix/nixpkgs-standin`): nixpkgs cannot be fetched here, and current nixpkgs needs a
//! newer Nix than Debian's.

mod common;

use common::{flake_copy, nixpkgs_standin, repo, NIX_CONFIG};

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, run};
use serde_json::Value;

fn nix(args: &[&str]) -> (bool, String, String) {
    let out = run(Command::new("nix").args(args).env("NIX_CONFIG", NIX_CONFIG));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_standin<'a>(args: &[&'a str], standin: &'a str) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend([
        "--no-write-lock-file",
        "--override-input",
        "nixpkgs",
        standin,
    ]);
    v
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if p.is_dir() {
            nix_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "nix") {
            out.push(p);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    if !have("nix-instantiate") {
        return;
    }
    let mut files = Vec::new();
    nix_files(&repo(), &mut files);
    assert!(files.len() >= 7, "{files:?}");
    for f in files {
        let out = run(Command::new("nix-instantiate").arg("--parse").arg(&f));
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn flake_shows_its_outputs_and_passes_check() {
    if !have("nix") {
        return;
    }
    let (_tmp, url) = flake_copy();
    let standin = nixpkgs_standin();
    let (ok, out, err) = nix(&with_standin(&["flake", "show", "--json", &url], &standin));
    assert!(ok, "{err}");
    let show: Value = serde_json::from_str(&out).unwrap();
    for system in ["x86_64-linux", "aarch64-linux"] {
        for pkg in ["default", "shrinkwrap", "shrinkwrapHook"] {
            assert_eq!(
                show["packages"][system][pkg]["type"], "derivation",
                "{pkg} on {system}"
            );
        }
        assert_eq!(show["apps"][system]["default"]["type"], "app");
        assert_eq!(show["checks"][system]["hook"]["type"], "derivation");
        assert_eq!(show["devShells"][system]["default"]["type"], "derivation");
        assert_eq!(show["formatter"][system]["type"], "derivation");
    }
    assert_eq!(show["overlays"]["default"]["type"], "nixpkgs-overlay");
    assert_eq!(show["overlays"]["stampAll"]["type"], "nixpkgs-overlay");
    assert_eq!(
        show["packages"]["x86_64-linux"]["shrinkwrap"]["name"],
        "shrinkwrap-0.1.0"
    );

    // `nix flake check` insists on the `final: prev:` overlay shape, among other things.
    let (ok, _, err) = nix(&with_standin(
        &["flake", "check", "--no-build", &url],
        &standin,
    ));
    assert!(ok, "{err}");
}

#[test]
fn app_program_and_package_metadata_evaluate() {
    if !have("nix") {
        return;
    }
    let (_tmp, url) = flake_copy();
    let standin = nixpkgs_standin();
    let app = format!("{url}#apps.x86_64-linux.default.program");
    let (ok, out, err) = nix(&with_standin(&["eval", "--raw", &app], &standin));
    assert!(ok, "{err}");
    assert!(
        out.starts_with("/nix/store/") && out.ends_with("-shrinkwrap-0.1.0/bin/shrinkwrap"),
        "{out}"
    );

    let meta = format!("{url}#packages.x86_64-linux.shrinkwrap.meta");
    let (ok, out, err) = nix(&with_standin(&["eval", "--json", &meta], &standin));
    assert!(ok, "{err}");
    let meta: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(meta["mainProgram"], "shrinkwrap");
    assert!(meta["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(
        meta["platforms"],
        serde_json::json!(["x86_64-linux", "aarch64-linux"])
    );

    let desc = format!("{url}#apps.x86_64-linux.default.meta.description");
    let (ok, out, err) = nix(&with_standin(&["eval", "--raw", &desc], &standin));
    assert!(ok && !out.is_empty(), "{err}");
}

#[test]
fn overlays_evaluate_without_recursion() {
    if !have("nix") {
        return;
    }
    let r = repo();
    let expr = format!(
        r#"let
          standin = {standin};
          pkgs = import standin {{ overlays = [ (import {overlay}) ]; }};
          all = import standin {{ overlays = [ (import {overlay}) (import {stamp_all}) ]; }};
          stamped = pkgs.shrinkwrapPackage pkgs.hello;
        in {{
          hook = pkgs.shrinkwrapHook.name;
          hookPropagates = map (d: d.name) pkgs.shrinkwrapHook.propagatedBuildInputs;
          stampedInputs = map (d: d.name) stamped.nativeBuildInputs;
          allStdenv = map (d: d.name) all.stdenv.extraNativeBuildInputs;
          allTool = all.shrinkwrap.name;
          allHookIsTheStdenvOne =
            all.shrinkwrapHook.drvPath == (builtins.head all.stdenv.extraNativeBuildInputs).drvPath;
        }}"#,
        standin = r.join("tests/nix/nixpkgs-standin").display(),
        overlay = r.join("nix/overlay.nix").display(),
        stamp_all = r.join("nix/stamp-all.nix").display(),
    );
    let (ok, out, err) = nix(&["eval", "--impure", "--json", "--expr", &expr]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hook"], "shrinkwrap-hook");
    assert_eq!(v["hookPropagates"], serde_json::json!(["shrinkwrap-0.1.0"]));
    assert_eq!(v["stampedInputs"], serde_json::json!(["shrinkwrap-hook"]));
    // The whole-set overlay puts the hook into stdenv, and the tool still evaluates: it is
    // built from an unmodified import, not with itself.
    assert_eq!(v["allStdenv"], serde_json::json!(["shrinkwrap-hook"]));
    assert_eq!(v["allTool"], "shrinkwrap-0.1.0");
    // With both overlays, the set's hook is the one in stdenv: built once, loaded once.
    assert_eq!(v["allHookIsTheStdenvOne"], true);
}

/// `nix flake metadata`'s store path of a flake's source.
fn source_path(url: &str) -> PathBuf {
    let standin = nixpkgs_standin();
    let (ok, out, err) = nix(&with_standin(
        &["flake", "metadata", "--json", url],
        &standin,
    ));
    assert!(ok, "{url}: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    PathBuf::from(v["path"].as_str().unwrap())
}

/// The package's derivation, evaluated with import-from-derivation forbidden.
fn package_drv(url: &str, standin: &str) -> String {
    let attr = format!("{url}#packages.x86_64-linux.shrinkwrap.drvPath");
    let mut args = with_standin(&["eval", "--raw", &attr], standin);
    args.extend(["--option", "allow-import-from-derivation", "false"]);
    let (ok, out, err) = nix(&args);
    assert!(ok, "{url}: {err}");
    out
}

/// What the README says about referring to a checkout: a `git+file:` flake's source holds its
/// tracked files only (no `target/`), a `path:` one everything; the package's `src` is a file
/// set, so a `target/` in a `path:` copy does not change its derivation; and evaluating it
/// from either needs no import-from-derivation.
#[test]
fn git_file_reference_leaves_target_out_and_src_is_filtered() {
    if !have("nix") || !have("git") {
        return;
    }
    let standin = nixpkgs_standin();
    let (tmp, path_url) = flake_copy();
    let clean = package_drv(&path_url, &standin);
    assert!(
        clean.starts_with("/nix/store/") && clean.ends_with(".drv"),
        "{clean}"
    );
    // Its src is the file set alone.
    let src_attr = format!("{path_url}#packages.x86_64-linux.shrinkwrap.src");
    let (ok, src, err) = nix(&with_standin(&["eval", "--raw", &src_attr], &standin));
    assert!(ok, "{err}");
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Cargo.lock", "Cargo.toml", "src"], "{src}");

    // A build directory in the checkout, untracked (as .gitignore has it).
    let target = tmp.path().join("target/debug");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("junk"), vec![7u8; 1 << 20]).unwrap();
    std::fs::copy(repo().join(".gitignore"), tmp.path().join(".gitignore")).unwrap();
    assert_eq!(
        package_drv(&path_url, &standin),
        clean,
        "target/ changed the package"
    );
    assert!(source_path(&path_url).join("target/debug/junk").exists());

    let git = |args: &[&str]| {
        let o = run(Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(tmp.path()));
        assert!(o.status.success(), "git {args:?}: {o:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "snapshot"]);
    let git_url = format!("git+file://{}", tmp.path().display());
    let source = source_path(&git_url);
    assert!(source.join("flake.nix").exists(), "{}", source.display());
    assert!(source.join("Cargo.toml").exists(), "{}", source.display());
    assert!(!source.join("target").exists(), "{}", source.display());
    assert_eq!(package_drv(&git_url, &standin), clean);
}

/// The package runs the library's unit tests in its build (not `doCheck = false`).
#[test]
fn package_runs_the_unit_tests() {
    if !have("nix") {
        return;
    }
    let (_tmp, url) = flake_copy();
    let standin = nixpkgs_standin();
    let attr = format!("{url}#packages.x86_64-linux.shrinkwrap");
    let expr = "p: { doCheck = p.doCheck or true; flags = p.cargoTestFlags or [ ]; }";
    let (ok, out, err) = nix(&with_standin(
        &["eval", "--json", &attr, "--apply", expr],
        &standin,
    ));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["doCheck"], true, "{v}");
    assert_eq!(v["flags"], serde_json::json!(["--lib"]), "{v}");
}
