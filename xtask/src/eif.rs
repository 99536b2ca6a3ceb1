//! `cargo xtask eif`: an enclave image from a manifest (`rootfs/enclave.toml`, our server, by
//! default). Builds init, server, the example applications and the egress forwarder
//! (host-relay) as static musl binaries with reproducible flags, and our kernel, then hands the
//! manifest to `eif-builder image` with that platform: the same code a user without our source
//! tree runs.

use crate::cmd::{cargo, err, human, output, project_root, run, Context, Error, Result};
use crate::{kernel, setup};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The size budget of the application ramdisk (PCR2's input).
pub const APP_RAMDISK_LIMIT: u64 = 4 * 1024 * 1024;
/// The size budget of the whole image.
pub const EIF_LIMIT: u64 = 8 * 1024 * 1024;

/// Options of `cargo xtask eif`.
#[derive(Debug, Default)]
pub struct Options {
    /// Output directory (default `target/eif`).
    pub out: Option<PathBuf>,
    /// The image manifest (default [`DEFAULT_MANIFEST`]).
    pub manifest: Option<PathBuf>,
    /// A bzImage to use instead of building ours.
    pub kernel: Option<PathBuf>,
    /// Kernel modules to ship in the bootstrap ramdisk (init loads them).
    pub modules: Vec<PathBuf>,
    /// PCR8 signing certificate and key (ECDSA P-384, PEM).
    pub signing: Option<(PathBuf, PathBuf)>,
}

/// What a build produced.
#[derive(Debug)]
pub struct Image {
    /// The output directory.
    pub dir: PathBuf,
    /// `enclave.eif`.
    pub eif: PathBuf,
    /// `measurements.json`.
    pub measurements: PathBuf,
    /// The static enclave binaries.
    pub binaries: Vec<PathBuf>,
    /// The kernel it boots.
    pub kernel: PathBuf,
    /// The eif-builder that made it.
    pub tool: PathBuf,
    /// What it was built on.
    pub platform: Platform,
}

/// The SOURCE_DATE_EPOCH every timestamp in the image is taken from (0 unless set).
fn source_date_epoch() -> Result<String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.parse::<u32>().is_ok() => Ok(v),
        Ok(v) => err(format!(
            "SOURCE_DATE_EPOCH must be seconds since 1970, got {v:?}"
        )),
        Err(_) => Ok("0".into()),
    }
}

/// The crates built for the enclave (as static musl executables), as `-p` arguments: init,
/// server, hello-enclave, host-relay (the egress forwarder an image with `egress` ships),
/// egress-example (fetch) and kms-letters. Also what `cargo xtask test` lints for the musl
/// target.
pub const ENCLAVE_CRATES: [&str; 12] = [
    "-p",
    "init",
    "-p",
    "server",
    "-p",
    "hello-enclave",
    "-p",
    "host-relay",
    "-p",
    "egress-example",
    "-p",
    "kms-letters",
];

/// Builds [`ENCLAVE_CRATES`] for the enclave and returns the paths of init, server,
/// hello-enclave, host-relay, fetch and kms-letters, in that order.
pub fn enclave_binaries(root: &Path) -> Result<Vec<PathBuf>> {
    let target_dir = target_dir(root);
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or_else(|| Error("neither CARGO_HOME nor HOME is set".into()))?;
    // Paths of this clone, of the target dir and of the cargo home must not reach the
    // binaries (panic locations, aws-lc's __FILE__ in error records).
    let maps = [
        (target_dir.clone(), "/target"),
        (root.to_path_buf(), "/src"),
        (cargo_home, "/cargo"),
    ];
    let rustflags: Vec<String> = maps
        .iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect();
    let cflags: Vec<String> = maps
        .iter()
        .map(|(from, to)| format!("-ffile-prefix-map={}={to}", from.display()))
        .collect();
    let mut c = cargo();
    c.current_dir(root)
        .args([
            "build",
            "--locked",
            "--profile",
            "enclave",
            "--target",
            setup::MUSL_TARGET,
        ])
        .args(ENCLAVE_CRATES)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
        .env("CFLAGS_x86_64_unknown_linux_musl", cflags.join(" "))
        .env("SOURCE_DATE_EPOCH", source_date_epoch()?)
        // aws-lc seeds its DRBG from getrandom(2) instead of CPU-jitter sampling (its
        // documented opt-out). In the enclave the kernel pool is fed by the NSM's hardware RNG
        // (init checks nsm-hwrng and credits NSM GetRandom bytes before the server starts),
        // while jitter sampling cost the server's start 1.2 s in the emulator and most of its
        // 26 ms natively. The target-specific name wins over any setting of the caller's.
        .env(NO_JITTER_ENTROPY, "1")
        .env_remove("RUSTFLAGS");
    run(&mut c)?;
    let dir = target_dir.join(setup::MUSL_TARGET).join("enclave");
    Ok(vec![
        dir.join("init"),
        dir.join("server"),
        dir.join("hello-enclave"),
        dir.join("host-relay"),
        dir.join("fetch"),
        dir.join("kms-letters"),
    ])
}

/// aws-lc-sys's switch for its CPU-jitter entropy source, for the enclave target.
const NO_JITTER_ENTROPY: &str = "AWS_LC_SYS_NO_JITTER_ENTROPY_x86_64_unknown_linux_musl";

/// The cargo target directory in use.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Builds the host `eif-builder` and returns its path.
pub fn eif_builder(root: &Path) -> Result<PathBuf> {
    run(cargo()
        .current_dir(root)
        .args(["build", "--locked", "--release", "-p", "eif-builder"]))?;
    Ok(target_dir(root).join("release/eif-builder"))
}

/// `file` must say "statically linked" (or static-pie) and name no interpreter.
pub fn check_static(binary: &Path) -> Result {
    let desc = output(Command::new("file").arg("-b").arg(binary))?;
    if (desc.contains("statically linked") || desc.contains("static-pie linked"))
        && !desc.contains("interpreter")
    {
        Ok(())
    } else {
        err(format!(
            "{} is not a static executable: {}",
            binary.display(),
            desc.trim()
        ))
    }
}

/// The platform an image is built on: what `eif-builder image` takes where a manifest is
/// silent, and where the manifests' `${ENCLAVE_BIN}` points.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The kernel image.
    pub kernel: PathBuf,
    /// Our init.
    pub init: PathBuf,
    /// The kernel command line (`rootfs/cmdline`).
    pub cmdline: String,
    /// Kernel modules for the bootstrap ramdisk.
    pub modules: Vec<PathBuf>,
    /// PCR8 signing certificate and key.
    pub signing: Option<(PathBuf, PathBuf)>,
    /// The directory of the static enclave binaries (`${ENCLAVE_BIN}` in a manifest).
    pub bin_dir: PathBuf,
}

/// The default image's manifest, relative to the project root.
pub const DEFAULT_MANIFEST: &str = "rootfs/enclave.toml";

/// `eif-builder image MANIFEST --out OUT` on `platform`, with SOURCE_DATE_EPOCH from the
/// environment (0 by default). Its report goes to our stdout unless `quiet`.
pub fn pack_image(
    tool: &Path,
    platform: &Platform,
    manifest: &Path,
    out: &Path,
    quiet: bool,
) -> Result {
    let mut c = Command::new(tool);
    c.arg("image")
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .arg("--kernel")
        .arg(&platform.kernel)
        .arg("--init")
        .arg(&platform.init)
        .arg("--cmdline")
        .arg(&platform.cmdline)
        .arg("--define")
        .arg(format!("ENCLAVE_BIN={}", platform.bin_dir.display()));
    for m in &platform.modules {
        c.arg("--kernel-module").arg(m);
    }
    if let Some((cert, key)) = &platform.signing {
        c.arg("--signing-certificate")
            .arg(cert)
            .arg("--private-key")
            .arg(key);
    }
    c.env("SOURCE_DATE_EPOCH", source_date_epoch()?);
    if quiet {
        c.stdout(std::process::Stdio::null());
    }
    run(&mut c)
}

/// Runs the whole image build.
pub fn build(opts: &Options) -> Result<Image> {
    let root = project_root();
    setup::all()?;
    let manifest = opts
        .manifest
        .clone()
        .unwrap_or_else(|| root.join(DEFAULT_MANIFEST));
    if !manifest.is_file() {
        return err(format!("--manifest {}: no such file", manifest.display()));
    }
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| target_dir(&root).join("eif"));
    fs::create_dir_all(&out).ctx(|| format!("creating {}", out.display()))?;
    let out = out
        .canonicalize()
        .ctx(|| format!("resolving {}", out.display()))?;

    let binaries = enclave_binaries(&root)?;
    for b in &binaries {
        check_static(b)?;
    }
    let tool = eif_builder(&root)?;
    let kernel = match &opts.kernel {
        Some(k) if k.is_file() => k.clone(),
        Some(k) => return err(format!("--kernel {}: no such file", k.display())),
        None => kernel::build()?.image,
    };
    for m in &opts.modules {
        if !m.is_file() {
            return err(format!("--kernel-module {}: no such file", m.display()));
        }
    }
    let platform = Platform {
        kernel: kernel.clone(),
        init: binaries[0].clone(),
        cmdline: cmdline(&root)?,
        modules: opts.modules.clone(),
        signing: opts.signing.clone(),
        bin_dir: binaries[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    println!();
    pack_image(&tool, &platform, &manifest, &out, false)?;

    let eif = out.join("enclave.eif");
    let measurements = out.join("measurements.json");
    let size = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.len())
            .ctx(|| format!("reading {}", p.display()))
    };
    let app = size(&out.join("app.cpio"))?;
    let whole = size(&eif)?;
    let verdict = |n: u64, limit: u64| if n <= limit { "within" } else { "OVER" };
    println!(
        "app ramdisk     {} ({app} bytes; {} the {} budget of the default image)",
        human(app),
        verdict(app, APP_RAMDISK_LIMIT),
        human(APP_RAMDISK_LIMIT)
    );
    println!(
        "whole image     {} ({whole} bytes; {} the {} budget of the default image)",
        human(whole),
        verdict(whole, EIF_LIMIT),
        human(EIF_LIMIT)
    );
    Ok(Image {
        dir: out,
        eif,
        measurements,
        binaries,
        kernel,
        tool,
        platform,
    })
}

/// The kernel command line the image is built with (`rootfs/cmdline`, trimmed).
pub fn cmdline(root: &Path) -> Result<String> {
    let text = fs::read_to_string(root.join("rootfs/cmdline"))
        .ctx(|| "reading rootfs/cmdline".to_string())?;
    Ok(text.trim().to_owned())
}

/// `eif-builder cpio --list LIST --output OUT` with `--define NAME=VALUE` for each pair.
pub fn pack_cpio(tool: &Path, list: &Path, out: &Path, defines: &[(&str, String)]) -> Result {
    let mut c = Command::new(tool);
    c.arg("cpio")
        .arg("--list")
        .arg(list)
        .arg("--output")
        .arg(out);
    for (name, value) in defines {
        c.arg("--define").arg(format!("{name}={value}"));
    }
    run(c.env("SOURCE_DATE_EPOCH", source_date_epoch()?))
}

/// `eif-builder build` of `kernel`, `cmdline` and `ramdisks` (bootstrap first) into `out`,
/// with SOURCE_DATE_EPOCH from the environment (0 by default); `extra` arguments are appended.
pub fn pack_eif(
    tool: &Path,
    kernel: &Path,
    cmdline: &str,
    ramdisks: &[PathBuf],
    out: &Path,
    extra: &[std::ffi::OsString],
) -> Result {
    let mut c = Command::new(tool);
    c.arg("build")
        .arg("--kernel")
        .arg(kernel)
        .arg("--cmdline")
        .arg(cmdline);
    for r in ramdisks {
        c.arg("--ramdisk").arg(r);
    }
    c.arg("--output")
        .arg(out)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", source_date_epoch()?)
        .stdout(std::process::Stdio::null());
    run(&mut c)
}

/// The value of a `"key": "string"` member in a small, trusted JSON text written by
/// The first member named `key`, searched depth first, of a JSON text read with contract's
/// strict reader (`None` if the text is not JSON or has no such member).
fn json_member(json: &str, key: &str) -> Option<contract::json::Value> {
    use contract::json::Value;
    fn find(v: &Value, key: &str) -> Option<Value> {
        match v {
            Value::Object(members) => members.iter().find_map(|(k, v)| {
                if k == key {
                    Some(v.clone())
                } else {
                    find(v, key)
                }
            }),
            Value::Array(items) => items.iter().find_map(|v| find(v, key)),
            _ => None,
        }
    }
    find(&contract::json::parse(json).ok()?, key)
}

/// The string value of the member `key` (see [`json_member`]).
pub fn json_string(json: &str, key: &str) -> Option<String> {
    match json_member(json, key)? {
        contract::json::Value::String(s) => Some(s),
        _ => None,
    }
}

/// The boolean value of the member `key` (see [`json_member`]).
pub fn json_bool(json: &str, key: &str) -> Option<bool> {
    match json_member(json, key)? {
        contract::json::Value::Bool(b) => Some(b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_members_are_found() {
        let j = "{\n  \"Measurements\": {\"PCR0\" : \"ab12\", \"PCR1\":\"cd\"},\n  \"CheckCRC\": true\n}";
        assert_eq!(json_string(j, "PCR0").as_deref(), Some("ab12"));
        assert_eq!(json_string(j, "PCR1").as_deref(), Some("cd"));
        assert_eq!(json_string(j, "PCR2"), None);
        assert_eq!(json_bool(j, "CheckCRC"), Some(true));
    }
}
