//! Clients that need not trust the operator, against the real image in the emulator through
//! host-relay: `eif-builder attest --from-certificate` verifies the enclave from the handshake
//! alone (the server's console logs no request); `eif-builder proxy` hands curl `/health` with
//! the verified PCRs in headers, from the certificate's document and, with `--max-age 0s`, from
//! the endpoint with a nonce; the proxy refuses the measurements of a build one server byte
//! apart with a 502 and sends nothing upstream; and the `--pinnedpubkey` line `attest --pin`
//! prints works with curl, then fails (curl's exit 90) once the enclave restarted with a new key.

use super::{attest_at, boot_detached, other_build_measurements, outcome, Outcome};
use crate::cmd::{capture, err, Context, Error, Result};
use crate::eif::{json_string, Image};
use crate::enclave;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `eif-builder proxy`, killed when dropped.
pub struct Proxy {
    child: Child,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Starts `tool proxy` to the enclave on `enclave_port` with these measurements and more
    /// arguments; returns once it says where it listens.
    pub fn start(
        tool: &Path,
        enclave_port: u16,
        measurements: &Path,
        extra: &[&str],
    ) -> Result<Proxy> {
        let mut child = Command::new(tool)
            .arg("proxy")
            .arg(format!("https://127.0.0.1:{enclave_port}"))
            .args(["--listen", "127.0.0.1:0", "--insecure-emulator"])
            .arg("--measurements")
            .arg(measurements)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ctx(|| "starting eif-builder proxy".into())?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| Error("eif-builder proxy: no stderr".into()))?;
        let mut lines = BufReader::new(stderr).lines();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                return err("eif-builder proxy ended before it listened");
            };
            if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                let port = rest.split('/').next().and_then(|p| p.parse().ok());
                break port.ok_or_else(|| Error(format!("eif-builder proxy said {line:?}")))?;
            }
        };
        // Keep draining its stderr (one line per attested connection) so it never blocks.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Proxy { child, port })
    }
}

/// A response's status and headers, from `curl -i` through the proxy.
fn through(proxy: &Proxy, path: &str) -> Result<(u16, Vec<(String, String)>)> {
    let out = capture(
        Command::new("curl")
            .args(["-sS", "-i", "--max-time", "60", "-o", "-"])
            .arg(format!("http://127.0.0.1:{}{path}", proxy.port)),
    )?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Error(format!(
                "curl through the proxy: {text:?} {:?}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Request lines the enclave's server logged so far.
fn requests(dir: &Path) -> usize {
    fs::read_to_string(dir.join("console.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("GET ") || l.starts_with("HEAD ") || l.starts_with("POST "))
        .count()
}

/// `attest --from-certificate`: verified, and no request reached the server.
fn from_certificate(image: &Image, dir: &Path, port: u16) -> Result {
    let before = requests(dir);
    let extra = ["--from-certificate", "--max-age", "1h"];
    let (verified, text) = attest_at(image, port, "", &image.measurements, true, &extra)?;
    if !verified || !text.contains("\"verified\": true") {
        return err(format!("attest --from-certificate: {text}"));
    }
    if !text.contains("enclave-https certificate attestation v1") {
        return err(format!(
            "the verdict does not show the certificate's user_data: {text}"
        ));
    }
    let after = requests(dir);
    if after != before {
        return err(format!(
            "the server logged {} request(s) meanwhile",
            after - before
        ));
    }
    Ok(())
}

/// curl through a proxy gets /health with the PCRs of measurements.json, attested `how`.
fn proxied_health(image: &Image, port: u16, extra: &[&str], how: &str) -> Result {
    let proxy = Proxy::start(&image.tool, port, &image.measurements, extra)?;
    let (status, headers) = through(&proxy, "/health")?;
    if status != 200 {
        return err(format!(
            "GET /health through the proxy: HTTP {status}: {headers:?}"
        ));
    }
    let published = fs::read_to_string(&image.measurements).ctx(|| "measurements.json".into())?;
    for pcr in ["PCR0", "PCR1", "PCR2"] {
        let want = json_string(&published, pcr);
        let got = header(&headers, &format!("x-enclave-{}", pcr.to_ascii_lowercase()));
        if got.is_none() || got != want.as_deref() {
            return err(format!(
                "X-Enclave-{pcr}: {got:?}, measurements.json {want:?}"
            ));
        }
    }
    match header(&headers, "x-enclave-attestation") {
        Some(h) if h == how => Ok(()),
        other => err(format!("X-Enclave-Attestation: {other:?}, expected {how}")),
    }
}

/// The proxy with the measurements of another build: 502 at the PCR step, nothing upstream.
fn proxy_refuses_other_build(image: &Image, dir: &Path, port: u16) -> Result {
    let measurements = other_build_measurements(image)?;
    let before = requests(dir);
    let proxy = Proxy::start(&image.tool, port, &measurements, &[])?;
    let (status, headers) = through(&proxy, "/health")?;
    if status != 502 || header(&headers, "x-enclave-refused") != Some("pcr") {
        return err(format!(
            "expected 502 refused at pcr, got {status} {headers:?}"
        ));
    }
    let after = requests(dir);
    if after != before {
        return err(format!("the server logged {} request(s)", after - before));
    }
    Ok(())
}

/// `attest --pin`'s curl line, `/health` appended and the port changed to `port`.
fn pinned_curl(line: &str, old_port: u16, port: u16) -> Result<i32> {
    let args: Vec<String> = line
        .replace(
            &format!("127.0.0.1:{old_port}/"),
            &format!("127.0.0.1:{port}/health"),
        )
        .replace('\'', "")
        .split(' ')
        .skip(1)
        .map(str::to_owned)
        .collect();
    let out = capture(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--max-time", "60"])
            .args(&args),
    )?;
    Ok(out.status.code().unwrap_or(-1))
}

pub fn clients(image: &Image) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let (opts, started) = boot_detached(image.eif.clone(), image.dir.join("clients"));
    let (dir, port) = (opts.dir.clone(), opts.port);
    let ok = started.is_ok();
    outcomes.push(outcome("clients: the image boots", started));
    let mut pin_line = None;
    if ok {
        outcomes.push(outcome(
            "clients: attest --from-certificate verifies the booted enclave from the handshake alone (no request logged)",
            from_certificate(image, &dir, port),
        ));
        outcomes.push(outcome(
            "clients: curl through eif-builder proxy gets /health with X-Enclave-PCR0/1/2 of measurements.json, attested from the certificate",
            proxied_health(image, port, &[], "certificate"),
        ));
        outcomes.push(outcome(
            "clients: with --max-age 0s the proxy attests with a nonce instead, and serves /health",
            proxied_health(image, port, &["--max-age", "0s"], "nonce"),
        ));
        outcomes.push(outcome(
            "clients: the proxy answers 502 (refused at pcr) for a build one server byte apart, and nothing reaches the enclave",
            proxy_refuses_other_build(image, &dir, port),
        ));
        let pinned = (|| -> Result<String> {
            let pem = dir.join("enclave.pem");
            let pem = pem.to_string_lossy();
            let (_, text) =
                attest_at(image, port, "", &image.measurements, true, &["--pin", &pem])?;
            let line = text
                .lines()
                .find(|l| l.starts_with("curl "))
                .ok_or_else(|| Error(format!("attest --pin printed no curl line: {text}")))?
                .to_owned();
            match pinned_curl(&line, port, port)? {
                0 => Ok(line),
                code => err(format!("the pinned curl exited {code}: {line}")),
            }
        })();
        if let Ok(line) = &pinned {
            pin_line = Some(line.clone());
        }
        outcomes.push(outcome(
            "clients: the --pinnedpubkey line attest --pin prints reaches /health with curl",
            pinned.map(drop),
        ));
    }
    let stopped = enclave::stop(&dir);
    outcomes.push(outcome("clients: the enclave stops", stopped.map(drop)));
    if let Some(line) = pin_line {
        let (opts, started) = boot_detached(image.eif.clone(), image.dir.join("clients-restarted"));
        let restarted = started.and_then(|()| match pinned_curl(&line, port, opts.port)? {
            90 => Ok(()),
            code => err(format!(
                "expected curl's exit 90 (CURLE_SSL_PINNEDPUBKEYNOTMATCH), got {code}"
            )),
        });
        outcomes.push(outcome(
            "clients: the same pinned curl fails (exit 90) against the enclave restarted with a new key",
            restarted,
        ));
        let _ = enclave::stop(&opts.dir);
    }
    outcomes
}
