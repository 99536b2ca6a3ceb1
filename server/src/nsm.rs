//! The Nitro Secure Module, for attestation documents. Behind the [`Attester`] trait so the
//! application can be tested with a fake; without /dev/nsm there is no attester at all and
//! `/attestation` says so (503), never producing a document of its own.

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use serde_bytes::ByteBuf;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The default device path.
pub const DEVICE: &str = "/dev/nsm";

/// Why the NSM gave no document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestError(pub String);

impl fmt::Display for AttestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NSM attestation failed: {}", self.0)
    }
}

impl std::error::Error for AttestError {}

/// Something that signs attestation documents.
pub trait Attester: Send + Sync {
    /// A COSE_Sign1 attestation document (CBOR) carrying these three fields.
    fn attest(
        &self,
        user_data: &[u8],
        nonce: &[u8],
        public_key: &[u8],
    ) -> Result<Vec<u8>, AttestError>;
}

/// The NSM device, opened once at start.
#[derive(Debug)]
pub struct Nsm(File);

impl Nsm {
    /// Opens [`DEVICE`].
    pub fn open_default() -> io::Result<Nsm> {
        Nsm::open(Path::new(DEVICE))
    }

    /// Opens the device (read-write, as the driver's ioctl needs).
    pub fn open(path: &Path) -> io::Result<Nsm> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(Nsm)
    }
}

impl Attester for Nsm {
    fn attest(
        &self,
        user_data: &[u8],
        nonce: &[u8],
        public_key: &[u8],
    ) -> Result<Vec<u8>, AttestError> {
        let request = Request::Attestation {
            user_data: Some(ByteBuf::from(user_data)),
            nonce: Some(ByteBuf::from(nonce)),
            public_key: Some(ByteBuf::from(public_key)),
        };
        match aws_nitro_enclaves_nsm_api::driver::nsm_process_request(self.0.as_raw_fd(), request) {
            Response::Attestation { document } => Ok(document),
            Response::Error(code) => Err(AttestError(format!("{code:?}"))),
            _ => Err(AttestError("unexpected response".into())),
        }
    }
}

/// The NSM of the crate's unit tests: records what it is asked, answers a fixed document or
/// an error.
#[cfg(test)]
pub(crate) mod fake {
    use super::{AttestError, Attester};
    use std::sync::{Arc, Mutex};

    /// The document it answers.
    pub(crate) const DOCUMENT: &[u8] = b"\xd2\x84doc";

    /// (user_data, nonce, public_key) of each call.
    pub(crate) type Calls = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>>>;

    /// Records into its calls; answers [`DOCUMENT`], or the error when it has one.
    pub(crate) struct FakeNsm(pub(crate) Calls, pub(crate) Option<AttestError>);

    impl FakeNsm {
        /// Answering [`DOCUMENT`], recording into `calls`.
        pub(crate) fn new(calls: &Calls) -> FakeNsm {
            FakeNsm(Arc::clone(calls), None)
        }
    }

    impl Attester for FakeNsm {
        fn attest(&self, u: &[u8], n: &[u8], k: &[u8]) -> Result<Vec<u8>, AttestError> {
            self.0
                .lock()
                .unwrap()
                .push((u.to_vec(), n.to_vec(), k.to_vec()));
            match &self.1 {
                Some(e) => Err(e.clone()),
                None => Ok(DOCUMENT.to_vec()),
            }
        }
    }
}
