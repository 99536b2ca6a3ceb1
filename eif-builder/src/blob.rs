//! Inputs that are streamed into an image: a file on disk or bytes in memory, read exactly once per pass.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The size of the buffer inputs are streamed through.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The contents of one input (a kernel, a ramdisk, a file inside a cpio archive).
///
/// A [`Blob::Path`] is not read when the blob is made: its length is taken when the image is laid
/// out and its bytes are streamed when written, and a file whose length changes between the two
/// is an [`Error::Mismatch`], never a silently wrong image.
#[derive(Clone, Debug)]
pub enum Blob {
    /// A file, read when needed.
    Path(PathBuf),
    /// Bytes held in memory.
    Bytes(Arc<[u8]>),
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Blob::Bytes(bytes.into())
    }
}

impl From<&[u8]> for Blob {
    fn from(bytes: &[u8]) -> Self {
        Blob::Bytes(bytes.into())
    }
}

impl From<PathBuf> for Blob {
    fn from(path: PathBuf) -> Self {
        Blob::Path(path)
    }
}

impl From<&Path> for Blob {
    fn from(path: &Path) -> Self {
        Blob::Path(path.to_path_buf())
    }
}

impl Blob {
    /// A short name for messages: the path, or `<memory>`.
    pub fn describe(&self) -> String {
        match self {
            Blob::Path(path) => path.display().to_string(),
            Blob::Bytes(_) => "<memory>".to_string(),
        }
    }

    /// The current length in bytes. For a path this must be a regular file.
    pub fn len(&self) -> Result<u64> {
        match self {
            Blob::Path(path) => {
                let meta = std::fs::metadata(path).map_err(Error::io_at("cannot stat", path))?;
                if !meta.is_file() {
                    return Err(Error::invalid(
                        format!("input {}", path.display()),
                        "is not a regular file",
                    ));
                }
                Ok(meta.len())
            }
            Blob::Bytes(bytes) => u64::try_from(bytes.len())
                .map_err(|_| Error::unsupported("input", "more than 2^64 bytes")),
        }
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads at most `limit` bytes from the start.
    pub fn read_prefix(&self, limit: usize) -> Result<Vec<u8>> {
        match self {
            Blob::Path(path) => {
                let file = File::open(path).map_err(Error::io_at("cannot open", path))?;
                let mut out = Vec::new();
                let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
                file.take(limit64)
                    .read_to_end(&mut out)
                    .map_err(Error::io_at("cannot read", path))?;
                Ok(out)
            }
            Blob::Bytes(bytes) => Ok(bytes.get(..limit).unwrap_or(bytes).to_vec()),
        }
    }

    /// Streams exactly `expected_len` bytes to `sink`, in chunks.
    ///
    /// Fails with [`Error::Mismatch`] if the input turns out shorter or longer than that (a file
    /// that changed since its length was taken).
    pub fn stream(
        &self,
        expected_len: u64,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        match self {
            Blob::Bytes(bytes) => {
                let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                if len != expected_len {
                    return Err(self.changed(expected_len, len));
                }
                for chunk in bytes.chunks(CHUNK) {
                    sink(chunk)?;
                }
                Ok(())
            }
            Blob::Path(path) => {
                let mut file = File::open(path).map_err(Error::io_at("cannot open", path))?;
                let mut buf = vec![0u8; CHUNK];
                let mut seen: u64 = 0;
                loop {
                    let n = match file.read(&mut buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(Error::io("cannot read", Some(path), e)),
                    };
                    if n == 0 {
                        break;
                    }
                    let chunk = buf.get(..n).unwrap_or(&[]);
                    seen = seen.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                    if seen > expected_len {
                        return Err(self.changed(expected_len, seen));
                    }
                    sink(chunk)?;
                }
                if seen != expected_len {
                    return Err(self.changed(expected_len, seen));
                }
                Ok(())
            }
        }
    }

    fn changed(&self, expected: u64, actual: u64) -> Error {
        Error::mismatch(
            format!("length of {} (changed while being read?)", self.describe()),
            format!("{expected} bytes"),
            format!("{actual}{} bytes", if actual > expected { "+" } else { "" }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_stream_and_length_check() {
        let blob = Blob::from(vec![7u8; CHUNK + 5]);
        let mut total = 0usize;
        blob.stream(u64::try_from(CHUNK + 5).unwrap(), |c| {
            total += c.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(total, CHUNK + 5);
        let err = blob.stream(3, |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    }

    #[test]
    fn file_that_grew_is_refused() {
        let dir = std::env::temp_dir().join(format!("eifb-blob-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"hello").unwrap();
        let blob = Blob::from(path.clone());
        assert_eq!(blob.len().unwrap(), 5);
        assert_eq!(blob.read_prefix(2).unwrap(), b"he");
        assert!(blob.stream(4, |_| Ok(())).is_err());
        assert!(blob.stream(6, |_| Ok(())).is_err());
        blob.stream(5, |_| Ok(())).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
