//! The images a verifier accepts: one measurements file, or several (a rolling upgrade has two
//! images live), each named, and which of them a document matched.

use super::{verify, ExpectedPcrs, Policy, Verified, VerifyError};
use crate::error::{Error, Result};

/// The accepted images: each one's PCRs and how a verdict names it, and whether the file
/// listed them (`{"Accepted": [...]}`), in which case the verdict says which matched.
#[derive(Clone, Debug)]
pub struct AcceptedImages {
    sets: Vec<(String, ExpectedPcrs)>,
    listed: bool,
}

impl AcceptedImages {
    /// Reads a measurements file's text strictly ([`contract::measurements::parse_accepted`]);
    /// `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<AcceptedImages> {
        let accepted = contract::measurements::parse_accepted(text)
            .map_err(|e| Error::malformed(format!("measurements file {what}"), e.to_string()))?;
        let listed = text.contains("\"Accepted\"");
        let sets = accepted
            .iter()
            .enumerate()
            .map(|(i, a)| (a.label(i), ExpectedPcrs::from(&a.measurements)))
            .collect();
        Ok(AcceptedImages { sets, listed })
    }

    /// [`verify`] against each accepted image in turn: the first that passes and its name
    /// (when the file listed names); else the failure against the first (before the PCRs every
    /// image fails alike).
    pub fn verify(
        &self,
        document: &[u8],
        policy: &Policy<'_>,
    ) -> (std::result::Result<Verified, VerifyError>, Option<String>) {
        let mut first = None;
        for (label, expected) in &self.sets {
            match verify(
                document,
                &Policy {
                    expected,
                    ..*policy
                },
            ) {
                Ok(v) => return (Ok(v), self.listed.then(|| label.clone())),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            Some(e) => (Err(e), None),
            None => (verify(document, policy), None),
        }
    }

    /// The first image's PCRs (the list is never empty: `parse_accepted` takes 1 or more).
    pub fn first(&self) -> &ExpectedPcrs {
        &self.sets[0].1
    }

    /// The names, comma-separated, for a reason that lists them.
    pub fn names(&self) -> String {
        self.sets
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The reason of a failure: when several images are accepted and the PCRs matched none,
    /// it says so and names them.
    pub fn reason(&self, e: &VerifyError) -> String {
        if self.sets.len() > 1 && e.step() == "pcr" {
            format!(
                "matches none of the {} accepted images ({}); against the first: {e}",
                self.sets.len(),
                self.names()
            )
        } else {
            e.to_string()
        }
    }
}
