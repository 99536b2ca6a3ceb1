//! Hexadecimal: lower-case out, either case in, nothing else accepted.

use std::fmt;

/// Why a text is not hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HexError {
    /// An odd number of digits.
    OddLength(usize),
    /// A character that is not a hex digit, at this byte offset.
    NotHex(usize),
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::OddLength(n) => write!(f, "{n} hex digits, not an even number"),
            HexError::NotHex(at) => write!(f, "not a hex digit at offset {at}"),
        }
    }
}

impl std::error::Error for HexError {}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex digits (either case); no prefix, separator or white space.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(HexError::OddLength(b.len()));
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let (hi, lo) = match pair {
            [hi, lo] => (*hi, *lo),
            _ => return Err(HexError::OddLength(b.len())),
        };
        let hi = nibble(hi).ok_or(HexError::NotHex(2 * i))?;
        let lo = nibble(lo).ok_or(HexError::NotHex(2 * i + 1))?;
        out.push((hi << 4) | lo);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(decode("00AbfF").unwrap(), [0x00, 0xab, 0xff]);
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("abc"), Err(HexError::OddLength(3)));
        assert_eq!(decode("0x"), Err(HexError::NotHex(1)));
        assert_eq!(decode(" 0"), Err(HexError::NotHex(0)));
        assert_eq!(
            HexError::OddLength(3).to_string(),
            "3 hex digits, not an even number"
        );
        assert_eq!(
            HexError::NotHex(1).to_string(),
            "not a hex digit at offset 1"
        );
    }
}
