//! The measurements file: the PCRs an image's enclaves will report, as nitro-cli's
//! `build-enclave` prints them and as `eif-builder build` writes them, and as the verifiers
//! (`eif-builder verify`/`attest`, the boot tests) read them:
//!
//! ```json
//! {
//!   "Measurements": {
//!     "HashAlgorithm": "Sha384 { ... }",
//!     "PCR0": "…96 hex digits…",
//!     "PCR1": "…",
//!     "PCR2": "…"
//!   }
//! }
//! ```
//!
//! A verifier may accept several images at once (a rolling upgrade has two live): then the file
//! lists them, each with an optional name the verdict repeats ([`parse_accepted`]):
//!
//! ```json
//! { "Accepted": [ { "Name": "v1", "Measurements": { … } }, { "Name": "v2", "Measurements": { … } } ] }
//! ```
//!
//! Read strictly, because a verifier that accepts what its author did not mean to accept
//! vouches for the wrong image: the one top-level key `Measurements`; inside it
//! `HashAlgorithm` (optional, and then exactly `Sha384 { ... }`) and `PCRn` spelled exactly so
//! (n in 0–31, no leading zero or sign); PCR0, PCR1 and PCR2 required; a key given twice or any
//! other key is an error naming it.

use crate::hex;
use crate::json::{self, JsonError, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Bytes of a PCR (SHA-384).
pub const PCR_LEN: usize = 48;
/// The `HashAlgorithm` value nitro-cli writes.
pub const HASH_ALGORITHM: &str = "Sha384 { ... }";
/// PCR indexes run from 0 to this.
pub const MAX_PCR_INDEX: u8 = 31;
/// The largest measurements file read (a few hundred bytes is usual).
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// The most images one file accepts.
pub const MAX_ACCEPTED: usize = 16;
/// The longest name of an accepted image.
pub const MAX_NAME: usize = 64;

/// One PCR value.
pub type Pcr = [u8; PCR_LEN];

/// Why a text is not a measurements file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasurementsError {
    /// Not JSON (or a key given twice).
    Json(JsonError),
    /// Over [`MAX_FILE_BYTES`].
    TooLarge(usize),
    /// Something other than an object where one is needed (names the place).
    NotAnObject(&'static str),
    /// A key that has no meaning here.
    UnknownKey(String),
    /// A required key is absent.
    Missing(String),
    /// A key's value is not what it must be.
    BadValue {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for MeasurementsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeasurementsError::Json(e) => write!(f, "{e}"),
            MeasurementsError::TooLarge(n) => {
                write!(f, "{n} bytes; a measurements file is at most {MAX_FILE_BYTES}")
            }
            MeasurementsError::NotAnObject(what) => write!(f, "{what} is not a JSON object"),
            MeasurementsError::UnknownKey(k) => write!(
                f,
                "unknown key {k:?} (expected \"Measurements\" holding \"HashAlgorithm\" and \"PCR0\" to \"PCR31\")"
            ),
            MeasurementsError::Missing(k) => write!(f, "{k:?} is missing"),
            MeasurementsError::BadValue { key, reason } => write!(f, "{key}: {reason}"),
        }
    }
}

impl std::error::Error for MeasurementsError {}

impl From<JsonError> for MeasurementsError {
    fn from(e: JsonError) -> Self {
        MeasurementsError::Json(e)
    }
}

/// The PCRs of one image, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurements {
    pcrs: BTreeMap<u8, Pcr>,
}

/// One image a verifier accepts: its measurements and, in a list, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `Name`, if given.
    pub name: Option<String>,
    /// The PCRs.
    pub measurements: Measurements,
}

impl Accepted {
    /// How a verdict names it: its name, else `#N` (its place in the list, from 1).
    pub fn label(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("#{}", index.saturating_add(1)))
    }
}

/// Reads a measurements file that accepts one image (nitro-cli's form, no name) or several
/// (`{"Accepted": [{"Name": …, "Measurements": {…}}, …]}`: 1 to [`MAX_ACCEPTED`] entries,
/// names printable and distinct, the same PCRs not listed twice).
pub fn parse_accepted(text: &str) -> Result<Vec<Accepted>, MeasurementsError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(MeasurementsError::TooLarge(text.len()));
    }
    let Value::Object(top) = json::parse(text)? else {
        return Err(MeasurementsError::NotAnObject("the file"));
    };
    if !top.iter().any(|(k, _)| k == "Accepted") {
        return Ok(vec![Accepted {
            name: None,
            measurements: Measurements::parse(text)?,
        }]);
    }
    let mut list = None;
    for (key, value) in top {
        if key != "Accepted" {
            return Err(MeasurementsError::BadValue {
                key,
                reason: "a file listing \"Accepted\" images has no other key".into(),
            });
        }
        list = Some(value);
    }
    let bad = |reason: String| MeasurementsError::BadValue {
        key: "Accepted".into(),
        reason,
    };
    let Some(Value::Array(entries)) = list else {
        return Err(bad("is not a list".into()));
    };
    if entries.is_empty() || entries.len() > MAX_ACCEPTED {
        return Err(bad(format!(
            "lists {} images; 1 to {MAX_ACCEPTED}",
            entries.len()
        )));
    }
    let mut out: Vec<Accepted> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let at = |reason: String| bad(format!("entry {}: {reason}", i + 1));
        let Value::Object(members) = entry else {
            return Err(at("is not a JSON object".into()));
        };
        let (mut name, mut measurements) = (None, None);
        for (key, value) in members {
            match (key.as_str(), value) {
                ("Name", Value::String(n)) => {
                    if n.is_empty() || n.len() > MAX_NAME || n.chars().any(|c| c.is_control()) {
                        return Err(at(format!(
                            "Name {n:?} is not 1 to {MAX_NAME} printable characters"
                        )));
                    }
                    name = Some(n);
                }
                ("Name", v) => return Err(at(format!("Name is {}, not a string", v.kind()))),
                ("Measurements", Value::Object(m)) => {
                    measurements =
                        Some(Measurements::from_members(m).map_err(|e| at(e.to_string()))?);
                }
                ("Measurements", _) => return Err(at("Measurements is not a JSON object".into())),
                (other, _) => {
                    return Err(at(format!(
                        "unknown key {other:?} (expected \"Name\" and \"Measurements\")"
                    )))
                }
            }
        }
        let measurements = measurements.ok_or_else(|| at("\"Measurements\" is missing".into()))?;
        if let Some(n) = name
            .as_ref()
            .filter(|n| out.iter().any(|a| a.name.as_ref() == Some(n)))
        {
            return Err(at(format!("the name {n:?} is given twice")));
        }
        if let Some(j) = out.iter().position(|a| a.measurements == measurements) {
            return Err(at(format!("the same measurements as entry {}", j + 1)));
        }
        out.push(Accepted { name, measurements });
    }
    Ok(out)
}

/// The index of a `PCRn` key spelled canonically, or `None`.
pub fn pcr_index(key: &str) -> Option<u8> {
    let digits = key.strip_prefix("PCR")?;
    let canonical = !digits.is_empty()
        && digits.len() <= 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !(digits.len() > 1 && digits.starts_with('0'));
    if !canonical {
        return None;
    }
    digits.parse::<u8>().ok().filter(|&n| n <= MAX_PCR_INDEX)
}

impl Measurements {
    /// PCR0, PCR1, PCR2 and, for a signed image, PCR8.
    pub fn new(pcr0: Pcr, pcr1: Pcr, pcr2: Pcr, pcr8: Option<Pcr>) -> Measurements {
        let mut pcrs = BTreeMap::from([(0, pcr0), (1, pcr1), (2, pcr2)]);
        if let Some(p) = pcr8 {
            pcrs.insert(8, p);
        }
        Measurements { pcrs }
    }

    /// Reads a measurements file (see the module's documentation for what is accepted).
    pub fn parse(text: &str) -> Result<Measurements, MeasurementsError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(MeasurementsError::TooLarge(text.len()));
        }
        let Value::Object(top) = json::parse(text)? else {
            return Err(MeasurementsError::NotAnObject("the file"));
        };
        let mut inner = None;
        for (key, value) in top {
            if key != "Measurements" {
                return Err(MeasurementsError::UnknownKey(key));
            }
            inner = Some(value);
        }
        let Some(Value::Object(members)) = inner else {
            return Err(match inner {
                None => MeasurementsError::Missing("Measurements".into()),
                Some(_) => MeasurementsError::NotAnObject("\"Measurements\""),
            });
        };
        Self::from_members(members)
    }

    fn from_members(members: Vec<(String, Value)>) -> Result<Measurements, MeasurementsError> {
        let mut pcrs = BTreeMap::new();
        for (key, value) in members {
            let bad = |reason: String| MeasurementsError::BadValue {
                key: key.clone(),
                reason,
            };
            let Value::String(text) = &value else {
                return Err(bad(format!("is {}, not a string", value.kind())));
            };
            if key == "HashAlgorithm" {
                if text != HASH_ALGORITHM {
                    return Err(bad(format!("{text:?} is not {HASH_ALGORITHM:?}")));
                }
                continue;
            }
            let index =
                pcr_index(&key).ok_or_else(|| MeasurementsError::UnknownKey(key.clone()))?;
            let bytes = hex::decode(text).map_err(|e| bad(e.to_string()))?;
            let pcr: Pcr = bytes.try_into().map_err(|b: Vec<u8>| {
                bad(format!("{} bytes; a SHA-384 PCR is {PCR_LEN}", b.len()))
            })?;
            pcrs.insert(index, pcr);
        }
        for required in ["PCR0", "PCR1", "PCR2"] {
            if !pcrs.contains_key(&pcr_index(required).unwrap_or(0)) {
                return Err(MeasurementsError::Missing(required.into()));
            }
        }
        Ok(Measurements { pcrs })
    }

    /// The PCR of an index, if the file gives it.
    pub fn get(&self, index: u8) -> Option<&Pcr> {
        self.pcrs.get(&index)
    }

    /// Every (index, value), by index.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Pcr)> + '_ {
        self.pcrs.iter().map(|(i, p)| (*i, p))
    }

    /// The file, as nitro-cli prints it: keys in string order, two-space indent, a final newline.
    pub fn to_json(&self) -> String {
        let mut entries: Vec<(String, String)> = self
            .pcrs
            .iter()
            .map(|(i, p)| (format!("PCR{i}"), hex::encode(p)))
            .collect();
        entries.push(("HashAlgorithm".into(), HASH_ALGORITHM.into()));
        entries.sort();
        let mut out = String::from("{\n  \"Measurements\": {\n");
        for (n, (k, v)) in entries.iter().enumerate() {
            out.push_str("    ");
            json::write_string(&mut out, k);
            out.push_str(": ");
            json::write_string(&mut out, v);
            out.push_str(if n + 1 < entries.len() { ",\n" } else { "\n" });
        }
        out.push_str("  }\n}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcr(b: u8) -> Pcr {
        [b; PCR_LEN]
    }

    fn file(body: &str) -> String {
        format!("{{\"Measurements\": {{{body}}}}}")
    }

    fn three() -> String {
        format!(
            "\"PCR0\": \"{}\", \"PCR1\": \"{}\", \"PCR2\": \"{}\"",
            hex::encode(&pcr(0)),
            hex::encode(&pcr(1)),
            hex::encode(&pcr(2))
        )
    }

    #[test]
    fn writes_what_nitro_cli_prints_and_reads_it_back() {
        let m = Measurements::new(pcr(0xa), pcr(0xb), pcr(0xc), Some(pcr(0xd)));
        let text = m.to_json();
        assert!(text.starts_with(
            "{\n  \"Measurements\": {\n    \"HashAlgorithm\": \"Sha384 { ... }\",\n    \"PCR0\": \"0a0a"
        ));
        assert!(text.ends_with("\"\n  }\n}\n"));
        assert_eq!(Measurements::parse(&text).unwrap(), m);
        assert_eq!(m.get(8), Some(&pcr(0xd)));
    }

    #[test]
    fn strict_keys() {
        let ok = Measurements::parse(&file(&three())).unwrap();
        assert_eq!(ok.iter().count(), 3);
        let h = hex::encode(&pcr(3));
        for (extra, err) in [
            (
                format!(", \"PCR00\": \"{h}\""),
                MeasurementsError::UnknownKey("PCR00".into()),
            ),
            (
                format!(", \"PCR+0\": \"{h}\""),
                MeasurementsError::UnknownKey("PCR+0".into()),
            ),
            (
                format!(", \"PCR32\": \"{h}\""),
                MeasurementsError::UnknownKey("PCR32".into()),
            ),
            (
                format!(", \"pcr3\": \"{h}\""),
                MeasurementsError::UnknownKey("pcr3".into()),
            ),
            (
                format!(", \"PCR0\": \"{h}\""),
                MeasurementsError::Json(JsonError::DuplicateKey("PCR0".into())),
            ),
            (
                ", \"HashAlgorithm\": \"Sha256\"".into(),
                MeasurementsError::BadValue {
                    key: "HashAlgorithm".into(),
                    reason: "\"Sha256\" is not \"Sha384 { ... }\"".into(),
                },
            ),
        ] {
            assert_eq!(
                Measurements::parse(&file(&format!("{}{extra}", three()))),
                Err(err),
                "{extra}"
            );
        }
        assert_eq!(
            Measurements::parse(&format!(
                "{{\"Measurements\": {{{}}}, \"Extra\": 1}}",
                three()
            )),
            Err(MeasurementsError::UnknownKey("Extra".into()))
        );
        assert_eq!(
            Measurements::parse(&file(&format!("\"PCR0\": \"{h}\", \"PCR1\": \"{h}\""))),
            Err(MeasurementsError::Missing("PCR2".into()))
        );
        let short = file(&three().replacen(&hex::encode(&pcr(1)), "0101", 1));
        assert_eq!(
            Measurements::parse(&short).unwrap_err().to_string(),
            "PCR1: 2 bytes; a SHA-384 PCR is 48"
        );
        assert_eq!(
            Measurements::parse("[]").unwrap_err().to_string(),
            "the file is not a JSON object"
        );
        assert_eq!(
            Measurements::parse("{}").unwrap_err().to_string(),
            "\"Measurements\" is missing"
        );
        assert_eq!(
            MeasurementsError::UnknownKey("PCR00".into()).to_string(),
            "unknown key \"PCR00\" (expected \"Measurements\" holding \"HashAlgorithm\" and \"PCR0\" to \"PCR31\")"
        );
    }

    /// `{"Name": name, "Measurements": {PCR0..2 of byte b}}` (no Name when `name` is empty).
    fn entry(name: &str, b: u8) -> String {
        let pcrs = format!(
            "\"PCR0\": \"{}\", \"PCR1\": \"{}\", \"PCR2\": \"{}\"",
            hex::encode(&pcr(b)),
            hex::encode(&pcr(1)),
            hex::encode(&pcr(2))
        );
        if name.is_empty() {
            format!("{{\"Measurements\": {{{pcrs}}}}}")
        } else {
            format!("{{\"Name\": \"{name}\", \"Measurements\": {{{pcrs}}}}}")
        }
    }

    #[test]
    fn one_image_or_a_list_of_accepted_ones() {
        let one = parse_accepted(&file(&three())).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].name.as_deref(), one[0].label(0)),
            (None, "#1".to_owned())
        );
        let two = parse_accepted(&format!(
            "{{\"Accepted\": [{}, {}]}}",
            entry("v1", 0xa),
            entry("", 0xb)
        ))
        .unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].label(0), "v1");
        assert_eq!(two[1].label(1), "#2");
        assert_eq!(two[0].measurements.get(0), Some(&pcr(0xa)));
        assert_eq!(two[1].measurements.get(0), Some(&pcr(0xb)));
    }

    #[test]
    fn lists_are_read_strictly() {
        let many: Vec<String> = (0..17).map(|i| entry("", i)).collect();
        for (text, err) in [
            ("{\"Accepted\": {}}".to_owned(), "Accepted: is not a list"),
            (
                "{\"Accepted\": []}".to_owned(),
                "Accepted: lists 0 images; 1 to 16",
            ),
            (
                format!("{{\"Accepted\": [{}]}}", many.join(",")),
                "Accepted: lists 17 images; 1 to 16",
            ),
            (
                format!(
                    "{{\"Accepted\": [{}], \"Measurements\": {{}}}}",
                    entry("a", 1)
                ),
                "Measurements: a file listing \"Accepted\" images has no other key",
            ),
            (
                "{\"Accepted\": [1]}".to_owned(),
                "Accepted: entry 1: is not a JSON object",
            ),
            (
                "{\"Accepted\": [{\"Name\": \"a\"}]}".to_owned(),
                "Accepted: entry 1: \"Measurements\" is missing",
            ),
            (
                "{\"Accepted\": [{\"Name\": 1}]}".to_owned(),
                "Accepted: entry 1: Name is a number, not a string",
            ),
            (
                "{\"Accepted\": [{\"Name\": \"\"}]}".to_owned(),
                "Accepted: entry 1: Name \"\" is not 1 to 64 printable characters",
            ),
            (
                "{\"Accepted\": [{\"Tag\": 1}]}".to_owned(),
                "Accepted: entry 1: unknown key \"Tag\" (expected \"Name\" and \"Measurements\")",
            ),
            (
                format!("{{\"Accepted\": [{}, {}]}}", entry("a", 1), entry("a", 2)),
                "Accepted: entry 2: the name \"a\" is given twice",
            ),
            (
                format!("{{\"Accepted\": [{}, {}]}}", entry("a", 1), entry("b", 1)),
                "Accepted: entry 2: the same measurements as entry 1",
            ),
            (
                "{\"Accepted\": [{\"Measurements\": {\"PCR0\": \"00\"}}]}".to_owned(),
                "Accepted: entry 1: PCR0: 1 bytes; a SHA-384 PCR is 48",
            ),
        ] {
            assert_eq!(
                parse_accepted(&text).unwrap_err().to_string(),
                err,
                "{text}"
            );
        }
    }
}
