//! The short fuzz run of `cargo xtask test`: the server's request parsing and handling
//! (`server/fuzz`, target `http`) for a fixed number of inputs, starting from the committed
//! seeds. cargo-fuzz and the fuzz build live in the user cache directory, so a second run on
//! the same machine starts at once; a fresh machine builds both (several minutes).

use crate::cmd::{cache_dir, err, output, project_root, run, Result};
use std::process::Command;

/// Inputs per CI run; `cargo +nightly fuzz run http` runs without a limit on demand.
pub const CI_RUNS: u32 = 20_000;

/// The pinned cargo-fuzz.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Runs the `http` fuzz target for [`CI_RUNS`] inputs; any crash fails.
pub fn short_run() -> Result {
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
    let fuzz = project_root().join("server/fuzz");
    let corpus = fuzz.join("corpus/http");
    std::fs::create_dir_all(&corpus)
        .map_err(|e| crate::cmd::Error(format!("{}: {e}", corpus.display())))?;
    run(Command::new(&cargo_fuzz)
        .current_dir(project_root().join("server"))
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .env("CARGO_TARGET_DIR", cache_dir().join("fuzz-target"))
        .args(["fuzz", "run", "http"])
        .arg(&corpus)
        .arg(fuzz.join("seeds/http"))
        .arg("--")
        .arg(format!("-runs={CI_RUNS}")))?;
    println!("fuzz: {CI_RUNS} inputs through the server's request handling, no crash");
    Ok(())
}
