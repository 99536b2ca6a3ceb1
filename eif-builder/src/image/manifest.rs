//! The image manifest (`enclave.toml`): what goes into an enclave image, read strictly.
//!
//! ```toml
//! name = "my-service"          # EIF metadata (optional)
//! version = "1.2.0"
//!
//! [app]                        # exactly one of `binary` and `oci`
//! binary = "target/x86_64-unknown-linux-musl/release/my-service"
//! # oci = "my-image.tar"       # an OCI layout directory, an oci-archive or a `docker save` tar
//! # tag = "latest"             # which image of a layout or archive holding several
//! args = ["/my-service", "--port", "443"]   # the whole command, program first
//! env = { RUST_LOG = "info" }
//!
//! [[app.files]]
//! src = "config/app.toml"
//! dst = "/etc/my-service/app.toml"
//! mode = 0o644
//!
//! [kernel]                     # the platform, measured into PCR0 and PCR1
//! path = "/usr/share/nitro_enclaves/blobs/bzImage"
//! modules = ["/usr/share/nitro_enclaves/blobs/nsm.ko"]
//! cmdline = "reboot=k panic=30 pci=off nomodules console=ttyS0"
//! init = "init"                # PID 1 of the image (ours by default)
//!
//! [signing]                    # PCR8
//! certificate = "cert.pem"
//! key = "key.pem"
//!
//! [front]                      # our HTTPS server as a TLS front before the application
//! upstream = "tcp:127.0.0.1:8080"          # where the application listens: tcp:IP:PORT or unix:PATH
//! binary = "${ENCLAVE_BIN}/server"         # the default when ENCLAVE_BIN is defined
//! args = ["--proxy-protocol"]              # more arguments for the front
//! env = { RUST_LOG = "info" }              # the front's environment
//! ```
//!
//! and at the top level (before any table):
//!
//! ```toml
//! egress = ["api.example.com:443", "kms.eu-west-1.amazonaws.com:443", "169.254.169.254:80"]
//! egress-relay = "${ENCLAVE_BIN}/host-relay"   # the default when ENCLAVE_BIN is defined
//! ```
//!
//! With `[front]`, `/cmd` is the front (`/enclave-https/server --upstream UPSTREAM --processes
//! /etc/enclave-https/processes` and `args`), `/env` its environment, and the application (its
//! command and environment as they would be in `/cmd` and `/env`) becomes process `app` of the
//! processes file ([`contract::processes`]). `egress` lists the outside services the enclave
//! may reach, `NAME:PORT` each: NAME a DNS host name in lower case (letters, digits, `-` and
//! `.`; not `localhost`) or an IPv4 address in dotted-quad form (`169.254.169.254`, the instance
//! metadata service; not a loopback, unspecified, broadcast or multicast one; IPv6 is refused),
//! PORT 1 to 65535, no entry twice, at most [`MAX_EGRESS`]. Each name or address is given a
//! loopback address and each entry a vsock port to the parent, where `host-relay` forwards it;
//! names get their address in `/etc/hosts`, and every entry is in the egress table
//! ([`contract::egress`]), the only way to an IPv4 address (see [`super::egress`]).
//!
//! Unknown keys are errors, so a misspelt key never silently does nothing. Paths are relative
//! to the manifest's directory; `${NAME}` in a path is replaced by the value given with
//! `--define NAME=VALUE`. What the manifest leaves out of `[kernel]` comes from the builder's
//! defaults (`cargo xtask eif` passes our kernel, init and command line), and the front's and
//! the egress relay's binaries default to `${ENCLAVE_BIN}/server` and
//! `${ENCLAVE_BIN}/host-relay` when `ENCLAVE_BIN` is defined (`cargo xtask eif` defines it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cpio::list::substitute;
use crate::error::{Error, Result};

/// The largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Where the application comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A static executable, placed at `/NAME` in the image's root.
    Binary(PathBuf),
    /// A container image: a layout directory or a tarball, and which tag of it.
    Oci {
        /// The layout directory, oci-archive or `docker save` tarball.
        path: PathBuf,
        /// The `org.opencontainers.image.ref.name` (or docker `RepoTags` entry) to take.
        tag: Option<String>,
    },
}

/// A file added to the application's root file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Where it is read from.
    pub src: PathBuf,
    /// Where it goes in the image's root (absolute, normalized, without the leading `/`).
    pub dst: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// Our HTTPS server as a TLS front before the application (`[front]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Front {
    /// Where the application listens, as the front's `--upstream` takes it: `tcp:HOST:PORT` or
    /// `unix:PATH`.
    pub upstream: String,
    /// The front's executable (static), placed at `/enclave-https/server`.
    pub binary: PathBuf,
    /// More arguments for the front, after the ones the build gives it.
    pub args: Vec<String>,
    /// The front's whole environment.
    pub env: BTreeMap<String, String>,
}

/// One outside service the enclave may reach (`egress = ["NAME:PORT", ...]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    /// A DNS host name, lower case, or an IPv4 address (dotted quad).
    pub host: String,
    /// 1 to 65535.
    pub port: u16,
}

/// The most `egress` entries (each takes a vsock port, and each name a loopback address).
pub const MAX_EGRESS: usize = 200;

/// A manifest, read, checked and resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// EIF metadata: image name.
    pub name: Option<String>,
    /// EIF metadata: image version.
    pub version: Option<String>,
    /// The application.
    pub source: Source,
    /// The whole command (program first), replacing the image's own.
    pub args: Option<Vec<String>>,
    /// Environment variables, added to (or replacing those of) the image's own.
    pub env: BTreeMap<String, String>,
    /// Files added to the root file system.
    pub files: Vec<File>,
    /// The kernel image.
    pub kernel: Option<PathBuf>,
    /// Kernel modules for the bootstrap ramdisk.
    pub modules: Option<Vec<PathBuf>>,
    /// The kernel command line.
    pub cmdline: Option<String>,
    /// init.
    pub init: Option<PathBuf>,
    /// Signing certificate and key (PCR8).
    pub signing: Option<(PathBuf, PathBuf)>,
    /// The TLS front, if any.
    pub front: Option<Front>,
    /// The outside services the enclave may reach, in the manifest's order.
    pub egress: Vec<Egress>,
    /// The egress forwarder's executable (static; `host-relay` built for the enclave), placed
    /// at `/enclave-https/host-relay`: set exactly when `egress` is not empty.
    pub egress_relay: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    version: Option<String>,
    egress: Option<Vec<String>>,
    #[serde(rename = "egress-relay")]
    egress_relay: Option<String>,
    app: RawApp,
    kernel: Option<RawKernel>,
    signing: Option<RawSigning>,
    front: Option<RawFront>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFront {
    upstream: String,
    binary: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    binary: Option<String>,
    oci: Option<String>,
    tag: Option<String>,
    args: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    src: String,
    dst: String,
    mode: RawMode,
}

/// `mode = 0o644` or `mode = "0644"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawMode {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    path: Option<String>,
    modules: Option<Vec<String>>,
    cmdline: Option<String>,
    init: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigning {
    certificate: String,
    key: String,
}

/// Directories init mounts file systems onto: files placed there would be hidden.
pub const MOUNT_POINTS: [&str; 5] = ["dev", "proc", "run", "sys", "tmp"];

/// Reads and checks `path`; `defines` are the `--define NAME=VALUE` pairs.
pub fn read(path: &Path, defines: &BTreeMap<String, String>) -> Result<Manifest> {
    let meta = std::fs::metadata(path).map_err(Error::io_at("cannot read", path))?;
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(Error::unsupported(
            format!("manifest {}", path.display()),
            format!("{} bytes; at most {MAX_MANIFEST_BYTES}", meta.len()),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(Error::io_at("cannot read", path))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, path, base, defines)
}

/// Parses manifest `text`; `file` names it in messages and relative paths resolve against
/// `base`.
pub fn parse(
    text: &str,
    file: &Path,
    base: &Path,
    defines: &BTreeMap<String, String>,
) -> Result<Manifest> {
    let here = |what: &str| format!("{} {what}", file.display());
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text.get(..s.start).unwrap_or("").matches('\n').count() + 1);
        let what = match line {
            Some(n) => format!("manifest {} line {n}", file.display()),
            None => format!("manifest {}", file.display()),
        };
        Error::invalid(what, e.message().replace('\n', " "))
    })?;
    let resolve = |key: &str, value: &str| -> Result<PathBuf> {
        let expanded = substitute(value, defines).map_err(|d| Error::invalid(here(key), d))?;
        if expanded.is_empty() {
            return Err(Error::invalid(here(key), "is empty"));
        }
        let p = PathBuf::from(expanded);
        Ok(if p.is_absolute() { p } else { base.join(p) })
    };
    let app = raw.app;
    let source =
        match (&app.binary, &app.oci) {
            (Some(b), None) => {
                if app.tag.is_some() {
                    return Err(Error::invalid(
                        here("[app] tag"),
                        "only applies to `oci` images",
                    ));
                }
                Source::Binary(resolve("[app] binary", b)?)
            }
            (None, Some(o)) => Source::Oci {
                path: resolve("[app] oci", o)?,
                tag: app.tag.clone(),
            },
            _ => return Err(Error::invalid(
                here("[app]"),
                "give exactly one of `binary` (a static executable) and `oci` (a container image)",
            )),
        };
    if let Some(args) = &app.args {
        if args.is_empty() {
            return Err(Error::invalid(
                here("[app] args"),
                "is empty; it is the whole command, program first",
            ));
        }
        for a in args {
            if a.contains(['\n', '\0']) {
                return Err(Error::invalid(
                    here("[app] args"),
                    format!("{a:?} contains a newline or NUL (/cmd holds one per line)"),
                ));
            }
        }
    }
    for (k, v) in &app.env {
        check_env(k, v).map_err(|d| Error::invalid(here(&format!("[app] env {k:?}")), d))?;
    }
    let mut files = Vec::new();
    for (i, f) in app.files.iter().enumerate() {
        let what = here(&format!("[[app.files]] #{} ({})", i + 1, f.dst));
        let mode = match &f.mode {
            RawMode::Number(n) => u32::try_from(*n).ok(),
            RawMode::Text(t) => u32::from_str_radix(t.trim_start_matches("0o"), 8).ok(),
        }
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            Error::invalid(&what, "mode must be 0 to 0o7777 (e.g. 0o644 or \"0644\")")
        })?;
        if !f.dst.starts_with('/') {
            return Err(Error::invalid(&what, "dst must be an absolute path"));
        }
        let dst = crate::cpio::normalize_path(f.dst.as_bytes())
            .map_err(|e| Error::invalid(&what, format!("dst: {e}")))?;
        let top = dst.split(|&b| b == b'/').next().unwrap_or(&[]);
        if MOUNT_POINTS.iter().any(|m| m.as_bytes() == top) {
            return Err(Error::invalid(
                &what,
                format!(
                    "dst is under /{}, which init mounts a file system onto (the file would be hidden)",
                    String::from_utf8_lossy(top)
                ),
            ));
        }
        if files.iter().any(|g: &File| g.dst == dst) {
            return Err(Error::invalid(&what, "dst is listed twice"));
        }
        files.push(File {
            src: resolve("[[app.files]] src", &f.src)?,
            dst,
            mode,
        });
    }
    let kernel = raw.kernel.unwrap_or(RawKernel {
        path: None,
        modules: None,
        cmdline: None,
        init: None,
    });
    let modules = match &kernel.modules {
        Some(list) => Some(
            list.iter()
                .map(|m| resolve("[kernel] modules", m))
                .collect::<Result<Vec<_>>>()?,
        ),
        None => None,
    };
    if let Some(c) = &kernel.cmdline {
        if c.trim().is_empty() || c.contains(['\n', '\0']) {
            return Err(Error::invalid(
                here("[kernel] cmdline"),
                "must be one non-empty line",
            ));
        }
    }
    let signing = match &raw.signing {
        Some(s) => Some((
            resolve("[signing] certificate", &s.certificate)?,
            resolve("[signing] key", &s.key)?,
        )),
        None => None,
    };
    // A binary we ship (the front, the egress relay): the manifest's, else ENCLAVE_BIN's.
    let ours = |key: &str, given: Option<&str>, name: &str, what: &str| -> Result<PathBuf> {
        match given {
            Some(p) => resolve(key, p),
            None if defines.contains_key(ENCLAVE_BIN) => {
                resolve(key, &format!("${{{ENCLAVE_BIN}}}/{name}"))
            }
            None => Err(Error::invalid(
                here(key),
                format!("is not given: set it to {what} (or --define {ENCLAVE_BIN}=DIR, the directory holding `{name}`)"),
            )),
        }
    };
    let front = match raw.front {
        Some(f) => {
            check_upstream(&f.upstream).map_err(|d| Error::invalid(here("[front] upstream"), d))?;
            for a in &f.args {
                if a.contains(['\n', '\0']) {
                    return Err(Error::invalid(
                        here("[front] args"),
                        format!("{a:?} contains a newline or NUL (/cmd holds one per line)"),
                    ));
                }
            }
            for (k, v) in &f.env {
                check_env(k, v)
                    .map_err(|d| Error::invalid(here(&format!("[front] env {k:?}")), d))?;
            }
            Some(Front {
                binary: ours(
                    "[front] binary",
                    f.binary.as_deref(),
                    "server",
                    "the front's static executable (our `server` built for the enclave)",
                )?,
                upstream: f.upstream,
                args: f.args,
                env: f.env,
            })
        }
        None => None,
    };
    let raw_egress = raw.egress.unwrap_or_default();
    if raw_egress.len() > MAX_EGRESS {
        return Err(Error::invalid(
            here("egress"),
            format!("lists {} entries; at most {MAX_EGRESS}", raw_egress.len()),
        ));
    }
    let mut egress: Vec<Egress> = Vec::new();
    for entry in &raw_egress {
        let e = parse_egress(entry)
            .map_err(|d| Error::invalid(here(&format!("egress {entry:?}")), d))?;
        if egress.contains(&e) {
            return Err(Error::invalid(
                here(&format!("egress {entry:?}")),
                "is listed twice",
            ));
        }
        egress.push(e);
    }
    let egress_relay = match (&raw.egress_relay, egress.is_empty()) {
        (Some(_), true) => {
            return Err(Error::invalid(
                here("egress-relay"),
                "is set but `egress` lists nothing to forward",
            ))
        }
        (_, true) => None,
        (given, false) => Some(ours(
            "egress-relay",
            given.as_deref(),
            "host-relay",
            "the egress forwarder's static executable (host-relay built for the enclave)",
        )?),
    };
    // The paths the build writes itself.
    let mut reserved: Vec<(&[u8], &str)> = Vec::new();
    if front.is_some() || !egress.is_empty() {
        reserved.push((b"enclave-https", "the front and the egress relay go"));
        reserved.push((
            PROCESSES_DIR.as_bytes(),
            "the processes file and the egress table go",
        ));
    }
    if !egress.is_empty() {
        reserved.push((b"etc/hosts", "the egress names' addresses go"));
    }
    for f in &files {
        for (path, why) in &reserved {
            let under = f
                .dst
                .strip_prefix(*path)
                .is_some_and(|r| r.is_empty() || r[0] == b'/');
            if under {
                return Err(Error::invalid(
                    here(&format!(
                        "[[app.files]] {}",
                        String::from_utf8_lossy(&f.dst)
                    )),
                    format!(
                        "dst is where {why} (/{}); the build writes it",
                        String::from_utf8_lossy(path)
                    ),
                ));
            }
        }
    }
    Ok(Manifest {
        path: file.to_path_buf(),
        name: raw.name,
        version: raw.version,
        source,
        args: app.args,
        env: app.env,
        files,
        kernel: kernel
            .path
            .as_deref()
            .map(|p| resolve("[kernel] path", p))
            .transpose()?,
        modules,
        cmdline: kernel.cmdline.map(|c| c.trim().to_owned()),
        init: kernel
            .init
            .as_deref()
            .map(|p| resolve("[kernel] init", p))
            .transpose()?,
        signing,
        front,
        egress,
        egress_relay,
    })
}

/// The define naming the directory of our static enclave binaries.
pub const ENCLAVE_BIN: &str = "ENCLAVE_BIN";

/// The directory of the processes file and the egress table in the root file system, without
/// the leading `/`.
const PROCESSES_DIR: &str = "etc/enclave-https";

/// `[front] upstream`: `tcp:IP:PORT` (an IPv6 address in brackets) or `unix:PATH` (absolute), as
/// the front's `--upstream` reads it: a host name is refused here rather than when the image
/// boots (there is no name lookup in an enclave).
pub fn check_upstream(upstream: &str) -> std::result::Result<(), String> {
    const FORMS: &str = "expected tcp:IP:PORT or unix:PATH";
    if upstream.contains(['\n', '\0']) {
        return Err(format!("{upstream:?} contains a newline or NUL"));
    }
    if let Some(path) = upstream.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(format!("{upstream:?}: the path must be absolute ({FORMS})"));
        }
        return Ok(());
    }
    let Some(rest) = upstream.strip_prefix("tcp:") else {
        return Err(format!("{upstream:?}: {FORMS}"));
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!("{upstream:?}: no port ({FORMS})"));
    };
    let bare = match host.strip_prefix('[') {
        Some(h) => h
            .strip_suffix(']')
            .ok_or_else(|| format!("{upstream:?}: unclosed `[` in the host"))?,
        None if host.contains(':') => {
            return Err(format!(
                "{upstream:?}: write an IPv6 host in brackets (tcp:[::1]:8080)"
            ))
        }
        None => host,
    };
    if bare.is_empty() || bare.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("{upstream:?}: bad host {bare:?} ({FORMS})"));
    }
    if bare.parse::<std::net::IpAddr>().is_err() {
        return Err(format!(
            "{upstream:?}: {bare:?} is not an IP address: the front takes tcp:IP:PORT, there is no name lookup in an enclave"
        ));
    }
    parse_port(port).map_err(|why| format!("{upstream:?}: {why}"))?;
    Ok(())
}

/// A port, 1 to 65535, in decimal digits.
fn parse_port(port: &str) -> std::result::Result<u16, String> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad port {port:?} (1 to 65535)"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("bad port {port:?} (1 to 65535)")),
    }
}

/// One `egress` entry, `NAME:PORT`, NAME a host name or an IPv4 address.
pub fn parse_egress(entry: &str) -> std::result::Result<Egress, String> {
    if entry.starts_with('[') || entry.matches(':').count() > 1 {
        return Err(format!(
            "{entry:?} looks like an IPv6 address: egress takes a host name or an IPv4 address (NAME:PORT, e.g. 169.254.169.254:80)"
        ));
    }
    let (host, port) = entry
        .rsplit_once(':')
        .ok_or("expected NAME:PORT (e.g. api.example.com:443)")?;
    let port = parse_port(port)?;
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => check_ipv4(ip)?,
        Err(_) => check_host_name(host)?,
    }
    Ok(Egress {
        host: host.to_owned(),
        port,
    })
}

/// An IPv4 address the parent can forward to: not this enclave (loopback, unspecified) and not
/// a group (broadcast, multicast).
fn check_ipv4(ip: std::net::Ipv4Addr) -> std::result::Result<(), String> {
    if ip.is_loopback() || ip.is_unspecified() {
        return Err(format!(
            "{ip} is the enclave itself, not an outside service"
        ));
    }
    if ip.is_broadcast() || ip.is_multicast() {
        return Err(format!(
            "{ip} is a broadcast or multicast address, not one service"
        ));
    }
    Ok(())
}

/// A DNS host name as `/etc/hosts` and the parent's resolver take it: labels of 1 to 63
/// lower-case letters, digits and `-` (not first or last), dot-separated, 253 at most; not
/// ending in a numeric label (IPv4 addresses are read before this) and not `localhost`.
fn check_host_name(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() {
        return Err("the name is empty (expected NAME:PORT)".into());
    }
    if host.len() > 253 {
        return Err(format!(
            "the name is {} characters; at most 253",
            host.len()
        ));
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{host:?} has upper-case letters; write it in lower case (it is written as is to /etc/hosts and the parent's routes)"
        ));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "{host:?} contains {c:?}; a host name has letters, digits, `-` and `.` (IPv6 addresses are not names)"
        ));
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(format!(
                "{host:?} has an empty label (a leading, trailing or doubled `.`)"
            ));
        }
        if label.len() > 63 {
            return Err(format!("{host:?} has a label longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{host:?} has a label that begins or ends with `-`"));
        }
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{host:?} is neither a host name (its last label is numeric) nor an IPv4 address (four numbers 0 to 255, no leading zero)"
        ));
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Err(format!(
            "{host:?} is the enclave itself, not an outside service"
        ));
    }
    Ok(())
}

/// An environment variable `/env` can hold: `NAME=VALUE` on one line.
pub fn check_env(name: &str, value: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.contains(['=', '\n', '\0']) {
        return Err("the name must be non-empty, without `=`, newline or NUL".into());
    }
    if value.contains(['\n', '\0']) {
        return Err("the value must not contain a newline or NUL (/env holds one per line)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Manifest> {
        let mut defines = BTreeMap::new();
        defines.insert("BIN".to_string(), "/opt/bin".to_string());
        parse(
            text,
            Path::new("enclave.toml"),
            Path::new("/base"),
            &defines,
        )
    }

    fn message(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_manifest() {
        let m = parse_str(
            r#"
name = "svc"
version = "2"
[app]
binary = "${BIN}/svc"
args = ["/svc", "--port", "443"]
env = { B = "2", A = "1" }
[[app.files]]
src = "conf.toml"
dst = "/etc/svc.toml"
mode = 0o640
[[app.files]]
src = "/abs/data"
dst = "/var/data"
mode = "0600"
[kernel]
path = "bzImage"
modules = ["nsm.ko"]
cmdline = " console=ttyS0 "
init = "init"
[signing]
certificate = "c.pem"
key = "k.pem"
"#,
        )
        .unwrap();
        assert_eq!(m.source, Source::Binary("/opt/bin/svc".into()));
        assert_eq!(m.args.as_deref().map(<[String]>::len), Some(3));
        assert_eq!(m.env.keys().collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(m.files[0].src, PathBuf::from("/base/conf.toml"));
        assert_eq!(m.files[0].dst, b"etc/svc.toml");
        assert_eq!((m.files[0].mode, m.files[1].mode), (0o640, 0o600));
        assert_eq!(m.files[1].src, PathBuf::from("/abs/data"));
        assert_eq!(m.kernel, Some("/base/bzImage".into()));
        assert_eq!(m.modules, Some(vec!["/base/nsm.ko".into()]));
        assert_eq!(m.cmdline.as_deref(), Some("console=ttyS0"));
        assert_eq!(m.init, Some("/base/init".into()));
        assert_eq!(
            m.signing,
            Some(("/base/c.pem".into(), "/base/k.pem".into()))
        );
    }

    #[test]
    fn refusals_name_the_key() {
        for (text, expected) in [
            ("[app]\n", "give exactly one of `binary`"),
            (
                "[app]\nbinary = \"a\"\noci = \"b\"\n",
                "give exactly one of `binary`",
            ),
            ("[app]\nbinary = \"a\"\nbinaryy = 1\n", "line 3"),
            ("[app]\nbinary = \"a\"\nbinaryy = 1\n", "unknown field `binaryy`"),
            ("[app]\nbinary = \"${NOPE}/a\"\n", "`${NOPE}` is not defined (use --define NOPE=VALUE)"),
            ("[app]\nbinary = \"a\"\nargs = []\n", "[app] args: is empty"),
            ("[app]\nbinary = \"a\"\ntag = \"x\"\n", "only applies to `oci`"),
            (
                "[app]\nbinary = \"a\"\nenv = { \"A=B\" = \"1\" }\n",
                "without `=`",
            ),
            (
                "[app]\nbinary = \"a\"\nenv = { A = \"x\\ny\" }\n",
                "newline",
            ),
            (
                "[app]\nbinary = \"a\"\n[[app.files]]\nsrc = \"x\"\ndst = \"etc/x\"\nmode = 0o644\n",
                "dst must be an absolute path",
            ),
            (
                "[app]\nbinary = \"a\"\n[[app.files]]\nsrc = \"x\"\ndst = \"/etc/../x\"\nmode = 0o644\n",
                "`..` component",
            ),
            (
                "[app]\nbinary = \"a\"\n[[app.files]]\nsrc = \"x\"\ndst = \"/tmp/x\"\nmode = 0o644\n",
                "under /tmp",
            ),
            (
                "[app]\nbinary = \"a\"\n[[app.files]]\nsrc = \"x\"\ndst = \"/x\"\nmode = 0o10000\n",
                "mode must be 0 to 0o7777",
            ),
            (
                "[app]\nbinary = \"a\"\n[[app.files]]\nsrc = \"x\"\ndst = \"/x\"\nmode = \"rw\"\n",
                "mode must be",
            ),
            (
                "[app]\nbinary = \"a\"\n[kernel]\ncmdline = \"\"\n",
                "[kernel] cmdline: must be one non-empty line",
            ),
        ] {
            let m = message(text);
            assert!(m.contains(expected), "{text:?}: {m}");
            assert!(!m.contains('\n'), "{m}");
            assert!(m.contains("enclave.toml"), "{m}");
        }
        let twice = "[app]\nbinary = \"a\"\n[[app.files]]\nsrc = \"x\"\ndst = \"/x\"\nmode = 0o644\n[[app.files]]\nsrc = \"y\"\ndst = \"/x\"\nmode = 0o644\n";
        assert!(message(twice).contains("listed twice"));
    }

    fn with_enclave_bin(text: &str) -> Result<Manifest> {
        let defines = BTreeMap::from([("ENCLAVE_BIN".to_string(), "/eb".to_string())]);
        parse(
            text,
            Path::new("enclave.toml"),
            Path::new("/base"),
            &defines,
        )
    }

    #[test]
    fn a_front_and_egress() {
        let m = with_enclave_bin(
            r#"
egress = ["api.example.com:443", "kms.eu-west-1.amazonaws.com:443", "api.example.com:80", "169.254.169.254:80"]
[app]
binary = "app"
[front]
upstream = "tcp:127.0.0.1:8080"
args = ["--proxy-protocol"]
env = { Y = "2", X = "1" }
"#,
        )
        .unwrap();
        let front = m.front.unwrap();
        assert_eq!(front.upstream, "tcp:127.0.0.1:8080");
        assert_eq!(front.binary, PathBuf::from("/eb/server"));
        assert_eq!(front.args, ["--proxy-protocol"]);
        assert_eq!(front.env.keys().collect::<Vec<_>>(), ["X", "Y"]);
        assert_eq!(
            m.egress,
            [
                Egress {
                    host: "api.example.com".into(),
                    port: 443
                },
                Egress {
                    host: "kms.eu-west-1.amazonaws.com".into(),
                    port: 443
                },
                Egress {
                    host: "api.example.com".into(),
                    port: 80
                },
                Egress {
                    host: "169.254.169.254".into(),
                    port: 80
                },
            ]
        );
        assert_eq!(m.egress_relay, Some(PathBuf::from("/eb/host-relay")));

        // Given binaries win over ENCLAVE_BIN's; none are needed without a front or egress.
        let m = parse_str(
            "egress-relay = \"relay\"\negress = [\"a.b:1\"]\n[app]\nbinary = \"a\"\n\
             [front]\nupstream = \"unix:/run/app.sock\"\nbinary = \"${BIN}/front\"\n",
        )
        .unwrap();
        assert_eq!(m.egress_relay, Some(PathBuf::from("/base/relay")));
        assert_eq!(m.front.unwrap().binary, PathBuf::from("/opt/bin/front"));
        let m = parse_str("[app]\nbinary = \"a\"\n").unwrap();
        assert_eq!((m.front, m.egress, m.egress_relay), (None, vec![], None));
        for up in ["tcp:[::1]:8080", "tcp:127.0.0.1:1", "unix:/a b"] {
            assert_eq!(check_upstream(up), Ok(()), "{up}");
        }
    }

    #[test]
    fn front_and_egress_refusals_name_the_key() {
        let app = "[app]\nbinary = \"a\"\n";
        let egress = |list: &str| format!("egress = [{list}]\n{app}");
        let front = |body: &str| format!("{app}[front]\n{body}");
        let two_hundred_one: Vec<String> =
            (0..201).map(|i| format!("\"h{i}.example:1\"")).collect();
        for (text, expected) in [
            (front("upstream = \"tcp:127.0.0.1:8080\"\nbinray = \"x\"\n"), "line 5"),
            (front("upstream = \"tcp:127.0.0.1:8080\"\nbinray = \"x\"\n"), "unknown field `binray`"),
            (front("binary = \"x\"\n"), "missing field `upstream`"),
            (format!("egres = []\n{app}"), "unknown field `egres`"),
            (front("upstream = \"tcp:127.0.0.1:8080\"\n"), "enclave.toml [front] binary: is not given: set it to the front's static executable (our `server` built for the enclave) (or --define ENCLAVE_BIN=DIR, the directory holding `server`)"),
            (egress("\"a.example:443\""), "enclave.toml egress-relay: is not given: set it to the egress forwarder's static executable (host-relay built for the enclave) (or --define ENCLAVE_BIN=DIR, the directory holding `host-relay`)"),
            (format!("egress-relay = \"r\"\n{app}"), "enclave.toml egress-relay: is set but `egress` lists nothing to forward"),
            (front("upstream = \"127.0.0.1:8080\"\nbinary = \"f\"\n"), "[front] upstream: \"127.0.0.1:8080\": expected tcp:IP:PORT or unix:PATH"),
            (front("upstream = \"tcp:127.0.0.1\"\nbinary = \"f\"\n"), "[front] upstream: \"tcp:127.0.0.1\": no port"),
            (front("upstream = \"tcp:127.0.0.1:0\"\nbinary = \"f\"\n"), "[front] upstream: \"tcp:127.0.0.1:0\": bad port \"0\" (1 to 65535)"),
            (front("upstream = \"tcp:::1:80\"\nbinary = \"f\"\n"), "write an IPv6 host in brackets"),
            (front("upstream = \"tcp:[::1:80\"\nbinary = \"f\"\n"), "unclosed `[` in the host"),
            (front("upstream = \"tcp: :80\"\nbinary = \"f\"\n"), "bad host \" \""),
            (front("upstream = \"tcp:app.local:80\"\nbinary = \"f\"\n"), "[front] upstream: \"tcp:app.local:80\": \"app.local\" is not an IP address: the front takes tcp:IP:PORT, there is no name lookup in an enclave"),
            (front("upstream = \"unix:run/a\"\nbinary = \"f\"\n"), "the path must be absolute"),
            (front("upstream = \"unix:/a\\nb\"\nbinary = \"f\"\n"), "contains a newline or NUL"),
            (front("upstream = \"unix:/a\"\nbinary = \"f\"\nargs = [\"a\\nb\"]\n"), "[front] args: \"a\\nb\" contains a newline or NUL"),
            (front("upstream = \"unix:/a\"\nbinary = \"f\"\nenv = { \"A=B\" = \"1\" }\n"), "[front] env \"A=B\": the name must be non-empty"),
            (egress("\"api.example.com\""), "egress \"api.example.com\": expected NAME:PORT (e.g. api.example.com:443)"),
            (egress("\"api.example.com:0\""), "bad port \"0\" (1 to 65535)"),
            (egress("\"api.example.com:65536\""), "bad port \"65536\""),
            (egress("\"api.example.com:+1\""), "bad port \"+1\""),
            (egress("\":443\""), "the name is empty"),
            (egress("\"API.example.com:443\""), "has upper-case letters; write it in lower case"),
            (egress("\"api_x.example.com:443\""), "contains '_'; a host name has letters, digits, `-` and `.`"),
            (egress("\"[::1]:443\""), "egress \"[::1]:443\": \"[::1]:443\" looks like an IPv6 address: egress takes a host name or an IPv4 address (NAME:PORT, e.g. 169.254.169.254:80)"),
            (egress("\"fe80::1\""), "\"fe80::1\" looks like an IPv6 address"),
            (egress("\"fe80::1:443\""), "\"fe80::1:443\" looks like an IPv6 address"),
            (egress("\"10.0.0.01:443\""), "\"10.0.0.01\" is neither a host name (its last label is numeric) nor an IPv4 address (four numbers 0 to 255, no leading zero)"),
            (egress("\"1.2.3:443\""), "\"1.2.3\" is neither a host name"),
            (egress("\"10.0.0.256:443\""), "\"10.0.0.256\" is neither a host name"),
            (egress("\"127.0.0.1:80\""), "egress \"127.0.0.1:80\": 127.0.0.1 is the enclave itself, not an outside service"),
            (egress("\"127.1.2.3:80\""), "127.1.2.3 is the enclave itself"),
            (egress("\"0.0.0.0:80\""), "0.0.0.0 is the enclave itself"),
            (egress("\"255.255.255.255:80\""), "255.255.255.255 is a broadcast or multicast address, not one service"),
            (egress("\"224.0.0.1:80\""), "224.0.0.1 is a broadcast or multicast address"),
            (egress("\"a..b:443\""), "has an empty label"),
            (egress("\"a.b.:443\""), "has an empty label"),
            (egress("\"-a.b:443\""), "begins or ends with `-`"),
            (egress(&format!("\"{}.b:1\"", "x".repeat(64))), "a label longer than 63"),
            (egress(&format!("\"{}:1\"", ["abcdefghi"; 26].join("."))), "the name is 259 characters; at most 253"),
            (egress("\"localhost:80\""), "\"localhost\" is the enclave itself"),
            (egress("\"db.localhost:80\""), "is the enclave itself"),
            (egress("\"a.example:1\", \"a.example:1\""), "egress \"a.example:1\": is listed twice"),
            (egress(&two_hundred_one.join(", ")), "enclave.toml egress: lists 201 entries; at most 200"),
        ] {
            let m = message(&text);
            assert!(m.contains(expected), "{text:?}: {m}");
            assert!(!m.contains('\n'), "{m}");
            assert!(m.contains("enclave.toml"), "{m}");
        }
        // The build's own paths are not for [[app.files]].
        let file =
            |dst: &str| format!("[[app.files]]\nsrc = \"x\"\ndst = \"{dst}\"\nmode = 0o644\n");
        for (text, expected) in [
            (format!("egress = [\"a.b:1\"]\n{app}{}", file("/etc/hosts")), "[[app.files]] etc/hosts: dst is where the egress names' addresses go (/etc/hosts); the build writes it"),
            (format!("{app}{}[front]\nupstream = \"unix:/a\"\n", file("/enclave-https/server")), "[[app.files]] enclave-https/server: dst is where the front and the egress relay go (/enclave-https)"),
            (format!("{app}{}[front]\nupstream = \"unix:/a\"\n", file("/etc/enclave-https/processes")), "dst is where the processes file and the egress table go (/etc/enclave-https)"),
        ] {
            let m = with_enclave_bin(&text).unwrap_err().to_string();
            assert!(m.contains(expected), "{text:?}: {m}");
        }
        // Without a front or egress those paths are the application's.
        assert!(parse_str(&format!("{app}{}", file("/etc/hosts"))).is_ok());
        assert!(parse_str(&format!("{app}{}", file("/enclave-https/x"))).is_ok());
    }

    #[test]
    fn expansion() {
        let mut d = BTreeMap::new();
        d.insert("A".to_string(), "x".to_string());
        assert_eq!(substitute("${A}/${A}.b", &d).unwrap(), "x/x.b");
        assert_eq!(substitute("plain", &d).unwrap(), "plain");
        assert!(substitute("${A", &d).unwrap_err().contains("unterminated"));
        assert!(substitute("${B}", &d)
            .unwrap_err()
            .contains("--define B=VALUE"));
    }
}
