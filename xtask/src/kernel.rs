//! `cargo xtask kernel`: the enclave kernel, built from Debian's kernel source package at the
//! version and SHA-256 pinned in `rootfs/kernel/source.pin`, with the config fragment
//! `rootfs/kernel/enclave.config` merged onto `tinyconfig`, reproducibly (fixed build
//! timestamp, user and host; no modules, so no per-build signing key).
//!
//! The result is cached in the user cache directory under a key made of every input (pin,
//! fragment, this recipe's version, the compiler's version), so a second build on the same
//! machine is free and a fresh machine still builds it from nothing.

use crate::cmd::{cache_dir, err, output, project_root, run, sha256_bytes, sha256_file};
use crate::cmd::{Context, Error, Result};
use crate::setup;
use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bump when the way the kernel is built changes, so cached kernels are not reused.
const RECIPE_VERSION: &str = "1";

/// Fixed build identity baked into the kernel's version string.
const BUILD_ENV: &[(&str, &str)] = &[
    ("KBUILD_BUILD_TIMESTAMP", "@0"),
    ("KBUILD_BUILD_USER", "enclave"),
    ("KBUILD_BUILD_HOST", "enclave"),
    ("KBUILD_BUILD_VERSION", "1"),
    ("LC_ALL", "C"),
    ("TZ", "UTC"),
];

/// The pinned kernel source.
#[derive(Debug)]
pub struct Pin {
    package: String,
    version: String,
    tarball: String,
    sha256: String,
}

impl Pin {
    fn parse(text: &str) -> Result<Pin> {
        let get = |key: &str| -> Result<String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error(format!("rootfs/kernel/source.pin: no `{key}=` line")))
        };
        Ok(Pin {
            package: get("package")?,
            version: get("version")?,
            tarball: get("tarball")?,
            sha256: get("sha256")?,
        })
    }
}

/// A kernel ready to use.
#[derive(Debug)]
pub struct Kernel {
    /// The bzImage.
    pub image: PathBuf,
    /// The full configuration it was built with.
    pub config: PathBuf,
}

/// Builds the kernel, or returns the cached one.
pub fn build() -> Result<Kernel> {
    let root = project_root();
    let pin_text = fs::read_to_string(root.join("rootfs/kernel/source.pin"))
        .ctx(|| "reading rootfs/kernel/source.pin".to_string())?;
    let fragment = fs::read_to_string(root.join("rootfs/kernel/enclave.config"))
        .ctx(|| "reading rootfs/kernel/enclave.config".to_string())?;
    let pin = Pin::parse(&pin_text)?;
    setup::packages(setup::PACKAGES)?;
    let gcc = output(Command::new("gcc").arg("--version"))?;
    let gcc = gcc.lines().next().unwrap_or_default();
    let key_input = format!("{RECIPE_VERSION}\n{pin_text}\n{fragment}\n{gcc}\n");
    let key = sha256_bytes(key_input.as_bytes())?;
    let dir = cache_dir().join("kernel").join(&key[..16]);
    let kernel = Kernel {
        image: dir.join("bzImage"),
        config: dir.join("config"),
    };
    if kernel.image.is_file() && kernel.config.is_file() {
        eprintln!("kernel: cached {}", kernel.image.display());
    } else {
        build_into(&pin, &root.join("rootfs/kernel/enclave.config"), &dir)?;
    }
    // A copy beside the other build products, as `target/kernel/<key>/`.
    let local = root.join("target/kernel").join(&key[..16]);
    fs::create_dir_all(&local).ctx(|| format!("creating {}", local.display()))?;
    for (from, name) in [(&kernel.image, "bzImage"), (&kernel.config, "config")] {
        fs::copy(from, local.join(name)).ctx(|| format!("copying {}", from.display()))?;
    }
    Ok(Kernel {
        image: local.join("bzImage"),
        config: local.join("config"),
    })
}

/// Fetches the pinned source package and returns the verified tarball.
fn fetch(pin: &Pin) -> Result<PathBuf> {
    let downloads = cache_dir().join("downloads");
    fs::create_dir_all(&downloads).ctx(|| format!("creating {}", downloads.display()))?;
    let tarball = downloads.join(format!("{}_{}.tar.xz", pin.package, pin.version));
    if tarball.is_file() && sha256_file(&tarball)? == pin.sha256 {
        return Ok(tarball);
    }
    let deb_name = format!(
        "{}_{}_all.deb",
        pin.package,
        pin.version.replace(':', "%3a")
    );
    let deb = downloads.join(&deb_name);
    if !deb.is_file() {
        eprintln!("kernel: downloading {}={}", pin.package, pin.version);
        let spec = format!("{}={}", pin.package, pin.version);
        let download = || {
            run(Command::new("apt-get")
                .args(["download", "-q", &spec])
                .current_dir(&downloads))
        };
        if download().is_err() {
            eprintln!("kernel: refreshing the package lists and trying again");
            setup::apt_update()?;
            download()?;
        }
        if !deb.is_file() {
            return err(format!(
                "apt-get download did not produce {}",
                deb.display()
            ));
        }
    }
    eprintln!("kernel: extracting {} from {deb_name}", pin.tarball);
    let partial = tarball.with_extension("partial");
    run(Command::new("sh")
        .arg("-c")
        .arg(r#"dpkg-deb --fsys-tarfile "$1" | tar -xOf - "./$2" > "$3""#)
        .args([
            "sh".as_ref(),
            deb.as_os_str(),
            pin.tarball.as_ref(),
            partial.as_os_str(),
        ]))?;
    let got = sha256_file(&partial)?;
    if got != pin.sha256 {
        let _ = fs::remove_file(&partial);
        return err(format!(
            "kernel source {} has SHA-256 {got}, but rootfs/kernel/source.pin expects {}; \
             refusing to build from unverified source",
            pin.tarball, pin.sha256
        ));
    }
    fs::rename(&partial, &tarball).ctx(|| format!("renaming to {}", tarball.display()))?;
    let _ = fs::remove_file(&deb);
    Ok(tarball)
}

fn build_into(pin: &Pin, fragment: &Path, dir: &Path) -> Result {
    let tarball = fetch(pin)?;
    let src = dir.join("src");
    if src.exists() {
        fs::remove_dir_all(&src).ctx(|| format!("removing {}", src.display()))?;
    }
    fs::create_dir_all(&src).ctx(|| format!("creating {}", src.display()))?;
    eprintln!("kernel: unpacking {}", tarball.display());
    run(Command::new("tar")
        .arg("-xJf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg("--strip-components=1"))?;
    let make = |args: &[&str]| {
        let mut c = Command::new("make");
        c.current_dir(&src)
            .args(args)
            .envs(BUILD_ENV.iter().copied());
        c
    };
    run(&mut make(&["-s", "tinyconfig"]))?;
    run(Command::new("scripts/kconfig/merge_config.sh")
        .current_dir(&src)
        .args(["-m", ".config"])
        .arg(fragment)
        .stdout(Stdio::null()))?;
    run(&mut make(&["-s", "olddefconfig"]))?;
    let config = fs::read_to_string(src.join(".config")).ctx(|| "reading .config".to_string())?;
    check_fragment_applied(
        &fs::read_to_string(fragment).ctx(|| "reading fragment".into())?,
        &config,
    )?;
    let jobs = std::thread::available_parallelism().map_or(2, usize::from);
    eprintln!("kernel: building bzImage with {jobs} jobs (about 3-5 minutes on 2 cores)");
    make_with_progress(make(&[&format!("-j{jobs}"), "bzImage"]))?;
    let built = src.join("arch/x86/boot/bzImage");
    for (from, name) in [
        (built.as_path(), "bzImage"),
        (&src.join(".config"), "config"),
    ] {
        let tmp = dir.join(format!("{name}.partial"));
        fs::copy(from, &tmp).ctx(|| format!("copying {}", from.display()))?;
        fs::rename(&tmp, dir.join(name)).ctx(|| format!("saving {name}"))?;
    }
    fs::remove_dir_all(&src).ctx(|| format!("removing {}", src.display()))?;
    eprintln!(
        "kernel: built {} ({} bytes, sha256 {})",
        dir.join("bzImage").display(),
        fs::metadata(dir.join("bzImage")).map_or(0, |m| m.len()),
        sha256_file(&dir.join("bzImage"))?
    );
    Ok(())
}

/// merge_config.sh only warns when a symbol did not take (a missing dependency); we refuse.
fn check_fragment_applied(fragment: &str, config: &str) -> Result {
    let mut missing = Vec::new();
    for line in fragment.lines().map(str::trim) {
        let wanted = if let Some(sym) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            (sym, None)
        } else if line.starts_with("CONFIG_") {
            match line.split_once('=') {
                Some((sym, val)) => (sym, Some(val)),
                None => continue,
            }
        } else {
            continue;
        };
        let actual = config.lines().find_map(|l| {
            if l == format!("# {} is not set", wanted.0) {
                Some(None)
            } else {
                l.strip_prefix(wanted.0)?.strip_prefix('=').map(Some)
            }
        });
        if actual.flatten() != wanted.1 && !(wanted.1.is_none() && actual.is_none()) {
            missing.push(line.to_owned());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        err(format!(
            "kernel: the config fragment did not apply (missing dependencies?): {}",
            missing.join(", ")
        ))
    }
}

/// Runs make, printing a progress line every 15 s and the tail of its output on failure.
fn make_with_progress(mut cmd: Command) -> Result {
    eprintln!("$ {}", crate::cmd::render(&cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| "could not start make".to_string())?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(|l| l.ok())
                .for_each(|l| drop(tx.send(l)));
        }));
    }
    if let Some(errout) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            BufReader::new(errout)
                .lines()
                .map_while(|l| l.ok())
                .for_each(|l| drop(tx.send(l)));
        }));
    }
    drop(tx);
    let start = Instant::now();
    let mut last = Instant::now();
    let mut tail = VecDeque::new();
    let mut steps = 0u64;
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                steps += 1;
                if tail.len() == 60 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last.elapsed() >= Duration::from_secs(15) {
            last = Instant::now();
            eprintln!(
                "kernel: {steps} build steps, {}s elapsed; last: {}",
                start.elapsed().as_secs(),
                tail.back().map_or("", |s| s.trim())
            );
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait().ctx(|| "waiting for make".to_string())?;
    if status.success() {
        eprintln!("kernel: done in {}s", start.elapsed().as_secs());
        Ok(())
    } else {
        for l in &tail {
            eprintln!("  | {l}");
        }
        err(format!(
            "kernel build failed ({status}); the last lines of its output are above"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_parses_and_names_missing_keys() {
        let p = Pin::parse("# c\npackage=a\nversion=1\ntarball=t\nsha256=ab\n").unwrap();
        assert_eq!((p.package.as_str(), p.sha256.as_str()), ("a", "ab"));
        let e = Pin::parse("package=a\nversion=1\n").unwrap_err();
        assert!(e.0.contains("tarball"), "{e}");
    }

    #[test]
    fn fragment_check_finds_symbols_that_did_not_take() {
        let frag = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\n";
        assert!(check_fragment_applied(frag, "CONFIG_A=y\nCONFIG_C=y\n").is_ok());
        let e = check_fragment_applied(frag, "CONFIG_A=y\nCONFIG_B=y\n").unwrap_err();
        assert!(
            e.0.contains("CONFIG_B") && e.0.contains("CONFIG_C") && !e.0.contains("CONFIG_A"),
            "{e}"
        );
    }
}
