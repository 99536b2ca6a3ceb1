//! The egress table: where, inside the enclave, each outside service of the manifest's
//! `egress` list is reached. `eif-builder image` writes it at [`PATH`] whenever the list is not
//! empty; the server library's HTTP client (`server::client`) reads it, so a program connects
//! to the loopback address of `HOST:PORT` without a name lookup, and a service not listed fails
//! at once instead of after a DNS timeout.
//!
//! ```text
//! # enclave-https egress: HOST:PORT LOCAL_ADDRESS:PORT, written by eif-builder image
//! kms.us-east-1.amazonaws.com:443 127.0.0.2:443
//! 169.254.169.254:80 127.0.0.3:80
//! ```
//!
//! One entry a line, in the manifest's order: the service as the manifest lists it (HOST a
//! lower-case DNS name or an IPv4 address; the parent connects to it) and, after one space, the
//! IPv4 loopback address and port the enclave's forwarder listens on. Names also have their
//! address in `/etc/hosts`; IPv4 addresses (the instance metadata service, `169.254.169.254`)
//! cannot, so this table is the only way to them. Lines starting with `#` and blank lines are
//! skipped; nothing else is allowed: no other spaces, no service or local address twice, at most
//! [`MAX_LINES`] lines. Every error names the line and the text.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Where the file is, inside the application's root file system.
pub const PATH: &str = "/etc/enclave-https/egress";

/// The most lines read (comments and blank lines included).
pub const MAX_LINES: usize = 1000;

/// The largest file read.
pub const MAX_BYTES: usize = 512 * 1024;

/// The longest host (a DNS name's limit).
pub const MAX_HOST: usize = 253;

/// The first line [`render`] writes.
pub const HEADER: &str =
    "# enclave-https egress: HOST:PORT LOCAL_ADDRESS:PORT, written by eif-builder image";

/// One outside service and where the enclave reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The service's host as the manifest lists it: a lower-case DNS name or an IPv4 address.
    pub host: String,
    /// The service's port.
    pub port: u16,
    /// The loopback address and port the enclave's forwarder listens on for it.
    pub local: SocketAddrV4,
}

/// Why an egress table is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressError {
    /// The 1-based line, or 0 when the error is about the whole file.
    pub line: usize,
    /// What is wrong, with the offending text.
    pub reason: String,
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl std::error::Error for EgressError {}

fn err(line: usize, reason: impl Into<String>) -> EgressError {
    EgressError {
        line,
        reason: reason.into(),
    }
}

/// The table for `entries`, in their order: [`HEADER`], then `HOST:PORT ADDRESS:PORT` a line.
/// [`parse`] reads it back as `entries` when they are valid (the builder checks them first).
pub fn render(entries: &[Entry]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for e in entries {
        out.push_str(&format!("{}:{} {}\n", e.host, e.port, e.local));
    }
    out
}

/// A port in decimal, 1 to 65535, without sign or leading zero.
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|p| *p != 0)
}

fn parse_service(n: usize, text: &str) -> Result<(String, u16), EgressError> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| err(n, format!("the service {text:?} is not HOST:PORT")))?;
    let port = parse_port(port).ok_or_else(|| {
        err(
            n,
            format!("the service {text:?} has a bad port (1 to 65535)"),
        )
    })?;
    if host.is_empty() || host.len() > MAX_HOST {
        return Err(err(
            n,
            format!("the service {text:?} has a host of 1 to {MAX_HOST} characters"),
        ));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(err(
            n,
            format!(
                "the service {text:?} has {c:?} in its host (a lower-case DNS name or an IPv4 address)"
            ),
        ));
    }
    Ok((host.to_owned(), port))
}

fn parse_local(n: usize, text: &str) -> Result<SocketAddrV4, EgressError> {
    let local: SocketAddrV4 = text
        .parse()
        .map_err(|_| err(n, format!("the local address {text:?} is not IPV4:PORT")))?;
    // `parse` takes "0080" as 80: the written form must be the one `render` writes.
    if local.to_string() != text || local.port() == 0 {
        return Err(err(
            n,
            format!(
                "the local address {text:?} is not IPV4:PORT (port 1 to 65535, no leading zero)"
            ),
        ));
    }
    if !local.ip().is_loopback() {
        return Err(err(
            n,
            format!("the local address {text:?} is not a loopback address (127.0.0.0/8)"),
        ));
    }
    Ok(local)
}

/// Reads an egress table.
pub fn parse(text: &str) -> Result<Vec<Entry>, EgressError> {
    if text.len() > MAX_BYTES {
        return Err(err(
            0,
            format!("is {} bytes, more than the {MAX_BYTES} allowed", text.len()),
        ));
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut out: Vec<Entry> = Vec::new();
    if body.is_empty() {
        return Ok(out);
    }
    for (i, line) in body.split('\n').enumerate() {
        let n = i + 1;
        if n > MAX_LINES {
            return Err(err(n, format!("more than {MAX_LINES} lines")));
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let shape = || {
            err(
                n,
                format!("expected HOST:PORT LOCAL_ADDRESS:PORT, one space apart: {line:?}"),
            )
        };
        let mut fields = line.split(' ');
        let (Some(service), Some(local), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(shape());
        };
        if service.is_empty()
            || local.is_empty()
            || line.contains(|c: char| c.is_whitespace() && c != ' ')
        {
            return Err(shape());
        }
        let (host, port) = parse_service(n, service)?;
        let local = parse_local(n, local)?;
        if lookup(&out, &host, port).is_some() {
            return Err(err(n, format!("the service {service} is listed twice")));
        }
        if let Some(other) = out.iter().find(|e| e.local == local) {
            return Err(err(
                n,
                format!(
                    "the local address {local} of {service} is already {}:{}'s",
                    other.host, other.port
                ),
            ));
        }
        out.push(Entry { host, port, local });
    }
    Ok(out)
}

/// The entry of `host:port`, the host compared without regard to ASCII case (DNS names are
/// case-insensitive; the table holds them in lower case).
pub fn lookup<'a>(entries: &'a [Entry], host: &str, port: u16) -> Option<&'a Entry> {
    entries
        .iter()
        .find(|e| e.port == port && e.host.eq_ignore_ascii_case(host))
}

/// Whether `host` is an IPv4 address in dotted-quad form (such a service has no line in
/// `/etc/hosts`; it is reached through this table only).
pub fn is_ipv4_literal(host: &str) -> bool {
    host.parse::<Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, port: u16, local: &str) -> Entry {
        Entry {
            host: host.into(),
            port,
            local: local.parse().unwrap(),
        }
    }

    #[test]
    fn round_trip_in_order() {
        let list = vec![
            entry("kms.us-east-1.amazonaws.com", 443, "127.0.0.2:443"),
            entry("169.254.169.254", 80, "127.0.0.3:80"),
            entry("kms.us-east-1.amazonaws.com", 80, "127.0.0.2:80"),
        ];
        let text = render(&list);
        assert_eq!(
            text,
            "# enclave-https egress: HOST:PORT LOCAL_ADDRESS:PORT, written by eif-builder image\n\
             kms.us-east-1.amazonaws.com:443 127.0.0.2:443\n\
             169.254.169.254:80 127.0.0.3:80\n\
             kms.us-east-1.amazonaws.com:80 127.0.0.2:80\n"
        );
        assert_eq!(parse(&text).unwrap(), list);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(render(&[]), format!("{HEADER}\n"));
        assert_eq!(parse(&render(&[])).unwrap(), vec![]);
        // Comments and blank lines anywhere; the last newline is optional.
        assert_eq!(
            parse("\n# x\n\na.example:1 127.0.0.9:2\n#").unwrap(),
            vec![entry("a.example", 1, "127.0.0.9:2")]
        );
    }

    #[test]
    fn lookup_is_by_host_and_port() {
        let list = vec![
            entry("a.example", 443, "127.0.0.2:443"),
            entry("a.example", 80, "127.0.0.2:80"),
            entry("169.254.169.254", 80, "127.0.0.3:80"),
        ];
        assert_eq!(lookup(&list, "a.example", 80), list.get(1));
        assert_eq!(lookup(&list, "A.Example", 443), list.first());
        assert_eq!(lookup(&list, "169.254.169.254", 80), list.get(2));
        assert_eq!(lookup(&list, "a.example", 8443), None);
        assert_eq!(lookup(&list, "b.example", 443), None);
        assert!(is_ipv4_literal("169.254.169.254"));
        assert!(!is_ipv4_literal("a.example"));
        assert!(!is_ipv4_literal("1.2.3"));
    }

    #[test]
    fn errors_name_the_line_and_the_text() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            e("a.example:443\n"),
            "line 1: expected HOST:PORT LOCAL_ADDRESS:PORT, one space apart: \"a.example:443\""
        );
        assert_eq!(
            e("# c\na.example:443  127.0.0.2:443\n"),
            "line 2: expected HOST:PORT LOCAL_ADDRESS:PORT, one space apart: \"a.example:443  127.0.0.2:443\""
        );
        assert_eq!(
            e("a.example:443 127.0.0.2:443 x\n"),
            "line 1: expected HOST:PORT LOCAL_ADDRESS:PORT, one space apart: \"a.example:443 127.0.0.2:443 x\""
        );
        assert_eq!(
            e("a.example:443 127.0.0.2:443\r\n"),
            "line 1: expected HOST:PORT LOCAL_ADDRESS:PORT, one space apart: \"a.example:443 127.0.0.2:443\\r\""
        );
        assert_eq!(
            e(" \n"),
            "line 1: expected HOST:PORT LOCAL_ADDRESS:PORT, one space apart: \" \""
        );
        assert_eq!(
            e("a.example 127.0.0.2:443\n"),
            "line 1: the service \"a.example\" is not HOST:PORT"
        );
        for port in ["0", "65536", "+1", "0443", ""] {
            assert_eq!(
                e(&format!("a.example:{port} 127.0.0.2:443\n")),
                format!("line 1: the service \"a.example:{port}\" has a bad port (1 to 65535)")
            );
        }
        assert_eq!(
            e(":443 127.0.0.2:443\n"),
            "line 1: the service \":443\" has a host of 1 to 253 characters"
        );
        let long = "a".repeat(254);
        assert_eq!(
            e(&format!("{long}:1 127.0.0.2:1\n")),
            format!("line 1: the service \"{long}:1\" has a host of 1 to 253 characters")
        );
        assert_eq!(
            e("A.example:443 127.0.0.2:443\n"),
            "line 1: the service \"A.example:443\" has 'A' in its host (a lower-case DNS name or an IPv4 address)"
        );
        assert_eq!(
            e("[::1]:443 127.0.0.2:443\n"),
            "line 1: the service \"[::1]:443\" has '[' in its host (a lower-case DNS name or an IPv4 address)"
        );
        assert_eq!(
            e("a.example:443 localhost:443\n"),
            "line 1: the local address \"localhost:443\" is not IPV4:PORT"
        );
        assert_eq!(
            e("a.example:443 [::1]:443\n"),
            "line 1: the local address \"[::1]:443\" is not IPV4:PORT"
        );
        assert_eq!(
            e("a.example:443 127.0.0.2:0443\n"),
            "line 1: the local address \"127.0.0.2:0443\" is not IPV4:PORT (port 1 to 65535, no leading zero)"
        );
        assert_eq!(
            e("a.example:443 127.0.0.2:0\n"),
            "line 1: the local address \"127.0.0.2:0\" is not IPV4:PORT (port 1 to 65535, no leading zero)"
        );
        assert_eq!(
            e("a.example:443 10.0.0.2:443\n"),
            "line 1: the local address \"10.0.0.2:443\" is not a loopback address (127.0.0.0/8)"
        );
        assert_eq!(
            e("a.example:443 127.0.0.2:443\na.example:443 127.0.0.3:443\n"),
            "line 2: the service a.example:443 is listed twice"
        );
        assert_eq!(
            e("a.example:443 127.0.0.2:443\nb.example:443 127.0.0.2:443\n"),
            "line 2: the local address 127.0.0.2:443 of b.example:443 is already a.example:443's"
        );
        let many = "#\n".repeat(MAX_LINES + 1);
        assert_eq!(e(&many), "line 1001: more than 1000 lines");
        assert_eq!(
            e(&"#".repeat(MAX_BYTES + 1)),
            "is 524289 bytes, more than the 524288 allowed"
        );
    }
}
