//! The enclave key from KMS, without AWS: the default server in an image whose `/env` holds
//! only a KMS ciphertext of the key (`ENCLAVE_KEY_KMS_CIPHERTEXT`), booted twice in the
//! emulator against `kms-standin` on this machine (KMS over TLS with a test CA that this test
//! image alone trusts, and the instance metadata service), reached through the image's egress
//! routes and host-relay. Each boot must get exactly the key the test encrypted (the server
//! prints a keyed hash of it, which the test computes with openssl), `/private-data` must say
//! the key came from KMS, and the stand-in must have seen IMDSv2 and a verified `Recipient`.

use super::{boot_detached_with, outcome, routes_to, variant, Outcome};
use crate::cmd::{err, output, project_root, run, Context, Result};
use crate::eif::{self, Image};
use crate::enclave;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The region the test image asks for, and the KMS name its certificate is made for.
const REGION: &str = "us-east-1";
const KMS_HOST: &str = "kms.us-east-1.amazonaws.com";
/// Where the test CA goes in the image.
const CA_IN_IMAGE: &str = "/etc/ssl/enclave-https-test-ca.pem";

fn openssl(dir: &Path, args: &[&str]) -> Result {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// A test CA and a certificate for [`KMS_HOST`] signed by it, in `dir`.
fn certificates(dir: &Path) -> Result {
    fs::write(
        dir.join("kms.ext"),
        format!(
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:{KMS_HOST}\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .ctx(|| "writing kms.ext".into())?;
    for step in [
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ca.key",
        ][..],
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=enclave-https test CA",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-out",
            "ca.pem",
        ],
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "kms.key",
        ],
        &[
            "req",
            "-new",
            "-key",
            "kms.key",
            "-subj",
            &format!("/CN={KMS_HOST}"),
            "-out",
            "kms.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "kms.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "kms.ext",
            "-out",
            "kms.pem",
        ],
        &["rand", "-hex", "-out", "master.hex", "32"],
        &["rand", "-out", "enclave.key", "32"],
    ] {
        openssl(dir, step)?;
    }
    Ok(())
}

/// The key id the server must print for the key in `dir/enclave.key`: HMAC-SHA256 of
/// `enclave-https key id` under it, first 8 bytes, as the server's vault computes it.
fn expected_key_id(dir: &Path) -> Result<String> {
    let key = fs::read(dir.join("enclave.key")).ctx(|| "reading enclave.key".into())?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(dir.join("key-id-label"), "enclave-https key id").ctx(|| "key-id-label".into())?;
    let out = output(
        Command::new("openssl")
            .current_dir(dir)
            .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt"])
            .arg(format!("hexkey:{hex}"))
            .arg("key-id-label"),
    )?;
    match out.trim().rsplit(' ').next() {
        Some(h) if h.len() == 64 => Ok(h[..16].to_owned()),
        _ => err(format!("openssl dgst printed {out:?}")),
    }
}

/// Builds the stand-in (the workspace's debug profile, which the unit tests already built).
fn standin_binary() -> Result<PathBuf> {
    let root = project_root();
    run(crate::cmd::cargo()
        .current_dir(&root)
        .args(["build", "--locked", "-p", "kms-standin"]))?;
    Ok(eif::target_dir(&root).join("debug/kms-standin"))
}

/// The running stand-in: killed when dropped.
struct Standin {
    child: Child,
    kms_port: u16,
    imds_port: u16,
    log: PathBuf,
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standin {
    fn start(bin: &Path, dir: &Path, measurements: &[PathBuf]) -> Result<Standin> {
        let log = dir.join("kms-standin.log");
        let logf = fs::File::create(&log).ctx(|| format!("creating {}", log.display()))?;
        let child = Command::new(bin)
            .current_dir(dir)
            .args(["serve", "--tls-cert", "kms.pem", "--tls-key", "kms.key"])
            .args(["--master-key-file", "master.hex", "--region", REGION])
            .args(
                measurements
                    .iter()
                    .flat_map(|m| [std::ffi::OsStr::new("--measurements"), m.as_os_str()]),
            )
            .arg("--work")
            .arg(dir.join("standin-work"))
            .stdout(logf)
            .stderr(Stdio::inherit())
            .spawn()
            .ctx(|| format!("starting {}", bin.display()))?;
        let mut standin = Standin {
            child,
            kms_port: 0,
            imds_port: 0,
            log,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            let first = fs::File::open(&standin.log)
                .ok()
                .and_then(|f| BufReader::new(f).lines().next())
                .and_then(std::result::Result::ok);
            if let Some(line) = first {
                let ports: Vec<u16> = line
                    .split("127.0.0.1:")
                    .skip(1)
                    .filter_map(|s| s.split(' ').next()?.parse().ok())
                    .collect();
                if let [kms, imds] = ports[..] {
                    (standin.kms_port, standin.imds_port) = (kms, imds);
                    return Ok(standin);
                }
                return err(format!("kms-standin said {line:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        err("kms-standin never said its ports")
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Waits for the console of the enclave running in `dir` to say `line` (the harness is ready
/// when the vsock port answers; a program that talks to KMS first binds later).
fn wait_for_console(dir: &Path, line: &str, limit: Duration) -> Result<String> {
    let started = Instant::now();
    loop {
        let console = fs::read_to_string(dir.join("console.log")).unwrap_or_default();
        if console.contains(line) {
            return Ok(console);
        }
        if started.elapsed() > limit {
            let tail: Vec<&str> = console.lines().rev().take(6).collect();
            return err(format!(
                "the console did not say {line:?} within {}s; it ended:\n  | {}",
                limit.as_secs(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n  | ")
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One boot: the key id line, and `/private-data` naming KMS.
fn boot(eif: &Path, run_dir: PathBuf, routes: &Path, key_id: &str) -> Result {
    let (opts, started) = boot_detached_with(eif.to_owned(), run_dir, |o| {
        o.egress_routes = Some(routes.to_owned());
    });
    let checked = started.and_then(|()| {
        // The server's startup line (same workspace version as this crate).
        let listening = format!(
            "[server] server {}: listening on",
            env!("CARGO_PKG_VERSION")
        );
        let console = wait_for_console(&opts.dir, &listening, Duration::from_secs(120))?;
        let want = "server: enclave key from AWS KMS";
        let line = console
            .lines()
            .find(|l| l.contains(want))
            .ok_or_else(|| crate::cmd::Error(format!("the console never said {want:?}")))?;
        if !line.contains(&format!("(key id {key_id})")) {
            return err(format!("expected key id {key_id}: {line}"));
        }
        let body = opts.dir.join("private-data.json");
        let code = output(
            Command::new("curl")
                .args(["-sS", "-k", "--http1.1", "--max-time", "20", "-X", "POST"])
                .args([
                    "-H",
                    "Authorization: Bearer 00112233445566778899aabbccddeeff",
                ])
                .args([
                    "-H",
                    "Content-Type: application/json",
                    "--data",
                    "{\"n\":1}",
                ])
                .arg("-o")
                .arg(&body)
                .args(["-w", "%{http_code}"])
                .arg(format!("https://127.0.0.1:{}/private-data", opts.port)),
        )?;
        let text = fs::read_to_string(&body).unwrap_or_default();
        if code != "200" || !text.contains("\"key\":\"from AWS KMS (ENCLAVE_KEY_KMS_CIPHERTEXT)\"")
        {
            return err(format!("POST /private-data: HTTP {code}: {text}"));
        }
        Ok(())
    });
    let stopped = enclave::stop(&opts.dir);
    checked.and(stopped.map(drop))
}

/// examples/kms-letters: a message encrypted for the stand-in's KMS goes in, an attestation
/// document comes out whose `user_data` counts the letter, and `eif-builder verify` prints it.
fn count_letters(image: &Image, bin: &Path, dir: &Path, built: &Path, routes: &Path) -> Result {
    const MESSAGE: &str = "hello from a client the operator cannot read";
    const NONCE: &str = "0123456789abcdef0123456789abcdef";
    fs::write(dir.join("message"), MESSAGE).ctx(|| "writing message".into())?;
    let blob = output(
        Command::new(bin)
            .args(["encrypt", "--master-key-file"])
            .arg(dir.join("master.hex"))
            .arg("--in")
            .arg(dir.join("message")),
    )?;
    fs::write(dir.join("message.blob"), blob.trim()).ctx(|| "message.blob".into())?;
    let (opts, started) =
        boot_detached_with(built.join("enclave.eif"), dir.join("run-letters"), |o| {
            o.egress_routes = Some(routes.to_owned());
        });
    let checked = started.and_then(|()| {
        wait_for_console(
            &opts.dir,
            "kms-letters: listening on",
            Duration::from_secs(120),
        )?;
        let answer = dir.join("answer.cbor");
        let code = output(
            Command::new("curl")
                .args(["-sS", "-k", "--http1.1", "--max-time", "60", "-X", "POST"])
                .arg("--data-binary")
                .arg(format!("@{}", dir.join("message.blob").display()))
                .arg("-o")
                .arg(&answer)
                .args(["-w", "%{http_code}"])
                .arg(format!(
                    "https://127.0.0.1:{}/count?letter=o&nonce={NONCE}",
                    opts.port
                )),
        )?;
        if code != "200" {
            let text = fs::read_to_string(&answer).unwrap_or_default();
            return err(format!("POST /count: HTTP {code}: {text}"));
        }
        let verdict = output(
            Command::new(&image.tool)
                .args(["verify", "--attestation"])
                .arg(&answer)
                .arg("--measurements")
                .arg(built.join("measurements.json"))
                .args(["--nonce", NONCE, "--insecure-emulator"]),
        )?;
        let count = MESSAGE.matches('o').count();
        let want = format!("\\\"letter\\\":\\\"o\\\",\\\"count\\\":{count},");
        if !verdict.contains("\"verified\": true") || !verdict.contains(&want) {
            return err(format!(
                "eif-builder verify printed {verdict}; expected user_data_text with {want}"
            ));
        }
        Ok(())
    });
    let stopped = enclave::stop(&opts.dir);
    checked.and(stopped.map(drop))
}

/// The KMS boot test (see the module's documentation).
pub fn kms(image: &Image, tools: &enclave::Tools) -> Vec<Outcome> {
    let _ = tools;
    let r = (|| -> Result {
        let dir = image.dir.join("kms");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        certificates(&dir)?;
        let key_id = expected_key_id(&dir)?;
        let bin = standin_binary()?;
        let blob = output(
            Command::new(&bin)
                .args(["encrypt", "--master-key-file"])
                .arg(dir.join("master.hex"))
                .arg("--in")
                .arg(dir.join("enclave.key")),
        )?;
        let test_env =
            format!("AWS_REGION = \"{REGION}\", ENCLAVE_TEST_CA_FILE = \"{CA_IN_IMAGE}\"");
        let files = format!(
            "[[app.files]]\nsrc = \"{}\"\ndst = \"{CA_IN_IMAGE}\"\nmode = 0o644\n",
            dir.join("ca.pem").display()
        );
        let egress = format!("egress = [\"{KMS_HOST}:443\", \"169.254.169.254:80\"]\n");
        let server = variant(
            image,
            "kms",
            &format!(
                "{egress}[app]\nbinary = \"${{ENCLAVE_BIN}}/server\"\n\
                 env = {{ PATH = \"/\", {test_env}, ENCLAVE_KEY_KMS_CIPHERTEXT = \"{}\" }}\n{files}",
                blob.trim()
            ),
        )?;
        // examples/kms-letters/enclave.toml, plus the test CA.
        let letters = variant(
            image,
            "kms-letters",
            &format!(
                "{egress}[app]\nbinary = \"${{ENCLAVE_BIN}}/kms-letters\"\n\
                 args = [\"/kms-letters\", \"vsock:443\"]\nenv = {{ PATH = \"/\", {test_env} }}\n{files}"
            ),
        )?;
        let standin = Standin::start(
            &bin,
            &dir,
            &[
                server.join("measurements.json"),
                letters.join("measurements.json"),
            ],
        )?;
        let text = fs::read_to_string(server.join("egress-routes"))
            .ctx(|| "reading the egress-routes the build wrote".into())?;
        let local = dir.join("egress-routes.test");
        // KMS to the stand-in's KMS port, the metadata service to its metadata port.
        let port_of = |target: &str| {
            if target == format!("tcp:{KMS_HOST}:443") {
                Ok(standin.kms_port)
            } else if target == "tcp:169.254.169.254:80" {
                Ok(standin.imds_port)
            } else {
                err(format!("egress-routes: unexpected target {target:?}"))
            }
        };
        fs::write(&local, routes_to(&text, port_of)?)
            .ctx(|| format!("writing {}", local.display()))?;
        let eif = server.join("enclave.eif");
        boot(&eif, dir.join("run-1"), &local, &key_id)
            .map_err(|e| crate::cmd::Error(format!("first boot: {}", e.0)))?;
        boot(&eif, dir.join("run-2"), &local, &key_id)
            .map_err(|e| crate::cmd::Error(format!("second boot: {}", e.0)))?;
        count_letters(image, &bin, &dir, &letters, &local)?;
        let log = standin.log_text();
        // Two boots of the server and one request to kms-letters: three sessions, three keys.
        for (want, times) in [
            ("kms-standin: IMDS PUT /latest/api/token: 200", 3),
            ("kms-standin: KMS Decrypt: ok: 32 bytes for the recipient key of a verified attestation document", 2),
            ("kms-standin: KMS Decrypt: ok: 44 bytes", 1),
        ] {
            if log.matches(want).count() != times {
                return err(format!("kms-standin's log does not say {want:?} {times} time(s):\n{log}"));
            }
        }
        if log.contains("refused") {
            return err(format!("kms-standin refused a request:\n{log}"));
        }
        Ok(())
    })();
    vec![outcome(
        "kms: the enclave key from ENCLAVE_KEY_KMS_CIPHERTEXT, decrypted by a KMS stand-in for \
         the enclave's attestation document (IMDSv2 credentials, SigV4, Recipient, openssl CMS) \
         through egress; the same key on two boots; /private-data says KMS",
        r,
    )]
}
