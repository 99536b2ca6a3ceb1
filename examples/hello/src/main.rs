//! `hello-enclave`: what an application of your own looks like on the `server` library. Two
//! routes of its own (`GET /` and `POST /echo`), and the library's attestation endpoint mounted
//! at `/attestation` so that clients can check which image they talk to (`eif-builder attest`).
//! Everything else — TLS with a key made inside the enclave, HTTP/1.1, limits, the memory
//! budget, graceful shutdown — is the library's.
//!
//! ```sh
//! hello-enclave                              # vsock:443, as in an enclave
//! hello-enclave tcp:127.0.0.1:8443           # on your machine: curl -k https://127.0.0.1:8443/
//! ```

use server::attest::Attestation;
use server::nsm::Nsm;
use server::{Config, Identity, Limits, ListenAddr, Request, Response, Server};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The application's own routes; the attestation endpoint is mounted beside them.
fn routes(attestation: Attestation) -> impl Fn(&Request<'_>) -> Response + Send + Sync + 'static {
    move |req| match (req.method(), req.path()) {
        ("GET" | "HEAD", "/") => Response::new(200, "text/plain", "hello from the enclave\n"),
        ("POST", "/echo") => Response::new(200, "application/octet-stream", req.body().to_vec()),
        (_, "/attestation") => attestation.handle(req),
        (_, "/" | "/echo") => Response::json_error(405, "method not allowed"),
        _ => Response::json_error(404, "not found"),
    }
}

fn run(listen: ListenAddr) -> server::Result<()> {
    // A key pair made here, in the enclave's memory; the attestation binds its certificate,
    // which (with an NSM) also carries the document for its key.
    let nsm = Nsm::open_default().ok();
    let identity = Identity::generate_for(nsm.as_ref())?;
    let attestation = Attestation::new(nsm, identity.leaf_der());
    let memory = server::memory::detect().map_or(256 << 20, |m| m.bytes);
    let config = Config {
        listen,
        workers: 2,
        limits: Limits::for_memory(memory),
    };
    let mut server = Server::bind(&config, Some(identity.into_config()?))?;
    server.stop_on_signals(Duration::from_secs(5))?;
    println!("hello-enclave: listening on {}", server.local_addr());
    server.run(Arc::new(routes(attestation)))
}

fn main() -> ExitCode {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "vsock:443".into());
    let result = listen.parse().and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-enclave: {e}");
            ExitCode::FAILURE
        }
    }
}
