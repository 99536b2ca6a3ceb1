//! Standard base64 (RFC 4648 §4, `+` and `/`, `=` padding), strict: the one spelling of each
//! byte string is accepted (a padded length, no stray bits after the last byte). PEM bodies
//! are read with [`decode_ignoring_whitespace`].

use std::fmt;

/// Why a text is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Error {
    /// The length (white space removed) is not a multiple of 4.
    Length(usize),
    /// A character outside the alphabet, at this offset.
    Character(usize),
    /// `=` anywhere but at the end, or more than two of them.
    Padding,
    /// Bits set after the last byte: not the canonical spelling.
    TrailingBits,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base64Error::Length(n) => write!(f, "{n} base64 characters, not a multiple of 4"),
            Base64Error::Character(at) => write!(f, "not a base64 character at offset {at}"),
            Base64Error::Padding => f.write_str("misplaced '=' padding"),
            Base64Error::TrailingBits => f.write_str("non-zero bits after the last byte"),
        }
    }
}

impl std::error::Error for Base64Error {}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Encodes with padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3).saturating_mul(4));
    for group in bytes.chunks(3) {
        let b = |i: usize| u32::from(group.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for i in 0..4 {
            if i <= group.len() {
                let six = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap_or(0);
                out.push(char::from(ALPHABET[six]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes strict standard base64 (see the module's documentation).
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    decode_bytes(text.as_bytes())
}

/// Decodes base64 with ASCII white space (line breaks) anywhere, as in a PEM body.
pub fn decode_ignoring_whitespace(text: &[u8]) -> Result<Vec<u8>, Base64Error> {
    let chars: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    decode_bytes(&chars)
}

fn decode_bytes(b: &[u8]) -> Result<Vec<u8>, Base64Error> {
    if !b.len().is_multiple_of(4) {
        return Err(Base64Error::Length(b.len()));
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let quads = b.len() / 4;
    for (i, quad) in b.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return Err(Base64Error::Padding);
        }
        let mut n = 0u32;
        for (j, &c) in quad.iter().take(4 - pad).enumerate() {
            n = (n << 6) | value(c).ok_or(Base64Error::Character(4 * i + j))?;
        }
        n <<= 6 * pad;
        let [_, b0, b1, b2] = n.to_be_bytes();
        match pad {
            0 => out.extend_from_slice(&[b0, b1, b2]),
            1 if b2 == 0 => out.extend_from_slice(&[b0, b1]),
            2 if b1 == 0 && b2 == 0 => out.push(b0),
            _ => return Err(Base64Error::TrailingBits),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_both_ways() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn only_the_canonical_spelling() {
        assert_eq!(decode("Zg"), Err(Base64Error::Length(2)));
        assert_eq!(decode("Zg="), Err(Base64Error::Length(3)));
        assert_eq!(decode("Zh=="), Err(Base64Error::TrailingBits));
        assert_eq!(decode("Zm9="), Err(Base64Error::TrailingBits));
        assert_eq!(decode("Z==="), Err(Base64Error::Padding));
        assert_eq!(decode("Zg==Zg=="), Err(Base64Error::Padding));
        assert_eq!(decode("Zm9v\n"), Err(Base64Error::Length(5)));
        assert_eq!(decode("Zm-_"), Err(Base64Error::Character(2)));
        assert_eq!(
            decode_ignoring_whitespace(b"Zm9v\r\nYmFy\n").unwrap(),
            b"foobar"
        );
        assert_eq!(
            Base64Error::Character(2).to_string(),
            "not a base64 character at offset 2"
        );
        assert_eq!(
            Base64Error::Length(5).to_string(),
            "5 base64 characters, not a multiple of 4"
        );
    }
}
