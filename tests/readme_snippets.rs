//! Every Nix snippet of the README, evaluated exactly as printed: each fenced ```nix block
//! after a `<!-- snippet: NAME -->` comment, against the stand-in nixpkgs
//! (`tests/nix/nixpkgs-standin`) with the flake inputs overridden to local copies. And every
//! `use:` example of the hook's header is valid Nix inside a derivation's attributes.

mod common;

use common::{flake_copy, nixpkgs_standin, repo, NIX_CONFIG};

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

/// The README's marked snippets: (name, text), in order.
fn snippets() -> Vec<(String, String)> {
    let readme = include_str!("../README.md");
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("<!-- snippet: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```nix"),
            "snippet {name}: no ```nix block"
        );
        let mut text = String::new();
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            text += l;
            text += "\n";
        }
        out.push((name.to_string(), text));
    }
    out
}

fn snippet(name: &str) -> String {
    snippets()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("README has no snippet {name}"))
        .1
}

/// Evaluates `attr` of the snippet `name` saved as a flake, its `nixpkgs` the stand-in and its
/// `shrinkwrap` this repository; returns the JSON.
fn eval_flake_snippet(name: &str, attr: &str, apply: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flake.nix"), snippet(name)).unwrap();
    let (_copy, shrinkwrap) = flake_copy();
    let standin = nixpkgs_standin();
    let target = format!("path:{}#{attr}", dir.path().display());
    let (ok, out, err) = nix(&[
        "eval",
        "--json",
        &target,
        "--apply",
        apply,
        "--no-write-lock-file",
        "--override-input",
        "nixpkgs",
        &standin,
        "--override-input",
        "shrinkwrap",
        &shrinkwrap,
    ]);
    assert!(ok, "snippet {name}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_readme_marks_its_nix_snippets() {
    let names: Vec<String> = snippets().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["derivation", "flake", "stamp-all"]);
    // Every ```nix block of the README is one of them.
    let blocks = include_str!("../README.md").matches("```nix\n").count();
    assert_eq!(blocks, names.len());
}

#[test]
fn derivation_snippet_evaluates_with_the_overlay() {
    if !have("nix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("package.nix");
    std::fs::write(&file, snippet("derivation")).unwrap();
    let expr = format!(
        r#"let
          pkgs = import {standin} {{ overlays = [ (import {overlay}) ]; }};
          p = pkgs.callPackage {file} {{ }};
        in {{
          name = p.name;
          native = map (d: d.name) p.nativeBuildInputs;
          inputs = map (d: d.name) p.buildInputs;
          inherit (p) shrinkwrapKeep shrinkwrapAllowMissing shrinkwrapFlags;
        }}"#,
        standin = repo().join("tests/nix/nixpkgs-standin").display(),
        overlay = repo().join("nix/overlay.nix").display(),
        file = file.display(),
    );
    let (ok, out, err) = nix(&["eval", "--impure", "--json", "--expr", &expr]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "app-1.0");
    assert_eq!(v["native"], serde_json::json!(["shrinkwrap-hook"]));
    assert_eq!(v["inputs"], serde_json::json!(["zlib"]));
    assert_eq!(v["shrinkwrapKeep"], serde_json::json!(["libvulkan.so*"]));
    assert_eq!(
        v["shrinkwrapAllowMissing"],
        serde_json::json!(["libjack.so.0"])
    );
    assert_eq!(v["shrinkwrapFlags"], serde_json::json!(["--programs-only"]));
}

#[test]
fn flake_snippet_evaluates() {
    if !have("nix") {
        return;
    }
    let v = eval_flake_snippet(
        "flake",
        "packages.x86_64-linux.hello",
        "p: map (d: d.name) p.nativeBuildInputs",
    );
    assert_eq!(v, serde_json::json!(["shrinkwrap-hook"]));
}

#[test]
fn stamp_all_snippet_evaluates() {
    if !have("nix") {
        return;
    }
    let v = eval_flake_snippet(
        "stamp-all",
        "legacyPackages.x86_64-linux",
        "p: { stdenv = map (d: d.name) p.stdenv.extraNativeBuildInputs; tool = p.shrinkwrap.name; }",
    );
    assert_eq!(v["stdenv"], serde_json::json!(["shrinkwrap-hook"]));
    assert_eq!(v["tool"], "shrinkwrap-0.1.0");
}

/// The hook's `use:` examples: each one, as printed, inside a derivation's attributes.
#[test]
fn every_hook_use_line_is_valid_nix() {
    let hook = include_str!("../hooks/shrinkwrap-hook.sh");
    let uses: Vec<&str> = hook
        .lines()
        .filter_map(|l| l.split_once("use: ").map(|(_, u)| u))
        .collect();
    // Every option and function the header documents has its example.
    for name in [
        "dontShrinkwrap",
        "shrinkwrapKeep",
        "shrinkwrapAllowMissing",
        "shrinkwrapFlags",
        "shrinkwrapStoreDir",
        "addShrinkwrapSearchPath",
        "shrinkwrapFixup",
    ] {
        assert!(uses.iter().any(|u| u.contains(name)), "no use: for {name}");
    }
    if !have("nix-instantiate") {
        return;
    }
    for u in uses {
        let expr = format!("{{ {u} }}");
        let out = run(Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--expr", &expr])
            .env("NIX_CONFIG", NIX_CONFIG));
        assert!(
            out.status.success(),
            "{u}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
