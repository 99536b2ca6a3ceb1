//! `cargo xtask fuzz`: every fuzz target of `fuzz/` (cargo-fuzz, libFuzzer) for a fixed
//! number of inputs, starting from its seeds: the committed `fuzz/seeds/TARGET` and the test
//! data the target's format already has in the repository. cargo-fuzz and the fuzz build live
//! in the user cache directory, so a second run on the same machine starts at once; a fresh
//! machine builds both (several minutes). The corpus grows in `target/fuzz/corpus/TARGET`.
//! `cargo xtask fuzz TARGET --runs 0` runs one target until stopped.

use crate::cmd::{cache_dir, err, output, project_root, run, Error, Result};
use std::path::PathBuf;
use std::process::Command;

/// Inputs per target in a CI run.
pub const CI_RUNS: u32 = 20_000;

/// The pinned cargo-fuzz.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Every target: its name and the repository directories (besides `fuzz/seeds/NAME`) whose
/// files are seeds for it.
pub const TARGETS: &[(&str, &[&str])] = &[
    ("http", &[]),
    ("front", &[]),
    ("memory_files", &[]),
    ("eif", &["eif-builder/tests/data/golden"]),
    ("cpio", &["eif-builder/tests/data/golden"]),
    ("attestation", &["eif-builder/tests/data/attestation"]),
    ("measurements", &["eif-builder/tests/data/attestation"]),
    ("pem_der", &["eif-builder/tests/data"]),
    ("relay_address", &[]),
    ("image", &["rootfs", "examples/hello", "examples/oci"]),
    ("cms", &["server/tests/data/cms"]),
    ("client_response", &[]),
];

fn cargo_fuzz() -> Result<PathBuf> {
    let nightly = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !nightly.lines().any(|l| l.starts_with("nightly")) {
        return err("the fuzz run needs a nightly toolchain (`rustup toolchain install nightly`)");
    }
    let tools = cache_dir().join("tools");
    let cargo_fuzz = tools.join("bin/cargo-fuzz");
    let installed = output(Command::new(&cargo_fuzz).arg("--version")).unwrap_or_default();
    if !installed.contains(CARGO_FUZZ_VERSION) {
        run(Command::new("cargo")
            .args([
                "+nightly",
                "install",
                "--locked",
                "cargo-fuzz",
                "--version",
                CARGO_FUZZ_VERSION,
                "--root",
            ])
            .arg(&tools))?;
    }
    Ok(cargo_fuzz)
}

/// Runs `target` for `runs` inputs (0: until stopped); any crash fails.
pub fn run_target(target: &str, runs: u32) -> Result {
    let Some((_, extra)) = TARGETS.iter().find(|(n, _)| *n == target) else {
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        return err(format!(
            "no fuzz target `{target}`; they are: {}",
            names.join(", ")
        ));
    };
    let cargo_fuzz = cargo_fuzz()?;
    let root = project_root();
    let corpus = root.join("target/fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| Error(format!("{}: {e}", corpus.display())))?;
    let mut cmd = Command::new(&cargo_fuzz);
    cmd.current_dir(&root)
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .env("CARGO_TARGET_DIR", cache_dir().join("fuzz-target"))
        .args(["fuzz", "run", "--fuzz-dir", "fuzz", target])
        .arg(&corpus);
    let seeds = root.join("fuzz/seeds").join(target);
    if seeds.is_dir() {
        cmd.arg(seeds);
    }
    for dir in *extra {
        cmd.arg(root.join(dir));
    }
    cmd.arg("--").arg(format!("-runs={runs}"));
    run(&mut cmd)?;
    if runs > 0 {
        println!("fuzz: {target}: {runs} inputs, no crash");
    }
    Ok(())
}

/// The short run of `cargo xtask test`: every target for [`CI_RUNS`] inputs.
pub fn short_run() -> Result {
    for (target, _) in TARGETS {
        run_target(target, CI_RUNS)?;
    }
    println!(
        "fuzz: {} targets, {CI_RUNS} inputs each, no crash",
        TARGETS.len()
    );
    Ok(())
}
