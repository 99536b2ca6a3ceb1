//! A route at run time: its configuration and counters, whether its data path is splice or
//! copy, and for a TCP target named by a host name the addresses it resolves to. Resolving
//! blocks, so the main thread does it (at start and every [`RESOLVE_EVERY`]); the workers only
//! read the last answer and never wait for DNS.

use crate::addr::{Addr, Route};
use crate::metrics::Counters;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the main thread resolves TCP target names again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// A route at run time.
#[derive(Debug)]
pub struct RouteRt {
    /// As configured.
    pub route: Route,
    /// The bound listen address.
    pub listen: String,
    /// Its counters.
    pub counters: Arc<Counters>,
    /// Connection limit.
    pub max_conns: u64,
    /// Send PROXY v2.
    pub proxy_v2: bool,
    /// 0: nothing logged yet, 1: "splice" logged, 2: copy mode logged (and used from then on).
    pub path: AtomicU8,
    /// The TCP target's addresses, or why there are none (not TCP: unused).
    resolved: RwLock<Result<Vec<SocketAddr>, String>>,
}

impl RouteRt {
    /// A route with its limit and PROXY setting resolved; its TCP target is resolved once now.
    pub fn new(route: Route, listen: String, max_conns: u64, proxy_v2: bool) -> RouteRt {
        let rt = RouteRt {
            route,
            listen,
            counters: Arc::default(),
            max_conns,
            proxy_v2,
            path: AtomicU8::new(0),
            resolved: RwLock::new(Err("not resolved yet".into())),
        };
        rt.resolve();
        rt
    }

    /// Resolves a TCP target's host (blocking: the main thread's job).
    pub fn resolve(&self) {
        let Addr::Tcp { host, port } = &self.route.target else {
            return;
        };
        let r = match (host.as_str(), *port).to_socket_addrs() {
            Ok(a) => {
                let a: Vec<SocketAddr> = a.collect();
                if a.is_empty() {
                    Err(format!("{host} resolves to no address"))
                } else {
                    Ok(a)
                }
            }
            Err(e) => Err(format!("resolving {host}: {e}")),
        };
        *self.resolved.write().unwrap_or_else(|p| p.into_inner()) = r;
    }

    /// Whether the target is named by a host name (resolving again can change the answer).
    pub fn needs_resolving(&self) -> bool {
        matches!(&self.route.target, Addr::Tcp { host, .. } if host.parse::<std::net::IpAddr>().is_err())
    }

    /// The TCP target's addresses as last resolved.
    pub fn addresses(&self) -> Result<Vec<SocketAddr>, String> {
        self.resolved
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(target: &str) -> RouteRt {
        let r = Route::parse(&format!("tcp:127.0.0.1:0={target}")).unwrap();
        RouteRt::new(r, "tcp:127.0.0.1:0".into(), 10, false)
    }

    #[test]
    fn literals_resolve_at_once_and_names_are_marked() {
        let r = route("tcp:127.0.0.1:9");
        assert_eq!(r.addresses().unwrap(), vec!["127.0.0.1:9".parse().unwrap()]);
        assert!(!r.needs_resolving());
        let named = route("tcp:localhost:9");
        assert!(named.needs_resolving());
        assert!(named.addresses().is_ok(), "/etc/hosts names localhost");
        assert!(!route("unix:/x").needs_resolving());
    }
}
