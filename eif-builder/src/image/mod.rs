//! One enclave image from a manifest (`enclave.toml`, see [`manifest`]): the kernel, init and
//! command line of the platform, and the application, a static binary with its files or a
//! container image read without any daemon ([`oci`]).
//!
//! The image has two ramdisks, as nitro-cli builds them:
//!
//! * bootstrap (PCR1, with the kernel and command line): `/dev`, `/dev/console`, `/init` and
//!   the kernel modules;
//! * application (PCR2): `/cmd` (the command, one argument per line), `/env` (`KEY=VALUE` per
//!   line) and the root file system under `/rootfs`, with the directories init mounts onto
//!   (`dev`, `proc`, `run`, `sys`, `tmp`). AWS's own init starts the same layout.
//!
//! With a `[front]` or `egress`, the root file system also holds `/enclave-https/server` (the
//! front, then `/cmd`), `/enclave-https/host-relay` (the egress forwarder), `/etc/hosts` (the
//! egress names), the egress table `/etc/enclave-https/egress` ([`contract::egress`]: every
//! egress entry and its loopback address) and the processes file,
//! `/etc/enclave-https/processes` ([`contract::processes`]: process `egress`, then `app`, the
//! application, when the front is `/cmd`). Without them, none of this is added.
//!
//! Everything is checked before anything is written; the outputs are then written whole or
//! not at all: `enclave.eif`, `measurements.json`, `bootstrap.cpio` and `app.cpio` in the
//! output directory, and with egress `egress-routes`, the parent's `host-relay --routes` file.

pub mod egress;
pub mod elf;
pub mod manifest;
pub mod oci;
pub mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blob::Blob;
use crate::cpio::{Archive, Owner};
use crate::eif::{metadata::kernel_version_of, EifBuilder, Identity};
use crate::error::{Error, Result};
use crate::measure::Measurements;
use crate::sign::Signer;
use manifest::{Manifest, Source};
use tree::{Kind, Node, Tree};

/// What the builder supplies where the manifest is silent (`cargo xtask eif` passes our
/// kernel, init and command line).
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    /// The kernel image.
    pub kernel: Option<PathBuf>,
    /// init.
    pub init: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: Option<String>,
    /// Kernel modules.
    pub modules: Vec<PathBuf>,
    /// Signing certificate and key.
    pub signing: Option<(PathBuf, PathBuf)>,
}

/// How to build.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Defaults for the platform.
    pub defaults: Defaults,
    /// Every archive entry's mtime (SOURCE_DATE_EPOCH).
    pub mtime: u32,
    /// The EIF metadata's build time (RFC 3339).
    pub build_time: String,
    /// Bounds on a container image import.
    pub limits: oci::Limits,
}

/// What was built.
#[derive(Debug)]
pub struct Report {
    /// The image.
    pub eif: PathBuf,
    /// Its measurements file.
    pub measurements_file: PathBuf,
    /// Its PCRs.
    pub measurements: Measurements,
    /// Sizes in bytes: the whole image, the bootstrap ramdisk, the application ramdisk.
    pub sizes: (u64, u64, u64),
    /// The command in `/cmd`.
    pub cmd: Vec<String>,
    /// The names of the processes in the processes file, in its order (none without a front
    /// or egress).
    pub processes: Vec<String>,
    /// The egress entries and where they go.
    pub egress: Vec<egress::Route>,
    /// The parent's routes file (`egress-routes`), written when there is egress.
    pub egress_routes: Option<PathBuf>,
    /// What the user should know (ignored image settings, non-secret "secrets").
    pub notes: Vec<String>,
}

const MIB: u64 = 1 << 20;

impl Report {
    /// The smallest `--memory` (MiB) for `nitro-cli run-enclave`: four times the image, at
    /// least 64 MiB (the hypervisor places the image in the enclave's memory and the kernel
    /// unpacks the ramdisks beside it).
    pub fn min_memory_mib(&self) -> u64 {
        self.sizes.0.saturating_mul(4).div_ceil(MIB).max(64)
    }

    /// The lines printed after a build.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "enclave image   {}\nmeasurements    {}\n",
            self.eif.display(),
            self.measurements_file.display()
        );
        for (name, value) in self.measurements.to_map() {
            if !name.starts_with("PCR") {
                continue;
            }
            s.push_str(&format!("{name:<16}{value}\n"));
        }
        let (whole, boot, app) = self.sizes;
        s.push_str(&format!(
            "sizes           image {whole} bytes; bootstrap ramdisk {boot}; application ramdisk {app}\n"
        ));
        s.push_str(&format!("command         {:?}\n", self.cmd));
        if !self.processes.is_empty() {
            s.push_str(&format!(
                "processes       {} ({})\n",
                self.processes.join(", "),
                contract::processes::PATH
            ));
        }
        for (i, r) in self.egress.iter().enumerate() {
            s.push_str(&format!(
                "{:<16}{}:{} -> {}:{} in the enclave, parent vsock port {}\n",
                if i == 0 { "egress" } else { "" },
                r.host,
                r.port,
                r.addr,
                r.port,
                r.vsock_port
            ));
        }
        if let Some(routes) = &self.egress_routes {
            s.push_str(&format!(
                "on the parent   host-relay --routes {}\n",
                routes.display()
            ));
        }
        s.push_str(&format!(
            "run it with     nitro-cli run-enclave --eif-path {} --memory {} --cpu-count 2\n",
            self.eif.display(),
            self.min_memory_mib()
        ));
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }
}

fn pick<T: Clone>(
    from_manifest: Option<&T>,
    default: Option<&T>,
    what: &str,
    hint: &str,
) -> Result<T> {
    from_manifest
        .or(default)
        .cloned()
        .ok_or_else(|| Error::invalid(what.to_string(), format!("is not given: {hint}")))
}

/// Checks that `path` is a regular file (following links: it is the user's own input).
fn regular_file(path: &Path, what: &str) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(Error::io_at("cannot read", path))?;
    if !meta.is_file() {
        return Err(Error::invalid(
            format!("{what} {}", path.display()),
            "is not a regular file",
        ));
    }
    Ok(meta.len())
}

fn read_elf(path: &Path, what: &str) -> Result<elf::Linking> {
    regular_file(path, what)?;
    let data = std::fs::read(path).map_err(Error::io_at("cannot read", path))?;
    elf::linking(&data).map_err(|why| Error::invalid(format!("{what} {}", path.display()), why))
}

/// The bootstrap ramdisk: `/dev`, `/dev/console`, `/init`, the modules.
fn bootstrap(init: &Path, modules: &[PathBuf], mtime: u32) -> Result<Archive> {
    let linking = read_elf(init, "init")?;
    if !linking.is_static() {
        return Err(Error::invalid(
            format!("init {}", init.display()),
            "is not a static executable (the bootstrap ramdisk holds no libraries)",
        ));
    }
    let mut a = Archive::new(mtime);
    a.add_dir("dev", 0o755)?;
    a.add_char_device("dev/console", 0o600, 5, 1)?;
    a.add_file("init", 0o755, Blob::Path(init.to_path_buf()))?;
    for m in modules {
        let name = m
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.ends_with(".ko"))
            .ok_or_else(|| {
                Error::invalid(
                    format!("kernel module {}", m.display()),
                    "is not a NAME.ko file",
                )
            })?;
        regular_file(m, "kernel module")?;
        a.add_file(name, 0o644, Blob::Path(m.clone()))?;
    }
    Ok(a)
}

/// The directories init mounts onto, and their modes when the image does not have them.
const MOUNT_MODES: [(&str, u32); 5] = [
    ("dev", 0o755),
    ("proc", 0o555),
    ("run", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
];

/// Names that suggest a secret: such a variable in `/env` is readable by whoever holds the EIF.
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "SECRET", "TOKEN", "PASSWORD"]
        .iter()
        .any(|w| upper.contains(w))
}

/// The application's root file system, command and environment.
struct App {
    tree: Tree,
    cmd: Vec<String>,
    env: Vec<String>,
    notes: Vec<String>,
}

fn application(m: &Manifest, limits: oci::Limits) -> Result<App> {
    let (mut tree, cmd, image_env, mut notes, binary) = match &m.source {
        Source::Binary(path) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.contains('\n'))
                .ok_or_else(|| {
                    Error::invalid(
                        format!("[app] binary {}", path.display()),
                        "has no file name",
                    )
                })?;
            let linking = read_elf(path, "[app] binary")?;
            let mut tree = Tree::new();
            tree.put_file(
                name.as_bytes(),
                0o755,
                Owner::default(),
                Blob::Path(path.clone()),
                "[app] binary",
            )?;
            (
                tree,
                vec![format!("/{name}")],
                Vec::new(),
                Vec::new(),
                Some((path, linking)),
            )
        }
        Source::Oci { path, tag } => {
            let image = oci::load(path, tag.as_deref(), limits)?;
            let (cmd, notes) = image.config.command().map_err(|why| {
                Error::invalid(format!("container image {}", path.display()), why)
            })?;
            (
                image.tree,
                cmd,
                image.config.env.unwrap_or_default(),
                notes,
                None,
            )
        }
    };
    for f in &m.files {
        regular_file(&f.src, "[[app.files]] src")?;
        tree.put_file(
            &f.dst,
            f.mode,
            Owner::default(),
            Blob::Path(f.src.clone()),
            "[[app.files]] dst",
        )?;
    }
    if let Some((path, linking)) = binary {
        check_shipped(path, &linking, &tree)?;
        if !linking.is_static() {
            notes.push(format!(
                "{} is dynamically linked; its loader and libraries come from [[app.files]]",
                path.display()
            ));
        }
    }
    for (dir, mode) in MOUNT_MODES {
        match tree.get(dir.as_bytes()).map(|n| &n.kind) {
            None => tree.put(
                dir.as_bytes(),
                Node {
                    mode,
                    owner: Owner::default(),
                    kind: Kind::Dir,
                },
                "mount point",
            )?,
            Some(Kind::Dir) => {}
            Some(_) => {
                return Err(Error::invalid(
                    format!("the application's /{dir}"),
                    "is not a directory; init mounts a file system there",
                ))
            }
        }
    }
    let cmd = m.args.clone().unwrap_or(cmd);
    for a in &cmd {
        if a.contains(['\n', '\0']) {
            return Err(Error::invalid(
                "the command",
                format!("{a:?} contains a newline or NUL"),
            ));
        }
    }
    // The image's variables in their order, each replaced by the manifest's value if it has one,
    // then the manifest's others in name order.
    let mut env = Vec::new();
    let mut taken = BTreeMap::new();
    for line in image_env {
        let name = line
            .split_once('=')
            .map_or(line.as_str(), |(n, _)| n)
            .to_string();
        match m.env.get(&name) {
            Some(v) => {
                env.push(format!("{name}={v}"));
                taken.insert(name, ());
            }
            None => {
                manifest::check_env(&name, line.split_once('=').map_or("", |(_, v)| v))
                    .map_err(|why| Error::invalid(format!("the image's Env {name:?}"), why))?;
                env.push(line);
            }
        }
    }
    for (k, v) in &m.env {
        if !taken.contains_key(k) {
            env.push(format!("{k}={v}"));
        }
    }
    for line in &env {
        let name = line.split_once('=').map_or(line.as_str(), |(n, _)| n);
        if looks_secret(name) {
            notes.push(format!(
                "{name} is stored in /env: it is measured into PCR2 and readable by whoever holds the EIF, so it is not a secret"
            ));
        }
    }
    Ok(App {
        tree,
        cmd,
        env,
        notes,
    })
}

/// Where the front goes in the root file system.
pub const FRONT_PATH: &str = "/enclave-https/server";

/// Puts one of our files at the absolute `path`, noting when it replaces one of the image's.
fn put_ours(
    tree: &mut Tree,
    path: &str,
    mode: u32,
    data: Blob,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<()> {
    let rel = path.trim_start_matches('/').as_bytes();
    if tree.get(rel).is_some() {
        notes.push(format!("the image's {path} is replaced by {what}"));
    }
    tree.put_file(rel, mode, Owner::default(), data, what)
}

/// A binary we ship beside the application: it must be static, since it runs in whatever root
/// file system the application brings.
fn static_binary(path: &Path, what: &str) -> Result<Blob> {
    if !read_elf(path, what)?.is_static() {
        return Err(Error::invalid(
            format!("{what} {}", path.display()),
            "is not a static executable (it runs beside the application, whose root file system may have no libraries)",
        ));
    }
    Ok(Blob::Path(path.to_path_buf()))
}

/// What `/cmd`, `/env` and the processes file hold once the front and egress are in place.
struct Plan {
    cmd: Vec<String>,
    env: Vec<String>,
    processes: Vec<String>,
    egress: Vec<egress::Route>,
}

/// Adds the front, the egress forwarder, `/etc/hosts`, the egress table and the processes file
/// to `app`'s tree as the manifest asks; without a front or egress nothing changes.
fn services(m: &Manifest, app: &mut App) -> Result<Plan> {
    use contract::processes::{self, Process};
    let routes = egress::plan(&m.egress);
    let mut list = Vec::new();
    if let Some(relay) = &m.egress_relay {
        let blob = static_binary(relay, "egress-relay")?;
        put_ours(
            &mut app.tree,
            egress::RELAY_PATH,
            0o755,
            blob,
            "the egress forwarder",
            &mut app.notes,
        )?;
        put_ours(
            &mut app.tree,
            "/etc/hosts",
            0o644,
            Blob::from(egress::hosts_file(&routes).into_bytes()),
            "the egress names' addresses",
            &mut app.notes,
        )?;
        put_ours(
            &mut app.tree,
            contract::egress::PATH,
            0o644,
            Blob::from(egress::table(&routes).into_bytes()),
            "the egress table",
            &mut app.notes,
        )?;
        list.push(Process {
            name: "egress".into(),
            argv: egress::relay_argv(&routes),
            env: Vec::new(),
        });
    }
    let (cmd, env) = match &m.front {
        Some(front) => {
            let blob = static_binary(&front.binary, "[front] binary")?;
            put_ours(
                &mut app.tree,
                FRONT_PATH,
                0o755,
                blob,
                "the TLS front",
                &mut app.notes,
            )?;
            list.push(Process {
                name: "app".into(),
                argv: app.cmd.clone(),
                env: app.env.clone(),
            });
            let mut cmd = vec![
                FRONT_PATH.to_owned(),
                "--upstream".into(),
                front.upstream.clone(),
                "--processes".into(),
                processes::PATH.into(),
            ];
            cmd.extend(front.args.iter().cloned());
            let env: Vec<String> = front.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            for k in front.env.keys().filter(|k| looks_secret(k)) {
                app.notes.push(format!(
                    "{k} is stored in /env: it is measured into PCR2 and readable by whoever holds the EIF, so it is not a secret"
                ));
            }
            (cmd, env)
        }
        None => {
            if !list.is_empty() {
                app.notes.push(
                    "egress without [front]: /cmd stays the application and the forwarder is process `egress` of the processes file, which our init starts; under nitro-cli's own init only /cmd starts, so use our init (the default) or a [front]".into(),
                );
            }
            (app.cmd.clone(), app.env.clone())
        }
    };
    if !list.is_empty() {
        let text = processes::write(&list).map_err(|e| {
            Error::invalid(
                format!("the processes file {}", processes::PATH),
                e.to_string(),
            )
        })?;
        put_ours(
            &mut app.tree,
            processes::PATH,
            0o644,
            Blob::from(text.into_bytes()),
            "the processes file",
            &mut app.notes,
        )?;
    }
    Ok(Plan {
        cmd,
        env,
        processes: list.into_iter().map(|p| p.name).collect(),
        egress: routes,
    })
}

/// A dynamically linked binary is accepted only when its loader and every library it names are
/// shipped in the image.
fn check_shipped(path: &Path, linking: &elf::Linking, tree: &Tree) -> Result<()> {
    if linking.is_static() {
        return Ok(());
    }
    let has_path = |p: &str| tree.get(p.trim_start_matches('/').as_bytes()).is_some();
    let has_name = |n: &str| {
        tree.iter().any(|(p, node)| {
            matches!(node.kind, Kind::File { .. } | Kind::Symlink(_))
                && p.rsplit(|&b| b == b'/').next() == Some(n.as_bytes())
        })
    };
    let missing_loader = linking.interpreter.as_deref().filter(|i| !has_path(i));
    let missing: Vec<&str> = linking
        .needed
        .iter()
        .map(String::as_str)
        .filter(|n| !has_name(n))
        .collect();
    if missing_loader.is_none() && missing.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        format!("[app] binary {}", path.display()),
        format!(
            "is dynamically linked (interpreter {}; libraries {}); build it static (e.g. for x86_64-unknown-linux-musl) or ship {} through [[app.files]]",
            linking.interpreter.as_deref().unwrap_or("none"),
            if linking.needed.is_empty() { "none".to_string() } else { linking.needed.join(", ") },
            missing_loader
                .into_iter()
                .chain(missing.iter().copied())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

fn lines(items: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        out.extend_from_slice(i.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Builds the image `m` describes into `out` (a directory, created if missing).
pub fn build(m: &Manifest, opts: &Options, out: &Path) -> Result<Report> {
    let d = &opts.defaults;
    let kernel = pick(
        m.kernel.as_ref(),
        d.kernel.as_ref(),
        "the kernel",
        "set [kernel] path in the manifest or give --kernel",
    )?;
    let init = pick(
        m.init.as_ref(),
        d.init.as_ref(),
        "init",
        "set [kernel] init in the manifest or give --init",
    )?;
    let cmdline = pick(
        m.cmdline.as_ref(),
        d.cmdline.as_ref(),
        "the kernel command line",
        "set [kernel] cmdline in the manifest or give --cmdline",
    )?;
    let modules = m.modules.clone().unwrap_or_else(|| d.modules.clone());
    let signing = m.signing.clone().or_else(|| d.signing.clone());
    regular_file(&kernel, "the kernel")?;

    let boot = bootstrap(&init, &modules, opts.mtime)?;
    let mut app = application(m, opts.limits)?;
    let plan = services(m, &mut app)?;
    let mut archive = Archive::new(opts.mtime);
    archive.add_file("cmd", 0o644, Blob::from(lines(&plan.cmd)))?;
    archive.add_file("env", 0o644, Blob::from(lines(&plan.env)))?;
    archive.add_dir("rootfs", 0o755)?;
    app.tree.add_to(&mut archive, b"rootfs")?;
    // Held once and shared: the EIF streams them and the .cpio files are written from them.
    let boot_bytes: Arc<[u8]> = boot.to_bytes()?.into();
    let app_bytes: Arc<[u8]> = archive.to_bytes()?.into();

    let kernel_blob = Blob::Path(kernel.clone());
    let mut identity = Identity::new(
        m.name.clone().unwrap_or_else(|| "enclave".into()),
        m.version.clone().unwrap_or_else(|| "0.0.0".into()),
        opts.build_time.clone(),
    );
    identity.build.kernel_version = kernel_version_of(&kernel_blob)?;
    let mut builder = EifBuilder::new(kernel_blob, &cmdline, identity)
        .ramdisk(Blob::Bytes(Arc::clone(&boot_bytes)))
        .ramdisk(Blob::Bytes(Arc::clone(&app_bytes)));
    if let Some((cert, key)) = &signing {
        builder = builder.signer(Signer::from_files(cert, key)?);
    }

    std::fs::create_dir_all(out).map_err(Error::io_at("cannot create", out))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        crate::fsutil::write_atomically(&path, |f| {
            std::io::Write::write_all(f, bytes).map_err(Error::io_at("cannot write", &path))
        })
    };
    let eif = out.join("enclave.eif");
    let measurements = builder.write_file(&eif)?;
    write("bootstrap.cpio", &boot_bytes)?;
    write("app.cpio", &app_bytes)?;
    let measurements_file = out.join("measurements.json");
    write("measurements.json", measurements.to_json().as_bytes())?;
    let routes_file = out.join(egress::ROUTES_FILE);
    let egress_routes = if plan.egress.is_empty() {
        // A previous build's routes in this directory would name services this image cannot
        // reach.
        match std::fs::remove_file(&routes_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("cannot remove", Some(&routes_file), e))
            }
            _ => None,
        }
    } else {
        write(
            egress::ROUTES_FILE,
            egress::parent_routes(&plan.egress).as_bytes(),
        )?;
        Some(routes_file)
    };
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(Error::io_at("cannot read", p))
    };
    Ok(Report {
        sizes: (
            size(&eif)?,
            u64::try_from(boot_bytes.len()).unwrap_or(u64::MAX),
            u64::try_from(app_bytes.len()).unwrap_or(u64::MAX),
        ),
        eif,
        measurements_file,
        measurements,
        cmd: plan.cmd,
        processes: plan.processes,
        egress: plan.egress,
        egress_routes,
        notes: app.notes,
    })
}
