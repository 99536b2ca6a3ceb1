//! Just enough DER (X.690) to read what this project needs of an X.509 certificate (its public
//! key, validity and extensions): definite lengths of up to four bytes, single-byte tags, every
//! read bounds-checked, no allocation.

use std::fmt;

/// `SEQUENCE`.
pub const SEQUENCE: u8 = 0x30;
/// `INTEGER`.
pub const INTEGER: u8 = 0x02;
/// `BIT STRING`.
pub const BIT_STRING: u8 = 0x03;
/// `OCTET STRING`.
pub const OCTET_STRING: u8 = 0x04;
/// `OBJECT IDENTIFIER`.
pub const OID: u8 = 0x06;
/// `[0]` constructed: the certificate's explicit version.
pub const CONTEXT_0: u8 = 0xa0;
/// `[3]` constructed: the certificate's extensions.
pub const CONTEXT_3: u8 = 0xa3;
/// `BOOLEAN`.
pub const BOOLEAN: u8 = 0x01;
/// `UTCTime`.
pub const UTC_TIME: u8 = 0x17;
/// `GeneralizedTime`.
pub const GENERALIZED_TIME: u8 = 0x18;

/// `id-ecPublicKey` (1.2.840.10045.2.1).
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `secp256r1` / P-256 (1.2.840.10045.3.1.7).
pub const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` / P-384 (1.3.132.0.34).
pub const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// `secp521r1` / P-521 (1.3.132.0.35).
pub const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// Why bytes are not the DER expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerError {
    /// The input ended inside an element.
    Truncated,
    /// A multi-byte tag, an indefinite length or a length of more than four bytes.
    Unsupported,
    /// An element with another tag where this one was expected (names the field).
    Unexpected(&'static str),
    /// Bytes after the outermost element.
    TrailingBytes,
}

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DerError::Truncated => f.write_str("DER element runs past the end of its input"),
            DerError::Unsupported => f.write_str("unsupported DER tag or length form"),
            DerError::Unexpected(what) => write!(f, "DER: {what} is not where it should be"),
            DerError::TrailingBytes => f.write_str("trailing bytes after the DER element"),
        }
    }
}

impl std::error::Error for DerError {}

/// Writes one element: `tag`, the definite length of `content` in its shortest form, `content`.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len().to_be_bytes();
    let skip = len.iter().take_while(|&&b| b == 0).count();
    let significant = len.get(skip..).unwrap_or_default();
    match significant {
        [] => out.push(0),
        [b] if *b < 0x80 => out.push(*b),
        _ => {
            out.push(0x80 | u8::try_from(significant.len()).unwrap_or(0x7f));
            out.extend_from_slice(significant);
        }
    }
    out.extend_from_slice(content);
    out
}

/// Writes a SEQUENCE of these elements.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// One element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag byte.
    pub tag: u8,
    /// The contents.
    pub value: &'a [u8],
    /// The whole element, tag and length included.
    pub raw: &'a [u8],
}

/// A read position over DER bytes.
#[derive(Debug, Clone)]
pub struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element.
    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(DerError::Truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(DerError::Unsupported);
        }
        let (&first, after_len) = after_tag.split_first().ok_or(DerError::Truncated)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(DerError::Unsupported);
            }
            let bytes = after_len.get(..n).ok_or(DerError::Truncated)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, 2 + n)
        };
        let total = header.checked_add(len).ok_or(DerError::Truncated)?;
        let raw = input.get(..total).ok_or(DerError::Truncated)?;
        let value = raw.get(header..).ok_or(DerError::Truncated)?;
        self.rest = input.get(total..).ok_or(DerError::Truncated)?;
        Ok(Tlv { tag, value, raw })
    }

    /// The next element, which must have `tag` (`what` names it in the error).
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, DerError> {
        match self.read() {
            Ok(t) if t.tag == tag => Ok(t),
            Ok(_) => Err(DerError::Unexpected(what)),
            Err(e) => Err(e),
        }
    }
}

/// The parts of a certificate this project reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// The DER `tbsCertificate` (what the signature covers), whole.
    pub tbs: &'a [u8],
    /// The DER SubjectPublicKeyInfo, whole.
    pub spki: &'a [u8],
    /// The contents of the `validity` SEQUENCE (notBefore, notAfter).
    pub validity: &'a [u8],
    /// The contents of the `[3]` extensions element, if present.
    pub extensions: Option<&'a [u8]>,
}

/// Splits a DER X.509 certificate (exactly one element, nothing after it).
pub fn certificate(cert: &[u8]) -> Result<Certificate<'_>, DerError> {
    let mut outer = Der::new(cert);
    let c = outer.expect(SEQUENCE, "the certificate SEQUENCE")?;
    if !outer.is_empty() {
        return Err(DerError::TrailingBytes);
    }
    let mut c = Der::new(c.value);
    let tbs = c.expect(SEQUENCE, "tbsCertificate")?;
    let mut t = Der::new(tbs.value);
    if t.peek_tag() == Some(CONTEXT_0) {
        t.read()?;
    }
    t.expect(INTEGER, "serialNumber")?;
    t.expect(SEQUENCE, "the signature algorithm")?;
    t.expect(SEQUENCE, "issuer")?;
    let validity = t.expect(SEQUENCE, "validity")?;
    t.expect(SEQUENCE, "subject")?;
    let spki = t.expect(SEQUENCE, "subjectPublicKeyInfo")?;
    let mut extensions = None;
    while !t.is_empty() {
        let e = t.read()?;
        if e.tag == CONTEXT_3 {
            extensions = Some(e.value);
        }
    }
    Ok(Certificate {
        tbs: tbs.raw,
        spki: spki.raw,
        validity: validity.value,
        extensions,
    })
}

/// One extension of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// Whether it is marked critical.
    pub critical: bool,
    /// The contents of `extnValue` (the DER of the extension's own value).
    pub value: &'a [u8],
}

impl<'a> Certificate<'a> {
    /// The extension with this OID (contents bytes), if the certificate has it; an extension
    /// list that does not parse, or that names this OID twice (RFC 5280 §4.2), is an error.
    pub fn extension(&self, oid: &[u8]) -> Result<Option<Extension<'a>>, DerError> {
        let Some(contents) = self.extensions else {
            return Ok(None);
        };
        let mut outer = Der::new(contents);
        let list = outer.expect(SEQUENCE, "the extensions SEQUENCE")?;
        if !outer.is_empty() {
            return Err(DerError::TrailingBytes);
        }
        let mut list = Der::new(list.value);
        let mut found = None;
        while !list.is_empty() {
            let e = list.expect(SEQUENCE, "an extension")?;
            let mut e = Der::new(e.value);
            let id = e.expect(OID, "an extension's OID")?;
            let critical = if e.peek_tag() == Some(BOOLEAN) {
                match e.read()?.value {
                    [0xff] => true,
                    [0x00] => false,
                    _ => return Err(DerError::Unexpected("an extension's critical BOOLEAN")),
                }
            } else {
                false
            };
            let value = e.expect(OCTET_STRING, "an extension's extnValue")?.value;
            if !e.is_empty() {
                return Err(DerError::Unexpected("the end of an extension"));
            }
            if id.value == oid {
                if found.is_some() {
                    return Err(DerError::Unexpected("an extension given once"));
                }
                found = Some(Extension { critical, value });
            }
        }
        Ok(found)
    }

    /// notBefore and notAfter as seconds since the Unix epoch (inclusive bounds).
    pub fn validity(&self) -> Result<(i64, i64), DerError> {
        let mut v = Der::new(self.validity);
        let not_before = time(v.read()?)?;
        let not_after = time(v.read()?)?;
        if !v.is_empty() {
            return Err(DerError::Unexpected("the end of validity"));
        }
        Ok((not_before, not_after))
    }
}

/// A certificate time (RFC 5280 §4.1.2.5): `UTCTime` `YYMMDDHHMMSSZ` (years 1950 to 2049) or
/// `GeneralizedTime` `YYYYMMDDHHMMSSZ`, as seconds since the Unix epoch.
pub fn time(t: Tlv<'_>) -> Result<i64, DerError> {
    let bad = DerError::Unexpected("a certificate time (YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ)");
    let (digits, year) = match (t.tag, t.value.len()) {
        (UTC_TIME, 13) => (t.value.get(..12).ok_or(bad)?, 2),
        (GENERALIZED_TIME, 15) => (t.value.get(..14).ok_or(bad)?, 4),
        _ => return Err(bad),
    };
    if t.value.last() != Some(&b'Z') || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let mut fields = [0i64; 6];
    let (y, rest) = digits.split_at(year);
    fields[0] = y.iter().fold(0, |a, d| a * 10 + i64::from(d - b'0'));
    if year == 2 {
        fields[0] += if fields[0] < 50 { 2000 } else { 1900 };
    }
    for (i, pair) in rest.chunks(2).enumerate() {
        let f = fields.get_mut(i + 1).ok_or(bad)?;
        *f = pair.iter().fold(0, |a, d| a * 10 + i64::from(d - b'0'));
    }
    let [year, month, day, hour, minute, second] = fields;
    let month = u8::try_from(month)
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or(bad)?;
    let day = u8::try_from(day)
        .ok()
        .filter(|d| (1..=crate::date::days_in_month(year, month)).contains(d))
        .ok_or(bad)?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad);
    }
    Ok(
        crate::date::days_from_civil(year, i64::from(month), i64::from(day)) * 86400
            + hour * 3600
            + minute * 60
            + second,
    )
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki(cert: &[u8]) -> Result<&[u8], DerError> {
    certificate(cert).map(|c| c.spki)
}

/// An EC public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcPublicKey<'a> {
    /// The named curve's OID contents ([`OID_P256`], [`OID_P384`], …).
    pub curve: &'a [u8],
    /// The SEC1 point, normally uncompressed (`04 ‖ X ‖ Y`).
    pub point: &'a [u8],
}

/// The EC key of a SubjectPublicKeyInfo on a named curve.
pub fn ec_public_key(spki: &[u8]) -> Result<EcPublicKey<'_>, DerError> {
    let mut outer = Der::new(spki);
    let s = outer.expect(SEQUENCE, "subjectPublicKeyInfo")?;
    let mut s = Der::new(s.value);
    let alg = s.expect(SEQUENCE, "the public key algorithm")?;
    let bits = s.expect(BIT_STRING, "the public key BIT STRING")?;
    let mut a = Der::new(alg.value);
    let oid = a.expect(OID, "the public key algorithm OID")?;
    if oid.value != OID_EC_PUBLIC_KEY {
        return Err(DerError::Unexpected("an EC public key"));
    }
    let curve = a.expect(OID, "the named curve")?.value;
    let point = match bits.value.split_first() {
        Some((0, point)) => point,
        _ => return Err(DerError::Unexpected("a BIT STRING without unused bits")),
    };
    Ok(EcPublicKey { curve, point })
}

/// The EC public key of a DER certificate.
pub fn certificate_ec_key(cert: &[u8]) -> Result<EcPublicKey<'_>, DerError> {
    ec_public_key(spki(cert)?)
}

/// A readable name of a curve OID.
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
    fn written_lengths_are_the_shortest_der() {
        assert_eq!(tlv(0x04, &[0; 3]).get(..2), Some(&[0x04, 3][..]));
        assert_eq!(tlv(0x04, &[]), vec![0x04, 0]);
        assert_eq!(tlv(0x04, &[0; 127]).get(..2), Some(&[0x04, 127][..]));
        assert_eq!(tlv(0x04, &[0; 200]).get(..3), Some(&[0x04, 0x81, 200][..]));
        assert_eq!(
            tlv(0x04, &[0; 300]).get(..4),
            Some(&[0x04, 0x82, 1, 44][..])
        );
        let element = tlv(0x04, &[7; 70_000]);
        assert_eq!(Der::new(&element).read().unwrap().value.len(), 70_000);
    }

    #[test]
    fn certificate_times() {
        let t = |tag, text: &[u8]| time(Der::new(&tlv(tag, text)).read().unwrap());
        assert_eq!(t(UTC_TIME, b"700101000000Z"), Ok(0));
        assert_eq!(t(UTC_TIME, b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(t(UTC_TIME, b"500101000000Z"), Ok(-631_152_000));
        assert_eq!(t(GENERALIZED_TIME, b"20240229120000Z"), Ok(1_709_208_000));
        for bad in [
            &b"20230229120000Z"[..],
            b"2024022912000Z",
            b"20241301000000Z",
            b"20240101240000Z",
            b"20240101000060Z",
            b"2024010100000+Z",
            b"20240101000000+",
        ] {
            assert!(t(GENERALIZED_TIME, bad).is_err(), "{bad:?}");
        }
        assert!(t(UTC_TIME, b"20240101000000Z").is_err());
        assert!(t(OCTET_STRING, b"700101000000Z").is_err());
    }

    #[test]
    fn lengths_are_bounds_checked() {
        assert_eq!(Der::new(&[0x30]).read(), Err(DerError::Truncated));
        assert_eq!(
            Der::new(&[0x30, 0x05, 0x00]).read(),
            Err(DerError::Truncated)
        );
        assert_eq!(
            Der::new(&[0x30, 0x85, 1, 1, 1, 1, 1]).read(),
            Err(DerError::Unsupported)
        );
        assert_eq!(
            Der::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).read(),
            Err(DerError::Truncated)
        );
        assert_eq!(Der::new(&[0x30, 0x80]).read(), Err(DerError::Unsupported));
        assert_eq!(Der::new(&[0x1f, 0x00]).read(), Err(DerError::Unsupported));
        let mut d = Der::new(&[0x02, 0x81, 0x01, 0x07, 0x05, 0x00]);
        assert_eq!(d.read().unwrap().value, [0x07]);
        let null = d.read().unwrap();
        assert_eq!(
            (null.tag, null.value, null.raw),
            (0x05, &[][..], &[0x05, 0][..])
        );
        assert!(d.is_empty());
    }

    #[test]
    fn non_certificates_are_refused_with_the_field() {
        assert_eq!(spki(b""), Err(DerError::Truncated));
        assert_eq!(spki(&[0x30, 0x00]), Err(DerError::Truncated));
        assert_eq!(spki(&[0x30, 0x00, 0x00]), Err(DerError::TrailingBytes));
        assert_eq!(
            spki(&[0x31, 0x00]),
            Err(DerError::Unexpected("the certificate SEQUENCE"))
        );
        assert_eq!(
            DerError::Unexpected("issuer").to_string(),
            "DER: issuer is not where it should be"
        );
    }
}
