//! Nitro attestation documents: what an enclave's NSM signed (PCRs, nonce, the keys and data
//! the enclave bound to it), and whether to believe it.
//!
//! * [`parse_unverified`] only parses, and its name says so: the one way to get a document's
//!   content without checking it;
//! * [`verify`] checks a document against a [`Policy`]: ES384 signature, certificate chain to
//!   the pinned AWS root ([`aws_root_der`]) at a given time, PCRs against a measurements file,
//!   debug mode, nonce, and the binding to a TLS certificate;
//! * [`client`] fetches a fresh document from a running enclave over TLS and verifies it bound
//!   to that very connection.

mod accepted;
pub mod client;
mod doc;
mod root;
mod verify;

pub use accepted::AcceptedImages;
pub use doc::{parse_unverified, AttestationDoc, MAX_DOCUMENT};
pub use root::{aws_root_der, root_from_pem, sha256_hex, AWS_ROOT_PEM, AWS_ROOT_SHA256};
pub use verify::{
    parse_hex, verify, Authenticated, Bound, ExpectedPcrs, Policy, Verified, VerifyError,
    CLOCK_TOLERANCE_SECS, EMULATOR_ALGORITHM, ES384,
};
