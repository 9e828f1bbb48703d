//! Replays saved fuzz inputs through the fuzz targets' own entry points with a plain
//! `cargo test` (no cargo-fuzz, no nightly, no root):
//!
//! - every file under `testdata/fuzz-crashes/<target>/`: inputs that once crashed a target
//!   (saved by `integration/scripts/fuzz.sh`); a fixed crash stays fixed;
//! - every seed under `integration/fuzz/corpus/<target>/`, so the targets' invariants hold on
//!   the repository's own test data on every run.
//!
//! A file in a directory that names no target fails the test (a typo would otherwise hide it).

// Test helpers stop the test loudly, as the harness does.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod entries;

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration lives in the workspace")
        .to_path_buf()
}

/// `(target, file)` for every file under `root/<target>/`.
fn inputs(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root) else {
        return out;
    };
    for dir in dirs.flatten() {
        let target = dir.file_name().to_string_lossy().into_owned();
        if !dir.path().is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .expect("read a target directory")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (target.clone(), f)));
    }
    out.sort();
    out
}

/// Runs every input; collects the ones that panic (with the panic text) instead of stopping
/// at the first.
fn replay(root: &Path) -> usize {
    let all = inputs(root);
    let mut failures = Vec::new();
    for (target, file) in &all {
        let Some((_, entry)) = entries::TARGETS.iter().find(|(name, _)| name == target) else {
            failures.push(format!(
                "{}: no fuzz target named {target:?}",
                file.display()
            ));
            continue;
        };
        let data = std::fs::read(file).expect("read a fuzz input");
        if let Err(panic) = std::panic::catch_unwind(|| entry(&data)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{} [{target}]: {why}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs fail:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    all.len()
}

#[test]
fn saved_crashes_stay_fixed() {
    let n = replay(&workspace().join("testdata/fuzz-crashes"));
    eprintln!("replayed {n} saved crash input(s)");
}

#[test]
fn seed_corpora_pass_every_target() {
    let n = replay(&workspace().join("integration/fuzz/corpus"));
    assert!(
        n > 100,
        "only {n} seeds found: is integration/fuzz/corpus missing?"
    );
}

#[test]
fn every_target_has_seeds() {
    for (name, _) in entries::TARGETS {
        let dir = workspace().join("integration/fuzz/corpus").join(name);
        let count = std::fs::read_dir(&dir).map_or(0, Iterator::count);
        assert!(count > 0, "no seeds in {}", dir.display());
    }
}
