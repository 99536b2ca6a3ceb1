//! The URLs the client takes, `http://HOST[:PORT][/PATH][?QUERY]` and `https://…`, read
//! strictly: HOST a DNS name (stored in lower case) or an IPv4 address; no user info, no
//! fragment, no IPv6 (the enclave's egress forwarders are IPv4), and the path and query
//! already percent-encoded (visible ASCII only). Every error names the URL.

use std::fmt;
use std::net::Ipv4Addr;

use super::ClientError;

/// The longest URL taken.
pub const MAX_URL: usize = 8 * 1024;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (the instance metadata service).
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    scheme: Scheme,
    host: String,
    port: u16,
    /// The path, starting with `/`.
    path: String,
    /// The query, without its `?`.
    query: Option<String>,
}

fn bad(url: &str, reason: impl Into<String>) -> ClientError {
    let shown: String = if url.len() > 200 {
        url.chars().take(200).chain("…".chars()).collect()
    } else {
        url.to_owned()
    };
    ClientError::Url {
        url: shown,
        reason: reason.into(),
    }
}

/// A host as the client takes it: an IPv4 address, or a DNS name of labels of 1 to 63 letters,
/// digits and `-` (not first or last), 253 characters at most, whose last label is not all
/// digits. Returns it in lower case.
fn check_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.starts_with('[') || host.contains(':') {
        return Err("IPv6 hosts are not supported (egress is IPv4)".into());
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok(host.to_owned());
    }
    if host.len() > 253 {
        return Err(format!(
            "the host is {} characters; at most 253",
            host.len()
        ));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "the host contains {c:?} (a DNS name has letters, digits, `-` and `.`)"
        ));
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the host has a bad label {label:?}"));
        }
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "the host is neither a DNS name (its last label is numeric) nor an IPv4 address".into(),
        );
    }
    Ok(host.to_ascii_lowercase())
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|p| *p != 0)
}

impl Url {
    /// Parses `http://HOST[:PORT][/PATH][?QUERY]` or `https://…`.
    pub fn parse(url: &str) -> Result<Url, ClientError> {
        if url.len() > MAX_URL {
            return Err(bad(
                url,
                format!("is {} bytes; at most {MAX_URL}", url.len()),
            ));
        }
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(bad(url, "must start with http:// or https://"));
        };
        if let Some(b) = url.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
            return Err(bad(
                url,
                format!(
                    "contains byte 0x{b:02x}: a URL here is visible ASCII (percent-encode the rest)"
                ),
            ));
        }
        if url.contains('#') {
            return Err(bad(url, "has a fragment (`#`)"));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad(url, "has user info (`@`): credentials go in headers"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && !h.starts_with('[') => {
                let port = parse_port(p)
                    .ok_or_else(|| bad(url, format!("bad port {p:?} (1 to 65535)")))?;
                (h, port)
            }
            _ => (authority, scheme.default_port()),
        };
        let host = check_host(host).map_err(|reason| bad(url, reason))?;
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (target, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        Ok(Url {
            scheme,
            host,
            port,
            path: path.to_owned(),
            query,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host: an IPv4 address or a lower-case DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query, without its `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The request target of the request line: the path and `?QUERY`.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// The `Host` header's value: `HOST`, with `:PORT` when it is not the scheme's default
    /// (what a request signer must sign).
    pub fn host_header(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL without its query, for messages (a query may carry a signature).
    pub fn without_query(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.host_header(),
            self.path
        )
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.without_query())?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Url {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Url, ClientError> {
        Url::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_callers_use() {
        let u = Url::parse("https://kms.us-east-1.amazonaws.com/").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port(), u.path(), u.query()),
            (Scheme::Https, "kms.us-east-1.amazonaws.com", 443, "/", None)
        );
        assert_eq!(u.host_header(), "kms.us-east-1.amazonaws.com");
        assert_eq!(u.target(), "/");
        let u = Url::parse("http://169.254.169.254/latest/api/token").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port(), u.path()),
            (Scheme::Http, "169.254.169.254", 80, "/latest/api/token")
        );
        let u = Url::parse("https://Example.COM:8443?a=b&c=%20").unwrap();
        assert_eq!((u.host(), u.port(), u.path()), ("example.com", 8443, "/"));
        assert_eq!(u.query(), Some("a=b&c=%20"));
        assert_eq!(u.target(), "/?a=b&c=%20");
        assert_eq!(u.host_header(), "example.com:8443");
        assert_eq!(u.to_string(), "https://example.com:8443/?a=b&c=%20");
        assert_eq!(u.without_query(), "https://example.com:8443/");
        let u: Url = "http://localhost:80/x".parse().unwrap();
        assert_eq!((u.port(), u.host_header()), (80, "localhost".to_owned()));
        assert_eq!(u.to_string(), "http://localhost/x");
    }

    #[test]
    fn errors_name_the_url() {
        let e = |u: &str| Url::parse(u).unwrap_err().to_string();
        assert_eq!(
            e("ftp://a/"),
            "invalid URL \"ftp://a/\": must start with http:// or https://"
        );
        assert_eq!(
            e("HTTPS://a/"),
            "invalid URL \"HTTPS://a/\": must start with http:// or https://"
        );
        assert_eq!(
            e("https:///x"),
            "invalid URL \"https:///x\": the host is empty"
        );
        assert_eq!(
            e("https://:443/"),
            "invalid URL \"https://:443/\": the host is empty"
        );
        assert_eq!(
            e("https://a:0/"),
            "invalid URL \"https://a:0/\": bad port \"0\" (1 to 65535)"
        );
        assert_eq!(
            e("https://a:/"),
            "invalid URL \"https://a:/\": bad port \"\" (1 to 65535)"
        );
        assert_eq!(
            e("https://a:65536/"),
            "invalid URL \"https://a:65536/\": bad port \"65536\" (1 to 65535)"
        );
        assert_eq!(
            e("https://a:+1/"),
            "invalid URL \"https://a:+1/\": bad port \"+1\" (1 to 65535)"
        );
        assert_eq!(
            e("https://[::1]/"),
            "invalid URL \"https://[::1]/\": IPv6 hosts are not supported (egress is IPv4)"
        );
        assert_eq!(
            e("https://[::1]:443/"),
            "invalid URL \"https://[::1]:443/\": IPv6 hosts are not supported (egress is IPv4)"
        );
        assert_eq!(
            e("https://u:p@a/"),
            "invalid URL \"https://u:p@a/\": has user info (`@`): credentials go in headers"
        );
        assert_eq!(
            e("https://a/#x"),
            "invalid URL \"https://a/#x\": has a fragment (`#`)"
        );
        assert_eq!(
            e("https://a/b c"),
            "invalid URL \"https://a/b c\": contains byte 0x20: a URL here is visible ASCII (percent-encode the rest)"
        );
        assert_eq!(
            e("https://a_b/"),
            "invalid URL \"https://a_b/\": the host contains '_' (a DNS name has letters, digits, `-` and `.`)"
        );
        assert_eq!(
            e("https://a..b/"),
            "invalid URL \"https://a..b/\": the host has a bad label \"\""
        );
        assert_eq!(
            e("https://-a.b/"),
            "invalid URL \"https://-a.b/\": the host has a bad label \"-a\""
        );
        assert_eq!(
            e("https://1.2.3/"),
            "invalid URL \"https://1.2.3/\": the host is neither a DNS name (its last label is numeric) nor an IPv4 address"
        );
        assert_eq!(
            e(&format!("https://{}.b/", "a".repeat(300))),
            format!(
                "invalid URL \"https://{}…\": the host is 302 characters; at most 253",
                "a".repeat(192)
            )
        );
        let long = format!("https://a/{}", "x".repeat(MAX_URL));
        assert!(
            e(&long).ends_with(": is 8202 bytes; at most 8192"),
            "{}",
            e(&long)
        );
    }
}
