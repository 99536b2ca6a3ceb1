//! The PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2): host-relay
//! sends it (`proxy-v2` on a route) before any client byte, and the enclave's server, when told
//! to expect it (`--proxy-protocol`), reads the client's address from it. Binary, fixed layout:
//! 12-byte signature, version/command, family/transport, 16-bit big-endian address length,
//! addresses, then optional TLVs (read past, not interpreted).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The most address and TLV bytes accepted after the fixed 16 (a relay sends 12 or 36).
pub const MAX_BODY: usize = 512;

/// The 12-byte signature that starts every v2 header.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header for a TCP client `src` that connected to our `dst`; `None` (a client on a Unix or
/// vsock listener) gives the LOCAL command, which carries no address.
pub fn header(addrs: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    match addrs {
        Some((SocketAddr::V4(s), SocketAddr::V4(d))) => {
            h.extend_from_slice(&[0x21, 0x11, 0, 12]); // v2 PROXY, TCP over IPv4, 12 bytes
            h.extend_from_slice(&s.ip().octets());
            h.extend_from_slice(&d.ip().octets());
            h.extend_from_slice(&s.port().to_be_bytes());
            h.extend_from_slice(&d.port().to_be_bytes());
        }
        Some((s, d)) => {
            // IPv6, or a mix (an IPv4 client on a dual-stack socket): both as IPv6.
            let v6 = |a: SocketAddr| match a {
                SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
                SocketAddr::V6(a) => a.ip().octets(),
            };
            h.extend_from_slice(&[0x21, 0x21, 0, 36]); // v2 PROXY, TCP over IPv6, 36 bytes
            h.extend_from_slice(&v6(s));
            h.extend_from_slice(&v6(d));
            h.extend_from_slice(&s.port().to_be_bytes());
            h.extend_from_slice(&d.port().to_be_bytes());
        }
        None => h.extend_from_slice(&[0x20, 0x00, 0, 0]), // v2 LOCAL, UNSPEC, no address
    }
    h
}

/// A header read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The client's address (PROXY over TCP/IPv4 or IPv6); `None` for LOCAL or an address
    /// family without one (Unix, unspecified).
    pub source: Option<SocketAddr>,
}

/// Why the bytes are not a PROXY v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The first 12 bytes are not the v2 signature (a client speaking TLS, or PROXY v1).
    Signature,
    /// Version other than 2, or a command other than LOCAL and PROXY.
    Version(u8),
    /// An address family or transport this cannot carry (UDP), or addresses shorter than it.
    Family(u8),
    /// More than [`MAX_BODY`] bytes of addresses and TLVs.
    TooLong(usize),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Signature => write!(f, "no PROXY protocol v2 signature"),
            ProxyError::Version(b) => {
                write!(
                    f,
                    "PROXY header: version/command byte {b:#04x} is not v2 LOCAL or PROXY"
                )
            }
            ProxyError::Family(b) => {
                write!(f, "PROXY header: family/transport byte {b:#04x} is not TCP over IPv4 or IPv6, Unix or unspecified (or its addresses are short)")
            }
            ProxyError::TooLong(n) => {
                write!(
                    f,
                    "PROXY header: {n} bytes of addresses, more than {MAX_BODY}"
                )
            }
        }
    }
}

impl std::error::Error for ProxyError {}

/// Reads a header at the front of `buf`: `Ok(None)` while it is incomplete (a prefix of a
/// header, signature included, so far), `Ok(Some((header, length)))` once it is all in.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProxyError> {
    let sig = buf.len().min(SIGNATURE.len());
    if buf.get(..sig) != SIGNATURE.get(..sig) {
        return Err(ProxyError::Signature);
    }
    let Some(fixed) = buf.get(..16) else {
        // The version byte may already be in: refuse a wrong one early.
        if let Some(&v) = buf.get(12) {
            if v != 0x20 && v != 0x21 {
                return Err(ProxyError::Version(v));
            }
        }
        return Ok(None);
    };
    let (ver, fam) = (fixed[12], fixed[13]);
    if ver != 0x20 && ver != 0x21 {
        return Err(ProxyError::Version(ver));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_BODY {
        return Err(ProxyError::TooLong(len));
    }
    let Some(body) = buf.get(16..16 + len) else {
        return Ok(None);
    };
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let source = match (ver, fam) {
        (0x20, _) => None,
        (_, 0x11) if len >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(IpAddr::V4(ip), port(8)))
        }
        (_, 0x21) if len >= 36 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&body[..16]);
            let ip = Ipv6Addr::from(o);
            // A mapped IPv4 client (a dual-stack relay) is shown as IPv4.
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some(SocketAddr::new(ip, port(32)))
        }
        (_, 0x00 | 0x31) => None,
        _ => return Err(ProxyError::Family(fam)),
    };
    Ok(Some((Header { source }, 16 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_at_every_length() {
        let cases = [
            Some((
                "192.0.2.1:56324".parse().unwrap(),
                "10.0.0.5:443".parse().unwrap(),
            )),
            Some((
                "[2001:db8::1]:1000".parse().unwrap(),
                "[::1]:443".parse().unwrap(),
            )),
            Some(("192.0.2.7:9".parse().unwrap(), "[::1]:443".parse().unwrap())),
            None,
        ];
        for c in cases {
            let mut h = header(c);
            for i in 0..h.len() {
                assert_eq!(parse(&h[..i]), Ok(None), "{c:?} at {i}");
            }
            let want = Header {
                source: c.map(|(s, _)| s),
            };
            assert_eq!(parse(&h), Ok(Some((want, h.len()))));
            h.extend_from_slice(b"\x16\x03\x01");
            assert_eq!(
                parse(&h),
                Ok(Some((want, h.len() - 3))),
                "what follows is left"
            );
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(b"\x16\x03\x01\x02"), Err(ProxyError::Signature));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Err(ProxyError::Signature));
        let mut h = header(None);
        h[12] = 0x11;
        assert_eq!(parse(&h[..13]), Err(ProxyError::Version(0x11)));
        let mut h = header(Some((
            "1.2.3.4:5".parse().unwrap(),
            "1.2.3.4:6".parse().unwrap(),
        )));
        h[13] = 0x12; // UDP
        assert_eq!(parse(&h), Err(ProxyError::Family(0x12)));
        h[13] = 0x21; // says IPv6 but carries 12 bytes
        assert_eq!(parse(&h), Err(ProxyError::Family(0x21)));
        let mut h = header(None);
        h[14..16].copy_from_slice(&600u16.to_be_bytes());
        assert_eq!(parse(&h), Err(ProxyError::TooLong(600)));
        assert_eq!(
            ProxyError::Family(0x12).to_string(),
            "PROXY header: family/transport byte 0x12 is not TCP over IPv4 or IPv6, Unix or unspecified (or its addresses are short)"
        );
        assert_eq!(
            ProxyError::Signature.to_string(),
            "no PROXY protocol v2 signature"
        );
    }

    #[test]
    fn ipv4_matches_the_spec_byte_for_byte() {
        let h = header(Some((
            "192.0.2.1:56324".parse().unwrap(),
            "10.0.0.5:443".parse().unwrap(),
        )));
        let want: &[u8] = &[
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54,
            0x0A, // signature
            0x21, // version 2, command PROXY
            0x11, // AF_INET, STREAM
            0x00, 0x0C, // 12 address bytes
            192, 0, 2, 1, // source
            10, 0, 0, 5, // destination
            0xDC, 0x04, // 56324
            0x01, 0xBB, // 443
        ];
        assert_eq!(h, want);
    }

    #[test]
    fn ipv6_and_local() {
        let h = header(Some((
            "[2001:db8::1]:1000".parse().unwrap(),
            "[::1]:443".parse().unwrap(),
        )));
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0x00, 0x24]);
        assert_eq!(&h[16..18], &[0x20, 0x01]);
        assert_eq!(h[16 + 31], 1); // ::1 ends in 1
        assert_eq!(&h[48..52], &[0x03, 0xE8, 0x01, 0xBB]);
        let l = header(None);
        assert_eq!(&l[..12], &SIGNATURE);
        assert_eq!(&l[12..], &[0x20, 0x00, 0x00, 0x00]);
    }
}
