//! The compressions a layer or an image tarball may have, recognized by their first bytes:
//! gzip (possibly several members), zstd (several frames, skippable frames skipped) or none.

use std::io::{self, Read};

use crate::error::{Error, Result};

/// A reader of the plain bytes behind `r`: gzip and zstd are undone.
pub(super) fn decompressed<'a, R: io::BufRead + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>> {
    let head = r
        .fill_buf()
        .map_err(|e| Error::io("cannot read", None, e))?
        .get(..4)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head == ZSTD_MAGIC || is_skippable_frame(&head) {
        Ok(Box::new(ZstdFrames {
            decoder: ruzstd::decoding::FrameDecoder::new(),
            source: r,
        }))
    } else {
        Ok(Box::new(r))
    }
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A zstd skippable frame starts with 0x184D2A50..=0x184D2A5F, little endian.
fn is_skippable_frame(head: &[u8]) -> bool {
    matches!(head, [0x50..=0x5f, 0x2a, 0x4d, 0x18])
}

/// Every frame of a zstd stream in order, skippable frames skipped (ruzstd's own streaming
/// decoder reads one frame; a layer may hold several, as zstd:chunked ones do).
struct ZstdFrames<R> {
    decoder: ruzstd::decoding::FrameDecoder,
    source: R,
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        use ruzstd::decoding::BlockDecodingStrategy;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.decoder.is_finished() && self.decoder.can_collect() == 0 {
                // Between frames: the next one, or the end of the stream.
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.decoder.reset(&mut self.source) {
                    Ok(()) => {}
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let want = u64::from(length);
                        let skipped =
                            io::copy(&mut (&mut self.source).take(want), &mut io::sink())?;
                        if skipped < want {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "a zstd skippable frame is cut short",
                            ));
                        }
                        continue;
                    }
                    Err(e) => return Err(io::Error::other(format!("zstd: {e}"))),
                }
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::other(format!("zstd: {e}")))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
}
