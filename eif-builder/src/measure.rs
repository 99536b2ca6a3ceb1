//! PCR arithmetic: the SHA-384 "extend" of measured bytes, and the PCR0/1/2/8 set of an image.
//!
//! A Nitro PCR starts as 48 zero bytes and is extended once with the SHA-384 digest of what it
//! measures: `PCR = SHA-384(48 zero bytes ‖ SHA-384(measured bytes))`.
//!
//! | PCR  | measures                                                     |
//! |------|--------------------------------------------------------------|
//! | PCR0 | kernel ‖ cmdline ‖ every ramdisk, in file order              |
//! | PCR1 | kernel ‖ cmdline ‖ the first ("bootstrap") ramdisk           |
//! | PCR2 | every ramdisk after the first (none: the extend of nothing)  |
//! | PCR8 | the DER bytes of the signing certificate (signed images only)|

use std::collections::BTreeMap;

use aws_lc_rs::digest::{self, SHA384};

/// Length of a SHA-384 digest and of a PCR.
pub const PCR_LEN: usize = 48;

/// One PCR value.
pub type Pcr = [u8; PCR_LEN];

/// The `HashAlgorithm` string nitro-cli prints (the `Debug` text of `sha2::Sha384`).
pub const HASH_ALGORITHM: &str = "Sha384 { ... }";

/// `SHA-384(48 zero bytes ‖ digest)`: extends a fresh PCR with `digest`.
pub fn extend(digest: &Pcr) -> Pcr {
    let mut ctx = digest::Context::new(&SHA384);
    ctx.update(&[0u8; PCR_LEN]);
    ctx.update(digest);
    to_pcr(&ctx.finish())
}

/// The PCR of `bytes` measured in one piece.
pub fn pcr_of(bytes: &[u8]) -> Pcr {
    let mut hasher = PcrHasher::new();
    hasher.update(bytes);
    hasher.finish()
}

fn to_pcr(d: &digest::Digest) -> Pcr {
    let mut out = [0u8; PCR_LEN];
    // A SHA-384 digest is always 48 bytes; `zip` keeps this free of panics regardless.
    for (o, i) in out.iter_mut().zip(d.as_ref()) {
        *o = *i;
    }
    out
}

/// An incremental PCR: feed the measured bytes in any chunking, then [`finish`](Self::finish).
#[derive(Clone)]
pub struct PcrHasher {
    ctx: digest::Context,
}

impl std::fmt::Debug for PcrHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PcrHasher { .. }")
    }
}

impl Default for PcrHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PcrHasher {
    /// A PCR that has measured nothing yet.
    pub fn new() -> Self {
        PcrHasher {
            ctx: digest::Context::new(&SHA384),
        }
    }

    /// Feeds measured bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.ctx.update(bytes);
    }

    /// The PCR value: the extend of the SHA-384 of everything fed.
    pub fn finish(self) -> Pcr {
        extend(&to_pcr(&self.ctx.finish()))
    }
}

/// Which part of an image some bytes belong to, for [`ImageMeasurer::update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The kernel or the command line: PCR0 and PCR1.
    Boot,
    /// The first ramdisk: PCR0 and PCR1.
    BootstrapRamdisk,
    /// Any later ramdisk: PCR0 and PCR2.
    AppRamdisk,
}

/// Computes PCR0, PCR1 and PCR2 of an image from its sections, streamed in file order.
#[derive(Clone, Debug, Default)]
pub struct ImageMeasurer {
    pcr0: PcrHasher,
    pcr1: PcrHasher,
    pcr2: PcrHasher,
}

impl ImageMeasurer {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes of one section.
    pub fn update(&mut self, part: Part, bytes: &[u8]) {
        self.pcr0.update(bytes);
        match part {
            Part::Boot | Part::BootstrapRamdisk => self.pcr1.update(bytes),
            Part::AppRamdisk => self.pcr2.update(bytes),
        }
    }

    /// The measurements; `certificate_der` gives PCR8 for a signed image.
    pub fn finish(self, certificate_der: Option<&[u8]>) -> Measurements {
        Measurements {
            pcr0: self.pcr0.finish(),
            pcr1: self.pcr1.finish(),
            pcr2: self.pcr2.finish(),
            pcr8: certificate_der.map(pcr_of),
        }
    }
}

/// The PCRs an enclave booted from an image will report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurements {
    /// kernel ‖ cmdline ‖ all ramdisks.
    pub pcr0: Pcr,
    /// kernel ‖ cmdline ‖ first ramdisk.
    pub pcr1: Pcr,
    /// later ramdisks.
    pub pcr2: Pcr,
    /// signing certificate, if the image is signed.
    pub pcr8: Option<Pcr>,
}

impl Measurements {
    /// The map nitro-cli prints under `"Measurements"`: `HashAlgorithm`, `PCR0`, `PCR1`,
    /// `PCR2` and, if signed, `PCR8`, as lowercase hex.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        map.insert("HashAlgorithm".to_string(), HASH_ALGORITHM.to_string());
        map.insert("PCR0".to_string(), hex(&self.pcr0));
        map.insert("PCR1".to_string(), hex(&self.pcr1));
        map.insert("PCR2".to_string(), hex(&self.pcr2));
        if let Some(pcr8) = &self.pcr8 {
            map.insert("PCR8".to_string(), hex(pcr8));
        }
        map
    }

    /// The measurements file, as nitro-cli's `build-enclave` prints it (the contract's
    /// [`contract::measurements`] format).
    pub fn to_json(&self) -> String {
        self.to_contract().to_json()
    }

    /// The same PCRs as the contract's type (what the verifiers read).
    pub fn to_contract(&self) -> contract::measurements::Measurements {
        contract::measurements::Measurements::new(self.pcr0, self.pcr1, self.pcr2, self.pcr8)
    }
}

/// Lowercase hexadecimal.
pub use contract::hex::encode as hex;

#[cfg(test)]
mod tests {
    use super::*;

    /// PCR2 of an image with a single ramdisk: the extend of SHA-384 of nothing.
    const EMPTY_PCR: &str = "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a";

    #[test]
    fn extend_of_nothing() {
        assert_eq!(hex(&PcrHasher::new().finish()), EMPTY_PCR);
        assert_eq!(hex(&pcr_of(b"")), EMPTY_PCR);
    }

    #[test]
    fn chunking_does_not_matter() {
        let data: Vec<u8> = (0..1000u32).map(|i| i.to_le_bytes()[0]).collect();
        let mut h = PcrHasher::new();
        for c in data.chunks(13) {
            h.update(c);
        }
        assert_eq!(h.finish(), pcr_of(&data));
    }

    #[test]
    fn image_pcrs_split_as_documented() {
        let mut m = ImageMeasurer::new();
        m.update(Part::Boot, b"kernel");
        m.update(Part::Boot, b"cmdline");
        m.update(Part::BootstrapRamdisk, b"rd0");
        m.update(Part::AppRamdisk, b"rd1");
        m.update(Part::AppRamdisk, b"rd2");
        let got = m.finish(Some(b"cert"));
        assert_eq!(got.pcr0, pcr_of(b"kernelcmdlinerd0rd1rd2"));
        assert_eq!(got.pcr1, pcr_of(b"kernelcmdlinerd0"));
        assert_eq!(got.pcr2, pcr_of(b"rd1rd2"));
        assert_eq!(got.pcr8, Some(pcr_of(b"cert")));
    }

    #[test]
    fn json_shape() {
        let m = ImageMeasurer::new().finish(None);
        let json = m.to_json();
        assert!(json.starts_with("{\n  \"Measurements\": {\n    \"HashAlgorithm\": \"Sha384 { ... }\",\n    \"PCR0\": \""));
        assert!(json.ends_with("}\n}\n"));
        assert!(!json.contains("PCR8"));
    }
}
