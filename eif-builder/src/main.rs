//! The `eif-builder` command line: `build` an EIF, `describe` one, make a `cpio` ramdisk, or
//! inspect, `verify` and `attest` Nitro attestation documents.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand};
use serde::Serialize;

use eif_builder::attest::{self, ExpectedPcrs, Policy, Verified, VerifyError};
use eif_builder::cpio::{list, tree};
use eif_builder::eif::kernel_version_of;
use eif_builder::fsutil::write_atomically;
use eif_builder::measure::hex;
use eif_builder::{time, Archive, Blob, EifBuilder, Error, Identity, Result, Signer};

/// Reproducible AWS Nitro Enclave images: build an EIF, describe one, or make a cpio ramdisk.
///
/// Output depends only on the inputs and the options: timestamps come from --build-time,
/// --mtime or SOURCE_DATE_EPOCH (default 0), never from the clock or the host.
#[derive(Debug, Parser)]
#[command(name = "eif-builder", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an EIF from a kernel, a command line and ramdisks, and print its PCRs.
    ///
    /// The file is byte-identical to what nitro-cli's image library writes for the same inputs
    /// and metadata. It is written to a temporary file beside OUTPUT and renamed into place, so
    /// a failure leaves no partial image. The PCRs are printed to stdout as nitro-cli
    /// build-enclave prints them.
    Build(BuildArgs),
    /// Check an EIF and print what it contains, as JSON shaped like nitro-cli describe-eif.
    ///
    /// Every size and offset is checked against the file before use; the CRC and the PCRs are
    /// recomputed, and a signature is verified against its certificate and the image's PCR0.
    /// Any problem (truncation, corruption, CRC or signature mismatch) is reported on stderr
    /// with exit status 1 and nothing on stdout.
    Describe(DescribeArgs),
    /// Write a deterministic cpio (newc) ramdisk from a manifest and/or a directory tree.
    ///
    /// Entries are sorted by path with parents first (missing parents are created 0755),
    /// owned by root, all with the same mtime, numbered 1, 2, 3…; the archive is uncompressed.
    Cpio(CpioArgs),
    /// Print what an attestation document says, WITHOUT verifying it.
    ///
    /// Parses the COSE_Sign1 document an enclave's NSM produced and prints its fields as JSON
    /// (PCRs as PCR0, PCR1, …; byte fields in hex; absent fields as null), with
    /// "verified": false. Nothing here proves the document genuine: no signature, certificate
    /// chain or validity time is checked. Useful to look at a document, and to compare the
    /// PCRs of QEMU's emulated NSM (which cannot sign) with measurements.json. To check a
    /// document, use `verify`.
    InspectAttestation(InspectArgs),
    /// Verify an attestation document against a measurements file and print a JSON verdict.
    ///
    /// Checks, in order: the ES384 COSE signature with the leaf certificate's key; the chain
    /// leaf → cabundle → the AWS Nitro root (embedded and pinned by SHA-256, or --root), with
    /// CA constraints and every certificate valid at --at (default: now); that PCR0/1/2 (and
    /// PCR8 when the measurements have it) equal the measurements; the nonce, if --nonce. A
    /// debug-mode enclave (PCR0/1/2 all zero) is refused unless --allow-debug. Prints
    /// {"verified": true|false, "step", "reason", "pcrs", "module_id", "timestamp", …} on
    /// stdout; exit status 0 only when verified.
    Verify(VerifyArgs),
    /// Fetch a fresh attestation document from a running enclave over TLS, verify it and its
    /// binding to that TLS connection, and print the verified PCRs as a JSON verdict.
    ///
    /// No CA is needed: the server's certificate is accepted and recorded, then authenticated
    /// by the document, which must carry our fresh 32-byte nonce, public_key = the
    /// certificate's SubjectPublicKeyInfo and user_data = SHA-256 of its DER, besides passing
    /// every check of `verify` at the current time. Exit status 0 only when verified.
    Attest(AttestArgs),
}

#[derive(Debug, Args)]
struct PolicyArgs {
    /// The expected PCRs: a measurements JSON as written by `build --measurements` or
    /// nitro-cli build-enclave ({"Measurements": {"PCR0": …}}).
    #[arg(long, value_name = "FILE")]
    measurements: PathBuf,
    /// Trust this root certificate (PEM) instead of the embedded AWS Nitro root G1.
    #[arg(long, value_name = "PEM")]
    root: Option<PathBuf>,
    /// Accept a debug-mode enclave (PCR0/1/2 all zero; its memory is readable by the operator).
    /// Its PCRs are then not compared with the measurements.
    #[arg(long)]
    allow_debug: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The attestation document (raw CBOR, as GET /attestation returns it).
    #[arg(long, value_name = "DOC.cbor")]
    attestation: PathBuf,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The nonce the document must carry, in hex.
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Verification time, RFC 3339 (e.g. 2024-05-01T12:00:00Z) [default: now].
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
}

#[derive(Debug, Args)]
struct AttestArgs {
    /// The enclave's HTTPS server, https://HOST:PORT (through the relay).
    #[arg(value_name = "URL")]
    url: String,
    #[command(flatten)]
    policy: PolicyArgs,
    /// INSECURE, for QEMU's emulator only: accept an unsigned document (COSE algorithm -1)
    /// without checking its signature and certificate chain; everything else is checked.
    #[arg(long)]
    insecure_emulator: bool,
    /// Seconds to wait on the network before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The attestation document (raw CBOR, as GET /attestation returns it).
    #[arg(value_name = "DOC.cbor")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// Kernel image (bzImage) to boot.
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,
    /// Kernel command line; surrounding whitespace is trimmed. It is measured (PCR0, PCR1).
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    cmdline: String,
    /// A cpio ramdisk; repeat in boot order. The first is the bootstrap ramdisk (with /init;
    /// PCR1), the others the application (PCR2). All are in PCR0.
    #[arg(long, value_name = "FILE", required = true)]
    ramdisk: Vec<PathBuf>,
    /// Where to write the EIF.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Also write the measurements JSON (the same text as printed on stdout) to FILE.
    #[arg(long, value_name = "FILE")]
    measurements: Option<PathBuf>,
    /// Image name recorded in the metadata [default: OUTPUT's file name without .eif].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Image version recorded in the metadata.
    #[arg(long = "version", value_name = "VER", default_value = "1.0")]
    image_version: String,
    /// Build time recorded in the metadata, RFC 3339 (e.g. 2024-05-01T12:00:00Z); stored in
    /// UTC as nitro-cli formats it [default: SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00+00:00].
    #[arg(long, value_name = "RFC3339")]
    build_time: Option<String>,
    /// PEM certificate to sign the image with (PCR8). Its key must be ECDSA P-384.
    #[arg(long, value_name = "PEM", requires = "private_key")]
    signing_certificate: Option<PathBuf>,
    /// PEM private key matching --signing-certificate (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE
    /// KEY", unencrypted).
    #[arg(long, value_name = "PEM", requires = "signing_certificate")]
    private_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DescribeArgs {
    /// The EIF to describe.
    #[arg(value_name = "FILE.eif")]
    file: PathBuf,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).multiple(true).args(["list", "dir"])))]
struct CpioArgs {
    /// Where to write the archive.
    #[arg(long, value_name = "OUT.cpio")]
    output: PathBuf,
    /// Manifest, one entry per line: `dir PATH MODE`, `file PATH SOURCE MODE`,
    /// `nod PATH MODE c MAJOR MINOR`, `slink PATH TARGET MODE` (modes octal; `#` comments;
    /// `${NAME}` from --define; relative SOURCEs are resolved against the manifest's directory).
    #[arg(long, value_name = "FILE")]
    list: Option<PathBuf>,
    /// Directory tree to add (its contents, not itself). Modes are normalized: directories
    /// 0755, files 0755 if executable else 0644, symlinks 0777; device nodes, FIFOs and sockets
    /// are refused (declare devices in a --list manifest). May be combined with --list.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Put the --dir tree under this path in the archive (e.g. /rootfs) instead of at its root.
    #[arg(long, value_name = "PATH", requires = "dir")]
    dir_prefix: Option<String>,
    /// Define a ${NAME} for the manifest; repeatable.
    #[arg(long = "define", value_name = "NAME=VALUE")]
    defines: Vec<String>,
    /// Modification time of every entry, in seconds since the epoch [default:
    /// SOURCE_DATE_EPOCH, else 0].
    #[arg(long, value_name = "SECS")]
    mtime: Option<u32>,
}

/// Names `path` in an I/O error that does not name a file yet.
fn at_path(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Io {
            action,
            path: None,
            source,
        } => Error::Io {
            action,
            path: Some(path.to_path_buf()),
            source,
        },
        other => other,
    }
}

/// SOURCE_DATE_EPOCH, if set.
fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Error::Invalid {
                what: format!("SOURCE_DATE_EPOCH={text:?}"),
                detail: "is not a non-negative integer number of seconds".to_string(),
            }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::Invalid {
            what: "SOURCE_DATE_EPOCH".to_string(),
            detail: "is not valid Unicode".to_string(),
        }),
    }
}

fn default_name(output: &Path) -> String {
    let file = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".eif").unwrap_or(&file).to_string()
}

fn build(args: BuildArgs) -> Result<()> {
    let build_time = match &args.build_time {
        Some(text) => time::normalize_rfc3339(text)?,
        None => time::rfc3339_from_unix(source_date_epoch()?.unwrap_or(0))?,
    };
    let kernel = Blob::Path(args.kernel.clone());
    let mut identity = Identity::new(
        args.name
            .clone()
            .unwrap_or_else(|| default_name(&args.output)),
        args.image_version.clone(),
        build_time,
    );
    identity.build.kernel_version = kernel_version_of(&kernel)?;
    let mut builder = EifBuilder::new(kernel, &args.cmdline, identity);
    for ramdisk in &args.ramdisk {
        builder = builder.ramdisk(Blob::Path(ramdisk.clone()));
    }
    if let (Some(cert), Some(key)) = (&args.signing_certificate, &args.private_key) {
        builder = builder.signer(Signer::from_files(cert, key)?);
    }
    let measurements = builder
        .write_file(&args.output)
        .map_err(at_path(&args.output))?;
    let json = measurements.to_json();
    if let Some(path) = &args.measurements {
        write_atomically(path, |file| {
            file.write_all(json.as_bytes()).map_err(|e| Error::Io {
                action: "cannot write",
                path: Some(path.clone()),
                source: e,
            })
        })?;
    }
    print_stdout(&json)
}

fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Io {
            action: "cannot write to stdout",
            path: None,
            source: e,
        })
}

#[derive(Serialize)]
struct MetadataOut {
    #[serde(rename = "BuildTime")]
    build_time: String,
    #[serde(rename = "BuildTool")]
    build_tool: String,
    #[serde(rename = "BuildToolVersion")]
    build_tool_version: String,
    #[serde(rename = "OperatingSystem")]
    operating_system: String,
    #[serde(rename = "KernelVersion")]
    kernel_version: String,
    #[serde(rename = "DockerInfo")]
    docker_info: serde_json::Value,
    /// nitro-cli flattens an object of custom metadata into this map.
    #[serde(flatten)]
    custom: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct SectionOut {
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(rename = "Offset")]
    offset: u64,
    #[serde(rename = "Size")]
    size: u64,
}

/// The keys of nitro-cli describe-eif, in its order, plus `Sections`.
#[derive(Serialize)]
struct DescribeOut {
    #[serde(rename = "EifVersion")]
    version: u16,
    #[serde(rename = "Measurements")]
    measurements: BTreeMap<String, String>,
    #[serde(rename = "IsSigned")]
    is_signed: bool,
    #[serde(rename = "CheckCRC")]
    check_crc: bool,
    #[serde(rename = "SignatureCheck", skip_serializing_if = "Option::is_none")]
    signature_check: Option<bool>,
    #[serde(rename = "ImageName", skip_serializing_if = "Option::is_none")]
    image_name: Option<String>,
    #[serde(rename = "ImageVersion", skip_serializing_if = "Option::is_none")]
    image_version: Option<String>,
    #[serde(rename = "Metadata", skip_serializing_if = "Option::is_none")]
    metadata: Option<MetadataOut>,
    #[serde(rename = "Sections")]
    sections: Vec<SectionOut>,
}

fn describe(args: DescribeArgs) -> Result<()> {
    let file = std::fs::File::open(&args.file).map_err(|e| Error::Io {
        action: "cannot open",
        path: Some(args.file.clone()),
        source: e,
    })?;
    let info = eif_builder::describe(file).map_err(at_path(&args.file))?;
    let metadata = info.identity.as_ref().map(|id| {
        let mut custom = serde_json::Map::new();
        match &id.custom_metadata {
            serde_json::Value::Null => {}
            serde_json::Value::Object(map) => custom.extend(map.clone()),
            other => {
                custom.insert("CustomMetadata".to_string(), other.clone());
            }
        }
        MetadataOut {
            build_time: id.build.build_time.clone(),
            build_tool: id.build.build_tool.clone(),
            build_tool_version: id.build.build_tool_version.clone(),
            operating_system: id.build.operating_system.clone(),
            kernel_version: id.build.kernel_version.clone(),
            docker_info: id.docker_info.clone(),
            custom,
        }
    });
    let out = DescribeOut {
        version: info.header.version,
        measurements: info.measurements.to_map(),
        is_signed: info.signature.is_some(),
        check_crc: info.crc_ok(),
        signature_check: info.signature.as_ref().map(|s| s.signature_valid),
        image_name: info.identity.as_ref().map(|i| i.image_name.clone()),
        image_version: info.identity.as_ref().map(|i| i.image_version.clone()),
        metadata,
        sections: info
            .sections
            .iter()
            .map(|s| SectionOut {
                kind: s.kind.name(),
                offset: s.offset,
                size: s.size,
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&out).map_err(|e| Error::Invalid {
        what: "describe output".to_string(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    print_stdout(&text)
}

fn cpio(args: CpioArgs) -> Result<()> {
    let mtime = match args.mtime {
        Some(m) => m,
        None => {
            let epoch = source_date_epoch()?.unwrap_or(0);
            u32::try_from(epoch).map_err(|_| Error::Invalid {
                what: format!("SOURCE_DATE_EPOCH={epoch}"),
                detail: "does not fit a cpio mtime (32 bits); pass --mtime".to_string(),
            })?
        }
    };
    let mut defines = BTreeMap::new();
    for define in &args.defines {
        let (name, value) = define.split_once('=').ok_or_else(|| Error::Invalid {
            what: format!("--define {define:?}"),
            detail: "expected NAME=VALUE".to_string(),
        })?;
        defines.insert(name.to_string(), value.to_string());
    }
    let mut archive = Archive::new(mtime);
    if let Some(dir) = &args.dir {
        tree::add_tree(
            &mut archive,
            dir,
            args.dir_prefix.as_deref().unwrap_or("").as_bytes(),
        )?;
    }
    if let Some(list_path) = &args.list {
        list::add_list(&mut archive, list_path, &defines)?;
    }
    write_atomically(&args.output, |file| {
        let mut out = std::io::BufWriter::new(file);
        archive.write_to(&mut out).map_err(at_path(&args.output))?;
        out.flush().map_err(|e| Error::Io {
            action: "cannot write",
            path: Some(args.output.clone()),
            source: e,
        })
    })
}

fn inspect_attestation(args: InspectArgs) -> Result<()> {
    let io = |source| Error::Io {
        action: "cannot read",
        path: Some(args.file.clone()),
        source,
    };
    let meta = std::fs::metadata(&args.file).map_err(io)?;
    if meta.len() > eif_builder::attest::MAX_DOCUMENT as u64 {
        return Err(Error::Unsupported {
            what: format!("{}", args.file.display()),
            detail: format!(
                "{} bytes is too large for an attestation document",
                meta.len()
            ),
        });
    }
    let bytes = std::fs::read(&args.file).map_err(io)?;
    let doc = eif_builder::attest::parse_unverified(&bytes)?;
    let opt = |b: &Option<Vec<u8>>| b.as_deref().map(hex);
    let pcrs: serde_json::Map<String, serde_json::Value> = doc
        .pcrs
        .iter()
        .map(|(i, v)| (format!("PCR{i}"), hex(v).into()))
        .collect();
    let out = serde_json::json!({
        "verified": false,
        "algorithm": doc.algorithm,
        "module_id": doc.module_id,
        "timestamp": doc.timestamp,
        "digest": doc.digest,
        "pcrs": pcrs,
        "certificate": hex(&doc.certificate),
        "cabundle": doc.cabundle.iter().map(|c| hex(c)).collect::<Vec<_>>(),
        "public_key": opt(&doc.public_key),
        "user_data": opt(&doc.user_data),
        "nonce": opt(&doc.nonce),
    });
    let mut text = serde_json::to_string_pretty(&out).map_err(|e| Error::Invalid {
        what: "inspect-attestation output".to_string(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    print_stdout(&text)
}

/// How a command that printed a verdict ended.
enum Verdict {
    /// Success (exit status 0).
    Verified,
    /// A verdict of failure was printed (exit status 1).
    Refused,
}

/// Reads a small input file whole, refusing one larger than `max` bytes.
fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |action| {
        move |source| Error::Io {
            action,
            path: Some(path.to_path_buf()),
            source,
        }
    };
    let file = std::fs::File::open(path).map_err(io("cannot open"))?;
    let mut bytes = Vec::new();
    file.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io("cannot read"))?;
    if bytes.len() > max {
        return Err(Error::Unsupported {
            what: format!("{}", path.display()),
            detail: format!("larger than {max} bytes"),
        });
    }
    Ok(bytes)
}

/// The trust anchor and expected PCRs of `verify` and `attest`.
fn load_policy(args: &PolicyArgs) -> Result<(Vec<u8>, ExpectedPcrs)> {
    let root = match &args.root {
        Some(path) => attest::root_from_pem(&read_bounded(path, 64 * 1024)?)?,
        None => attest::aws_root_der()?,
    };
    let text = read_bounded(&args.measurements, 64 * 1024)?;
    let text = std::str::from_utf8(&text).map_err(|_| Error::Malformed {
        what: format!("{}", args.measurements.display()),
        detail: "is not UTF-8".to_string(),
    })?;
    let expected = ExpectedPcrs::from_measurements_json(text).map_err(|e| match e {
        Error::Malformed { what, detail } => Error::Malformed {
            what: format!("{what} {}", args.measurements.display()),
            detail,
        },
        other => other,
    })?;
    Ok((root, expected))
}

fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// PCRs as `{"PCR0": hex, "PCR1": …}` in index order.
struct PcrsOut<'a>(&'a BTreeMap<u8, Vec<u8>>);

impl Serialize for PcrsOut<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (index, value) in self.0 {
            map.serialize_entry(&format!("PCR{index}"), &hex(value))?;
        }
        map.end()
    }
}

/// The JSON verdict of `verify` and `attest`, keys in this order.
#[derive(Serialize)]
struct VerdictOut<'a> {
    verified: bool,
    /// The check that failed (see `VerifyError::step`).
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'static str>,
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actual: Option<&'a str>,
    module_id: Option<&'a str>,
    timestamp: Option<u64>,
    pcrs: Option<PcrsOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_checked: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debug: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_data: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<Option<String>>,
    root_sha256: String,
    verified_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_certificate_sha256: Option<String>,
}

/// Prints the verdict of `verify`/`attest` and says how to exit.
fn print_verdict(
    outcome: &std::result::Result<Verified, VerifyError>,
    root: &[u8],
    at: u64,
    connection: Option<(&str, &[u8])>,
) -> Result<Verdict> {
    let opt = |b: &Option<Vec<u8>>| Some(b.as_deref().map(hex));
    let common = VerdictOut {
        verified: false,
        step: None,
        reason: None,
        expected: None,
        actual: None,
        module_id: None,
        timestamp: None,
        pcrs: None,
        signature_checked: None,
        debug: None,
        nonce: None,
        user_data: None,
        public_key: None,
        root_sha256: attest::sha256_hex(root),
        verified_at: time::rfc3339_from_unix(at)?,
        url: connection.map(|(url, _)| url),
        tls_certificate_sha256: connection.map(|(_, cert)| attest::sha256_hex(cert)),
    };
    let out = match outcome {
        Ok(v) => VerdictOut {
            verified: true,
            module_id: Some(&v.module_id),
            timestamp: Some(v.timestamp),
            pcrs: Some(PcrsOut(&v.pcrs)),
            signature_checked: Some(v.signature_checked),
            debug: Some(v.debug),
            nonce: opt(&v.nonce),
            user_data: opt(&v.user_data),
            public_key: opt(&v.public_key),
            ..common
        },
        Err(e) => {
            let doc = e.document();
            let (expected, actual) = e.expected_actual().unzip();
            VerdictOut {
                step: Some(e.step()),
                reason: Some(e.to_string()),
                expected,
                actual,
                module_id: doc.map(|d| d.module_id.as_str()),
                timestamp: doc.map(|d| d.timestamp),
                pcrs: doc.map(|d| PcrsOut(&d.pcrs)),
                ..common
            }
        }
    };
    let mut text = serde_json::to_string_pretty(&out).map_err(|e| Error::Invalid {
        what: "verdict output".to_string(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    print_stdout(&text)?;
    Ok(if outcome.is_ok() {
        Verdict::Verified
    } else {
        Verdict::Refused
    })
}

fn verify(args: VerifyArgs) -> Result<Verdict> {
    let (root, expected) = load_policy(&args.policy)?;
    let nonce = args
        .nonce
        .as_deref()
        .map(|n| attest::parse_hex(n, "--nonce"))
        .transpose()?;
    let at = match &args.at {
        Some(text) => {
            let (secs, _nanos) = time::parse_rfc3339(text, "--at")?;
            u64::try_from(secs).map_err(|_| Error::Invalid {
                what: format!("--at {text:?}"),
                detail: "is before 1970".to_string(),
            })?
        }
        None => now_unix_secs(),
    };
    let document = read_bounded(&args.attestation, attest::MAX_DOCUMENT)?;
    let policy = Policy {
        root_der: &root,
        at_unix_secs: at,
        expected: &expected,
        nonce: nonce.as_deref(),
        tls_certificate: None,
        allow_debug: args.policy.allow_debug,
        insecure_emulator: false,
    };
    let outcome = attest::verify(&document, &policy);
    print_verdict(&outcome, &root, at, None)
}

fn attest(args: AttestArgs) -> Result<Verdict> {
    if args.insecure_emulator {
        eprintln!(
            "eif-builder: WARNING: --insecure-emulator: the attestation document's SIGNATURE AND \
             CERTIFICATE CHAIN ARE NOT CHECKED. This proves nothing about a real Nitro enclave; \
             use it only against QEMU's emulated NSM in tests."
        );
    }
    let (root, expected) = load_policy(&args.policy)?;
    let target = attest::client::Target::parse(&args.url)?;
    let nonce = attest::client::fresh_nonce()?;
    let fetched = attest::client::fetch(
        &target,
        &nonce,
        std::time::Duration::from_secs(args.timeout.max(1)),
    )?;
    let at = now_unix_secs();
    let policy = Policy {
        root_der: &root,
        at_unix_secs: at,
        expected: &expected,
        nonce: Some(&nonce),
        tls_certificate: Some(&fetched.certificate),
        allow_debug: args.policy.allow_debug,
        insecure_emulator: args.insecure_emulator,
    };
    let outcome = attest::verify(&fetched.document, &policy);
    print_verdict(
        &outcome,
        &root,
        at,
        Some((args.url.as_str(), fetched.certificate.as_slice())),
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |r: Result<()>| r.map(|()| Verdict::Verified);
    let result = match cli.command {
        Command::Build(args) => done(build(args)),
        Command::Describe(args) => done(describe(args)),
        Command::Cpio(args) => done(cpio(args)),
        Command::InspectAttestation(args) => done(inspect_attestation(args)),
        Command::Verify(args) => verify(args),
        Command::Attest(args) => attest(args),
    };
    match result {
        Ok(Verdict::Verified) => ExitCode::SUCCESS,
        Ok(Verdict::Refused) => ExitCode::FAILURE,
        Err(e) => {
            let message = e.to_string().replace(['\n', '\r'], " ");
            eprintln!("eif-builder: error: {message}");
            ExitCode::FAILURE
        }
    }
}
