//! PEM decoding: `-----BEGIN X-----` blocks with strict base64 inside, nothing more.
//!
//! Why our own: PEM is thirty lines of base64 between two marker lines, and the inputs here are
//! one certificate and one key chosen by the person building the image; a dependency would be
//! more code to audit than this file.

/// One PEM block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemBlock {
    /// The label, e.g. `CERTIFICATE`, `PRIVATE KEY`, `EC PRIVATE KEY`.
    pub label: String,
    /// The decoded DER bytes.
    pub der: Vec<u8>,
}

/// Every PEM block in `text`, in order; text outside blocks is ignored (as OpenSSL does).
///
/// Errors (as a short reason) on an unterminated block, mismatched labels, encapsulated headers
/// such as `Proc-Type` (legacy encrypted keys), or bad base64.
pub fn parse(text: &[u8]) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.split(|&b| b == b'\n').map(trim);
    while let Some(line) = lines.next() {
        let Some(label) = marker(line, b"-----BEGIN ") else {
            continue;
        };
        let mut body = Vec::new();
        let mut ended = false;
        for line in lines.by_ref() {
            if let Some(end) = marker(line, b"-----END ") {
                if end != label {
                    return Err(format!("PEM block BEGIN {label} ends with END {end}"));
                }
                ended = true;
                break;
            }
            if line.contains(&b':') {
                return Err(format!(
                    "PEM block {label} has headers (an encrypted legacy key?); only unencrypted PEM is supported"
                ));
            }
            body.extend_from_slice(line);
        }
        if !ended {
            return Err(format!("PEM block {label} has no END line"));
        }
        let der = base64_decode(&body).map_err(|e| format!("PEM block {label}: {e}"))?;
        blocks.push(PemBlock { label, der });
    }
    Ok(blocks)
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    line.get(start..end).unwrap_or(&[])
}

fn marker(line: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(prefix)?.strip_suffix(b"-----")?;
    if rest.is_empty()
        || !rest
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ')
    {
        return None;
    }
    String::from_utf8(rest.to_vec()).ok()
}

/// Standard base64 with `=` padding; ASCII whitespace is skipped.
pub fn base64_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    contract::base64::decode_ignoring_whitespace(input).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let text = b"junk\n-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\r\n-----BEGIN CERTIFICATE-----\r\nZm9v\r\nYmFy\r\n-----END CERTIFICATE-----\n";
        let blocks = parse(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "EC PARAMETERS");
        assert_eq!(blocks[1].label, "CERTIFICATE");
        assert_eq!(blocks[1].der, b"foobar");
        assert!(parse(b"-----BEGIN A-----\nZm9v\n").is_err());
        assert!(parse(b"-----BEGIN A-----\nZm9v\n-----END B-----\n").is_err());
        assert!(
            parse(b"-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\nZm9v\n-----END A-----\n").is_err()
        );
        assert!(parse(b"no pem here").unwrap().is_empty());
    }
}
