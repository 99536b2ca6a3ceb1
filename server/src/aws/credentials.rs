//! Where the enclave's AWS credentials come from, and keeping them fresh.
//!
//! - [`Source::Explicit`]: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally
//!   `AWS_SESSION_TOKEN`. Placed in the image, they are readable by whoever holds the EIF: for
//!   tests and short-lived tokens, not for production.
//! - [`Source::InstanceMetadata`]: the parent instance's role, from its metadata service
//!   (IMDSv2: a session token first with `PUT /latest/api/token`, then the role's name and its
//!   credentials under `/latest/meta-data/iam/security-credentials/`), reached through an
//!   egress route (`egress = ["169.254.169.254:80"]`). The metadata service answers the parent's
//!   forwarder, which is one hop away, so the default hop limit of 1 is enough.
//!
//! Credentials from the metadata service expire; [`Provider::get`] fetches new ones when fewer
//! than [`REFRESH_BEFORE`] seconds are left, so a long-running application keeps working.

use std::fmt;
use std::sync::{Arc, Mutex};

use contract::json::Value;
use zeroize::Zeroizing;

use super::sigv4::Credentials;
use super::Http;
use crate::client::{ClientError, Request, Url};

/// The metadata service's address, as AWS's SDKs use it.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// The environment variable that overrides it (AWS's SDKs read the same one).
pub const IMDS_ENDPOINT_ENV: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// Seconds before expiry at which credentials are fetched again.
pub const REFRESH_BEFORE: i64 = 300;
/// The metadata session token's lifetime asked for, in seconds (6 hours, the most allowed).
const TOKEN_TTL: &str = "21600";
/// The longest role name or token taken from the metadata service.
const MAX_FIELD: usize = 4096;

/// Why no credentials.
#[derive(Debug)]
pub enum CredentialsError {
    /// A variable of the explicit source is missing or malformed (names it).
    Environment(String),
    /// The metadata service could not be reached or failed (the step, the cause).
    Imds(&'static str, ClientError),
    /// The metadata service answered with another status (the step, the status, the body's start).
    Status(&'static str, u16, String),
    /// The metadata service's answer is not what it documents (the step, what is wrong).
    Malformed(&'static str, String),
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsError::Environment(d) => write!(f, "AWS credentials: {d}"),
            CredentialsError::Imds(step, e) => {
                write!(
                    f,
                    "AWS credentials from the instance metadata service ({step}): {e}"
                )
            }
            CredentialsError::Status(step, status, body) => write!(
                f,
                "AWS credentials from the instance metadata service ({step}): HTTP {status}: {body}"
            ),
            CredentialsError::Malformed(step, d) => write!(
                f,
                "AWS credentials from the instance metadata service ({step}): {d}"
            ),
        }
    }
}

impl std::error::Error for CredentialsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CredentialsError::Imds(_, e) => Some(e),
            _ => None,
        }
    }
}

/// Where credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Given once, never refreshed.
    Explicit,
    /// The instance metadata service at this base URL (`http://169.254.169.254`).
    InstanceMetadata(Url),
}

/// Credentials and when they expire (Unix seconds; `None`: never).
struct Held {
    credentials: Arc<Credentials>,
    expires: Option<i64>,
}

/// Hands out current credentials, fetching them again before they expire.
pub struct Provider {
    source: Source,
    held: Mutex<Option<Held>>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Fixed credentials.
    pub fn explicit(credentials: Credentials) -> Provider {
        Provider {
            source: Source::Explicit,
            held: Mutex::new(Some(Held {
                credentials: Arc::new(credentials),
                expires: None,
            })),
        }
    }

    /// The instance's role, from the metadata service at `endpoint`.
    pub fn instance_metadata(endpoint: Url) -> Provider {
        Provider {
            source: Source::InstanceMetadata(endpoint),
            held: Mutex::new(None),
        }
    }

    /// From the environment, as AWS's SDKs read it: explicit keys when `AWS_ACCESS_KEY_ID` is
    /// set, else the metadata service at `AWS_EC2_METADATA_SERVICE_ENDPOINT` or
    /// [`IMDS_ENDPOINT`]. `var` looks a variable up (`std::env::var(..).ok()` in a program).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Provider, CredentialsError> {
        match var("AWS_ACCESS_KEY_ID") {
            Some(id) => {
                let secret = Zeroizing::new(var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
                    CredentialsError::Environment(
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
                    )
                })?);
                if id.trim().is_empty() || secret.trim().is_empty() {
                    return Err(CredentialsError::Environment(
                        "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is empty".into(),
                    ));
                }
                Ok(Provider::explicit(Credentials {
                    access_key_id: id.trim().to_owned(),
                    secret_access_key: Zeroizing::new(secret.trim().to_owned()),
                    session_token: var("AWS_SESSION_TOKEN").filter(|t| !t.trim().is_empty()),
                }))
            }
            None => {
                let text = var(IMDS_ENDPOINT_ENV).unwrap_or_else(|| IMDS_ENDPOINT.to_owned());
                let url = Url::parse(text.trim()).map_err(|e| {
                    CredentialsError::Environment(format!("{IMDS_ENDPOINT_ENV}: {e}"))
                })?;
                Ok(Provider::instance_metadata(url))
            }
        }
    }

    /// Where the credentials come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Current credentials: the held ones while more than [`REFRESH_BEFORE`] seconds remain,
    /// else fresh ones from the source. `now` is Unix seconds.
    pub fn get(&self, http: &dyn Http, now: i64) -> Result<Arc<Credentials>, CredentialsError> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(h) = held.as_ref() {
            if h.expires.is_none_or(|t| t - now > REFRESH_BEFORE) {
                return Ok(Arc::clone(&h.credentials));
            }
        }
        let Source::InstanceMetadata(base) = &self.source else {
            // Explicit credentials are always held.
            return Err(CredentialsError::Environment("no credentials".into()));
        };
        let (credentials, expires) = fetch_imds(http, base)?;
        let credentials = Arc::new(credentials);
        *held = Some(Held {
            credentials: Arc::clone(&credentials),
            expires: Some(expires),
        });
        Ok(credentials)
    }
}

/// `base` + `path` (the base has no path of its own, or one without a trailing slash).
fn imds_url(base: &Url, path: &str) -> Result<Url, CredentialsError> {
    let text = format!("{}{path}", base.to_string().trim_end_matches('/'));
    Url::parse(&text).map_err(|e| CredentialsError::Malformed("URL", e.to_string()))
}

/// One call; the body on 200, else an error naming the step.
fn call(
    http: &dyn Http,
    step: &'static str,
    method: &str,
    url: Url,
    headers: Vec<(String, String)>,
) -> Result<Vec<u8>, CredentialsError> {
    let req = Request {
        method: method.to_owned(),
        url,
        headers,
        body: Vec::new(),
    };
    let resp = http
        .send(&req)
        .map_err(|e| CredentialsError::Imds(step, e))?;
    if resp.status != 200 {
        return Err(CredentialsError::Status(
            step,
            resp.status,
            super::body_start(&resp.body),
        ));
    }
    if resp.body.len() > MAX_FIELD * 4 {
        return Err(CredentialsError::Malformed(
            step,
            format!("the answer is {} bytes", resp.body.len()),
        ));
    }
    Ok(resp.body)
}

/// IMDSv2: token, role name, the role's credentials.
fn fetch_imds(http: &dyn Http, base: &Url) -> Result<(Credentials, i64), CredentialsError> {
    let token = call(
        http,
        "session token",
        "PUT",
        imds_url(base, "/latest/api/token")?,
        vec![(
            "X-aws-ec2-metadata-token-ttl-seconds".into(),
            TOKEN_TTL.into(),
        )],
    )?;
    let token = printable(&token, "session token")?;
    let auth = || vec![("X-aws-ec2-metadata-token".to_owned(), token.clone())];
    let roles = call(
        http,
        "role name",
        "GET",
        imds_url(base, "/latest/meta-data/iam/security-credentials/")?,
        auth(),
    )?;
    let roles = printable(&roles, "role name")?;
    let role = roles.lines().next().unwrap_or("").trim();
    if role.is_empty()
        || !role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Err(CredentialsError::Malformed(
            "role name",
            format!("{role:?} is not an IAM role name (does the instance have a role?)"),
        ));
    }
    let body = call(
        http,
        "role credentials",
        "GET",
        imds_url(
            base,
            &format!("/latest/meta-data/iam/security-credentials/{role}"),
        )?,
        auth(),
    )?;
    parse_role_credentials(&body)
}

/// Text of printable ASCII (a token, a role list).
fn printable(body: &[u8], step: &'static str) -> Result<String, CredentialsError> {
    match std::str::from_utf8(body) {
        Ok(s)
            if !s.trim().is_empty()
                && s.bytes().all(|b| b == b'\n' || (b' '..=b'~').contains(&b)) =>
        {
            Ok(s.trim().to_owned())
        }
        _ => Err(CredentialsError::Malformed(
            step,
            "the answer is empty or not printable text".into(),
        )),
    }
}

/// The role's credentials document: `Code` `Success`, `AccessKeyId`, `SecretAccessKey`,
/// `Token`, `Expiration` (RFC 3339). Returns them and the expiry in Unix seconds.
pub fn parse_role_credentials(body: &[u8]) -> Result<(Credentials, i64), CredentialsError> {
    const STEP: &str = "role credentials";
    let bad = |d: String| CredentialsError::Malformed(STEP, d);
    let text = std::str::from_utf8(body).map_err(|_| bad("the answer is not UTF-8".into()))?;
    let value = contract::json::parse(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(members) = value else {
        return Err(bad(format!("expected an object, got {}", value.kind())));
    };
    let field = |name: &str| -> Result<&str, CredentialsError> {
        match members.iter().find(|(k, _)| k == name) {
            Some((_, Value::String(s))) if !s.is_empty() && s.len() <= MAX_FIELD => Ok(s),
            Some((_, v)) => Err(bad(format!("{name} is {}, not a short string", v.kind()))),
            None => Err(bad(format!("{name} is missing"))),
        }
    };
    let code = field("Code")?;
    if code != "Success" {
        return Err(bad(format!("Code is {code:?}, not \"Success\"")));
    }
    let expiration = field("Expiration")?;
    let (expires, _) = contract::date::parse_rfc3339(expiration)
        .map_err(|d| bad(format!("Expiration {expiration:?}: {d}")))?;
    Ok((
        Credentials {
            access_key_id: field("AccessKeyId")?.to_owned(),
            secret_access_key: Zeroizing::new(field("SecretAccessKey")?.to_owned()),
            session_token: Some(field("Token")?.to_owned()),
        },
        expires,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::tests::Script;

    const ROLE: &str = r#"{"Code":"Success","LastUpdated":"2026-12-02T06:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"secret","Token":"token","Expiration":"2026-12-02T12:00:00Z"}"#;
    const EXPIRES: i64 = 1_796_212_800; // 2026-12-02T12:00:00Z

    fn imds_script() -> Script {
        Script::new(vec![
            (200, "TOKEN".into()),
            (200, "enclave-role\n".into()),
            (200, ROLE.into()),
        ])
    }

    #[test]
    fn imdsv2_asks_for_a_token_first_then_the_role_then_its_credentials() {
        let http = imds_script();
        let p = Provider::instance_metadata(Url::parse(IMDS_ENDPOINT).unwrap());
        let c = p.get(&http, EXPIRES - 3600).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(*c.secret_access_key, "secret");
        assert_eq!(c.session_token.as_deref(), Some("token"));
        let sent = http.requests();
        assert_eq!(
            sent.iter()
                .map(|r| format!("{} {}", r.method, r.url))
                .collect::<Vec<_>>(),
            [
                "PUT http://169.254.169.254/latest/api/token",
                "GET http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                "GET http://169.254.169.254/latest/meta-data/iam/security-credentials/enclave-role",
            ]
        );
        assert!(sent[0].headers.contains(&(
            "X-aws-ec2-metadata-token-ttl-seconds".into(),
            "21600".into()
        )));
        assert!(sent[1]
            .headers
            .contains(&("X-aws-ec2-metadata-token".into(), "TOKEN".into())));
        assert!(sent[2]
            .headers
            .contains(&("X-aws-ec2-metadata-token".into(), "TOKEN".into())));
    }

    #[test]
    fn credentials_are_kept_until_five_minutes_before_they_expire() {
        let http = imds_script();
        let p = Provider::instance_metadata(Url::parse(IMDS_ENDPOINT).unwrap());
        p.get(&http, EXPIRES - 3600).unwrap();
        p.get(&http, EXPIRES - REFRESH_BEFORE - 1).unwrap();
        assert_eq!(http.requests().len(), 3, "no second fetch while fresh");
        // Nothing more is scripted: a refresh is attempted and fails.
        let e = p.get(&http, EXPIRES - REFRESH_BEFORE).unwrap_err();
        assert!(
            matches!(e, CredentialsError::Imds("session token", _)),
            "{e}"
        );
    }

    #[test]
    fn explicit_from_the_environment_and_their_errors() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let p = Provider::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]))
        .unwrap();
        assert_eq!(p.source(), &Source::Explicit);
        let c = p.get(&Script::new(vec![]), 0).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.clone()),
            ("AKID", None)
        );
        let e = Provider::from_env(env(&[("AWS_ACCESS_KEY_ID", "AKID")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AWS credentials: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
        );
        let p = Provider::from_env(env(&[])).unwrap();
        assert_eq!(
            p.source(),
            &Source::InstanceMetadata(Url::parse("http://169.254.169.254").unwrap())
        );
        let p = Provider::from_env(env(&[(IMDS_ENDPOINT_ENV, "http://imds.test:8080")])).unwrap();
        assert_eq!(
            p.source(),
            &Source::InstanceMetadata(Url::parse("http://imds.test:8080").unwrap())
        );
        let e = Provider::from_env(env(&[(IMDS_ENDPOINT_ENV, "ftp://x")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("AWS credentials: AWS_EC2_METADATA_SERVICE_ENDPOINT: "),
            "{e}"
        );
    }

    #[test]
    fn failures_name_the_step() {
        let http = Script::new(vec![(200, "TOKEN".into()), (404, "Not Found".into())]);
        let p = Provider::instance_metadata(Url::parse(IMDS_ENDPOINT).unwrap());
        assert_eq!(
            p.get(&http, 0).unwrap_err().to_string(),
            "AWS credentials from the instance metadata service (role name): HTTP 404: Not Found"
        );
        let http = Script::new(vec![(200, "TOKEN".into()), (200, "bad role!\n".into())]);
        assert_eq!(
            p.get(&http, 0).unwrap_err().to_string(),
            "AWS credentials from the instance metadata service (role name): \"bad role!\" is not an IAM role name (does the instance have a role?)"
        );
    }

    #[test]
    fn role_documents_are_read_strictly() {
        let (c, t) = parse_role_credentials(ROLE.as_bytes()).unwrap();
        assert_eq!((c.access_key_id.as_str(), t), ("ASIAEXAMPLE", EXPIRES));
        for (doc, want) in [
            ("[]", "expected an object, got an array"),
            (
                r#"{"Code":"Failure"}"#,
                "Code is \"Failure\", not \"Success\"",
            ),
            (r#"{"Code":"Success"}"#, "Expiration is missing"),
            (
                r#"{"Code":"Success","Expiration":"tomorrow"}"#,
                "Expiration \"tomorrow\": year is not a number",
            ),
            (
                r#"{"Code":"Success","Expiration":"2026-12-02T12:00:00Z","AccessKeyId":1}"#,
                "AccessKeyId is a number, not a short string",
            ),
        ] {
            let e = parse_role_credentials(doc.as_bytes()).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "AWS credentials from the instance metadata service (role credentials): {want}"
                ),
                "{doc}"
            );
        }
    }
}
