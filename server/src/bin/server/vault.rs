//! The enclave key and the sealed slots of `/private-data`, one per capability.
//!
//! A client names its slot with a bearer token (`Authorization: Bearer TOKEN`) it made itself
//! from at least 128 random bits: whoever holds the token reads, replaces and deletes that slot,
//! and nobody else can find it. The slot's name is a keyed hash of the token (HMAC-SHA256 under
//! a key derived from the enclave key), so the server keeps no token; the value is sealed with
//! AES-256-GCM under another derived key, a fresh random 96-bit nonce per seal, and the slot's
//! name as associated data (a sealed value cannot be moved to another slot).
//!
//! Everything lives in this process's memory: what survives a restart is at most the key, and
//! only when it comes from AWS KMS (`ENCLAVE_KEY_KMS_CIPHERTEXT`, released only to the measured
//! enclave) or from `ENCLAVE_KEY_BASE64` (which, placed in the image's `/env`, is readable by
//! whoever holds the EIF: it is not a secret; see the README). The slots together
//! hold at most a quarter of the server's memory budget and are counted in it.
//!
//! Secrets leave no copies: the key bytes and every decrypted value are wiped when dropped
//! (`zeroize`), and the key types are not `Clone`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use server::budget::Budget;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// The environment variable holding the enclave key (standard base64 of 32 bytes).
pub const KEY_ENV: &str = "ENCLAVE_KEY_BASE64";
/// The environment variable holding the enclave key encrypted under a KMS key (base64 of the
/// ciphertext blob `aws kms encrypt` gave).
pub const KMS_ENV: &str = "ENCLAVE_KEY_KMS_CIPHERTEXT";
/// The purpose string of the key's id ([`EnclaveKey::id`]).
pub const KEY_ID_PURPOSE: &[u8] = b"enclave-https key id";
/// Bytes of the enclave key.
pub const KEY_BYTES: usize = 32;
/// The fewest bits a token must be able to carry.
pub const MIN_TOKEN_BITS: usize = 128;
/// The longest token accepted.
pub const MAX_TOKEN_CHARS: usize = 512;
/// What a slot costs besides its ciphertext (the map entry, the nonce, the tag).
const SLOT_OVERHEAD: usize = 128;

/// Where the enclave key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Generated at start: gone after a restart, with everything sealed under it.
    Generated,
    /// Decoded from `ENCLAVE_KEY_BASE64`: the same key after a restart if the variable is
    /// given again.
    Environment,
    /// `ENCLAVE_KEY_KMS_CIPHERTEXT` decrypted by AWS KMS for this enclave's attestation
    /// document: the same key after a restart, released only to the measurements the KMS key's
    /// policy names.
    Kms,
}

/// The 32 bytes of the enclave key: wiped on drop, never shown by `Debug`, not `Clone`.
pub struct EnclaveKey {
    bytes: Zeroizing<[u8; KEY_BYTES]>,
    source: KeySource,
}

impl fmt::Debug for EnclaveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnclaveKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl PartialEq for EnclaveKey {
    fn eq(&self, other: &Self) -> bool {
        *self.bytes == *other.bytes && self.source == other.source
    }
}

impl Eq for EnclaveKey {}

impl EnclaveKey {
    /// Decodes `ENCLAVE_KEY_BASE64`'s value: standard base64 (padded), exactly 32 bytes. The
    /// error never repeats the value.
    pub fn from_base64(text: &str) -> Result<EnclaveKey, String> {
        let bytes = Zeroizing::new(contract::base64::decode(text.trim()).map_err(|_| {
            format!("{KEY_ENV} is not standard base64 (A-Z a-z 0-9 + /, padded with =)")
        })?);
        EnclaveKey::from_bytes(&bytes, KeySource::Environment)
            .map_err(|n| format!("{KEY_ENV} decodes to {n}"))
    }

    /// The plaintext KMS released for `ENCLAVE_KEY_KMS_CIPHERTEXT`: exactly 32 bytes.
    pub fn from_kms(plaintext: &[u8]) -> Result<EnclaveKey, String> {
        EnclaveKey::from_bytes(plaintext, KeySource::Kms)
            .map_err(|n| format!("{KMS_ENV}'s plaintext is {n}"))
    }

    /// The key of exactly 32 bytes; else the error's end ("30 bytes; the enclave key is …").
    fn from_bytes(bytes: &[u8], source: KeySource) -> Result<EnclaveKey, String> {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        if bytes.len() != KEY_BYTES {
            return Err(format!(
                "{} bytes; the enclave key is exactly {KEY_BYTES} bytes (AES-256)",
                bytes.len()
            ));
        }
        key.copy_from_slice(bytes);
        Ok(EnclaveKey { bytes: key, source })
    }

    /// A fresh key from the kernel RNG (NSM-seeded in the enclave).
    pub fn generate() -> Result<EnclaveKey, server::Error> {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        aws_lc_rs::rand::fill(&mut bytes[..])
            .map_err(|_| server::Error::KeyGen("the random enclave key"))?;
        Ok(EnclaveKey {
            bytes,
            source: KeySource::Generated,
        })
    }

    /// Where it came from.
    #[cfg(test)]
    pub fn source(&self) -> KeySource {
        self.source
    }

    /// The key's public name: the first 8 bytes of HMAC-SHA256(key, `enclave-https key id`) in
    /// hex. Two starts with the same key show the same id; it tells nothing else about the key.
    pub fn id(&self) -> String {
        let tag = self.derive(KEY_ID_PURPOSE);
        contract::hex::encode(tag.get(..8).unwrap_or(&[]))
    }

    /// A 32-byte key for one purpose, derived with HMAC-SHA256 (the enclave key is never used
    /// for two things).
    fn derive(&self, purpose: &[u8]) -> Zeroizing<[u8; 32]> {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes[..]);
        let tag = hmac::sign(&k, purpose);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// Why an `Authorization` header names no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer TOKEN` with a token of the RFC 6750 alphabet.
    Malformed,
    /// A token that cannot carry 128 bits.
    TooShort,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::Missing => {
                "send Authorization: Bearer TOKEN; the token names your slot (make one with: openssl rand -hex 16)"
            }
            TokenError::Malformed => {
                "the Authorization header must be Bearer followed by one space and a token of A-Z a-z 0-9 - . _ ~ + /"
            }
            TokenError::TooShort => {
                "the token must carry at least 128 bits: 32 hex digits, or 22 characters of base64"
            }
        })
    }
}

/// The token of an `Authorization: Bearer TOKEN` header. A token of hex digits only counts 4
/// bits a character, any other 6: it must reach [`MIN_TOKEN_BITS`].
pub fn bearer_token(header: Option<&[u8]>) -> Result<&[u8], TokenError> {
    let h = header.ok_or(TokenError::Missing)?;
    let token = match h.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => token,
        _ => return Err(TokenError::Malformed),
    };
    let body_len = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let (body, pad) = token.split_at(body_len);
    let body_ok = !body.is_empty()
        && body.len() <= MAX_TOKEN_CHARS
        && body
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if !body_ok || pad.len() > 2 {
        return Err(TokenError::Malformed);
    }
    let bits_per_char = if body.iter().all(u8::is_ascii_hexdigit) {
        4
    } else {
        6
    };
    if body.len() * bits_per_char < MIN_TOKEN_BITS {
        return Err(TokenError::TooShort);
    }
    Ok(token)
}

/// One sealed value: nonce and ciphertext with its tag.
struct Sealed {
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl Sealed {
    fn cost(&self) -> usize {
        self.ciphertext.capacity() + SLOT_OVERHEAD
    }
}

/// Why a value was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The slots together would exceed their share of memory.
    Full,
    /// The RNG or AES-GCM refused; nothing was stored.
    Seal,
}

/// The slots, their total cost, and what is charged to the budget.
#[derive(Default)]
struct Slots {
    map: HashMap<[u8; 32], Sealed>,
    cost: usize,
    charged: usize,
}

/// The sealed store.
pub struct Vault {
    seal: LessSafeKey,
    names: hmac::Key,
    source: KeySource,
    capacity: usize,
    budget: Option<Arc<Budget>>,
    slots: Mutex<Slots>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("source", &self.source)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// Authenticated with every sealed value besides the slot name: a key reused elsewhere cannot
/// be fed our ciphertexts.
const AAD_PREFIX: &[u8] = b"enclave-https /private-data v2 ";

impl Vault {
    /// An empty store under `key`, holding at most `capacity` bytes (sealed values and their
    /// bookkeeping), counted in `budget` when given.
    pub fn new(
        key: &EnclaveKey,
        capacity: usize,
        budget: Option<Arc<Budget>>,
    ) -> Result<Vault, server::Error> {
        let seal_key = key.derive(b"enclave-https private-data sealing key");
        let unbound = UnboundKey::new(&AES_256_GCM, &seal_key[..])
            .map_err(|_| server::Error::KeyGen("the AES-256-GCM key"))?;
        let names = key.derive(b"enclave-https private-data slot names");
        Ok(Vault {
            seal: LessSafeKey::new(unbound),
            names: hmac::Key::new(hmac::HMAC_SHA256, &names[..]),
            source: key.source,
            capacity,
            budget,
            slots: Mutex::new(Slots::default()),
        })
    }

    /// Where the key came from.
    pub fn key_source(&self) -> KeySource {
        self.source
    }

    fn slot(&self, token: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.names, token);
        let mut id = [0u8; 32];
        id.copy_from_slice(tag.as_ref());
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn account(&self, slots: &mut Slots) {
        if let Some(b) = &self.budget {
            b.charge(&mut slots.charged, slots.cost);
        }
    }

    /// Seals `plaintext` into the token's slot, replacing what it held.
    pub fn store(&self, token: &[u8], plaintext: &[u8]) -> Result<(), StoreError> {
        let id = self.slot(token);
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| StoreError::Seal)?;
        let mut aad = AAD_PREFIX.to_vec();
        aad.extend_from_slice(&id);
        let mut ciphertext = Vec::with_capacity(plaintext.len() + AES_256_GCM.tag_len());
        ciphertext.extend_from_slice(plaintext);
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut ciphertext,
            )
            .map_err(|_| StoreError::Seal)?;
        let sealed = Sealed { nonce, ciphertext };
        let mut slots = self.lock();
        let old = slots.map.get(&id).map_or(0, Sealed::cost);
        let new_cost = slots.cost - old + sealed.cost();
        if new_cost > self.capacity {
            return Err(StoreError::Full);
        }
        slots.cost = new_cost;
        slots.map.insert(id, sealed);
        self.account(&mut slots);
        Ok(())
    }

    /// The token's value, decrypted (wiped when dropped); `None` if the slot is empty.
    pub fn load(&self, token: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let id = self.slot(token);
        let (nonce, data) = {
            let slots = self.lock();
            let sealed = slots.map.get(&id)?;
            (sealed.nonce, Zeroizing::new(sealed.ciphertext.clone()))
        };
        let mut data = data;
        let mut aad = AAD_PREFIX.to_vec();
        aad.extend_from_slice(&id);
        let n = self
            .seal
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut data,
            )
            .ok()?
            .len();
        data.truncate(n);
        Some(data)
    }

    /// Empties the token's slot; whether it held something.
    pub fn remove(&self, token: &[u8]) -> bool {
        let id = self.slot(token);
        let mut slots = self.lock();
        let Some(old) = slots.map.remove(&id) else {
            return false;
        };
        slots.cost -= old.cost();
        self.account(&mut slots);
        true
    }

    /// Slots in use.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// The sealed bytes of a slot as held in memory (nonce, ciphertext), for tests.
    #[cfg(test)]
    fn raw(&self, token: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let id = self.slot(token);
        self.lock()
            .map
            .get(&id)
            .map(|s| (s.nonce.to_vec(), s.ciphertext.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &[u8] = b"0123456789abcdef0123456789abcdef";
    const T2: &[u8] = b"ffffffffffffffffffffffffffffffff";

    fn vault(capacity: usize) -> Vault {
        Vault::new(&EnclaveKey::generate().unwrap(), capacity, None).unwrap()
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
        assert_eq!(*k.bytes, [0; 32]);
        assert!(!format!("{k:?}").contains('0'));
    }

    #[test]
    fn the_key_id_is_a_keyed_hash_of_a_fixed_label() {
        // openssl dgst -sha256 -mac HMAC -macopt hexkey:0101…01 <<< -n "enclave-https key id"
        let k = EnclaveKey::from_kms(&[1; 32]).unwrap();
        let full = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]), KEY_ID_PURPOSE);
        assert_eq!(k.id(), contract::hex::encode(&full.as_ref()[..8]));
        assert_eq!(k.id().len(), 16);
        assert_ne!(k.id(), EnclaveKey::from_kms(&[2; 32]).unwrap().id());
    }

    #[test]
    fn key_from_kms_must_be_32_bytes() {
        let k = EnclaveKey::from_kms(&[1; 32]).unwrap();
        assert_eq!((k.source(), *k.bytes), (KeySource::Kms, [1; 32]));
        assert_eq!(
            EnclaveKey::from_kms(&[1; 16]).unwrap_err(),
            "ENCLAVE_KEY_KMS_CIPHERTEXT's plaintext is 16 bytes; the enclave key is exactly 32 bytes (AES-256)"
        );
    }

    #[test]
    fn tokens_need_128_bits() {
        fn h(s: &str) -> Result<&[u8], TokenError> {
            bearer_token(Some(s.as_bytes()))
        }
        assert_eq!(h("Bearer 0123456789abcdef0123456789abcdef"), Ok(T1));
        assert!(
            h("bearer AAAAAAAAAAAAAAAAAAAAAg==").is_ok(),
            "22 base64 characters"
        );
        assert_eq!(
            h("Bearer 0123456789abcdef0123456789abcde"),
            Err(TokenError::TooShort)
        );
        assert_eq!(h("Bearer short"), Err(TokenError::TooShort));
        assert_eq!(bearer_token(None), Err(TokenError::Missing));
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer  abc",
            "Bearer a b",
            "Bearer a=b",
            "Bearer é",
        ] {
            assert_eq!(h(bad), Err(TokenError::Malformed), "{bad}");
        }
        assert!(TokenError::TooShort.to_string().contains("128 bits"));
    }

    #[test]
    fn each_token_has_its_own_sealed_slot() {
        let v = vault(1 << 20);
        assert_eq!(v.key_source(), KeySource::Generated);
        assert!(v.load(T1).is_none());
        v.store(T1, br#"{"a":1}"#).unwrap();
        assert!(v.load(T2).is_none(), "another token sees nothing");
        v.store(T2, b"[2]").unwrap();
        assert_eq!(v.load(T1).unwrap().as_slice(), br#"{"a":1}"#);
        assert_eq!(v.load(T2).unwrap().as_slice(), b"[2]");
        let (n1, c1) = v.raw(T1).unwrap();
        assert_eq!(c1.len(), 7 + 16);
        assert!(!c1.windows(7).any(|w| w == br#"{"a":1}"#));
        v.store(T1, br#"{"a":1}"#).unwrap();
        let (n2, c2) = v.raw(T1).unwrap();
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
        assert!(v.remove(T1));
        assert!(!v.remove(T1));
        assert!(v.load(T1).is_none());
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_sealed_value_does_not_open_in_another_slot() {
        let v = vault(1 << 20);
        v.store(T1, b"secret").unwrap();
        let (nonce, ciphertext) = v.raw(T1).unwrap();
        let id2 = v.slot(T2);
        v.lock().map.insert(
            id2,
            Sealed {
                nonce: nonce.try_into().unwrap(),
                ciphertext,
            },
        );
        assert!(v.load(T2).is_none());
    }

    #[test]
    fn the_same_key_opens_what_it_sealed_after_a_restart() {
        let text = format!("{}A=", "B".repeat(42));
        let a = Vault::new(&EnclaveKey::from_base64(&text).unwrap(), 1 << 20, None).unwrap();
        a.store(T1, b"[]").unwrap();
        let (nonce, ciphertext) = a.raw(T1).unwrap();
        let b = Vault::new(&EnclaveKey::from_base64(&text).unwrap(), 1 << 20, None).unwrap();
        b.lock().map.insert(
            b.slot(T1),
            Sealed {
                nonce: nonce.try_into().unwrap(),
                ciphertext,
            },
        );
        assert_eq!(b.load(T1).unwrap().as_slice(), b"[]");
    }

    #[test]
    fn the_slots_are_bounded_and_counted_in_the_budget() {
        let budget = Arc::new(Budget::new(64 << 20));
        let v = Vault::new(
            &EnclaveKey::generate().unwrap(),
            4096,
            Some(Arc::clone(&budget)),
        )
        .unwrap();
        v.store(T1, &[b'1'; 2000]).unwrap();
        assert!(budget.used() >= 2000);
        assert_eq!(v.store(T2, &[b'2'; 2000]), Err(StoreError::Full));
        // Replacing the slot's own value frees what it held first.
        v.store(T1, &[b'3'; 3000]).unwrap();
        assert!(v.remove(T1));
        assert_eq!(budget.used(), 0);
    }
}
