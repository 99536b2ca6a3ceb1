//! Counters per route, served in the Prometheus text format on `--metrics tcp:HOST:PORT`.

use crate::addr::Addr;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The counters of one route (all relaxed atomics: totals, not synchronisation).
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted and relayed (not refused).
    pub accepted: AtomicU64,
    /// Connections currently open (including those still connecting to the target).
    pub active: AtomicU64,
    /// Connections closed at once because the route was at its limit (or shutting down).
    pub refused: AtomicU64,
    /// Bytes client → target.
    pub bytes_up: AtomicU64,
    /// Bytes target → client.
    pub bytes_down: AtomicU64,
    /// Connections that ended in an error (reset, failed connect, accept error).
    pub errors: AtomicU64,
    /// Connections whose target could not be reached after the retries.
    pub connect_failures: AtomicU64,
}

/// Name, type, help, and how to read it.
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Counters) -> u64,
);

/// Renders every route's counters.
pub fn render(routes: &[(String, String, &Counters)]) -> String {
    let mut s = String::new();
    let metrics: [Metric; 7] = [
        (
            "host_relay_connections_total",
            "counter",
            "Connections accepted and relayed.",
            |c| c.accepted.load(Relaxed),
        ),
        (
            "host_relay_connections_active",
            "gauge",
            "Connections open now.",
            |c| c.active.load(Relaxed),
        ),
        (
            "host_relay_connections_refused_total",
            "counter",
            "Connections closed at once (limit reached or shutting down).",
            |c| c.refused.load(Relaxed),
        ),
        (
            "host_relay_bytes_up_total",
            "counter",
            "Bytes from clients to the target.",
            |c| c.bytes_up.load(Relaxed),
        ),
        (
            "host_relay_bytes_down_total",
            "counter",
            "Bytes from the target to clients.",
            |c| c.bytes_down.load(Relaxed),
        ),
        (
            "host_relay_errors_total",
            "counter",
            "Connections ended by an error.",
            |c| c.errors.load(Relaxed),
        ),
        (
            "host_relay_connect_failures_total",
            "counter",
            "Connections whose target stayed unreachable.",
            |c| c.connect_failures.load(Relaxed),
        ),
    ];
    for (name, kind, help, get) in metrics {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (i, (listen, target, c)) in routes.iter().enumerate() {
            let _ = writeln!(
                s,
                "{name}{{route=\"{i}\",listen=\"{}\",target=\"{}\"}} {}",
                escape(listen),
                escape(target),
                get(c)
            );
        }
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves the counters over HTTP/1.0 on `addr` (a tcp address) in a background thread; returns
/// the bound address.
pub fn serve(
    addr: &Addr,
    routes: Arc<Vec<(String, String, Arc<Counters>)>>,
) -> std::io::Result<std::net::SocketAddr> {
    let Addr::Tcp { host, port } = addr else {
        return Err(std::io::Error::other("--metrics must be a tcp: address"));
    };
    let l = TcpListener::bind((host.as_str(), *port))?;
    let bound = l.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
            // The request is not parsed: any request gets the counters.
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let view: Vec<(String, String, &Counters)> =
                routes.iter().map(|(l, t, c)| (l.clone(), t.clone(), &**c)).collect();
            let body = render(&view);
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let c = Counters::default();
        c.accepted.store(3, Relaxed);
        c.bytes_up.store(10, Relaxed);
        let s = render(&[("tcp:0.0.0.0:443".into(), "vsock:16:443".into(), &c)]);
        assert!(s.contains("# TYPE host_relay_connections_total counter\n"));
        assert!(s.contains(
            "host_relay_connections_total{route=\"0\",listen=\"tcp:0.0.0.0:443\",target=\"vsock:16:443\"} 3\n"
        ));
        assert!(s.contains("host_relay_bytes_up_total{route=\"0\",listen=\"tcp:0.0.0.0:443\",target=\"vsock:16:443\"} 10\n"));
        assert_eq!(escape("a\"b"), "a\\\"b");
    }
}
