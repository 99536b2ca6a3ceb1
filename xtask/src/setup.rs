//! Installing what the build needs, idempotently: the musl target for the pinned toolchain and
//! the Debian packages for the C parts (aws-lc's musl build, the kernel, the test oracle).

use crate::cmd::{capture, err, have, output, run, Result};
use std::process::Command;

/// The target the enclave binaries are built for.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// Debian packages, and why each is needed.
pub const PACKAGES: &[(&str, &str)] = &[
    (
        "musl-tools",
        "musl-gcc, for aws-lc-sys's C code in the static server",
    ),
    (
        "gcc",
        "C compiler for the kernel and for crates that build C",
    ),
    ("make", "kernel build"),
    ("bc", "kernel build"),
    ("flex", "kernel build (kconfig)"),
    ("bison", "kernel build (kconfig)"),
    ("libelf-dev", "kernel build (objtool)"),
    (
        "libssl-dev",
        "kernel build tools; the EIF oracle used by tests links OpenSSL",
    ),
    ("pkg-config", "finding OpenSSL for the test oracle"),
    ("xz-utils", "unpacking the kernel source tarball"),
    (
        "file",
        "checking that enclave binaries are statically linked",
    ),
    (
        "curl",
        "tests: the HTTPS client the server and boot tests drive",
    ),
    (
        "openssl",
        "tests: openssl s_client against the server (TLS 1.2, 1.3, ALPN)",
    ),
    (
        "zstd",
        "tests: compresses the zstd container layers the OCI import is tested with",
    ),
    (
        "umoci",
        "tests: makes the container image the OCI import is tested with, and unpacks it for \
         the golden comparison",
    ),
    (
        "busybox-static",
        "tests: the static programs of the boot test of several processes (httpd, wget, sh)",
    ),
];

/// Adds the musl target to the toolchain in use (rustup does not do it by itself for an
/// installed toolchain, even when rust-toolchain.toml lists it).
pub fn musl_target() -> Result {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if installed.lines().any(|l| l.trim() == MUSL_TARGET) {
        return Ok(());
    }
    eprintln!("setup: adding the Rust target {MUSL_TARGET}");
    run(Command::new("rustup").args(["target", "add", MUSL_TARGET]))
}

fn installed(package: &str) -> bool {
    capture(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok installed"))
        .unwrap_or(false)
}

/// Installs the Debian packages that are missing, explaining why each is needed.
pub fn packages(wanted: &[(&str, &str)]) -> Result {
    if !have("dpkg-query") {
        return err(
            "setup: this is not a Debian-based system (no dpkg-query); install the \
             equivalents of: "
                .to_string()
                + &wanted.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(" "),
        );
    }
    let missing: Vec<_> = wanted.iter().filter(|(p, _)| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    for (p, why) in &missing {
        eprintln!("setup: missing Debian package {p} ({why})");
    }
    let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    if !is_root() {
        let how = if have("sudo") { "sudo " } else { "" };
        return err(format!(
            "setup: missing packages; install them with: {how}apt-get install -y {}",
            names.join(" ")
        ));
    }
    let install = || {
        let mut c = Command::new("apt-get");
        c.args(["install", "-y", "--no-install-recommends"])
            .args(&names)
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    if install().is_err() {
        eprintln!("setup: retrying after refreshing the package lists");
        apt_update()?;
        install()?;
    }
    Ok(())
}

/// `apt-get update`, needed once on a fresh machine before anything can be fetched.
pub fn apt_update() -> Result {
    run(Command::new("apt-get").args(["update", "-q"]))
}

/// Whether we run as root (apt-get needs it).
pub fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

/// Everything the image build needs.
pub fn all() -> Result {
    musl_target()?;
    packages(PACKAGES)
}
