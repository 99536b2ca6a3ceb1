//! `kms-standin`: AWS KMS and the instance metadata service as the enclave meets them, on this
//! machine, for tests without AWS. Not part of any image; the boot tests start it.
//!
//! ```text
//! kms-standin serve --tls-cert FILE --tls-key FILE --master-key-file FILE --measurements FILE…
//!                   [--region us-east-1] [--work DIR]
//! kms-standin encrypt --master-key-file FILE --in PLAINTEXT   (prints the base64 ciphertext blob)
//! ```
//!
//! `serve` listens for KMS (HTTPS with the given certificate, which the test image trusts
//! through its test CA) and for the metadata service (plain HTTP) on free ports of 127.0.0.1,
//! says them in its first line, then logs one line per request. See `kms.rs` for what a KMS
//! request must satisfy and `imds.rs` for the metadata service.

mod http;
mod imds;
mod kms;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The test credentials the metadata service hands out and KMS checks signatures with.
pub const ACCESS_KEY_ID: &str = "ASIASTANDINTESTKEY00";
/// Their secret.
pub const SECRET_ACCESS_KEY: &str = "standin/secret/access/key/for/tests/only";
/// Their session token.
pub const SECURITY_TOKEN: &str = "standin-session-token";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn master_key(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes =
        contract::hex::decode(text.trim()).map_err(|_| format!("{}: not hex", path.display()))?;
    bytes.try_into().map_err(|_| {
        format!(
            "{}: the master key is 32 bytes (64 hex digits)",
            path.display()
        )
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kms-standin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn required(args: &[String], name: &str) -> Result<String, String> {
    flag(args, name).ok_or_else(|| format!("{name} is required (see the top of main.rs)"))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("encrypt") => {
            let master = master_key(Path::new(&required(args, "--master-key-file")?))?;
            let input = required(args, "--in")?;
            let plaintext = std::fs::read(&input).map_err(|e| format!("{input}: {e}"))?;
            println!(
                "{}",
                contract::base64::encode(&kms::seal(&master, &plaintext)?)
            );
            Ok(())
        }
        Some("serve") => serve(args),
        _ => Err("usage: kms-standin serve … | kms-standin encrypt … (see main.rs)".into()),
    }
}

fn serve(args: &[String]) -> Result<(), String> {
    let cert_path = required(args, "--tls-cert")?;
    let key_path = required(args, "--tls-key")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(Iterator::collect)
        .map_err(|e| format!("{cert_path}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| format!("{key_path}: {e}"))?;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("the TLS certificate and key: {e}"))?;
    let mut measurements = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if a == "--measurements" {
            let path = args.get(i + 1).ok_or("--measurements needs a FILE")?;
            measurements.push(std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?);
        }
    }
    if measurements.is_empty() {
        return Err("--measurements FILE is required (repeat it to accept several images)".into());
    }
    let standin = Arc::new(kms::Standin {
        region: flag(args, "--region").unwrap_or_else(|| "us-east-1".into()),
        master: master_key(Path::new(&required(args, "--master-key-file")?))?,
        measurements,
        work: flag(args, "--work").map_or_else(
            || std::env::temp_dir().join(format!("kms-standin-{}", std::process::id())),
            PathBuf::from,
        ),
    });
    let kms = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding: {e}"))?;
    let imds = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding: {e}"))?;
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
    println!(
        "kms-standin: KMS on 127.0.0.1:{} (HTTPS), instance metadata on 127.0.0.1:{} (HTTP)",
        port(&kms),
        port(&imds)
    );
    let _ = std::io::stdout().flush();
    let tls = Arc::new(tls);
    std::thread::spawn(move || {
        for conn in imds.incoming().flatten() {
            std::thread::spawn(move || serve_imds(conn));
        }
    });
    for conn in kms.incoming().flatten() {
        let (tls, standin) = (Arc::clone(&tls), Arc::clone(&standin));
        std::thread::spawn(move || serve_kms(conn, tls, &standin));
    }
    Ok(())
}

fn log(line: &str) {
    println!("kms-standin: {line}");
    let _ = std::io::stdout().flush();
}

fn serve_imds(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    match http::read_request(&mut conn) {
        Ok(req) => {
            let (status, ty, body) = imds::answer(&req, unix_now());
            log(&format!("IMDS {} {}: {status}", req.method, req.path));
            let _ = http::write_response(&mut conn, status, ty, &body);
        }
        Err(e) => log(&format!("IMDS: {e}")),
    }
}

fn serve_kms(conn: TcpStream, tls: Arc<rustls::ServerConfig>, standin: &kms::Standin) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(session) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut stream = rustls::StreamOwned::new(session, conn);
    match http::read_request(&mut stream) {
        Ok(req) => {
            let (status, body, line) = standin.answer(&req, unix_now());
            log(&format!("KMS {line}"));
            let _ = http::write_response(&mut stream, status, "application/x-amz-json-1.1", &body);
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
        Err(e) => log(&format!("KMS: {e}")),
    }
}
