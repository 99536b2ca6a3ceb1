//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally and strictly:
//!
//! ```text
//! chunk-line  = 1*16HEXDIG [ chunk-ext ] CRLF      ; no other line ending
//! chunk-ext   = *( BWS ";" … )                     ; any bytes but CR, LF and controls
//! chunk       = chunk-line data CRLF
//! last-chunk  = "0" [ chunk-ext ] CRLF, then trailer lines ending in CRLF, then CRLF
//! ```
//!
//! An empty size, a bare CR or LF anywhere in a chunk line or trailer line, or anything but
//! CRLF after the data is 400: parsers that read those differently would see different
//! bodies (or requests). The decoded body counts against `max_body_bytes` (413), the raw
//! bytes against twice that (tiny chunks cannot make the encoding many times the body), the
//! trailers against `max_header_bytes` (431).

use super::head::{reject, Reject};
use crate::config::Limits;

/// The longest chunk-size line (size plus extensions) accepted.
pub(crate) const MAX_CHUNK_LINE: usize = 1024;

/// Incremental state of a chunked body: offsets are relative to the start of the request.
#[derive(Debug, Default)]
pub struct Chunked {
    /// Where the next chunk-size line (or trailer line) starts.
    pos: usize,
    /// The decoded body so far.
    pub decoded: Vec<u8>,
    /// In the trailer section (after the last chunk).
    trailers: bool,
    /// Bytes of trailer lines so far.
    trailer_bytes: usize,
}

/// A line at the front of `rest`: `Ok(Some((line without CRLF, length with it)))`, `Ok(None)`
/// if its end is not in yet (and it is not over `max`), `Err` on a bare CR or LF or a line
/// over `max`.
pub(crate) fn line(
    rest: &[u8],
    max: usize,
    too_long: Reject,
) -> Result<Option<(&[u8], usize)>, Reject> {
    let bare = reject(400, "line endings other than CRLF in the chunked body");
    for (i, &b) in rest.iter().enumerate() {
        if i >= max {
            return Err(too_long);
        }
        match b {
            b'\r' => {
                return match rest.get(i + 1) {
                    Some(b'\n') => Ok(Some((rest.get(..i).unwrap_or_default(), i + 2))),
                    Some(_) => Err(bare),
                    None => Ok(None),
                };
            }
            b'\n' => return Err(bare),
            _ => {}
        }
    }
    if rest.len() > max {
        return Err(too_long);
    }
    Ok(None)
}

/// Why a chunk-size line is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkLine {
    /// Not hex digits then nothing or an extension.
    Malformed,
    /// More than 16 hex digits: beyond any size we take.
    TooLarge,
}

/// The size of a chunk line (without its CRLF): `1*16HEXDIG`, then nothing or `;` and an
/// extension (spaces and tabs allowed before the `;`, no control characters). The one reader
/// of these lines: requests, the front's streams both ways, and the client's responses.
pub(crate) fn parse_chunk_size(line: &[u8]) -> Result<u64, ChunkLine> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkLine::Malformed);
    }
    if digits > 16 {
        return Err(ChunkLine::TooLarge);
    }
    let ext = line.get(digits..).unwrap_or_default();
    let ext_ok = match ext.iter().position(|&b| b != b' ' && b != b'\t') {
        None => ext.is_empty(),
        Some(i) => {
            ext.get(i) == Some(&b';') && !ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        }
    };
    if !ext_ok {
        return Err(ChunkLine::Malformed);
    }
    let size = line
        .get(..digits)
        .unwrap_or_default()
        .iter()
        .fold(0u64, |acc, &d| {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                _ => d.wrapping_sub(b'A').wrapping_add(10),
            };
            (acc << 4) | u64::from(v)
        });
    Ok(size)
}

/// [`parse_chunk_size`] with the status a request gets: 400, or 413 for a size too large.
pub(crate) fn chunk_size(line: &[u8]) -> Result<u64, Reject> {
    parse_chunk_size(line).map_err(|e| match e {
        ChunkLine::Malformed => reject(400, "malformed chunked body"),
        ChunkLine::TooLarge => reject(413, "request body too large"),
    })
}

impl Chunked {
    /// Bytes held (the decoded body's buffer).
    pub fn held(&self) -> usize {
        self.decoded.capacity()
    }

    /// Decodes what `req` (the whole request so far) holds; returns the request's total length
    /// once the last chunk and trailers are in.
    pub fn advance(
        &mut self,
        req: &[u8],
        head_len: usize,
        limits: &Limits,
    ) -> Result<Option<usize>, Reject> {
        if self.pos < head_len {
            self.pos = head_len;
        }
        let raw_limit = limits
            .max_body_bytes
            .saturating_mul(2)
            .saturating_add(64 * 1024);
        loop {
            let rest = req.get(self.pos..).unwrap_or_default();
            if self.pos - head_len > raw_limit {
                return Err(reject(413, "request body too large"));
            }
            if self.trailers {
                let room = limits.max_header_bytes.saturating_sub(self.trailer_bytes);
                let too_large = reject(431, "request trailers too large");
                let Some((text, n)) = line(rest, room.saturating_add(2), too_large)? else {
                    return Ok(None);
                };
                self.pos += n;
                if text.is_empty() {
                    return Ok(Some(self.pos));
                }
                self.trailer_bytes += n;
                if self.trailer_bytes > limits.max_header_bytes {
                    return Err(too_large);
                }
                continue;
            }
            let too_long = reject(400, "malformed chunked body");
            let Some((text, n)) = line(rest, MAX_CHUNK_LINE, too_long)? else {
                return Ok(None);
            };
            let size = chunk_size(text)?;
            if size == 0 {
                self.trailers = true;
                self.pos += n;
                continue;
            }
            let room = limits.max_body_bytes.saturating_sub(self.decoded.len());
            let size = match usize::try_from(size) {
                Ok(s) if s <= room => s,
                _ => return Err(reject(413, "request body too large")),
            };
            let data_end = n.saturating_add(size);
            let Some(crlf) = rest.get(data_end..data_end.saturating_add(2)) else {
                return Ok(None);
            };
            if crlf != b"\r\n" {
                return Err(reject(400, "malformed chunked body"));
            }
            self.decoded
                .extend_from_slice(rest.get(n..data_end).unwrap_or_default());
            self.pos += data_end + 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &[u8]) -> Result<Option<Vec<u8>>, u16> {
        let mut c = Chunked::default();
        match c.advance(body, 0, &Limits::default()) {
            Ok(Some(_)) => Ok(Some(c.decoded)),
            Ok(None) => Ok(None),
            Err(r) => Err(r.status),
        }
    }

    #[test]
    fn strict_lines() {
        assert_eq!(
            decode(b"3;a=b\r\nabc\r\n0\r\nT: x\r\n\r\n"),
            Ok(Some(b"abc".to_vec()))
        );
        assert_eq!(
            decode(b"A \t; e\r\n0123456789\r\n0\r\n\r\n"),
            Ok(Some(b"0123456789".to_vec()))
        );
        assert_eq!(decode(b"3\r\nab"), Ok(None));
        assert_eq!(decode(b"3\r"), Ok(None));
        for bad in [
            &b"\r\nabc\r\n"[..],            // empty size line
            b";x\r\n",                      // no size
            b"3\nabc\r\n",                  // bare LF ending the size line
            b"3;a\nb\r\nabc\r\n",           // bare LF in the extension
            b"3;a\rb\r\nabc\r\n",           // bare CR in the extension
            b"3 x\r\nabc\r\n",              // junk after the size
            b"3\r\nabcX\r\n",               // no CRLF after the data
            b"3\r\nabc\r\n0\r\nT: x\n\r\n", // bare LF in a trailer
            b"0\r\n\n",                     // bare LF ending the trailers
            b"-3\r\n",
        ] {
            assert_eq!(decode(bad), Err(400), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(decode(b"11111111111111111\r\n"), Err(413));
    }
}
