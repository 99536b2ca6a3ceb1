//! The instance metadata service's part the enclave uses (IMDSv2): a session token for `PUT
//! /latest/api/token` with a TTL header, then, with that token only, the role's name and its
//! temporary credentials, the test's fixed ones ([`crate::ACCESS_KEY_ID`] …), valid six hours.

use crate::http::Request;

/// The session token handed out.
pub const SESSION_TOKEN: &str = "standin-imds-session-token";
/// The role's name.
pub const ROLE: &str = "enclave-https-test-role";

/// The answer to one request: status, content type, body.
pub fn answer(req: &Request, now: i64) -> (u16, &'static str, Vec<u8>) {
    const CREDS: &str = "/latest/meta-data/iam/security-credentials/";
    if req.method == "PUT" && req.path == "/latest/api/token" {
        return match req.header("X-aws-ec2-metadata-token-ttl-seconds") {
            Some(ttl) if ttl.parse::<u32>().is_ok_and(|t| (1..=21600).contains(&t)) => {
                (200, "text/plain", SESSION_TOKEN.into())
            }
            _ => (400, "text/plain", b"missing or bad token TTL".to_vec()),
        };
    }
    // IMDSv2 only: every other call needs the session token.
    if req.header("X-aws-ec2-metadata-token") != Some(SESSION_TOKEN) {
        return (401, "text/plain", b"Unauthorized".to_vec());
    }
    if req.method != "GET" {
        return (405, "text/plain", b"Method Not Allowed".to_vec());
    }
    if req.path == CREDS {
        return (200, "text/plain", format!("{ROLE}\n").into_bytes());
    }
    if req.path.strip_prefix(CREDS) == Some(ROLE) {
        let body = format!(
            "{{\"Code\":\"Success\",\"LastUpdated\":\"{}\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"{}\",\"SecretAccessKey\":\"{}\",\"Token\":\"{}\",\"Expiration\":\"{}\"}}",
            contract::date::rfc3339(now),
            crate::ACCESS_KEY_ID,
            crate::SECRET_ACCESS_KEY,
            crate::SECURITY_TOKEN,
            contract::date::rfc3339(now + 6 * 3600),
        );
        return (200, "application/json", body.into_bytes());
    }
    (404, "text/plain", b"Not Found".to_vec())
}
