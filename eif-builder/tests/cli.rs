//! The real `eif-builder` binary: build/describe round trips, and damaged images refused cleanly (exit 1, one line, no panic).

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test crate holds nothing but tests"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_eif-builder");

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds an image with the CLI in `dir`; returns (eif path, measurements path).
fn build_image(dir: &Path, signed: bool) -> (PathBuf, PathBuf) {
    let inputs = write_inputs(
        dir,
        &fake_kernel(20_000, "6.12.117"),
        &[ramdisk(0), ramdisk(1)],
    );
    let eif = dir.join("app.eif");
    let measurements = dir.join("app.json");
    let mut args = vec![
        os("build"),
        os("--kernel"),
        inputs.kernel.as_os_str(),
        os("--cmdline"),
        os(CMDLINE),
        os("--ramdisk"),
        inputs.ramdisks[0].as_os_str(),
        os("--ramdisk"),
        inputs.ramdisks[1].as_os_str(),
        os("--output"),
        eif.as_os_str(),
        os("--measurements"),
        measurements.as_os_str(),
    ];
    let cert = data_dir().join("p384-cert.pem");
    let key = data_dir().join("p384-key.sec1.pem");
    if signed {
        args.extend([
            os("--signing-certificate"),
            cert.as_os_str(),
            os("--private-key"),
            key.as_os_str(),
        ]);
    }
    let out = run(&args);
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(&measurements).unwrap(),
        "stdout and the measurements file differ"
    );
    (eif, measurements)
}

fn describe_json(path: &Path) -> serde_json::Value {
    let out = run(&[os("describe"), path.as_os_str()]);
    assert!(out.status.success(), "describe failed: {}", stderr(&out));
    assert!(out.stderr.is_empty());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn build_then_describe_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (eif, measurements) = build_image(dir.path(), false);
    let built: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&measurements).unwrap()).unwrap();
    let d = describe_json(&eif);
    assert_eq!(d["EifVersion"], 4);
    assert_eq!(d["CheckCRC"], true);
    assert_eq!(d["IsSigned"], false);
    assert!(d.get("SignatureCheck").is_none());
    assert_eq!(d["Measurements"], built["Measurements"]);
    assert_eq!(d["Measurements"]["HashAlgorithm"], "Sha384 { ... }");
    assert!(d["Measurements"].get("PCR8").is_none());
    assert_eq!(d["ImageName"], "app");
    assert_eq!(d["ImageVersion"], "1.0");
    assert_eq!(d["Metadata"]["BuildTime"], "1970-01-01T00:00:00+00:00");
    assert_eq!(d["Metadata"]["BuildTool"], "eif-builder");
    assert_eq!(d["Metadata"]["KernelVersion"], "6.12.117");
    assert_eq!(d["Metadata"]["DockerInfo"], serde_json::json!({}));
    let kinds: Vec<&str> = d["Sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["kernel", "cmdline", "metadata", "ramdisk", "ramdisk"]
    );
    assert_eq!(d["Sections"][0]["Offset"], 548);
    // Key order as nitro-cli prints it.
    let text = String::from_utf8(run(&[os("describe"), eif.as_os_str()]).stdout).unwrap();
    let order = [
        "\"EifVersion\"",
        "\"Measurements\"",
        "\"IsSigned\"",
        "\"CheckCRC\"",
        "\"ImageName\"",
        "\"ImageVersion\"",
        "\"Metadata\"",
        "\"Sections\"",
    ];
    let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn signed_build_then_describe() {
    let dir = tempfile::tempdir().unwrap();
    let (eif, measurements) = build_image(dir.path(), true);
    let built: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&measurements).unwrap()).unwrap();
    assert!(built["Measurements"]["PCR8"].is_string());
    let d = describe_json(&eif);
    assert_eq!(d["IsSigned"], true);
    assert_eq!(d["SignatureCheck"], true);
    assert_eq!(d["CheckCRC"], true);
    assert_eq!(d["Measurements"], built["Measurements"]);
}

#[test]
fn build_time_and_name_options() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_inputs(dir.path(), &fake_kernel(5000, "6.1"), &[ramdisk(0)]);
    let eif = dir.path().join("x.eif");
    let out = run(&[
        os("build"),
        os("--kernel"),
        inputs.kernel.as_os_str(),
        os("--cmdline"),
        os("  console=ttyS0\n"),
        os("--ramdisk"),
        inputs.ramdisks[0].as_os_str(),
        os("--output"),
        eif.as_os_str(),
        os("--name"),
        os("svc"),
        os("--version"),
        os("2.0"),
        os("--build-time"),
        os("2024-05-01T14:00:00+02:00"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let d = describe_json(&eif);
    assert_eq!(d["ImageName"], "svc");
    assert_eq!(d["ImageVersion"], "2.0");
    assert_eq!(d["Metadata"]["BuildTime"], "2024-05-01T12:00:00+00:00");
    assert_eq!(d["Measurements"]["PCR2"], "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a");
    let described = eif_builder::describe(std::fs::read(&eif).unwrap().as_slice()).unwrap();
    assert_eq!(described.cmdline, b"console=ttyS0");
}

/// Asserts that describing `bytes` fails cleanly.
fn assert_refused(dir: &Path, name: &str, bytes: &[u8], expect: &str) {
    let path = dir.join(format!("{name}.eif"));
    std::fs::write(&path, bytes).unwrap();
    let out = run(&[os("describe"), path.as_os_str()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert!(out.stdout.is_empty(), "{name}: printed JSON");
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert_eq!(err.lines().count(), 1, "{name}: {err}");
    assert!(err.starts_with("eif-builder: error: "), "{name}: {err}");
    assert!(err.contains(expect), "{name}: expected {expect:?} in {err}");
}

#[test]
fn damaged_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (eif_path, _) = build_image(dir.path(), true);
    let eif = std::fs::read(&eif_path).unwrap();
    let d = dir.path();

    for cut in [
        0,
        3,
        10,
        547,
        548,
        555,
        560,
        5000,
        eif.len() / 2,
        eif.len() - 1,
    ] {
        assert_refused(d, &format!("cut{cut}"), &eif[..cut], "malformed");
    }
    let mut flipped = eif.clone();
    flipped[12] ^= 0x10; // default memory, in the header
    assert_refused(d, "flip-header", &flipped, "EIF CRC32 mismatch");
    let mut flipped = eif.clone();
    flipped[548 + 12 + 100] ^= 0x01; // kernel data
    assert_refused(d, "flip-kernel", &flipped, "EIF CRC32 mismatch");
    let mut flipped = eif.clone();
    let n = flipped.len();
    flipped[n - 200] ^= 0x40; // inside the signature section
    assert_refused(d, "flip-signature", &flipped, "EIF CRC32 mismatch");

    let mut huge = eif.clone();
    huge[284..292].copy_from_slice(&(1u64 << 63).to_be_bytes());
    assert_refused(
        d,
        "huge-table-size",
        &huge,
        "differs from the EIF header's section size",
    );
    huge[548 + 4..548 + 12].copy_from_slice(&(1u64 << 63).to_be_bytes());
    assert_refused(d, "huge-size", &huge, "run past the end");

    let mut magic = eif.clone();
    magic[..4].copy_from_slice(b"\x7fELF");
    assert_refused(d, "magic", &magic, "malformed EIF header magic");
    let mut zero = eif.clone();
    zero[26..28].copy_from_slice(&0u16.to_be_bytes());
    assert_refused(d, "zero-sections", &zero, "section count: 0");
    let mut many = eif.clone();
    many[26..28].copy_from_slice(&33u16.to_be_bytes());
    assert_refused(d, "33-sections", &many, "section count: 33");
    assert_refused(d, "empty", b"", "shorter than the 548-byte header");
}

#[test]
fn describe_of_a_missing_file() {
    let out = run(&[os("describe"), os("/nonexistent/x.eif")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("eif-builder: error: cannot open /nonexistent/x.eif: "));
}

#[test]
fn failed_build_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_inputs(dir.path(), &fake_kernel(5000, "6.1"), &[ramdisk(0)]);
    let eif = dir.path().join("out.eif");
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let out = run(&[
        os("build"),
        os("--kernel"),
        inputs.kernel.as_os_str(),
        os("--cmdline"),
        os("x"),
        os("--ramdisk"),
        inputs.ramdisks[0].as_os_str(),
        os("--output"),
        eif.as_os_str(),
        os("--signing-certificate"),
        data_dir().join("p256-cert.pem").as_os_str(),
        os("--private-key"),
        data_dir().join("p256-key.sec1.pem").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("P-384"), "{}", stderr(&out));
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);

    let out = run(&[
        os("build"),
        os("--kernel"),
        inputs.kernel.as_os_str(),
        os("--cmdline"),
        os("x"),
        os("--ramdisk"),
        os("/nonexistent.cpio"),
        os("--output"),
        eif.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent.cpio"),
        "{}",
        stderr(&out)
    );
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&[os("build"), os("--cmdline"), os("x")]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[os("cpio"), os("--output"), os("/tmp/x.cpio")]);
    assert_eq!(out.status.code(), Some(2), "cpio needs --list or --dir");
    let out = run(&[os("build"), os("--help")]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--kernel",
        "--cmdline",
        "--ramdisk",
        "--output",
        "--measurements",
        "--name",
        "--version",
        "--build-time",
        "--signing-certificate",
        "--private-key",
    ] {
        assert!(help.contains(option), "{option} missing from help");
    }
}

#[test]
fn cpio_list_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "dir /a 0755\nbogus /x\n",
            "bad.list:2: unknown directive `bogus`",
        ),
        ("dir /a 0955\n", "bad.list:1: bad mode `0955`"),
        (
            "file /init ${INIT} 0755\n",
            "bad.list:1: `${INIT}` is not defined",
        ),
        (
            "dir /a 0755\ndir /a 0755\n",
            "bad.list:2: cpio path \"a\": is listed twice",
        ),
        (
            "dir /a/../b 0755\n",
            "bad.list:1: cpio path \"/a/../b\": has a `..` component",
        ),
        ("file /x missing-file 0644\n", "bad.list:1: source "),
    ];
    for (text, expect) in cases {
        let list = dir.path().join("bad.list");
        std::fs::write(&list, text).unwrap();
        let out_path = dir.path().join("out.cpio");
        let out = run(&[
            os("cpio"),
            os("--list"),
            list.as_os_str(),
            os("--output"),
            out_path.as_os_str(),
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(err.contains(expect), "{text}: expected {expect:?} in {err}");
        assert_eq!(err.lines().count(), 1);
        assert!(!out_path.exists());
    }
}

#[test]
fn cpio_dir_and_list_together() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/app"), b"app").unwrap();
    let list = dir.path().join("extra.list");
    std::fs::write(
        &list,
        "nod /dev/console 0600 c 5 1\nfile /cmd ${CMD} 0644\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("cmd.txt"), b"/rootfs/bin/app\n").unwrap();
    let out_path = dir.path().join("out.cpio");
    let out = run(&[
        os("cpio"),
        os("--dir"),
        tree.as_os_str(),
        os("--dir-prefix"),
        os("/rootfs"),
        os("--list"),
        list.as_os_str(),
        os("--define"),
        os("CMD=cmd.txt"),
        os("--mtime"),
        os("1700000000"),
        os("--output"),
        out_path.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&out_path).unwrap();
    let entries = eif_builder::cpio::reader::read_cpio(&bytes).unwrap();
    let names: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(e.name).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "cmd",
            "dev",
            "dev/console",
            "rootfs",
            "rootfs/bin",
            "rootfs/bin/app"
        ]
    );
    assert!(entries.iter().all(|e| e.mtime == 1_700_000_000));
}
