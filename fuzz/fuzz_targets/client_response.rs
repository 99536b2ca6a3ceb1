//! `server::client`'s reading of an HTTP response from an untrusted server (head, interim
//! responses, Content-Length, chunked and read-to-close bodies): a response or an error, never a
//! panic. What is read fits the bound, its status is final (200 to 599), and the bytes given one
//! at a time read the same as given at once.

#![no_main]

use libfuzzer_sys::fuzz_target;
use server::client::response;
use std::io::Read;

/// Hands out one byte per read.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the bound and HEAD; the rest is the response.
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let max = [64, 1024, 1 << 20][usize::from(pick % 3)];
    let head_request = pick & 0x80 != 0;
    let whole = response::parse(bytes, max, head_request);
    if let Ok(r) = &whole {
        assert!((200..=599).contains(&r.status), "{}", r.status);
        assert!(r.body.len() <= max.min(bytes.len()));
        if head_request || r.status == 204 || r.status == 304 {
            assert!(r.body.is_empty());
        }
    }
    let trickled = response::read(&mut Trickle(bytes), max, head_request);
    match (&whole, &trickled) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("at once: {whole:?}; a byte at a time: {trickled:?}"),
    }
});
