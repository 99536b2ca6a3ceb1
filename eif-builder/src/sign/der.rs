//! Just enough DER to find an X.509 certificate's public key: bounded TLV walking, no allocation.

/// `id-ecPublicKey` (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `secp256r1` / P-256 (1.2.840.10045.3.1.7).
pub const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` / P-384 (1.3.132.0.34).
pub const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// `secp521r1` / P-521 (1.3.132.0.35).
pub const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;
const VERSION_TAG: u8 = 0xa0;

/// A read position over DER bytes.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Der { rest: bytes }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element's tag and contents (definite lengths of up to 4 bytes only).
    fn next(&mut self) -> Result<(u8, &'a [u8]), &'static str> {
        let (&tag, rest) = self.rest.split_first().ok_or("unexpected end of DER")?;
        let (&first, mut rest) = rest.split_first().ok_or("DER length missing")?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err("unsupported DER length form");
            }
            let (bytes, after) = rest.split_at_checked(n).ok_or("DER length truncated")?;
            rest = after;
            let mut len: usize = 0;
            for &b in bytes {
                len = len.checked_mul(256).ok_or("DER length overflow")? | usize::from(b);
            }
            len
        };
        let (contents, after) = rest
            .split_at_checked(len)
            .ok_or("DER element runs past its container")?;
        self.rest = after;
        Ok((tag, contents))
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], &'static str> {
        match self.next()? {
            (t, contents) if t == tag => Ok(contents),
            _ => Err(what),
        }
    }
}

/// An EC public key taken from a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcPublicKey<'a> {
    /// The named curve's OID contents.
    pub curve: &'a [u8],
    /// The SEC1 point, normally uncompressed (`04 ‖ X ‖ Y`).
    pub point: &'a [u8],
}

/// The subjectPublicKeyInfo of a DER certificate, if it is an EC key on a named curve.
pub fn certificate_ec_key(cert: &[u8]) -> Result<EcPublicKey<'_>, &'static str> {
    let mut outer = Der::new(cert);
    let certificate = outer.expect(SEQUENCE, "certificate is not a DER SEQUENCE")?;
    if !outer.rest.is_empty() {
        return Err("trailing bytes after the certificate");
    }
    let mut c = Der::new(certificate);
    let tbs = c.expect(SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let mut t = Der::new(tbs);
    if t.peek_tag() == Some(VERSION_TAG) {
        t.next()?;
    }
    t.expect(INTEGER, "serialNumber is not an INTEGER")?;
    t.expect(SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    t.expect(SEQUENCE, "issuer is not a SEQUENCE")?;
    t.expect(SEQUENCE, "validity is not a SEQUENCE")?;
    t.expect(SEQUENCE, "subject is not a SEQUENCE")?;
    let spki = t.expect(SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE")?;
    let mut s = Der::new(spki);
    let alg = s.expect(SEQUENCE, "public key algorithm is not a SEQUENCE")?;
    let bits = s.expect(BIT_STRING, "public key is not a BIT STRING")?;
    let mut a = Der::new(alg);
    let oid = a.expect(OID, "public key algorithm OID missing")?;
    if oid != OID_EC_PUBLIC_KEY {
        return Err("the certificate's key is not an EC key");
    }
    let curve = a.expect(OID, "EC key has no named curve")?;
    let point = match bits.split_first() {
        Some((0, point)) => point,
        _ => return Err("public key BIT STRING has unused bits"),
    };
    Ok(EcPublicKey { curve, point })
}

/// A readable name for a curve OID.
pub fn curve_name(oid: &[u8]) -> &'static str {
    match oid {
        OID_P256 => "P-256",
        OID_P384 => "P-384",
        OID_P521 => "P-521",
        _ => "an unknown curve",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_bounds_checked() {
        assert!(Der::new(&[0x30]).next().is_err());
        assert!(Der::new(&[0x30, 0x05, 0x00]).next().is_err());
        assert!(Der::new(&[0x30, 0x85, 1, 1, 1, 1, 1]).next().is_err());
        assert!(Der::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff])
            .next()
            .is_err());
        assert!(Der::new(&[0x30, 0x80]).next().is_err());
        let mut d = Der::new(&[0x02, 0x81, 0x01, 0x07, 0x05, 0x00]);
        assert_eq!(d.next().unwrap(), (0x02, &[0x07][..]));
        assert_eq!(d.next().unwrap(), (0x05, &[][..]));
    }

    #[test]
    fn rejects_non_certificates() {
        assert!(certificate_ec_key(b"").is_err());
        assert!(certificate_ec_key(&[0x30, 0x00]).is_err());
        assert!(certificate_ec_key(&[0x30, 0x00, 0x00]).is_err());
    }
}
