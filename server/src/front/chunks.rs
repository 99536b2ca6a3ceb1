//! The chunked coding as it streams: [`Decoder::feed`] takes whatever bytes arrived, hands the
//! chunk data on as it comes (no body is ever held whole) and consumes only what it has
//! understood; [`encode`] writes data as one chunk. Lines are read by the server's own strict
//! chunked parser (`http::chunked`): bare CR or LF, an empty or over-long size, junk after the
//! size or a missing CRLF after the data are refused (400 from a client, 502 from the
//! application), as are trailers beyond `max_trailer` bytes. Trailers are dropped.

use crate::http::chunked::{chunk_size, line, MAX_CHUNK_LINE};
use crate::http::head::{reject, Reject};

/// Where the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// An incremental chunked decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    trailer_bytes: usize,
    max_trailer: usize,
}

impl Decoder {
    /// A decoder allowing `max_trailer` bytes of trailer lines.
    pub fn new(max_trailer: usize) -> Decoder {
        Decoder {
            state: State::Size,
            trailer_bytes: 0,
            max_trailer,
        }
    }

    /// Whether the last chunk and the trailers are in.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the front of `buf`, passing each piece of data to `data` (which returns
    /// false to stop: its sink is full); returns the bytes consumed. Stops at the end of the
    /// body; what follows is the next message's.
    pub fn feed(
        &mut self,
        buf: &[u8],
        data: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<usize, Reject> {
        let malformed = reject(400, "malformed chunked body");
        let mut pos = 0;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            match self.state {
                State::Done => return Ok(pos),
                State::Size => {
                    let Some((text, n)) = line(rest, MAX_CHUNK_LINE, malformed)? else {
                        return Ok(pos);
                    };
                    let size = chunk_size(text)?;
                    pos += n;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    if !data(rest.get(..n).unwrap_or_default()) {
                        return Ok(pos);
                    }
                    pos += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => match rest.get(..2) {
                    None if rest.first().is_none_or(|&b| b == b'\r') => return Ok(pos),
                    Some(b"\r\n") => {
                        pos += 2;
                        self.state = State::Size;
                    }
                    _ => return Err(malformed),
                },
                State::Trailers => {
                    let room = self.max_trailer.saturating_sub(self.trailer_bytes);
                    let too_large = reject(431, "trailers too large");
                    let Some((text, n)) = line(rest, room.saturating_add(2), too_large)? else {
                        return Ok(pos);
                    };
                    pos += n;
                    if text.is_empty() {
                        self.state = State::Done;
                    } else {
                        self.trailer_bytes += n;
                        if self.trailer_bytes > self.max_trailer {
                            return Err(too_large);
                        }
                    }
                }
            }
        }
    }
}

/// Appends `data` as one chunk (nothing for empty data: an empty chunk would end the body).
pub fn encode(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = std::io::Write::write_fmt(out, format_args!("{:x}\r\n", data.len()));
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with no trailers.
pub const LAST: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `parts` fed one after another (what is not consumed is kept for the next);
    /// returns the data, whether it ended, and what was left.
    fn decode(parts: &[&[u8]]) -> Result<(Vec<u8>, bool, Vec<u8>), u16> {
        let mut d = Decoder::new(8192);
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        for p in parts {
            pending.extend_from_slice(p);
            let n = d
                .feed(&pending, &mut |b| {
                    out.extend_from_slice(b);
                    true
                })
                .map_err(|r| r.status)?;
            pending.drain(..n);
        }
        Ok((out, d.is_done(), pending))
    }

    #[test]
    fn decodes_across_any_split() {
        let body = b"3;a=b\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: x\r\n\r\nNEXT";
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            let (data, done, left) = decode(&[a, b]).unwrap();
            assert_eq!(data, b"abc0123456789abcdef", "split at {split}");
            assert!(done);
            assert_eq!(left, b"NEXT");
        }
        for i in 1..body.len() - 4 {
            let (_, done, _) = decode(&[&body[..i]]).unwrap();
            assert!(!done, "incomplete at {i}");
        }
    }

    #[test]
    fn strict_like_the_server_parser() {
        for bad in [
            &b"\r\nabc\r\n"[..],
            b"3\nabc\r\n",
            b"3;a\rb\r\nabc\r\n",
            b"3 x\r\nabc\r\n",
            b"3\r\nabcX\r\n",
            b"3\r\nabc\n",
            b"3\r\nabc\r\n0\r\nT: x\n\r\n",
            b"-3\r\n",
        ] {
            assert_eq!(
                decode(&[bad]).unwrap_err(),
                400,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode(&[b"11111111111111111\r\n"]).unwrap_err(), 413);
        let mut big = b"0\r\n".to_vec();
        for _ in 0..1000 {
            big.extend_from_slice(b"X-Trailer: 0123456789\r\n");
        }
        assert_eq!(decode(&[&big]).unwrap_err(), 431);
    }

    #[test]
    fn a_full_sink_stops_the_decoder_without_losing_bytes() {
        let mut d = Decoder::new(8192);
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        let n = d.feed(body, &mut |_| false).unwrap();
        assert_eq!(n, 3, "the size line is consumed, the data is not");
        let mut got = Vec::new();
        let m = d
            .feed(&body[n..], &mut |b| {
                got.extend_from_slice(b);
                true
            })
            .unwrap();
        assert_eq!(got, b"hello");
        assert_eq!(n + m, body.len());
        assert!(d.is_done());
    }

    #[test]
    fn encodes_what_decodes() {
        let mut enc = Vec::new();
        encode(&mut enc, b"hello world");
        encode(&mut enc, b"");
        encode(&mut enc, &[7u8; 300]);
        enc.extend_from_slice(LAST);
        assert!(enc.starts_with(b"b\r\nhello world\r\n12c\r\n"));
        let (data, done, left) = decode(&[&enc]).unwrap();
        assert_eq!(data.len(), 311);
        assert!(done && left.is_empty());
    }
}
