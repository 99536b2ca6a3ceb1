//! Build and inspect AWS Nitro Enclave image files (EIF), reproducibly.
//!
//! # What an EIF is
//!
//! A Nitro enclave boots from one file: a 548-byte header followed by sections, each a 12-byte
//! section header and its data. The sections are the Linux kernel, its command line, a JSON
//! metadata record, one or more cpio "newc" ramdisks (concatenated by the kernel into the initial
//! root file system; the first holds `/init`) and, optionally, a signature. The hypervisor
//! measures the kernel, command line and ramdisks into PCR0, PCR1 and PCR2, and the signing
//! certificate into PCR8; an attestation document carries these values, so a client can check
//! which image it talks to. Rebuilding the same inputs must give the same PCRs, and with this
//! crate also the same bytes.
//!
//! # The jobs
//!
//! **Make ramdisks** — a deterministic cpio archive from a manifest or a directory tree
//! ([`cpio`]):
//!
//! ```no_run
//! use eif_builder::{Archive, Blob};
//! # fn main() -> eif_builder::Result<()> {
//! let mut boot = Archive::new(0); // every mtime = 0
//! boot.add_file("/init", 0o755, Blob::from(std::path::PathBuf::from("target/init")))?;
//! boot.add_char_device("/dev/console", 0o600, 5, 1)?;
//! std::fs::write("boot.cpio", boot.to_bytes()?).unwrap();
//! # Ok(()) }
//! ```
//!
//! **Build an image** — byte-identical to AWS's `EifBuilder` for the same inputs and metadata,
//! optionally signed for PCR8 ([`EifBuilder`], [`Signer`]):
//!
//! ```no_run
//! use eif_builder::{Blob, EifBuilder, Identity};
//! # fn main() -> eif_builder::Result<()> {
//! let identity = Identity::new("my-service", "1.0", "1970-01-01T00:00:00+00:00");
//! let pcrs = EifBuilder::new(Blob::from(std::path::Path::new("bzImage")), "console=ttyS0", identity)
//!     .ramdisk(Blob::from(std::path::Path::new("boot.cpio")))
//!     .ramdisk(Blob::from(std::path::Path::new("app.cpio")))
//!     .write_file(std::path::Path::new("image.eif"))?;
//! print!("{}", pcrs.to_json());
//! # Ok(()) }
//! ```
//!
//! **Inspect and verify an image** — from untrusted bytes, with bounds-checked reads only,
//! recomputing the CRC and every PCR, and checking the signature ([`describe`]):
//!
//! ```no_run
//! # fn main() -> eif_builder::Result<()> {
//! let file = std::fs::File::open("image.eif").unwrap();
//! let info = eif_builder::describe(file)?; // Err on any malformation, CRC or signature mismatch
//! println!("PCR0 = {}", eif_builder::measure::hex(&info.measurements.pcr0));
//! # Ok(()) }
//! ```
//!
//! **Verify an attestation document** — an enclave's NSM-signed statement of its PCRs, checked
//! against the pinned AWS Nitro root and a measurements file ([`attest`]); only
//! [`attest::parse_unverified`] reads one without checking it:
//!
//! ```no_run
//! use eif_builder::attest::{self, ExpectedPcrs, Policy};
//! # fn main() -> eif_builder::Result<()> {
//! let root = attest::aws_root_der()?;
//! let expected = ExpectedPcrs::from_measurements_json(&std::fs::read_to_string("m.json").unwrap())?;
//! let policy = Policy {
//!     root_der: &root,
//!     at_unix_secs: 1_700_000_000,
//!     expected: &expected,
//!     nonce: None,
//!     binding: attest::Bound::Nothing,
//!     allow_debug: false,
//!     insecure_emulator: false,
//! };
//! match attest::verify(&std::fs::read("doc.cbor").unwrap(), &policy) {
//!     Ok(v) => println!("verified {}", v.module_id),
//!     Err(e) => println!("refused at {}: {e}", e.step()),
//! }
//! # Ok(()) }
//! ```
//!
//! Errors say who is at fault: see [`Error`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attest;
pub mod blob;
pub mod cpio;
pub mod crc32;
pub mod eif;
pub mod error;
pub mod fsutil;
pub mod image;
pub mod measure;
pub mod proxy;
pub mod sign;
pub mod time;

// The public interface is:
pub use blob::Blob;
pub use cpio::Archive;
pub use eif::{
    describe, describe_unverified, EifBuilder, EifDescription, Identity, ReadAt, SectionInfo,
    SectionType,
};
pub use error::{Error, Result};
pub use measure::{Measurements, Pcr, PcrHasher};
pub use sign::Signer;
