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
//! ```
//!
//! Unknown keys are errors, so a misspelt key never silently does nothing. Paths are relative
//! to the manifest's directory; `${NAME}` in a path is replaced by the value given with
//! `--define NAME=VALUE`. What the manifest leaves out of `[kernel]` comes from the builder's
//! defaults (`cargo xtask eif` passes our kernel, init and command line).

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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    version: Option<String>,
    app: RawApp,
    kernel: Option<RawKernel>,
    signing: Option<RawSigning>,
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
    })
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
