//! The attestation document format: an (untagged, or tag 18) COSE_Sign1 array
//! `[protected, unprotected, payload, signature]` whose payload is a CBOR map with
//! `module_id`, `timestamp`, `digest`, `pcrs`, `certificate`, `cabundle` and the optional
//! `public_key`, `user_data` and `nonce`. Genuine documents use indefinite-length maps at
//! times, carry up to 32 PCRs and up to 1024-byte optional fields, and write absent optional
//! fields as CBOR null; all of that is accepted, anything else is refused with a message
//! naming the field.

use crate::error::{Error, Result};
use ciborium::value::Value;
use std::collections::BTreeMap;

/// Documents larger than this are refused before parsing (genuine ones are about 4.5 KiB).
pub const MAX_DOCUMENT: usize = 64 * 1024;
const MAX_OPTIONAL: usize = 1024;
const MAX_PCRS: usize = 32;

/// An attestation document's content, as the NSM wrote it. Nothing in it has been checked
/// against a signature or a certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationDoc {
    /// The COSE algorithm of the protected header (-35 = ES384; QEMU's emulator writes -1).
    pub algorithm: i64,
    /// The enclave's id.
    pub module_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The PCR hash, `SHA384`.
    pub digest: String,
    /// PCR index → value.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// The signing certificate (DER).
    pub certificate: Vec<u8>,
    /// The CA bundle, root first (DER).
    pub cabundle: Vec<Vec<u8>>,
    /// The enclave's public key, if it bound one.
    pub public_key: Option<Vec<u8>>,
    /// Data the enclave bound, if any.
    pub user_data: Option<Vec<u8>>,
    /// The requester's nonce, if any.
    pub nonce: Option<Vec<u8>>,
    /// The COSE signature.
    pub signature: Vec<u8>,
    /// The protected header bytes (signed).
    pub protected: Vec<u8>,
    /// The payload bytes (signed).
    pub payload: Vec<u8>,
}

fn bad(what: &str, detail: impl Into<String>) -> Error {
    Error::malformed(format!("attestation document {what}"), detail)
}

fn bytes(v: Value, what: &str) -> Result<Vec<u8>> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(bad(what, "is not a byte string")),
    }
}

fn optional(v: Option<Value>, what: &str) -> Result<Option<Vec<u8>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let b = bytes(v, what)?;
            if b.len() > MAX_OPTIONAL {
                return Err(bad(
                    what,
                    format!("is {} bytes, more than {MAX_OPTIONAL}", b.len()),
                ));
            }
            Ok(Some(b))
        }
    }
}

fn int(v: &Value) -> Option<i128> {
    match v {
        Value::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

/// Parses a document without verifying anything. Never panics; every size is bounded.
pub fn parse_unverified(input: &[u8]) -> Result<AttestationDoc> {
    if input.len() > MAX_DOCUMENT {
        return Err(Error::Unsupported {
            what: "attestation document".into(),
            detail: format!("{} bytes, more than {MAX_DOCUMENT}", input.len()),
        });
    }
    let mut reader = input;
    let top: Value =
        ciborium::de::from_reader(&mut reader).map_err(|e| bad("CBOR", e.to_string()))?;
    if !reader.is_empty() {
        return Err(bad(
            "CBOR",
            format!("{} bytes after the document", reader.len()),
        ));
    }
    let top = match top {
        Value::Tag(18, inner) => *inner,
        Value::Tag(t, _) => {
            return Err(bad(
                "COSE tag",
                format!("{t}, expected 18 (COSE_Sign1) or none"),
            ))
        }
        v => v,
    };
    let Value::Array(parts) = top else {
        return Err(bad("COSE_Sign1", "is not an array"));
    };
    let [protected, _unprotected, payload, signature]: [Value; 4] =
        parts.try_into().map_err(|p: Vec<Value>| {
            bad(
                "COSE_Sign1",
                format!("has {} elements, expected 4", p.len()),
            )
        })?;
    let protected = bytes(protected, "protected header")?;
    let payload = bytes(payload, "payload")?;
    let signature = bytes(signature, "signature")?;

    let header: Value = ciborium::de::from_reader(protected.as_slice())
        .map_err(|e| bad("protected header", e.to_string()))?;
    let algorithm = match &header {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| int(k) == Some(1))
            .and_then(|(_, v)| int(v))
            .and_then(|a| i64::try_from(a).ok())
            .ok_or_else(|| bad("protected header", "has no integer algorithm (label 1)"))?,
        _ => return Err(bad("protected header", "is not a map")),
    };

    let body: Value =
        ciborium::de::from_reader(payload.as_slice()).map_err(|e| bad("payload", e.to_string()))?;
    let Value::Map(entries) = body else {
        return Err(bad("payload", "is not a map"));
    };
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in entries {
        let Value::Text(k) = k else {
            return Err(bad("payload", "has a key that is not text"));
        };
        if fields.insert(k.clone(), v).is_some() {
            return Err(bad("payload", format!("has key {k:?} twice")));
        }
    }
    let mut take = |k: &str| fields.remove(k);
    let module_id = match take("module_id") {
        Some(Value::Text(t)) if !t.is_empty() => t,
        _ => return Err(bad("module_id", "is missing or not text")),
    };
    let timestamp = match take("timestamp").as_ref().and_then(int) {
        Some(t) if t > 0 => u64::try_from(t).map_err(|_| bad("timestamp", "is out of range"))?,
        _ => return Err(bad("timestamp", "is missing or not a positive integer")),
    };
    let digest = match take("digest") {
        Some(Value::Text(t)) => t,
        _ => return Err(bad("digest", "is missing or not text")),
    };
    let Some(Value::Map(pcr_entries)) = take("pcrs") else {
        return Err(bad("pcrs", "is missing or not a map"));
    };
    if pcr_entries.is_empty() || pcr_entries.len() > MAX_PCRS {
        return Err(bad(
            "pcrs",
            format!(
                "has {} entries, expected 1 to {MAX_PCRS}",
                pcr_entries.len()
            ),
        ));
    }
    let mut pcrs = BTreeMap::new();
    for (k, v) in pcr_entries {
        let index = int(&k)
            .and_then(|i| u8::try_from(i).ok())
            .filter(|i| usize::from(*i) < MAX_PCRS)
            .ok_or_else(|| bad("pcrs", "has an index outside 0..32"))?;
        let value = bytes(v, "PCR value")?;
        if ![32, 48, 64].contains(&value.len()) {
            return Err(bad("pcrs", format!("PCR{index} is {} bytes", value.len())));
        }
        if pcrs.insert(index, value).is_some() {
            return Err(bad("pcrs", format!("has PCR{index} twice")));
        }
    }
    let certificate = bytes(
        take("certificate").ok_or_else(|| bad("certificate", "is missing"))?,
        "certificate",
    )?;
    let Some(Value::Array(bundle)) = take("cabundle") else {
        return Err(bad("cabundle", "is missing or not an array"));
    };
    let cabundle = bundle
        .into_iter()
        .map(|c| bytes(c, "cabundle entry"))
        .collect::<Result<Vec<_>>>()?;
    Ok(AttestationDoc {
        algorithm,
        module_id,
        timestamp,
        digest,
        pcrs,
        certificate,
        cabundle,
        public_key: optional(take("public_key"), "public_key")?,
        user_data: optional(take("user_data"), "user_data")?,
        nonce: optional(take("nonce"), "nonce")?,
        signature,
        protected,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    fn doc(payload: Vec<(Value, Value)>) -> Vec<u8> {
        enc(&Value::Array(vec![
            Value::Bytes(enc(&Value::Map(vec![(1.into(), (-1).into())]))),
            Value::Map(vec![]),
            Value::Bytes(enc(&Value::Map(payload))),
            Value::Bytes(vec![0; 64]),
        ]))
    }

    fn good() -> Vec<(Value, Value)> {
        vec![
            ("module_id".into(), "i-1-enc2".into()),
            ("digest".into(), "SHA384".into()),
            ("timestamp".into(), 1_700_000_000_000u64.into()),
            (
                "pcrs".into(),
                Value::Map(vec![(0.into(), Value::Bytes(vec![7; 48]))]),
            ),
            ("certificate".into(), Value::Bytes(vec![0; 64])),
            (
                "cabundle".into(),
                Value::Array(vec![Value::Bytes(vec![0; 64])]),
            ),
            ("public_key".into(), Value::Null),
            ("nonce".into(), Value::Bytes(vec![1, 2])),
        ]
    }

    #[test]
    fn parses_an_emulator_style_document() {
        let d = parse_unverified(&doc(good())).unwrap();
        assert_eq!(
            (d.algorithm, d.module_id.as_str(), d.digest.as_str()),
            (-1, "i-1-enc2", "SHA384")
        );
        assert_eq!(d.pcrs[&0], vec![7; 48]);
        assert_eq!(
            (d.public_key, d.user_data, d.nonce),
            (None, None, Some(vec![1, 2]))
        );
    }

    #[test]
    fn refuses_what_is_off_naming_the_field() {
        let mut p = good();
        p.retain(|(k, _)| k != &Value::from("pcrs"));
        assert!(parse_unverified(&doc(p))
            .unwrap_err()
            .to_string()
            .contains("pcrs"));
        let mut p = good();
        p.push(("user_data".into(), Value::Bytes(vec![0; 1025])));
        assert!(parse_unverified(&doc(p))
            .unwrap_err()
            .to_string()
            .contains("user_data"));
        let mut p = good();
        p[3].1 = Value::Map(vec![(40.into(), Value::Bytes(vec![0; 48]))]);
        assert!(parse_unverified(&doc(p))
            .unwrap_err()
            .to_string()
            .contains("pcrs"));
        assert!(parse_unverified(&[0x84]).is_err());
        assert!(parse_unverified(&vec![0; MAX_DOCUMENT + 1]).is_err());
    }

    #[test]
    fn never_panics_on_truncation_or_flips() {
        let d = doc(good());
        for n in 0..d.len() {
            let _ = parse_unverified(&d[..n]);
        }
        for i in 0..d.len() {
            let mut m = d.clone();
            m[i] ^= 0xff;
            let _ = parse_unverified(&m);
        }
    }
}
