//! The image commands: an `image` from a manifest, `build` an EIF from parts, `describe` one,
//! make a `cpio` ramdisk.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use serde::Serialize;

use crate::{at_path, print_stdout};
use eif_builder::cpio::{list, tree};
use eif_builder::eif::kernel_version_of;
use eif_builder::fsutil::write_atomically;
use eif_builder::{time, Archive, Blob, EifBuilder, Error, Identity, Result, Signer};

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
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
pub(crate) struct ImageArgs {
    /// The manifest (see `eif-builder image --help` for its keys).
    #[arg(value_name = "enclave.toml")]
    manifest: PathBuf,
    /// Directory for enclave.eif, measurements.json, bootstrap.cpio, app.cpio and, with
    /// egress, egress-routes (created if missing).
    #[arg(long, value_name = "DIR", default_value = "out")]
    out: PathBuf,
    /// Kernel image when the manifest has no [kernel] path (e.g. AWS's
    /// /usr/share/nitro_enclaves/blobs/bzImage).
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// init (PID 1, a static executable) when the manifest has no [kernel] init: ours is built
    /// by `cargo xtask eif`.
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// Kernel command line when the manifest has no [kernel] cmdline.
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    cmdline: Option<String>,
    /// A kernel module for the bootstrap ramdisk when the manifest has no [kernel] modules;
    /// repeatable.
    #[arg(long = "kernel-module", value_name = "FILE.ko")]
    modules: Vec<PathBuf>,
    /// Define a ${NAME} for the manifest's paths; repeatable.
    #[arg(long = "define", value_name = "NAME=VALUE")]
    defines: Vec<String>,
    /// Build time recorded in the metadata, RFC 3339 [default: SOURCE_DATE_EPOCH, else
    /// 1970-01-01T00:00:00+00:00].
    #[arg(long, value_name = "RFC3339")]
    build_time: Option<String>,
    /// PEM certificate to sign the image with (PCR8) when the manifest has no [signing].
    #[arg(long, value_name = "PEM", requires = "private_key")]
    signing_certificate: Option<PathBuf>,
    /// PEM private key matching --signing-certificate.
    #[arg(long, value_name = "PEM", requires = "signing_certificate")]
    private_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// The EIF to describe.
    #[arg(value_name = "FILE.eif")]
    file: PathBuf,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).multiple(true).args(["list", "dir"])))]
pub(crate) struct CpioArgs {
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

/// SOURCE_DATE_EPOCH, if set.
pub(crate) fn source_date_epoch() -> Result<Option<u64>> {
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

pub(crate) fn default_name(output: &Path) -> String {
    let file = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".eif").unwrap_or(&file).to_string()
}

pub(crate) fn build(args: BuildArgs) -> Result<()> {
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

#[derive(Serialize)]
pub(crate) struct MetadataOut {
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
pub(crate) struct SectionOut {
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(rename = "Offset")]
    offset: u64,
    #[serde(rename = "Size")]
    size: u64,
}

/// The keys of nitro-cli describe-eif, in its order, plus `Sections`.
#[derive(Serialize)]
pub(crate) struct DescribeOut {
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

pub(crate) fn describe(args: DescribeArgs) -> Result<()> {
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

/// SOURCE_DATE_EPOCH as a cpio mtime.
fn archive_mtime() -> Result<u32> {
    let epoch = source_date_epoch()?.unwrap_or(0);
    u32::try_from(epoch).map_err(|_| Error::Invalid {
        what: format!("SOURCE_DATE_EPOCH={epoch}"),
        detail: "does not fit a cpio mtime (32 bits); pass --mtime".to_string(),
    })
}

/// `--define NAME=VALUE` pairs.
fn parse_defines(defines: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for define in defines {
        let (name, value) = define.split_once('=').ok_or_else(|| Error::Invalid {
            what: format!("--define {define:?}"),
            detail: "expected NAME=VALUE".to_string(),
        })?;
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

pub(crate) fn image(args: ImageArgs) -> Result<()> {
    use eif_builder::image::{self, manifest, Defaults, Options};
    let defines = parse_defines(&args.defines)?;
    let m = manifest::read(&args.manifest, &defines)?;
    let build_time = match &args.build_time {
        Some(text) => time::normalize_rfc3339(text)?,
        None => time::rfc3339_from_unix(source_date_epoch()?.unwrap_or(0))?,
    };
    let opts = Options {
        defaults: Defaults {
            kernel: args.kernel,
            init: args.init,
            cmdline: args.cmdline.map(|c| c.trim().to_string()),
            modules: args.modules,
            signing: args.signing_certificate.zip(args.private_key),
        },
        mtime: archive_mtime()?,
        build_time,
        limits: image::oci::Limits::default(),
    };
    let report = image::build(&m, &opts, &args.out)?;
    print_stdout(&report.summary())
}

pub(crate) fn cpio(args: CpioArgs) -> Result<()> {
    let mtime = match args.mtime {
        Some(m) => m,
        None => archive_mtime()?,
    };
    let defines = parse_defines(&args.defines)?;
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
