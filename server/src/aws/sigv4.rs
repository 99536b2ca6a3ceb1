//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), as the AWS General Reference's "Signature
//! Version 4 signing process" describes it: the canonical request (method, URI-encoded path,
//! sorted query, sorted lower-case headers with trimmed values, the signed header names, the
//! payload's SHA-256), the string to sign with the credential scope
//! (`DATE/REGION/SERVICE/aws4_request`), the signing key derived by HMAC-SHA256 from
//! `"AWS4" + secret` through date, region, service and `aws4_request`, and the signature.
//! Checked against AWS's published test suite (`get-vanilla`, `get-vanilla-query-order-key-case`,
//! `post-vanilla`).

use aws_lc_rs::{digest, hmac};

/// Long-term or temporary credentials.
pub struct Credentials {
    /// The access key id (not secret).
    pub access_key_id: String,
    /// The secret access key; wiped when dropped.
    pub secret_access_key: zeroize::Zeroizing<String>,
    /// The session token of temporary credentials (signed as `x-amz-security-token`).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A request to sign. Every header given is signed; `host` and `x-amz-date` must be among them
/// (`x-amz-security-token` too with temporary credentials: [`sign`] adds it).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ….
    pub method: &'a str,
    /// The path, not yet encoded (`/` for KMS).
    pub path: &'a str,
    /// The query parameters, not yet encoded, in any order.
    pub query: &'a [(&'a str, &'a str)],
    /// The headers, names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub payload: &'a [u8],
}

/// What signing gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The `Authorization` header's value.
    pub authorization: String,
    /// The `x-amz-security-token` header to send as well, with temporary credentials.
    pub security_token: Option<String>,
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (the `x-amz-date` header); its first 8 characters are
/// the scope's date.
pub fn amz_date(unix_secs: u64) -> String {
    let c = contract::date::Civil::from_unix(i64::try_from(unix_secs).unwrap_or(i64::MAX));
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (and `/` when
/// `keep_slash`, for paths).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    contract::hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// The canonical request and the signed header names.
fn canonical_request(req: &Request<'_>, token: Option<&str>) -> (String, String) {
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (encode(k, false), encode(v, false)))
        .collect();
    query.sort();
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| {
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (n.to_ascii_lowercase(), value)
        })
        .collect();
    if let Some(t) = token {
        headers.push(("x-amz-security-token".into(), t.to_owned()));
    }
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let path = if req.path.is_empty() { "/" } else { req.path };
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        encode(path, true),
        query.join("&"),
        canonical_headers,
        signed,
        sha256_hex(req.payload)
    );
    (canonical, signed)
}

/// Signs `req` for `service` in `region` at `amz_date` (as [`amz_date`] writes it).
pub fn sign(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Signed {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let (canonical, signed_headers) = canonical_request(req, creds.session_token.as_deref());
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut secret = zeroize::Zeroizing::new(format!("AWS4{}", *creds.secret_access_key));
    let k_date = hmac(secret.as_bytes(), date.as_bytes());
    zeroize::Zeroize::zeroize(&mut *secret);
    let k_region = hmac(k_date.as_ref(), region.as_bytes());
    let k_service = hmac(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac(k_service.as_ref(), b"aws4_request");
    let signature =
        contract::hex::encode(hmac(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref());
    Signed {
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
        security_token: creds.session_token.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials of AWS's Signature Version 4 test suite.
    fn suite() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: zeroize::Zeroizing::new(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            ),
            session_token: None,
        }
    }

    const DATE: &str = "20150830T123600Z";
    const HEADERS: &[(&str, &str)] = &[("Host", "example.amazonaws.com"), ("X-Amz-Date", DATE)];

    fn suite_sign(method: &str, query: &[(&str, &str)]) -> String {
        let req = Request {
            method,
            path: "/",
            query,
            headers: HEADERS,
            payload: b"",
        };
        sign(&req, &suite(), "us-east-1", "service", DATE).authorization
    }

    #[test]
    fn the_aws_test_suite() {
        let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
        assert_eq!(
            suite_sign("GET", &[]),
            format!("{prefix}5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            "get-vanilla"
        );
        assert_eq!(
            suite_sign("GET", &[("Param2", "value2"), ("Param1", "value1")]),
            format!("{prefix}b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
            "get-vanilla-query-order-key-case"
        );
        assert_eq!(
            suite_sign("POST", &[]),
            format!("{prefix}5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
            "post-vanilla"
        );
    }

    #[test]
    fn the_string_to_sign_of_get_vanilla() {
        let req = Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: HEADERS,
            payload: b"",
        };
        let (canonical, signed) = canonical_request(&req, None);
        assert_eq!(signed, "host;x-amz-date");
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    #[test]
    fn dates_encoding_and_tokens() {
        assert_eq!(amz_date(1_440_938_160), DATE);
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(encode("a b/c~", false), "a%20b%2Fc~");
        assert_eq!(encode("/a b/", true), "/a%20b/");
        let mut creds = suite();
        creds.session_token = Some("TOKEN".into());
        let req = Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: HEADERS,
            payload: b"",
        };
        let s = sign(&req, &creds, "us-east-1", "service", DATE);
        assert!(s
            .authorization
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
        assert_eq!(s.security_token.as_deref(), Some("TOKEN"));
        assert!(
            !format!("{creds:?}").contains("EXAMPLEKEY"),
            "the secret is not printed"
        );
    }
}
