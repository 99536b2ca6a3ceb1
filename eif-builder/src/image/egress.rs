//! Egress: how the application reaches the outside services its manifest lists, with no network
//! device in the enclave.
//!
//! Each distinct host (a DNS name or an IPv4 address) gets a loopback address of its own,
//! `127.0.0.2`, `127.0.0.3`, … in order of first appearance; each entry `NAME:PORT` (the `i`th,
//! from 0) gets the parent's vsock port `8000 + i`. In the enclave the forwarder (host-relay,
//! process `egress` of the processes file) listens on `tcp:ADDR:PORT` and connects to vsock
//! `3:8000+i` (CID 3 is the parent); on the parent, host-relay with the routes of
//! `egress-routes` listens on `vsock:any:8000+i` and connects to `tcp:NAME:PORT`, resolving NAME
//! there. Nothing else is reachable.
//!
//! Two files in the image say where each entry is: `/etc/hosts` maps every name (not the IPv4
//! addresses: a hosts file maps names only) to its loopback address, so an application connects
//! to `NAME:PORT` as it would anywhere; and the egress table ([`contract::egress`], at
//! `/etc/enclave-https/egress`) lists every entry with its loopback address and port, which the
//! server library's client reads, so it reaches IPv4 addresses too (the instance metadata
//! service, `169.254.169.254:80`) and fails at once on a service not listed.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::manifest::Egress;

/// Where the forwarder goes in the root file system.
pub const RELAY_PATH: &str = "/enclave-https/host-relay";

/// The parent's vsock port of the first entry.
pub const FIRST_VSOCK_PORT: u32 = 8000;

/// The parent instance's vsock CID, as the enclave reaches it.
pub const PARENT_CID: u32 = 3;

/// The file of the parent's routes, next to the image.
pub const ROUTES_FILE: &str = "egress-routes";

/// One entry and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The host name or IPv4 address, as the manifest lists it.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The loopback address the forwarder listens on for it (the name's in `/etc/hosts`).
    pub addr: Ipv4Addr,
    /// The parent's vsock port.
    pub vsock_port: u32,
}

/// The routes of `entries` (at most [`super::manifest::MAX_EGRESS`], so every address is in
/// 127.0.0.0/24).
pub fn plan(entries: &[Egress]) -> Vec<Route> {
    let mut names: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let n = match names.iter().position(|h| *h == e.host) {
            Some(n) => n,
            None => {
                names.push(&e.host);
                names.len() - 1
            }
        };
        // Bounded by MAX_EGRESS (200): 2 + n stays below 256.
        let last = u8::try_from(2 + n).unwrap_or(u8::MAX);
        out.push(Route {
            host: e.host.clone(),
            port: e.port,
            addr: Ipv4Addr::new(127, 0, 0, last),
            vsock_port: FIRST_VSOCK_PORT + u32::try_from(i).unwrap_or(u32::MAX - FIRST_VSOCK_PORT),
        });
    }
    out
}

/// The enclave's `/etc/hosts`: localhost, then each name once (IPv4 addresses are not names:
/// they are in the egress table only).
pub fn hosts_file(routes: &[Route]) -> String {
    let mut s = String::from("127.0.0.1 localhost\n::1 localhost\n");
    let mut seen: Vec<&str> = Vec::new();
    for r in routes {
        if contract::egress::is_ipv4_literal(&r.host) {
            continue;
        }
        if !seen.contains(&r.host.as_str()) {
            seen.push(&r.host);
            s.push_str(&format!("{} {}\n", r.addr, r.host));
        }
    }
    s
}

/// The enclave's egress table ([`contract::egress`]): every entry, in the manifest's order.
pub fn table(routes: &[Route]) -> String {
    let entries: Vec<contract::egress::Entry> = routes
        .iter()
        .map(|r| contract::egress::Entry {
            host: r.host.clone(),
            port: r.port,
            local: SocketAddrV4::new(r.addr, r.port),
        })
        .collect();
    contract::egress::render(&entries)
}

/// The forwarder's argv in the enclave. One worker: it carries a few outbound connections.
pub fn relay_argv(routes: &[Route]) -> Vec<String> {
    let mut argv = vec![RELAY_PATH.to_owned(), "--workers".into(), "1".into()];
    for r in routes {
        argv.push("--route".into());
        argv.push(format!(
            "tcp:{}:{}=vsock:{PARENT_CID}:{}",
            r.addr, r.port, r.vsock_port
        ));
    }
    argv
}

/// The parent's routes (`host-relay --routes FILE`), one per line.
pub fn parent_routes(routes: &[Route]) -> String {
    routes
        .iter()
        .map(|r| format!("vsock:any:{}=tcp:{}:{}\n", r.vsock_port, r.host, r.port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(host: &str, port: u16) -> Egress {
        Egress {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn names_share_an_address_and_entries_take_ports_in_order() {
        let routes = plan(&[e("b.example", 443), e("a.example", 443), e("b.example", 80)]);
        let addrs: Vec<String> = routes.iter().map(|r| r.addr.to_string()).collect();
        assert_eq!(addrs, ["127.0.0.2", "127.0.0.3", "127.0.0.2"]);
        let ports: Vec<u32> = routes.iter().map(|r| r.vsock_port).collect();
        assert_eq!(ports, [8000, 8001, 8002]);
        assert_eq!(
            hosts_file(&routes),
            "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 b.example\n127.0.0.3 a.example\n"
        );
        assert_eq!(
            relay_argv(&routes),
            [
                "/enclave-https/host-relay",
                "--workers",
                "1",
                "--route",
                "tcp:127.0.0.2:443=vsock:3:8000",
                "--route",
                "tcp:127.0.0.3:443=vsock:3:8001",
                "--route",
                "tcp:127.0.0.2:80=vsock:3:8002",
            ]
        );
        assert_eq!(
            parent_routes(&routes),
            "vsock:any:8000=tcp:b.example:443\nvsock:any:8001=tcp:a.example:443\nvsock:any:8002=tcp:b.example:80\n"
        );
    }

    #[test]
    fn an_ipv4_address_is_routed_like_a_name_but_not_in_hosts() {
        let routes = plan(&[
            e("kms.us-east-1.amazonaws.com", 443),
            e("169.254.169.254", 80),
            e("kms.us-east-1.amazonaws.com", 80),
        ]);
        let addrs: Vec<String> = routes.iter().map(|r| r.addr.to_string()).collect();
        assert_eq!(addrs, ["127.0.0.2", "127.0.0.3", "127.0.0.2"]);
        assert_eq!(
            hosts_file(&routes),
            "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 kms.us-east-1.amazonaws.com\n"
        );
        assert_eq!(
            relay_argv(&routes)[6..],
            [
                "tcp:127.0.0.3:80=vsock:3:8001",
                "--route",
                "tcp:127.0.0.2:80=vsock:3:8002"
            ]
        );
        assert_eq!(
            parent_routes(&routes),
            "vsock:any:8000=tcp:kms.us-east-1.amazonaws.com:443\nvsock:any:8001=tcp:169.254.169.254:80\nvsock:any:8002=tcp:kms.us-east-1.amazonaws.com:80\n"
        );
        let text = table(&routes);
        assert_eq!(
            text,
            "# enclave-https egress: HOST:PORT LOCAL_ADDRESS:PORT, written by eif-builder image\n\
             kms.us-east-1.amazonaws.com:443 127.0.0.2:443\n\
             169.254.169.254:80 127.0.0.3:80\n\
             kms.us-east-1.amazonaws.com:80 127.0.0.2:80\n"
        );
        // The server's client reads it back with the contract's reader.
        let read = contract::egress::parse(&text).unwrap();
        assert_eq!(read.len(), 3);
        let imds = contract::egress::lookup(&read, "169.254.169.254", 80).unwrap();
        assert_eq!(imds.local.to_string(), "127.0.0.3:80");
    }

    #[test]
    fn two_hundred_names_stay_in_one_slash_24() {
        let many: Vec<Egress> = (0..200).map(|i| e(&format!("h{i}.example"), 1)).collect();
        let routes = plan(&many);
        assert_eq!(routes[199].addr, Ipv4Addr::new(127, 0, 0, 201));
        assert_eq!(routes[199].vsock_port, 8199);
        assert_eq!(contract::egress::parse(&table(&routes)).unwrap().len(), 200);
    }
}
