//! Checks on a built image, run by `cargo xtask test`: the image describes cleanly with the
//! PCRs that were published, stays within its size budget, its binaries are static, and a
//! second build from a copy of the sources at another path gives the same bytes.

use crate::cmd::{cargo, err, output, project_root, run, sha256_file, Context, Result};
use crate::eif::{self, json_bool, json_string, Image};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The only crates host-relay may link: it runs on the untrusted parent and must never hold a
/// TLS or crypto library (nor anything that could bring one in).
const RELAY_CRATES: &[&str] = &["host-relay", "contract", "libc"];

/// Checks host-relay's dependency tree (normal dependencies) against [`RELAY_CRATES`].
pub fn relay_links_no_crypto() -> Result {
    let tree = output(cargo().current_dir(project_root()).args([
        "tree",
        "--locked",
        "-p",
        "host-relay",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]))?;
    let mut extra: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| !RELAY_CRATES.contains(name))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    if extra.is_empty() {
        println!(
            "host-relay links only {}: no TLS or crypto crate",
            RELAY_CRATES.join(", ")
        );
        Ok(())
    } else {
        err(format!(
            "host-relay must link no TLS or crypto crate, and now also links: {}",
            extra.join(", ")
        ))
    }
}

/// A named check and its outcome.
pub type Outcome = (String, std::result::Result<(), String>);

/// Runs every check on `image`, prints one line each and a closing count.
pub fn image(image: &Image, tool: &Path) -> Result {
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut check = |name: &str, r: Result| outcomes.push((name.to_owned(), r.map_err(|e| e.0)));

    check(
        "describe: CheckCRC true and PCRs equal measurements.json",
        describe_matches(image, tool),
    );
    let size = |p: &Path| fs::metadata(p).map_or(u64::MAX, |m| m.len());
    let app = size(&image.dir.join("app.cpio"));
    check(
        "app ramdisk within 4 MiB",
        budget(app, eif::APP_RAMDISK_LIMIT, "app.cpio"),
    );
    check(
        "enclave.eif within 8 MiB",
        budget(size(&image.eif), eif::EIF_LIMIT, "enclave.eif"),
    );
    for b in &image.binaries {
        check(
            &format!("{} is statically linked", b.display()),
            eif::check_static(b),
        );
    }
    report("image checks", &outcomes)
}

fn budget(size: u64, limit: u64, what: &str) -> Result {
    if size <= limit {
        Ok(())
    } else {
        err(format!(
            "{what} is {size} bytes, over its budget of {limit}"
        ))
    }
}

fn describe_matches(image: &Image, tool: &Path) -> Result {
    let described = output(Command::new(tool).arg("describe").arg(&image.eif))?;
    let published =
        fs::read_to_string(&image.measurements).ctx(|| "reading measurements.json".into())?;
    if json_bool(&described, "CheckCRC") != Some(true) {
        return err(format!(
            "describe does not report CheckCRC true:\n{described}"
        ));
    }
    for pcr in ["PCR0", "PCR1", "PCR2"] {
        let (d, p) = (json_string(&described, pcr), json_string(&published, pcr));
        if d.is_none() || d != p {
            return err(format!(
                "{pcr}: describe says {d:?}, measurements.json says {p:?}"
            ));
        }
    }
    Ok(())
}

/// Prints the outcomes and a closing `N passed, M failed` line; fails if any failed.
pub fn report(what: &str, outcomes: &[Outcome]) -> Result {
    let mut failed = 0;
    for (name, r) in outcomes {
        match r {
            Ok(()) => println!("ok     {name}"),
            Err(e) => {
                failed += 1;
                println!("FAILED {name}: {e}");
            }
        }
    }
    println!(
        "{what}: {} passed, {failed} failed",
        outcomes.len() - failed
    );
    if failed == 0 {
        Ok(())
    } else {
        err(format!("{failed} {what} failed"))
    }
}

/// Copies the sources (tracked and untracked-but-not-ignored files, as they are in the work
/// tree) to a directory at another path, builds the image there with its own target dir,
/// and compares every artifact with ours.
pub fn reproducible(image: &Image) -> Result {
    let root = project_root();
    let base = std::env::temp_dir().join("enclave-https-repro");
    let copy = base.join("another").join("checkout");
    if base.exists() {
        fs::remove_dir_all(&base).ctx(|| format!("removing {}", base.display()))?;
    }
    let files = output(Command::new("git").current_dir(&root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))?;
    for rel in files.split('\0').filter(|f| !f.is_empty()) {
        let from = root.join(rel);
        if !from.exists() {
            continue; // deleted in the work tree
        }
        let to = copy.join(rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
        }
        fs::copy(&from, &to).ctx(|| format!("copying {rel}"))?;
    }
    eprintln!("repro: building a second time in {}", copy.display());
    run(cargo()
        .current_dir(&copy)
        .args(["xtask", "eif"])
        .env_remove("CARGO_TARGET_DIR"))?;
    let other = copy.join("target/eif");
    let mut outcomes: Vec<Outcome> = Vec::new();
    let names = [
        "enclave.eif",
        "measurements.json",
        "bootstrap.cpio",
        "app.cpio",
    ];
    let pairs = names
        .iter()
        .map(|n| (n.to_string(), image.dir.join(n), other.join(n)))
        .chain(image.binaries.iter().map(|b| {
            let name = b
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let theirs = copy
                .join("target/x86_64-unknown-linux-musl/enclave")
                .join(&name);
            (name, b.clone(), theirs)
        }));
    for (name, ours, theirs) in pairs.collect::<Vec<(String, PathBuf, PathBuf)>>() {
        let r = (|| -> Result {
            let (a, b) = (sha256_file(&ours)?, sha256_file(&theirs)?);
            if a == b {
                Ok(())
            } else {
                err(format!("sha256 {a} here, {b} in {}", theirs.display()))
            }
        })();
        outcomes.push((
            format!("{name} identical when built at another path"),
            r.map_err(|e| e.0),
        ));
    }
    let result = report("reproducibility checks", &outcomes);
    if result.is_ok() {
        let _ = fs::remove_dir_all(&base);
    } else {
        eprintln!(
            "repro: the second build is kept in {} for comparison",
            copy.display()
        );
    }
    result
}
