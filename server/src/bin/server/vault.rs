//! The enclave key and the one sealed value of `/private-data`.
//!
//! The value is kept in this process's memory only, sealed with AES-256-GCM under the enclave
//! key, with a fresh random 96-bit nonce for every seal (so at most one stored value at a time
//! is far below the 2^32 seals a random-nonce key allows). What survives a restart:
//!
//! - the sealed value: never (it lives in memory);
//! - the key: only when it comes from `ENCLAVE_KEY_BASE64`; otherwise it is generated at start
//!   from the kernel RNG and lost with the process.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use std::fmt;
use std::sync::Mutex;

/// The environment variable holding the enclave key (standard base64 of 32 bytes).
pub const KEY_ENV: &str = "ENCLAVE_KEY_BASE64";
/// Bytes of the enclave key.
pub const KEY_BYTES: usize = 32;
/// Authenticated with every sealed value: a key reused elsewhere cannot be fed our ciphertexts.
const AAD: &[u8] = b"enclave-https /private-data v1";

/// Where the enclave key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Generated at start: gone after a restart, with everything sealed under it.
    Generated,
    /// Decoded from `ENCLAVE_KEY_BASE64`: the same key after a restart if the variable is
    /// given again.
    Environment,
}

/// The 32 bytes of the enclave key; `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct EnclaveKey {
    bytes: [u8; KEY_BYTES],
    source: KeySource,
}

impl fmt::Debug for EnclaveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnclaveKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl EnclaveKey {
    /// Decodes `ENCLAVE_KEY_BASE64`'s value: standard base64 (padded), exactly 32 bytes. The
    /// error never repeats the value.
    pub fn from_base64(text: &str) -> Result<EnclaveKey, String> {
        let bytes = decode_base64(text.trim()).ok_or_else(|| {
            format!("{KEY_ENV} is not standard base64 (A-Z a-z 0-9 + /, padded with =)")
        })?;
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "{KEY_ENV} decodes to {} bytes; the enclave key is exactly {KEY_BYTES} bytes (AES-256)",
                b.len()
            )
        })?;
        Ok(EnclaveKey {
            bytes,
            source: KeySource::Environment,
        })
    }

    /// A fresh key from the kernel RNG (NSM-seeded in the enclave).
    pub fn generate() -> Result<EnclaveKey, crate::Error> {
        let mut bytes = [0u8; KEY_BYTES];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| crate::Error::KeyGen("the random enclave key"))?;
        Ok(EnclaveKey {
            bytes,
            source: KeySource::Generated,
        })
    }

    /// Where it came from.
    pub fn source(&self) -> KeySource {
        self.source
    }
}

/// Strict standard base64 with padding; `None` on any other character, a bad length or
/// non-zero trailing bits.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let b = text.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let quads = b.len() / 4;
    for (i, quad) in b.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in quad.get(..4 - pad)? {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad;
        let [_, b0, b1, b2] = n.to_be_bytes();
        match pad {
            0 => out.extend_from_slice(&[b0, b1, b2]),
            1 if b2 == 0 => out.extend_from_slice(&[b0, b1]),
            2 if b1 == 0 && b2 == 0 => out.push(b0),
            _ => return None, // non-zero bits after the last byte: not canonical
        }
    }
    Some(out)
}

/// One sealed value: nonce and ciphertext with its tag.
struct Sealed {
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// Sealing failed (the RNG or AES-GCM refused); no value was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealError;

/// The sealed store: the key and at most one sealed value.
pub struct Vault {
    key: LessSafeKey,
    source: KeySource,
    value: Mutex<Option<Sealed>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// An empty store under `key`.
    pub fn new(key: &EnclaveKey) -> Result<Vault, crate::Error> {
        let unbound = UnboundKey::new(&AES_256_GCM, &key.bytes)
            .map_err(|_| crate::Error::KeyGen("the AES-256-GCM key"))?;
        Ok(Vault {
            key: LessSafeKey::new(unbound),
            source: key.source,
            value: Mutex::new(None),
        })
    }

    /// Where the key came from.
    pub fn key_source(&self) -> KeySource {
        self.source
    }

    /// Seals `plaintext` under a fresh random nonce and replaces the stored value.
    pub fn store(&self, plaintext: &[u8]) -> Result<(), SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError)?;
        let mut ciphertext = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut ciphertext,
            )
            .map_err(|_| SealError)?;
        let sealed = Sealed { nonce, ciphertext };
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(sealed);
        Ok(())
    }

    /// The stored value, decrypted; `None` if nothing is stored (or, impossibly, if it no
    /// longer authenticates).
    pub fn load(&self) -> Option<Vec<u8>> {
        let (nonce, mut data) = {
            let guard = self.value.lock().unwrap_or_else(|p| p.into_inner());
            let sealed = guard.as_ref()?;
            (sealed.nonce, sealed.ciphertext.clone())
        };
        let n = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut data,
            )
            .ok()?
            .len();
        data.truncate(n);
        Some(data)
    }

    /// The sealed bytes as held in memory (nonce, ciphertext), for tests.
    #[cfg(test)]
    fn raw(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let guard = self.value.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map(|s| (s.nonce.to_vec(), s.ciphertext.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("+/8=").unwrap(), [0xfb, 0xff]);
        for bad in [
            "Zg", "Zg=", "Zh==", "Zm9=", "Z===", "Zg==Zg==", "Zm9v\n", "Zm-_",
        ] {
            assert_eq!(decode_base64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn key_from_environment_must_be_32_bytes() {
        let k = EnclaveKey::from_base64(&"QUFB".repeat(10)).unwrap_err();
        assert_eq!(
            k,
            "ENCLAVE_KEY_BASE64 decodes to 30 bytes; the enclave key is exactly 32 bytes (AES-256)"
        );
        let e = EnclaveKey::from_base64("not base64!").unwrap_err();
        assert!(
            e.starts_with("ENCLAVE_KEY_BASE64 is not standard base64"),
            "{e}"
        );
        assert!(!e.contains("not base64!"));
        let k = EnclaveKey::from_base64(&format!("{}AAA=\n", "A".repeat(40))).unwrap();
        assert_eq!(k.source(), KeySource::Environment);
        assert_eq!(k.bytes, [0; 32]);
        assert!(!format!("{k:?}").contains('0'));
    }

    #[test]
    fn seals_with_a_fresh_nonce_and_opens() {
        let vault = Vault::new(&EnclaveKey::generate().unwrap()).unwrap();
        assert_eq!(vault.key_source(), KeySource::Generated);
        assert_eq!(vault.load(), None);
        vault.store(br#"{"a":1}"#).unwrap();
        let (n1, c1) = vault.raw().unwrap();
        assert_eq!(c1.len(), 7 + 16);
        assert!(!c1.windows(7).any(|w| w == br#"{"a":1}"#));
        assert_eq!(vault.load().unwrap(), br#"{"a":1}"#);
        vault.store(br#"{"a":1}"#).unwrap();
        let (n2, c2) = vault.raw().unwrap();
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
        assert_eq!(vault.load().unwrap(), br#"{"a":1}"#);
    }

    #[test]
    fn the_same_key_opens_what_it_sealed() {
        let text = format!("{}A=", "B".repeat(42));
        let a = Vault::new(&EnclaveKey::from_base64(&text).unwrap()).unwrap();
        a.store(b"[]").unwrap();
        let (nonce, ciphertext) = a.raw().unwrap();
        let b = Vault::new(&EnclaveKey::from_base64(&text).unwrap()).unwrap();
        *b.value.lock().unwrap() = Some(Sealed {
            nonce: nonce.try_into().unwrap(),
            ciphertext,
        });
        assert_eq!(b.load().unwrap(), b"[]");
    }
}
