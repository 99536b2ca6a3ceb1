//! Verifying attestation documents (tests/data/attestation, provenance in its README; the facts
//! checked here come from its manifest.json): every genuine document verifies at its own
//! timestamp and at the edges of its validity window, and fails one second outside it and
//! today; every tampered or untrusted one is refused at the step the manifest names; debug
//! enclaves, PCR and nonce mismatches are refused with expected and actual values. The second
//! half runs the real binary.

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test file is its own test crate; its tests need no module"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use eif_builder::attest::{self, ExpectedPcrs, Policy, Verified, VerifyError};
use eif_builder::time::parse_rfc3339;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/attestation")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

/// One manifest entry.
struct Entry {
    file: String,
    verifies: bool,
    fails_at: Option<String>,
    verify_at: Option<u64>,
    valid_from: Option<u64>,
    valid_until: Option<u64>,
    pcrs: BTreeMap<u8, String>,
    nonce: Option<String>,
}

impl Entry {
    fn debug(&self) -> bool {
        (0..3).all(|i| self.pcrs[&i].bytes().all(|c| c == b'0'))
    }

    fn measurements(&self, indexes: &[u8]) -> String {
        let fields: Vec<String> = indexes
            .iter()
            .map(|i| format!("\"PCR{i}\": \"{}\"", self.pcrs[i]))
            .collect();
        format!(
            "{{\"Measurements\": {{\"HashAlgorithm\": \"Sha384 {{ ... }}\", {}}}}}",
            fields.join(", ")
        )
    }

    fn expected(&self) -> ExpectedPcrs {
        ExpectedPcrs::from_measurements_json(&self.measurements(&[0, 1, 2])).unwrap()
    }
}

fn secs(v: &serde_json::Value) -> Option<u64> {
    let (secs, _) = parse_rfc3339(v.as_str()?, "manifest time").unwrap();
    Some(u64::try_from(secs).unwrap())
}

fn manifest() -> Vec<Entry> {
    let m: serde_json::Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    m["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| Entry {
            file: d["file"].as_str().unwrap().to_string(),
            verifies: d["verifies"].as_bool().unwrap(),
            fails_at: d["fails_at"].as_str().map(str::to_string),
            verify_at: secs(&d["verify_at"]),
            valid_from: secs(&d["valid_from"]),
            valid_until: secs(&d["valid_until"]),
            pcrs: d["pcrs"]
                .as_object()
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| (k.parse().unwrap(), v.as_str().unwrap().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            nonce: d["nonce"].as_str().map(str::to_string),
        })
        .collect()
}

fn entry(file: &str) -> Entry {
    manifest().into_iter().find(|e| e.file == file).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn check(
    e: &Entry,
    at: u64,
    expected: &ExpectedPcrs,
    nonce: Option<&[u8]>,
    allow_debug: bool,
) -> Result<Verified, VerifyError> {
    let root = attest::aws_root_der().unwrap();
    attest::verify(
        &read(&e.file),
        &Policy {
            root_der: &root,
            at_unix_secs: at,
            expected,
            nonce,
            binding: attest::Bound::Nothing,
            allow_debug,
            insecure_emulator: false,
        },
    )
}

#[test]
fn the_fixture_set_is_complete() {
    let m = manifest();
    assert_eq!(m.iter().filter(|e| e.verifies).count(), 12);
    assert_eq!(m.iter().filter(|e| !e.verifies).count(), 5);
    let listed: serde_json::Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    for d in listed["documents"].as_array().unwrap() {
        let file = d["file"].as_str().unwrap();
        assert_eq!(
            attest::sha256_hex(&read(file)),
            d["sha256"].as_str().unwrap(),
            "{file} is not the fixture the manifest describes"
        );
    }
}

#[test]
fn every_genuine_document_verifies_inside_its_window_only() {
    let today = now();
    for e in manifest().iter().filter(|e| e.verifies) {
        let (at, from, until) = (
            e.verify_at.unwrap(),
            e.valid_from.unwrap(),
            e.valid_until.unwrap(),
        );
        let expected = e.expected();
        let debug = e.debug();
        for t in [at, from, until] {
            let v = check(e, t, &expected, None, debug)
                .unwrap_or_else(|err| panic!("{} at {t}: {err}", e.file));
            assert!(v.signature_checked, "{}", e.file);
            assert_eq!(v.debug, debug, "{}", e.file);
            assert_eq!(v.pcrs.len(), e.pcrs.len(), "{}", e.file);
            for (i, value) in &e.pcrs {
                assert_eq!(&eif_builder::measure::hex(&v.pcrs[i]), value, "{}", e.file);
            }
        }
        for t in [from - 1, until + 1, today] {
            let err = check(e, t, &expected, None, debug).unwrap_err();
            assert_eq!(err.step(), "validity", "{} at {t}: {err}", e.file);
            assert!(err.document().is_none(), "{}", e.file);
        }
    }
}

#[test]
fn debug_enclaves_are_refused_unless_allowed() {
    let debug: Vec<Entry> = manifest()
        .into_iter()
        .filter(|e| e.verifies && e.debug())
        .collect();
    let mut names: Vec<&str> = debug.iter().map(|e| e.file.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "anjuna-2.cbor",
            "blocky-2.cbor",
            "evervault-2.cbor",
            "evervault-3.cbor"
        ]
    );
    // Measurements of a real build: a debug enclave reports zeros instead.
    let real = entry("evervault-1.cbor").expected();
    for e in &debug {
        let at = e.verify_at.unwrap();
        let err = check(e, at, &real, None, false).unwrap_err();
        assert_eq!(err.step(), "debug", "{}: {err}", e.file);
        assert!(err.to_string().contains("--allow-debug"), "{err}");
        // Allowed, it still never passes for a real image: it can run any code.
        let err = check(e, at, &real, None, true).unwrap_err();
        assert_eq!(err.step(), "debug", "{}: {err}", e.file);
        assert!(
            err.to_string()
                .contains("only against measurements that are zero too"),
            "{err}"
        );
        // Against zero measurements (its own), and only with the flag.
        let zeros = e.expected();
        assert!(zeros.is_debug());
        assert_eq!(
            check(e, at, &zeros, None, false).unwrap_err().step(),
            "debug"
        );
        let v = check(e, at, &zeros, None, true).unwrap();
        assert!(v.debug);
    }
}

#[test]
fn tampered_and_untrusted_documents_fail_at_the_named_step() {
    let bad: Vec<Entry> = manifest().into_iter().filter(|e| !e.verifies).collect();
    assert_eq!(bad.len(), 5);
    let ever = entry("evervault-1.cbor");
    for e in &bad {
        let step = match e.fails_at.as_deref().unwrap() {
            "alg" => "algorithm",
            "cbor-decode" => "parse",
            other => other,
        };
        let at = e.verify_at.or(ever.verify_at).unwrap();
        let expected = if e.pcrs.is_empty() {
            ever.expected()
        } else {
            e.expected()
        };
        // allow_debug, so that nothing but the named step can refuse them.
        let err = check(e, at, &expected, None, true).unwrap_err();
        assert_eq!(err.step(), step, "{}: {err}", e.file);
        assert!(err.document().is_none(), "{}", e.file);
    }
}

#[test]
fn another_root_is_not_trusted() {
    let e = entry("evervault-1.cbor");
    let pem = std::fs::read(dir().join("../p384-cert.pem")).unwrap();
    let other = attest::root_from_pem(&pem).unwrap();
    let err = attest::verify(
        &read(&e.file),
        &Policy {
            root_der: &other,
            at_unix_secs: e.verify_at.unwrap(),
            expected: &e.expected(),
            nonce: None,
            binding: attest::Bound::Nothing,
            allow_debug: false,
            insecure_emulator: false,
        },
    )
    .unwrap_err();
    assert_eq!(err.step(), "chain", "{err}");
    // The copy of the root in the test data is the embedded one.
    assert_eq!(
        attest::root_from_pem(&read("root.pem")).unwrap(),
        attest::aws_root_der().unwrap()
    );
}

#[test]
fn pcr_mismatches_report_expected_and_actual() {
    let e = entry("evervault-1.cbor");
    let at = e.verify_at.unwrap();
    // PCR8 is checked when the measurements have it.
    let with8 = ExpectedPcrs::from_measurements_json(&e.measurements(&[0, 1, 2, 8])).unwrap();
    check(&e, at, &with8, None, false).unwrap();
    let wrong = e
        .measurements(&[0, 1, 2, 8])
        .replace(&e.pcrs[&8], &e.pcrs[&3]);
    let err = check(
        &e,
        at,
        &ExpectedPcrs::from_measurements_json(&wrong).unwrap(),
        None,
        false,
    )
    .unwrap_err();
    assert_eq!(err.step(), "pcr");
    assert_eq!(
        err.expected_actual(),
        Some((e.pcrs[&3].as_str(), e.pcrs[&8].as_str()))
    );
    assert!(
        err.to_string().starts_with("PCR8 mismatch: expected "),
        "{err}"
    );
    assert_eq!(
        err.document().unwrap().module_id,
        "i-020b6af9246d90e92-enc0183d09086c24190"
    );
    // Another build's measurements.
    let other = entry("base-1.cbor").expected();
    let err = check(&e, at, &other, None, false).unwrap_err();
    assert_eq!(err.step(), "pcr");
    assert_eq!(
        err.expected_actual(),
        Some((entry("base-1.cbor").pcrs[&0].as_str(), e.pcrs[&0].as_str()))
    );
}

#[test]
fn nonces_must_match() {
    let e = entry("evervault-1.cbor");
    let at = e.verify_at.unwrap();
    let nonce = attest::parse_hex(e.nonce.as_deref().unwrap(), "nonce").unwrap();
    check(&e, at, &e.expected(), Some(&nonce), false).unwrap();
    let err = check(&e, at, &e.expected(), Some(b"other"), false).unwrap_err();
    assert_eq!(err.step(), "nonce");
    assert_eq!(err.expected_actual().unwrap().0, "6f74686572");
    // A document without a nonce (CBOR null) never matches one.
    let m = entry("marlin-1.cbor");
    let err = check(&m, m.verify_at.unwrap(), &m.expected(), Some(b"x"), false).unwrap_err();
    assert_eq!(err.expected_actual(), Some(("78", "null")));
}

#[test]
fn a_real_emulator_document_passes_only_as_insecure_emulator() {
    let expected = ExpectedPcrs::from_measurements_json(
        std::str::from_utf8(&read("qemu-emulator-1.measurements.json")).unwrap(),
    )
    .unwrap();
    let root = attest::aws_root_der().unwrap();
    let doc = read("qemu-emulator-1.cbor");
    let nonce = attest::parse_hex("00112233445566778899aabbccddeeff", "nonce").unwrap();
    let policy = |insecure_emulator| Policy {
        root_der: &root,
        at_unix_secs: now(),
        expected: &expected,
        nonce: Some(&nonce),
        binding: attest::Bound::Nothing,
        allow_debug: false,
        insecure_emulator,
    };
    let err = attest::verify(&doc, &policy(false)).unwrap_err();
    assert_eq!(err.step(), "algorithm", "{err}");
    let v = attest::verify(&doc, &policy(true)).unwrap();
    assert!(!v.signature_checked);
    assert_eq!(v.module_id, "enclave-https-local");
    // Another build's measurements are still refused.
    let other = entry("evervault-1.cbor").expected();
    let err = attest::verify(
        &doc,
        &Policy {
            expected: &other,
            ..policy(true)
        },
    )
    .unwrap_err();
    assert_eq!(err.step(), "pcr");
}

// ---- The real binary ----

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eif-builder"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn rfc3339(secs: u64) -> String {
    eif_builder::time::rfc3339_from_unix(secs).unwrap()
}

/// Runs `verify` on `file` with measurements `meas` at `at`, plus `extra` arguments.
fn cli_verify(tmp: &Path, file: &str, meas: &str, at: &str, extra: &[&str]) -> Output {
    let m = tmp.join("measurements.json");
    std::fs::write(&m, meas).unwrap();
    let doc = dir().join(file);
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "verify".as_ref(),
        "--attestation".as_ref(),
        doc.as_os_str(),
        "--measurements".as_ref(),
        m.as_os_str(),
        "--at".as_ref(),
        at.as_ref(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    run(&args)
}

#[test]
fn cli_verify_prints_a_verdict_and_exits_0_only_on_success() {
    let tmp = tempfile::tempdir().unwrap();
    let e = entry("anjuna-1.cbor");
    let meas = e.measurements(&[0, 1, 2]);
    // notBefore is the timestamp's second: --at with the fraction works.
    let at = "2021-03-17T22:01:55.685Z";
    let out = cli_verify(tmp.path(), &e.file, &meas, at, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(v["module_id"], "i-078824548edcf6519-enc01784234ec227b58");
    assert_eq!(v["timestamp"], 1616018515685u64);
    assert_eq!(v["pcrs"]["PCR0"], e.pcrs[&0].as_str());
    assert_eq!(v["pcrs"].as_object().unwrap().len(), 16);
    assert_eq!(v["root_sha256"], attest::AWS_ROOT_SHA256);
    // With the root given explicitly.
    let root = dir().join("root.pem");
    let out = cli_verify(
        tmp.path(),
        &e.file,
        &meas,
        at,
        &["--root", root.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));

    // One second past the window, and now (no --at).
    let late = rfc3339(e.valid_until.unwrap() + 1);
    let out = cli_verify(tmp.path(), &e.file, &meas, &late, &[]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(
        (v["verified"].as_bool(), v["step"].as_str()),
        (Some(false), Some("validity"))
    );
    assert!(v["reason"].as_str().unwrap().contains("expired"), "{v}");
    let m = tmp.path().join("measurements.json");
    let out = run(&[
        "verify".as_ref(),
        "--attestation".as_ref(),
        dir().join(&e.file).as_os_str(),
        "--measurements".as_ref(),
        m.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["step"], "validity");
}

#[test]
fn cli_verify_takes_emulator_documents_only_with_insecure_emulator() {
    let tmp = tempfile::tempdir().unwrap();
    let meas = String::from_utf8(read("qemu-emulator-1.measurements.json")).unwrap();
    let at = rfc3339(now());
    let out = cli_verify(tmp.path(), "qemu-emulator-1.cbor", &meas, &at, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["step"], "algorithm");
    let out = cli_verify(
        tmp.path(),
        "qemu-emulator-1.cbor",
        &meas,
        &at,
        &["--insecure-emulator"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(v["signature_checked"], false);
    // Its user_data is a hash, not text: no user_data_text.
    assert!(v["user_data"].is_string(), "{v}");
    assert!(v.get("user_data_text").is_none(), "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: --insecure-emulator"));
}

/// The `Measurements` object of a measurements file, as JSON text.
fn inner(file: &str) -> String {
    serde_json::from_str::<serde_json::Value>(file).unwrap()["Measurements"].to_string()
}

#[test]
fn cli_verify_accepts_any_image_of_a_list_and_says_which() {
    let tmp = tempfile::tempdir().unwrap();
    let qemu = String::from_utf8(read("qemu-emulator-1.measurements.json")).unwrap();
    let other = inner(&entry("evervault-1.cbor").measurements(&[0, 1, 2]));
    let third = inner(&entry("marlin-2.cbor").measurements(&[0, 1, 2]));
    let at = rfc3339(now());
    let run = |file: &str| {
        cli_verify(
            tmp.path(),
            "qemu-emulator-1.cbor",
            file,
            &at,
            &["--insecure-emulator"],
        )
    };
    let out = run(&format!(
        "{{\"Accepted\": [{{\"Name\": \"old\", \"Measurements\": {other}}}, {{\"Name\": \"new\", \"Measurements\": {}}}]}}",
        inner(&qemu)
    ));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(
        (v["verified"].as_bool(), v["accepted_image"].as_str()),
        (Some(true), Some("new"))
    );
    // A single image (nitro-cli's form) is not named in the verdict.
    assert!(json(&run(&qemu)).get("accepted_image").is_none());
    // Neither of two: refused at the PCRs, naming both.
    let out = run(&format!(
        "{{\"Accepted\": [{{\"Name\": \"a\", \"Measurements\": {other}}}, {{\"Measurements\": {third}}}]}}"
    ));
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["step"], "pcr");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("matches none of the 2 accepted images (a, #2); against the first: "),
        "{reason}"
    );
    // The list is read strictly: an error on stderr naming the file and the entry.
    let out = run(&format!(
        "{{\"Accepted\": [{{\"Measurements\": {other}}}, {{\"Measurements\": {other}}}]}}"
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("entry 2: the same measurements as entry 1"),
        "{err}"
    );
}

#[test]
fn cli_verify_reports_pcr_mismatch_debug_nonce_and_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let e = entry("evervault-1.cbor");
    let at = rfc3339(e.verify_at.unwrap());
    let other = entry("marlin-2.cbor").measurements(&[0, 1, 2]);
    let out = cli_verify(tmp.path(), &e.file, &other, &at, &[]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["step"], "pcr");
    assert_eq!(v["expected"], entry("marlin-2.cbor").pcrs[&0].as_str());
    assert_eq!(v["actual"], e.pcrs[&0].as_str());
    assert_eq!(v["pcrs"]["PCR0"], e.pcrs[&0].as_str());
    assert!(v["reason"].as_str().unwrap().starts_with("PCR0 mismatch"));

    let meas = e.measurements(&[0, 1, 2, 8]);
    let nonce = e.nonce.clone().unwrap();
    let out = cli_verify(tmp.path(), &e.file, &meas, &at, &["--nonce", &nonce]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli_verify(tmp.path(), &e.file, &meas, &at, &["--nonce", "00"]);
    assert_eq!(json(&out)["step"], "nonce");

    for (file, step) in [
        ("tampered-payload-byte.cbor", "signature"),
        ("tampered-signature-byte.cbor", "signature"),
        ("tampered-alg-es256.cbor", "algorithm"),
        ("tampered-truncated.cbor", "parse"),
    ] {
        let out = cli_verify(tmp.path(), file, &meas, &at, &[]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let v = json(&out);
        assert_eq!(v["step"], step, "{file}: {v}");
        assert_eq!(v["pcrs"], serde_json::Value::Null, "{file}");
    }
    let u = entry("untrusted-marlin-mock-1.cbor");
    let out = cli_verify(
        tmp.path(),
        &u.file,
        &u.measurements(&[0, 1, 2]),
        &rfc3339(u.verify_at.unwrap()),
        &[],
    );
    assert_eq!(json(&out)["step"], "chain");

    let d = entry("evervault-2.cbor");
    let dat = rfc3339(d.verify_at.unwrap());
    let out = cli_verify(tmp.path(), &d.file, &meas, &dat, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["step"], "debug");
    // --allow-debug keeps the comparison: a real image's measurements still refuse it...
    let out = cli_verify(tmp.path(), &d.file, &meas, &dat, &["--allow-debug"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["step"], "debug");
    // ...and zero measurements accept it, saying so.
    let zeros = d.measurements(&[0, 1, 2]);
    let out = cli_verify(tmp.path(), &d.file, &zeros, &dat, &["--allow-debug"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["debug"], true);
}

#[test]
fn cli_verify_usage_problems_go_to_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let e = entry("evervault-1.cbor");
    let at = rfc3339(e.verify_at.unwrap());
    let good = e.measurements(&[0, 1, 2]);
    let spelled = good.replacen("\"PCR1\"", "\"PCR01\"", 1);
    let twice = good.replacen("\"PCR2\"", "\"PCR0\"", 1);
    for (meas, extra, needle) in [
        ("{}", vec![], "Measurements"),
        (&spelled, vec![], "unknown key \"PCR01\""),
        (&twice, vec![], "the key \"PCR0\" is given twice"),
        (&good, vec!["--nonce", "xyz"], "--nonce"),
        (
            &good,
            vec!["--root", "/nonexistent.pem"],
            "/nonexistent.pem",
        ),
    ] {
        let out = cli_verify(tmp.path(), &e.file, meas, &at, &extra);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    let out = cli_verify(tmp.path(), &e.file, &good, "yesterday", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--at"));
}
