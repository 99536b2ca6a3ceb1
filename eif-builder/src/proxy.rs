//! `eif-builder proxy`: plain HTTP in on a local port, attested TLS out to the enclave, so an
//! unmodified client (curl, a browser, an SDK) talks to exactly the measured image and nothing
//! else.
//!
//! ```text
//!  client ─HTTP─► proxy: server::http::Session ─► Upstream::handle ─► pooled attested TLS ─► enclave
//! ```
//!
//! - Clients: one thread per connection (at most [`ProxyConfig::max_clients`]), each running
//!   the server library's HTTP/1.1 layer ([`server::http::Session`]): the same strict request
//!   parsing, limits and keep-alive as the enclave's own server. No async runtime.
//! - The enclave: [`upstream`]. Every new TLS connection is attested before a request goes over
//!   it, with the document carried in its certificate when there is one (no round trip), else
//!   the endpoint's, asked with a fresh nonce over that very connection; attested connections
//!   are kept alive and reused. A connection that cannot be attested gets the client a 502 that
//!   says why, and the request is not sent.
//! - Every response carries what was verified: `X-Enclave-PCR0`, `-PCR1`, `-PCR2` (and `-PCR8`
//!   of a signed image), `X-Enclave-Image` (the accepted image's name, when the measurements
//!   file names several), `X-Enclave-Module-Id`, `X-Enclave-Attestation` (`certificate`,
//!   `nonce` or `nitriding`), and `X-Enclave-Signature: not-checked` under
//!   `--insecure-emulator`. Such headers from the enclave are dropped.

pub mod upstream;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use server::http::{Ctx, Flow, Session};
use server::Limits;

pub use upstream::{ProxyConfig, Upstream};

/// How long a client connection may sit without sending anything, or without taking what is
/// sent to it.
pub const CLIENT_IDLE: Duration = Duration::from_secs(60);

/// The limits client requests are held to (the server's, with a larger body).
pub fn client_limits() -> Limits {
    Limits {
        max_body_bytes: upstream::MAX_REQUEST_BODY,
        max_requests_per_connection: u64::MAX,
        ..Limits::default()
    }
}

/// Serves clients on `listener` forever (a thread per connection).
pub fn serve(listener: TcpListener, upstream: Arc<Upstream>) -> std::io::Result<()> {
    let clients = Arc::new(AtomicUsize::new(0));
    let limits = Arc::new(client_limits());
    let max = upstream.config().max_clients;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if clients.fetch_add(1, Ordering::SeqCst) >= max {
            clients.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
                  Content-Length: 46\r\nConnection: close\r\n\r\n\
                  {\"error\":\"too many client connections at once\"}",
            );
            continue;
        }
        let (upstream, limits, count) = (upstream.clone(), limits.clone(), clients.clone());
        let spawned = std::thread::Builder::new()
            .name("proxy-client".into())
            .spawn(move || {
                client(stream, &upstream, &limits);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

/// One client connection: read, answer every complete request, write, until either side ends.
fn client(mut stream: TcpStream, upstream: &Arc<Upstream>, limits: &Limits) {
    if stream.set_read_timeout(Some(CLIENT_IDLE)).is_err()
        || stream.set_write_timeout(Some(CLIENT_IDLE)).is_err()
        || stream.set_nodelay(true).is_err()
    {
        return;
    }
    let handler: &dyn server::Handler = upstream.as_ref();
    let mut session = Session::new();
    let (mut input, mut out, mut log) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(chunk.get(..n).unwrap_or_default());
        // Answer until nothing more can be: output room may have stopped a round early.
        loop {
            let before = input.len();
            let date = contract::date::http_date(crate::time::now_unix());
            let mut ctx = Ctx {
                limits,
                handler,
                date: date.as_bytes(),
                log: &mut log,
                shed: false,
                slice: Duration::from_secs(3600),
                out_limit: server::http::OUT_HIGH_WATER,
            };
            let flow = session.process(&mut input, &mut out, &mut ctx);
            log.clear();
            if !out.is_empty() {
                if stream.write_all(&out).is_err() {
                    return;
                }
                out.clear();
            }
            if session.is_closing() {
                return;
            }
            if flow == Flow::Done && input.len() == before {
                break;
            }
        }
    }
}
