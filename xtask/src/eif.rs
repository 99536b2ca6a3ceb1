//! `cargo xtask eif`: the whole enclave image. Builds init and server as static musl binaries
//! with reproducible flags, packs the bootstrap ramdisk (init, /dev/console, kernel modules)
//! and the application ramdisk (/cmd, /env, /rootfs/server) from the lists in `rootfs/`, and
//! writes `enclave.eif` and `measurements.json` with `eif-builder`.

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

/// Builds init and server for the enclave and returns their paths.
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
        .args(["-p", "init", "-p", "server"])
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
    Ok(vec![dir.join("init"), dir.join("server")])
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

/// Runs the whole image build.
pub fn build(opts: &Options) -> Result<Image> {
    let root = project_root();
    setup::all()?;
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
    let rootfs = root.join("rootfs");

    // The bootstrap list, plus one line per kernel module, is written next to the image so
    // that what went into the ramdisk can be read without rerunning the build.
    let mut bootstrap = fs::read_to_string(rootfs.join("bootstrap.list"))
        .ctx(|| "reading rootfs/bootstrap.list".to_string())?;
    for (i, m) in opts.modules.iter().enumerate() {
        let name = m
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.ends_with(".ko") && !n.contains(char::is_whitespace))
            .ok_or_else(|| {
                Error(format!(
                    "--kernel-module {}: expected a NAME.ko file",
                    m.display()
                ))
            })?;
        if !m.is_file() {
            return err(format!("--kernel-module {}: no such file", m.display()));
        }
        bootstrap.push_str(&format!("file /{name} ${{MODULE{i}}} 0644\n"));
    }
    fs::write(out.join("bootstrap.list"), &bootstrap)
        .ctx(|| "writing bootstrap.list".to_string())?;
    fs::copy(rootfs.join("app.list"), out.join("app.list"))
        .ctx(|| "copying app.list".to_string())?;

    let mut defines = vec![
        ("ROOTFS", rootfs.display().to_string()),
        ("INIT", binaries[0].display().to_string()),
        ("SERVER", binaries[1].display().to_string()),
    ];
    let module_names: Vec<String> = (0..opts.modules.len())
        .map(|i| format!("MODULE{i}"))
        .collect();
    for (name, m) in module_names.iter().zip(&opts.modules) {
        defines.push((name.as_str(), m.display().to_string()));
    }
    for name in ["bootstrap", "app"] {
        pack_cpio(
            &tool,
            &out.join(format!("{name}.list")),
            &out.join(format!("{name}.cpio")),
            &defines,
        )?;
    }

    let eif = out.join("enclave.eif");
    let measurements = out.join("measurements.json");
    let mut extra: Vec<std::ffi::OsString> = vec![
        "--measurements".into(),
        measurements.clone().into(),
        "--name".into(),
        "enclave-https".into(),
        "--version".into(),
        env!("CARGO_PKG_VERSION").into(),
    ];
    if let Some((cert, key)) = &opts.signing {
        extra.extend([
            "--signing-certificate".into(),
            cert.clone().into(),
            "--private-key".into(),
            key.clone().into(),
        ]);
    }
    pack_eif(
        &tool,
        &kernel,
        &cmdline(&root)?,
        &[out.join("bootstrap.cpio"), out.join("app.cpio")],
        &eif,
        &extra,
    )?;

    let size = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.len())
            .ctx(|| format!("reading {}", p.display()))
    };
    let app = size(&out.join("app.cpio"))?;
    let whole = size(&eif)?;
    let json = fs::read_to_string(&measurements).ctx(|| "reading measurements.json".to_string())?;
    println!();
    println!("enclave image   {}", eif.display());
    println!("measurements    {}", measurements.display());
    for pcr in ["PCR0", "PCR1", "PCR2", "PCR8"] {
        if let Some(v) = json_string(&json, pcr) {
            println!("{pcr}            {v}");
        }
    }
    let env = fs::read_to_string(rootfs.join("app/env")).unwrap_or_default();
    for w in env_warnings(&env) {
        println!("{w}");
    }
    let verdict = |n: u64, limit: u64| if n <= limit { "within" } else { "OVER" };
    println!(
        "app ramdisk     {} ({app} bytes; {} the {} budget)",
        human(app),
        verdict(app, APP_RAMDISK_LIMIT),
        human(APP_RAMDISK_LIMIT)
    );
    println!(
        "whole image     {} ({whole} bytes; {} the {} budget)",
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

/// Variables that, set in an image's `/env`, look like a secret but are not one: the file is
/// measured into PCR2 and readable by whoever holds the EIF, the parent instance included.
const NOT_SECRET_IN_AN_IMAGE: &[(&str, &str)] = &[(
    "ENCLAVE_KEY_BASE64",
    "it keeps the enclave key across restarts, but anyone who holds the EIF (the parent \
     instance included) can read it: it is not a secret. A key only the measured enclave can \
     read comes from AWS KMS with attestation.",
)];

/// Warnings for an image's `/env` text: one per variable of [`NOT_SECRET_IN_AN_IMAGE`] it sets.
pub fn env_warnings(env: &str) -> Vec<String> {
    env.lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(name, _)| NOT_SECRET_IN_AN_IMAGE.iter().find(|(n, _)| *n == name))
        .map(|(name, why)| format!("warning: /env sets {name}: {why}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_the_image_env_is_called_what_it_is() {
        assert!(env_warnings("PATH=/\n").is_empty());
        let w = env_warnings("PATH=/\nENCLAVE_KEY_BASE64=AAAA\n");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("warning: /env sets ENCLAVE_KEY_BASE64: "),
            "{}",
            w[0]
        );
        assert!(w[0].contains("it is not a secret"));
    }

    #[test]
    fn json_members_are_found() {
        let j = "{\n  \"Measurements\": {\"PCR0\" : \"ab12\", \"PCR1\":\"cd\"},\n  \"CheckCRC\": true\n}";
        assert_eq!(json_string(j, "PCR0").as_deref(), Some("ab12"));
        assert_eq!(json_string(j, "PCR1").as_deref(), Some("cd"));
        assert_eq!(json_string(j, "PCR2"), None);
        assert_eq!(json_bool(j, "CheckCRC"), Some(true));
    }
}
