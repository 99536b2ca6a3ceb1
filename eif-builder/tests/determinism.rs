//! Reproducibility: the same tree, checked out twice with different umask, modes and mtimes, gives the same cpio bytes.

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test crate holds nothing but tests"
)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use eif_builder::cpio::{reader::read_cpio, tree::add_tree};
use eif_builder::Archive;

const BIN: &str = env!("CARGO_BIN_EXE_eif-builder");

/// Makes the tree with a shell under `umask` (files created in the order given).
fn make_tree(root: &Path, umask: &str, reverse: bool) {
    let mut steps = [
        "mkdir -p bin etc/app lib",
        "printf 'binary' > bin/app && chmod +x bin/app",
        "printf 'conf' > etc/app/app.conf",
        "printf 'motd' > etc/motd",
        "ln -s app bin/sh",
        "printf 'lib' > lib/libx.so",
    ];
    if reverse {
        steps[1..].reverse();
    }
    let script = format!(
        "umask {umask} && cd '{}' && {}",
        root.display(),
        steps.join(" && ")
    );
    let status = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(status.success());
}

fn archive_of(root: &Path) -> Vec<u8> {
    let mut a = Archive::new(0);
    add_tree(&mut a, root, b"").unwrap();
    a.to_bytes().unwrap()
}

#[test]
fn same_tree_same_bytes() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    make_tree(one.path(), "022", false);
    make_tree(two.path(), "077", true);
    // Disturb the second copy's modes and times further.
    fs::set_permissions(
        two.path().join("etc/motd"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(
        two.path().join("bin/app"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let file = fs::File::options()
        .write(true)
        .open(two.path().join("lib/libx.so"))
        .unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(123_456_789))
        .unwrap();
    drop(file);

    let a = archive_of(one.path());
    let b = archive_of(two.path());
    assert!(a == b, "archives differ");

    let entries = read_cpio(&a).unwrap();
    let summary: Vec<(String, u32)> = entries
        .iter()
        .map(|e| (String::from_utf8_lossy(e.name).into_owned(), e.mode))
        .collect();
    assert_eq!(
        summary,
        [
            ("bin".to_string(), 0o40755),
            ("bin/app".to_string(), 0o100755),
            ("bin/sh".to_string(), 0o120777),
            ("etc".to_string(), 0o40755),
            ("etc/app".to_string(), 0o40755),
            ("etc/app/app.conf".to_string(), 0o100644),
            ("etc/motd".to_string(), 0o100644),
            ("lib".to_string(), 0o40755),
            ("lib/libx.so".to_string(), 0o100644),
        ]
    );

    // The CLI gives the same bytes, under two different umasks.
    for (root, umask) in [(one.path(), "022"), (two.path(), "077")] {
        let out = root.join("../out.cpio");
        let script = format!(
            "umask {umask} && '{BIN}' cpio --dir '{}' --output '{}'",
            root.display(),
            out.display()
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env_remove("SOURCE_DATE_EPOCH")
            .status()
            .unwrap();
        assert!(status.success());
        assert!(fs::read(&out).unwrap() == a);
        fs::remove_file(out).unwrap();
    }
}

#[test]
fn special_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("mkfifo").arg(dir.path().join("pipe")).status();
    if !status.is_ok_and(|s| s.success()) {
        return; // no mkfifo here: nothing to test
    }
    let mut a = Archive::new(0);
    let err = add_tree(&mut a, dir.path(), b"").unwrap_err();
    assert!(err.to_string().contains("is a FIFO"), "{err}");
}

#[test]
fn source_date_epoch_sets_mtime() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"x").unwrap();
    let out = dir.path().join("o.cpio");
    let tree = dir.path().join("t");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("f"), b"x").unwrap();
    let status = Command::new(BIN)
        .args(["cpio", "--dir"])
        .arg(&tree)
        .arg("--output")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = fs::read(&out).unwrap();
    assert!(read_cpio(&bytes)
        .unwrap()
        .iter()
        .all(|e| e.mtime == 1_700_000_000));
}
