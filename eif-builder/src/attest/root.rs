//! The trust anchor: the AWS Nitro Enclaves root certificate "G1", embedded in the binary.
//!
//! `aws-nitro-root-g1.pem` is the AWS Nitro Enclaves root certificate G1 for the commercial AWS
//! partitions (subject `CN=aws.nitro-enclaves, OU=AWS, O=Amazon, C=US`, serial
//! `F93175681B90AFE11D46CCB4E4E7F856`, valid 2019-10-28T13:28:05Z .. 2049-10-28T14:28:05Z,
//! ECDSA P-384).
//!
//! - SHA-256 fingerprint (of the DER certificate):
//!   `641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b`
//! - SHA-384 fingerprint (of the DER certificate):
//!   `0a2a94444eaed2a0a584ec419284e645777bc81864268d33104d1c9796e824fbdc49a7b4d94ddc0b5a98ccb9e0cde50d`
//! - Taken from `internal/assets/AWS_NitroEnclaves_Root-G1.zip` in blocky/nitrite (commit
//!   a6f5b6da1e509d7600dfdf9ba5000e38f7113186). That zip's SHA-256 is
//!   `8cf60e2b2efca96c6a9e71e851d00c1b6991cc09eadbe64a6a1d1b1eb9faff7c`, the value AWS publishes
//!   for AWS_NitroEnclaves_Root-G1.zip (aws/aws-nitro-enclaves-nsm-api,
//!   docs/attestation_process.md). The PEM is the file from that zip, unchanged (it has no final
//!   newline). The same certificate is byte-identical to evervault's `src/nitro.pem` and to the
//!   first `cabundle` entry of every genuine document in the tests.
//!
//! [`aws_root_der`] checks the SHA-256 pin every time it is called, and a unit test checks it
//! at test time, so a changed file can neither pass CI nor be used silently.

use crate::error::{Error, Result};
use crate::measure::hex;
use crate::sign::pem;

/// The embedded root certificate, PEM.
pub const AWS_ROOT_PEM: &[u8] = include_bytes!("aws-nitro-root-g1.pem");

/// SHA-256 of the embedded root certificate's DER, in lowercase hex.
pub const AWS_ROOT_SHA256: &str =
    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

/// The DER of the one CERTIFICATE block of a PEM file.
pub fn root_from_pem(text: &[u8]) -> Result<Vec<u8>> {
    let mut blocks = pem::parse(text)
        .map_err(|e| Error::malformed("root certificate PEM", e))?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE");
    match (blocks.next(), blocks.next()) {
        (Some(block), None) => Ok(block.der),
        (None, _) => Err(Error::malformed(
            "root certificate PEM",
            "has no CERTIFICATE block",
        )),
        (Some(_), Some(_)) => Err(Error::invalid(
            "root certificate PEM",
            "has more than one CERTIFICATE block; give exactly one root",
        )),
    }
}

/// SHA-256 of `der`, in lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

/// The embedded AWS Nitro root (DER), after checking its pinned SHA-256.
pub fn aws_root_der() -> Result<Vec<u8>> {
    let der = root_from_pem(AWS_ROOT_PEM)?;
    let actual = sha256_hex(&der);
    if actual != AWS_ROOT_SHA256 {
        return Err(Error::mismatch(
            "embedded AWS Nitro root SHA-256",
            AWS_ROOT_SHA256,
            actual,
        ));
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_root_matches_its_pin() {
        let der = aws_root_der().unwrap();
        assert_eq!(sha256_hex(&der), AWS_ROOT_SHA256);
        assert_eq!(
            hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &der).as_ref()),
            "0a2a94444eaed2a0a584ec419284e645777bc81864268d33104d1c9796e824fbdc49a7b4d94ddc0b5a98ccb9e0cde50d"
        );
    }

    #[test]
    fn pem_with_no_or_two_certificates_is_refused() {
        assert!(root_from_pem(b"nothing here").is_err());
        let one = std::str::from_utf8(AWS_ROOT_PEM).unwrap();
        let two = format!("{one}\n{one}\n");
        assert!(root_from_pem(two.as_bytes()).is_err());
    }
}
