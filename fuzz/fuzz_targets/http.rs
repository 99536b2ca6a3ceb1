//! Request parsing and handling, without sockets or TLS: bytes go through
//! [`server::http::Session`] (the sans-I/O HTTP/1.1 layer the workers drive) into the default
//! application (`/health`, `/attestation` with a fake NSM, `/private-data` with a fixed key;
//! its modules are included from `server/src/bin/server`), in chunks of a size the input
//! chooses, as a client that trickles its bytes would.
//!
//! The first byte picks the chunk size (bits 0-5: 1 to 64 bytes, 0 = everything at once),
//! tight limits instead of the defaults (bit 6, to reach 413/414/431 quickly) and a shutdown
//! drain half-way (bit 7). Checked besides "no panic": every response starts with a status
//! line, the input buffer only shrinks by what was answered, and nothing is produced once the
//! session is closing.

#![no_main]

#[allow(dead_code)]
#[path = "../../server/src/bin/server/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../../server/src/bin/server/vault.rs"]
mod vault;

use app::App;
use libfuzzer_sys::fuzz_target;
use server::attest::Attestation;
use server::budget::Budget;
use server::http::{Ctx, Session, DEFAULT_SLICE, OUT_HIGH_WATER};
use server::nsm::{AttestError, Attester};
use server::{Limits, Stats};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use vault::{EnclaveKey, Vault};

/// Answers with a fixed document, or fails when the nonce starts with 0xff.
struct FakeNsm;

impl Attester for FakeNsm {
    fn attest(&self, _user_data: &[u8], nonce: &[u8], _key: &[u8]) -> Result<Vec<u8>, AttestError> {
        if nonce.first() == Some(&0xff) {
            return Err(AttestError("fake failure".into()));
        }
        Ok(b"\xd2\x84fake".to_vec())
    }
}

fn cert() -> &'static [u8] {
    static CERT: OnceLock<Vec<u8>> = OnceLock::new();
    CERT.get_or_init(|| server::cert::generate().expect("certificate").cert_der)
}

fn app() -> App {
    let key =
        EnclaveKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("fixed key");
    let budget = Arc::new(Budget::new(64 << 20));
    App::new(
        Arc::new(Stats::default()),
        Arc::clone(&budget),
        Attestation::new(Some(FakeNsm), cert()),
        Vault::new(&key, 4 << 20, Some(budget)).expect("vault"),
    )
}

fn tight() -> Limits {
    Limits {
        max_header_bytes: 256,
        max_headers: 8,
        max_uri_bytes: 64,
        max_body_bytes: 512,
        max_requests_per_connection: 16,
        request_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let chunk = match usize::from(mode & 0x3f) {
        0 => stream.len().max(1),
        n => n,
    };
    let limits = if mode & 0x40 != 0 {
        tight()
    } else {
        Limits::default()
    };
    let drain_at = (mode & 0x80 != 0).then_some(stream.len() / 2);
    let app = app();
    let mut session = Session::new();
    let (mut input, mut out, mut log) = (Vec::new(), Vec::new(), Vec::new());
    let mut fed = 0;
    for piece in stream.chunks(chunk) {
        if session.is_closing() {
            break;
        }
        if drain_at.is_some_and(|at| fed >= at) {
            session.drain();
        }
        fed += piece.len();
        input.extend_from_slice(piece);
        loop {
            let before = input.len();
            out.clear();
            let mut ctx = Ctx {
                limits: &limits,
                handler: &app,
                date: b"Thu, 01 Jan 1970 00:00:00 GMT",
                log: &mut log,
                shed: mode & 0x40 != 0 && fed % 7 == 0,
                slice: DEFAULT_SLICE,
                out_limit: OUT_HIGH_WATER,
            };
            session.process(&mut input, &mut out, &mut ctx);
            assert!(input.len() <= before, "input grew");
            assert!(
                out.is_empty() || out.starts_with(b"HTTP/1."),
                "not a status line: {:?}",
                String::from_utf8_lossy(&out[..out.len().min(64)])
            );
            // Called again only when the output high-water mark paused the pipeline.
            if out.len() < OUT_HIGH_WATER || input.is_empty() {
                break;
            }
        }
        log.clear();
    }
    if session.is_closing() {
        out.clear();
        let mut ctx = Ctx {
            limits: &limits,
            handler: &app,
            date: b"",
            log: &mut log,
            shed: false,
            slice: DEFAULT_SLICE,
            out_limit: OUT_HIGH_WATER,
        };
        session.process(&mut input, &mut out, &mut ctx);
        assert!(out.is_empty(), "output after close");
    }
});
