//! Golden files: our writers must reproduce the committed cpio archives, EIF and measurements byte for byte.
//!
//! Inputs live in `tests/data/golden/` (`boot.list`, `app.list` and the files they name, and
//! `kernel.bin`, a 4 KiB fake bzImage); the expected outputs beside them are `boot.cpio`,
//! `app.cpio`, `golden.eif` and `golden.measurements.json`.
//!
//! To regenerate the outputs after an intended format change, run
//! `UPDATE_GOLDEN=1 CARGO_TARGET_DIR=/tmp/eifb-target cargo test -p eif-builder --test golden`
//! and review the diff. Note that the EIF's metadata records this crate's version
//! (`BuildToolVersion`), so a version bump changes `golden.eif` (and nothing else: the metadata
//! is not measured, so the measurements stay put).

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test crate holds nothing but tests"
)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::*;
use eif_builder::cpio::list;
use eif_builder::eif::kernel_version_of;
use eif_builder::{time, Archive, Blob, EifBuilder, Identity};

const CMDLINE_GOLDEN: &str =
    "reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on";

fn golden_dir() -> PathBuf {
    data_dir().join("golden")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compares `actual` with the golden file `name`, or rewrites it under UPDATE_GOLDEN=1.
fn check_golden(name: &str, actual: &[u8]) {
    let path = golden_dir().join(name);
    if updating() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from what we produce now ({} vs {} bytes); if intended, regenerate with UPDATE_GOLDEN=1",
        path.display(),
        expected.len(),
        actual.len()
    );
}

fn cpio_from_list(name: &str) -> Vec<u8> {
    let defines = BTreeMap::from([("INIT".to_string(), "init".to_string())]);
    let mut archive = Archive::new(0);
    list::add_list(&mut archive, &golden_dir().join(name), &defines).unwrap();
    archive.to_bytes().unwrap()
}

fn kernel_path() -> PathBuf {
    let path = golden_dir().join("kernel.bin");
    if updating() {
        std::fs::write(&path, fake_kernel(4096, "6.12.117")).unwrap();
    }
    path
}

#[test]
fn cpio_archives_match_golden() {
    check_golden("boot.cpio", &cpio_from_list("boot.list"));
    check_golden("app.cpio", &cpio_from_list("app.list"));
}

#[test]
fn eif_and_measurements_match_golden() {
    let kernel = Blob::Path(kernel_path());
    let mut identity = Identity::new("golden", "1.0", time::rfc3339_from_unix(0).unwrap());
    identity.build.kernel_version = kernel_version_of(&kernel).unwrap();
    assert_eq!(identity.build.kernel_version, "6.12.117");
    let builder = EifBuilder::new(kernel, CMDLINE_GOLDEN, identity)
        .ramdisk(Blob::from(cpio_from_list("boot.list")))
        .ramdisk(Blob::from(cpio_from_list("app.list")));
    let mut out = std::io::Cursor::new(Vec::new());
    let measurements = builder.write_to(&mut out).unwrap();
    let eif = out.into_inner();
    check_golden("golden.eif", &eif);
    check_golden(
        "golden.measurements.json",
        measurements.to_json().as_bytes(),
    );

    let (p0, p1, p2) = independent_pcrs(&eif);
    assert_eq!(
        (p0, p1, p2),
        (
            hex(&measurements.pcr0),
            hex(&measurements.pcr1),
            hex(&measurements.pcr2)
        )
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.env_remove("SOURCE_DATE_EPOCH").output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command line, run as xtask would run it, produces the same golden files.
#[test]
fn cli_reproduces_golden() {
    if updating() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_eif-builder");
    let g = golden_dir();
    let out = |name: &str| tmp.path().join(name);
    for (list_file, cpio) in [("boot.list", "boot.cpio"), ("app.list", "app.cpio")] {
        run(Command::new(bin)
            .args(["cpio", "--define", "INIT=init", "--list"])
            .arg(g.join(list_file))
            .arg("--output")
            .arg(out(cpio)));
        assert_eq!(
            std::fs::read(out(cpio)).unwrap(),
            std::fs::read(g.join(cpio)).unwrap(),
            "{cpio}"
        );
    }
    run(Command::new(bin)
        .args([
            "build",
            "--cmdline",
            CMDLINE_GOLDEN,
            "--name",
            "golden",
            "--kernel",
        ])
        .arg(kernel_path())
        .arg("--ramdisk")
        .arg(out("boot.cpio"))
        .arg("--ramdisk")
        .arg(out("app.cpio"))
        .arg("--output")
        .arg(out("golden.eif"))
        .arg("--measurements")
        .arg(out("m.json")));
    assert!(
        std::fs::read(out("golden.eif")).unwrap() == std::fs::read(g.join("golden.eif")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(out("m.json")).unwrap(),
        std::fs::read_to_string(g.join("golden.measurements.json")).unwrap()
    );
}
