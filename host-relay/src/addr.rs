//! Addresses and routes as written on the command line.
//!
//! `tcp:HOST:PORT` (IPv6 in brackets), `vsock:CID:PORT`, `unix:PATH`, `vsock-uds:PATH:PORT` (the
//! Firecracker "hybrid vsock": connect to the Unix socket PATH, send `CONNECT PORT\n`, read `OK …\n`).
//! A route is `LISTEN=TARGET[,OPTION…]`; LISTEN may be tcp, unix or vsock. Every error names the
//! part of the input that is wrong.

use crate::error::Usage;
use std::fmt;
use std::path::PathBuf;

/// The CID meaning "any" for a vsock listener (VMADDR_CID_ANY).
pub const VSOCK_CID_ANY: u32 = u32::MAX;

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// `tcp:HOST:PORT`; HOST is kept as written (resolved when used), without brackets.
    Tcp {
        /// Host name or IP literal.
        host: String,
        /// TCP port (0 only for a listener: pick a free port).
        port: u16,
    },
    /// `vsock:CID:PORT`.
    Vsock {
        /// Context id (`any` = [`VSOCK_CID_ANY`]).
        cid: u32,
        /// vsock port.
        port: u32,
    },
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `vsock-uds:PATH:PORT`.
    VsockUds {
        /// The hybrid-vsock Unix socket.
        path: PathBuf,
        /// The guest port named in `CONNECT PORT`.
        port: u32,
    },
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Addr::Vsock { cid, port } if *cid == VSOCK_CID_ANY => write!(f, "vsock:any:{port}"),
            Addr::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::VsockUds { path, port } => write!(f, "vsock-uds:{}:{port}", path.display()),
        }
    }
}

/// Splits `rest` at its last `:` into (before, port text); `what` names the form for the error.
fn split_port<'a>(rest: &'a str, input: &str, form: &str) -> Result<(&'a str, &'a str), String> {
    rest.rsplit_once(':')
        .ok_or_else(|| format!("`{input}`: missing port (expected {form})"))
}

fn parse_u16_port(p: &str, input: &str, listen: bool) -> Result<u16, String> {
    if p.is_empty() {
        return Err(format!("`{input}`: empty port"));
    }
    let n: u32 = p
        .parse()
        .map_err(|_| format!("`{input}`: bad port `{p}` (not a number)"))?;
    match u16::try_from(n) {
        Ok(0) if !listen => Err(format!("`{input}`: bad port `0` (a target needs 1-65535)")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("`{input}`: bad port `{p}` (out of range 0-65535)")),
    }
}

fn parse_u32(p: &str, input: &str, what: &str) -> Result<u32, String> {
    if p.is_empty() {
        return Err(format!("`{input}`: empty {what}"));
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{input}`: bad {what} `{p}` (not a number)"));
    }
    p.parse()
        .map_err(|_| format!("`{input}`: {what} `{p}` out of range (0-4294967295)"))
}

impl Addr {
    /// Parses one address. `listen` allows port 0 and `vsock:any:PORT`.
    pub fn parse(input: &str, listen: bool) -> Result<Addr, Usage> {
        Addr::parse_inner(input, listen).map_err(Usage)
    }

    fn parse_inner(input: &str, listen: bool) -> Result<Addr, String> {
        let (scheme, rest) = input.split_once(':').ok_or_else(|| {
            format!("`{input}`: missing scheme (expected tcp:, vsock:, unix: or vsock-uds:)")
        })?;
        match scheme {
            "tcp" => {
                let (host, port) = split_port(rest, input, "tcp:HOST:PORT")?;
                let host = if let Some(h) = host.strip_prefix('[') {
                    h.strip_suffix(']')
                        .ok_or_else(|| format!("`{input}`: unclosed `[` in host"))?
                } else if host.contains(':') {
                    return Err(format!(
                        "`{input}`: bad host `{host}` (write IPv6 addresses in brackets)"
                    ));
                } else {
                    host
                };
                if host.is_empty() {
                    return Err(format!("`{input}`: empty host"));
                }
                if host.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
                    return Err(format!("`{input}`: bad host `{host}`"));
                }
                let port = parse_u16_port(port, input, listen)?;
                Ok(Addr::Tcp {
                    host: host.to_string(),
                    port,
                })
            }
            "vsock" => {
                let (cid, port) = split_port(rest, input, "vsock:CID:PORT")?;
                let cid = if listen && (cid == "any" || cid == "-1") {
                    VSOCK_CID_ANY
                } else {
                    let c = parse_u32(cid, input, "CID")?;
                    if c == VSOCK_CID_ANY && !listen {
                        return Err(format!("`{input}`: CID `{cid}` out of range for a target"));
                    }
                    c
                };
                let port = parse_u32(port, input, "port")?;
                Ok(Addr::Vsock { cid, port })
            }
            "unix" => {
                if rest.is_empty() {
                    return Err(format!("`{input}`: empty path"));
                }
                Ok(Addr::Unix(PathBuf::from(rest)))
            }
            "vsock-uds" => {
                if listen {
                    return Err(format!(
                        "`{input}`: vsock-uds can only be a target (listen on unix: instead)"
                    ));
                }
                let (path, port) = split_port(rest, input, "vsock-uds:PATH:PORT")?;
                if path.is_empty() {
                    return Err(format!("`{input}`: empty path"));
                }
                let port = parse_u32(port, input, "port")?;
                Ok(Addr::VsockUds {
                    path: PathBuf::from(path),
                    port,
                })
            }
            "" => Err(format!("`{input}`: empty scheme")),
            other => Err(format!(
                "`{input}`: unknown scheme `{other}` (expected tcp, vsock, unix or vsock-uds)"
            )),
        }
    }
}

/// One `--route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Where clients connect.
    pub listen: Addr,
    /// The one place their bytes go (for a vsock listener: the egress allow-list of one).
    pub target: Addr,
    /// Send a PROXY protocol v2 header to the target first (`,proxy-v2`).
    pub proxy_v2: bool,
    /// Per-route connection limit (`,max-conns=N`), if set.
    pub max_conns: Option<usize>,
}

impl Route {
    /// Parses `LISTEN=TARGET[,proxy-v2][,max-conns=N]` (paths must not contain `=` or `,`).
    pub fn parse(input: &str) -> Result<Route, Usage> {
        Route::parse_inner(input).map_err(Usage)
    }

    fn parse_inner(input: &str) -> Result<Route, String> {
        let (listen, rest) = input
            .split_once('=')
            .ok_or_else(|| format!("route `{input}`: missing `=` between LISTEN and TARGET"))?;
        if listen.is_empty() {
            return Err(format!("route `{input}`: empty listen address"));
        }
        let mut parts = rest.split(',');
        let target = parts.next().unwrap_or("");
        if target.is_empty() {
            return Err(format!("route `{input}`: empty target address"));
        }
        let listen = Addr::parse_inner(listen, true).map_err(|e| format!("route listen {e}"))?;
        let target = Addr::parse_inner(target, false).map_err(|e| format!("route target {e}"))?;
        let mut route = Route {
            listen,
            target,
            proxy_v2: false,
            max_conns: None,
        };
        for opt in parts {
            match opt.split_once('=') {
                None if opt == "proxy-v2" => route.proxy_v2 = true,
                Some(("max-conns", n)) => {
                    route.max_conns = Some(n.parse().map_err(|_| {
                        format!("route `{input}`: bad max-conns `{n}` (not a number)")
                    })?);
                }
                _ => {
                    return Err(format!(
                        "route `{input}`: unknown option `{opt}` (expected proxy-v2 or max-conns=N)"
                    ))
                }
            }
        }
        Ok(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        Route::parse(s).unwrap_err().0
    }

    #[test]
    fn parses_every_form() {
        let r = Route::parse("tcp:0.0.0.0:443=vsock:16:443").unwrap();
        assert_eq!(
            r.listen,
            Addr::Tcp {
                host: "0.0.0.0".into(),
                port: 443
            }
        );
        assert_eq!(r.target, Addr::Vsock { cid: 16, port: 443 });
        let r =
            Route::parse("vsock:any:8000=tcp:kms.eu-west-1.amazonaws.com:443,proxy-v2,max-conns=5")
                .unwrap();
        assert_eq!(
            r.listen,
            Addr::Vsock {
                cid: VSOCK_CID_ANY,
                port: 8000
            }
        );
        assert!(r.proxy_v2);
        assert_eq!(r.max_conns, Some(5));
        let r = Route::parse("unix:/run/a.sock=vsock-uds:/tmp/v.sock:5000").unwrap();
        assert_eq!(r.listen, Addr::Unix("/run/a.sock".into()));
        assert_eq!(
            r.target,
            Addr::VsockUds {
                path: "/tmp/v.sock".into(),
                port: 5000
            }
        );
        let r = Route::parse("tcp:[::1]:0=tcp:[::1]:80").unwrap();
        assert_eq!(r.target.to_string(), "tcp:[::1]:80");
        assert_eq!(r.listen.to_string(), "tcp:[::1]:0");
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert!(err("tcp:1.2.3.4:443").contains("missing `=`"));
        assert!(err("tcp:1.2.3.4:99999=tcp:a:1").contains("bad port `99999`"));
        assert!(err("tcp:1.2.3.4:x=tcp:a:1").contains("bad port `x`"));
        assert!(err("tcp:1.2.3.4:1=tcp:a:0").contains("bad port `0`"));
        assert!(err("tcp::443=tcp:a:1").contains("empty host"));
        assert!(err("tcp:1.2.3.4:1=tcp:a:").contains("empty port"));
        assert!(err("tcp:1.2.3.4:1=tcp:a").contains("missing port"));
        assert!(err("udp:1.2.3.4:1=tcp:a:1").contains("unknown scheme `udp`"));
        assert!(err("1.2.3.4=tcp:a:1").contains("missing scheme"));
        assert!(err("tcp:1:1=vsock:4294967296:1").contains("CID `4294967296` out of range"));
        assert!(err("tcp:1:1=vsock:-3:1").contains("bad CID `-3`"));
        assert!(err("tcp:1:1=vsock:3:").contains("empty port"));
        assert!(err("tcp:1:1=unix:").contains("empty path"));
        assert!(err("tcp:1:1=vsock-uds::5").contains("empty path"));
        assert!(err("vsock-uds:/a:1=tcp:a:1").contains("only be a target"));
        assert!(err("tcp:::1:1=tcp:a:1").contains("brackets"));
        assert!(err("tcp:1:1=tcp:a:1,fast").contains("unknown option `fast`"));
        assert!(err("tcp:1:1=tcp:a:1,max-conns=x").contains("bad max-conns `x`"));
        assert!(err("=tcp:a:1").contains("empty listen"));
        assert!(err("tcp:1:1=").contains("empty target"));
    }
}
