//! PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2), sent to the target
//! before any client byte so the enclave can log the client's address. Binary, fixed layout:
//! 12-byte signature, version/command, family/transport, 16-bit big-endian address length, addresses.

use std::net::SocketAddr;

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

#[cfg(test)]
mod tests {
    use super::*;

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
