//! The workspace's rules, checked on its files (like rust-analyzer's tidy tests): which crate
//! may depend on which, that only the API server reaches the store's in-process write path,
//! that every source file says what it is for, and that ARCHITECTURE.md's code map names
//! every crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The workspace members, from the root Cargo.toml.
fn members() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// A crate's name and the navarch crates it depends on (normal dependencies).
fn manifest(member: &str) -> (String, BTreeSet<String>) {
    let text = std::fs::read_to_string(root().join(member).join("Cargo.toml")).unwrap();
    let mut name = String::new();
    let mut deps = BTreeSet::new();
    let mut section = "";
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            section = if l == "[dependencies]" {
                "deps"
            } else if l == "[package]" {
                "package"
            } else {
                ""
            };
            continue;
        }
        match section {
            "package" if l.starts_with("name") => {
                name = l.split('"').nth(1).unwrap_or("").to_string();
            }
            "deps" if l.starts_with("navarch-") => {
                let dep = l.split(['.', ' ', '=']).next().unwrap_or("");
                deps.insert(dep.to_string());
            }
            _ => {}
        }
    }
    (name, deps)
}

/// What each crate may depend on among navarch's: the layers of ARCHITECTURE.md.
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("navarch-net", &[][..]),
        ("navarch-store", &["navarch-net"][..]),
        ("navarch-actors", &["navarch-net"][..]),
        ("navarch-model", &[][..]),
        ("navarch-client", &["navarch-model", "navarch-net"][..]),
        ("navarch-logic", &["navarch-model"][..]),
        ("navarch-sim", &["navarch-logic", "navarch-model"][..]),
        (
            "navarch-controllers",
            &[
                "navarch-actors",
                "navarch-client",
                "navarch-logic",
                "navarch-model",
            ][..],
        ),
        (
            "navarch-apiserver",
            &[
                "navarch-actors",
                "navarch-client",
                "navarch-model",
                "navarch-net",
                "navarch-store",
            ][..],
        ),
        (
            "navarch-agent",
            &[
                "navarch-actors",
                "navarch-client",
                "navarch-logic",
                "navarch-model",
                "navarch-net",
                "navarch-runtime",
            ][..],
        ),
        ("navarch-runtime", &[][..]),
        (
            "navarch-bench",
            &[
                "navarch-actors",
                "navarch-agent",
                "navarch-client",
                "navarch-model",
                "navarch-net",
                "navarch-sim",
                "navarch-store",
            ][..],
        ),
        (
            "navarch-bins",
            &[
                "navarch-actors",
                "navarch-agent",
                "navarch-apiserver",
                "navarch-bench",
                "navarch-client",
                "navarch-controllers",
                "navarch-logic",
                "navarch-model",
                "navarch-net",
                "navarch-runtime",
                "navarch-store",
            ][..],
        ),
        (
            "navarch-tests",
            &[
                "navarch-agent",
                "navarch-client",
                "navarch-model",
                "navarch-net",
                "navarch-runtime",
                "navarch-store",
            ][..],
        ),
    ])
}

#[test]
fn crates_depend_only_on_the_layers_below_them() {
    let rules = allowed();
    let mut seen = BTreeSet::new();
    for m in members() {
        let (name, deps) = manifest(&m);
        let allowed: BTreeSet<String> = rules
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} ({m}) has no rule in the tidy test: add one"))
            .iter()
            .map(|s| s.to_string())
            .collect();
        let extra: Vec<&String> = deps.difference(&allowed).collect();
        assert!(extra.is_empty(), "{name} may not depend on {extra:?}");
        seen.insert(name);
    }
    assert_eq!(seen.len(), rules.len(), "rules for crates that are gone");
    // Of the libraries under actors/, only the API server reaches the store.
    for m in members().iter().filter(|m| m.starts_with("actors")) {
        let (name, deps) = manifest(m);
        if name != "navarch-apiserver" {
            assert!(
                !deps.contains("navarch-store"),
                "{name} depends on the store"
            );
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            if !(name == "target" || name.starts_with('.')) {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for m in members() {
        rust_files(&root().join(m), &mut files);
    }
    files.sort();
    files.dedup();
    files
}

#[test]
fn every_source_file_opens_with_what_it_is_for() {
    let missing: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:#?}");
}

#[test]
fn only_the_api_server_uses_the_stores_in_process_write_path() {
    // The member's read and write methods: only the API server calls them. The binary
    // starts and stops the member (wiring); tests and benchmarks use the admin QUIC client.
    let uses = [
        ".write(Txn",
        "member.write(",
        "member.get(",
        "member.list(",
        "member.watch(",
        "member().write(",
        "member().get(",
        "member().list(",
    ];
    let mut offenders = Vec::new();
    for p in all_rust_files() {
        let rel = p.strip_prefix(root()).unwrap().display().to_string();
        if rel.starts_with("actors/apiserver/")
            || rel.starts_with("store/")
            || rel == "tests/tests/tidy.rs"
        {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for u in uses {
            if text.contains(u) {
                offenders.push(format!("{rel}: {u}"));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
    // And bins holds no API server code: no HTTP handlers, no object rules applied there.
    let mut bins = Vec::new();
    rust_files(&root().join("bins/src"), &mut bins);
    for p in bins {
        let text = std::fs::read_to_string(&p).unwrap();
        for forbidden in [
            "HttpResponse",
            "web::Payload",
            "validate::decode",
            "validate::validate_",
            "authz::Authorizer",
            "guaranteed_update",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}: API server code belongs in actors/apiserver",
                p.display()
            );
        }
    }
}

#[test]
fn the_architecture_code_map_names_every_crate() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for m in members() {
        let (name, _) = manifest(&m);
        assert!(
            arch.contains(&format!("`{m}/`")) && arch.contains(&format!("`{name}`")),
            "ARCHITECTURE.md's code map has no section for {m}/ ({name})"
        );
    }
}
