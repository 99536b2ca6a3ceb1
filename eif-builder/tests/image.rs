//! `eif-builder image`, the real binary: images from a static binary and from container images
//! (made by Debian's umoci, an independent implementation, and compared with what `umoci
//! unpack` makes of them), the same bytes from any directory and any archive form, and hostile
//! archives refused with one line naming the entry and nothing written.

#![allow(
    clippy::tests_outside_test_module,
    reason = "an integration test crate holds nothing but tests"
)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use eif_builder::cpio::reader::read_cpio;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_eif-builder");

/// A static x86_64 executable as far as the builder can tell: an ELF header and one PT_LOAD.
fn static_elf(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little endian
    f[6] = 1;
    f[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // x86_64
    f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    let total = 64 + 56 + payload.len() as u64;
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[16..24].copy_from_slice(&0x40_0000u64.to_le_bytes());
    ph[32..40].copy_from_slice(&total.to_le_bytes());
    ph[40..48].copy_from_slice(&total.to_le_bytes());
    f.extend_from_slice(&ph);
    f.extend_from_slice(payload);
    f
}

/// A scratch directory with a fake kernel and a static init.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bzImage"), fake_kernel(8192, "6.12.117")).unwrap();
        write_exe(&dir.path().join("init"), &static_elf(b"init"));
        Scratch { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `eif-builder image MANIFEST --out OUT` on the fake platform.
    fn image(&self, manifest: &Path, out: &Path) -> Output {
        Command::new(BIN)
            .arg("image")
            .arg(manifest)
            .arg("--out")
            .arg(out)
            .arg("--kernel")
            .arg(self.path("bzImage"))
            .arg("--init")
            .arg(self.path("init"))
            .args(["--cmdline", "console=ttyS0"])
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap()
    }

    /// Writes `manifest` beside its inputs and builds it into `out`, which must succeed.
    fn build(&self, manifest_at: &Path, text: &str, out: &Path) -> String {
        std::fs::write(manifest_at, text).unwrap();
        let o = self.image(manifest_at, out);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

fn write_exe(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The entries of `out/app.cpio` under `rootfs/`, and `/cmd` and `/env`.
struct AppRamdisk {
    bytes: Vec<u8>,
}

impl AppRamdisk {
    fn read(out: &Path) -> AppRamdisk {
        AppRamdisk {
            bytes: std::fs::read(out.join("app.cpio")).unwrap(),
        }
    }

    fn file(&self, name: &str) -> String {
        let entries = read_cpio(&self.bytes).unwrap();
        let e = entries.iter().find(|e| e.name == name.as_bytes()).unwrap();
        String::from_utf8_lossy(e.data).into_owned()
    }

    /// `path -> (type, permission bits, link target or size)` for everything under rootfs/;
    /// a hard link's size is its file's.
    fn listing(&self) -> BTreeMap<String, (char, u32, String)> {
        let entries = read_cpio(&self.bytes).unwrap();
        let mut size_of_ino: BTreeMap<u32, usize> = BTreeMap::new();
        for e in &entries {
            let s = size_of_ino.entry(e.ino).or_default();
            *s = (*s).max(e.data.len());
        }
        let mut out = BTreeMap::new();
        for e in &entries {
            let Some(path) = e.name.strip_prefix(b"rootfs/") else {
                continue;
            };
            let path = String::from_utf8(path.to_vec()).unwrap();
            let perm = e.mode & 0o7777;
            let entry = match e.mode & 0o170000 {
                0o040000 => ('d', perm, String::new()),
                0o100000 => ('f', perm, size_of_ino[&e.ino].to_string()),
                0o120000 => ('l', perm, String::from_utf8_lossy(e.data).into_owned()),
                other => panic!("{path}: unexpected type {other:o}"),
            };
            out.insert(path, entry);
        }
        out
    }
}

/// The same listing of a directory tree on disk (links not followed).
fn listing_of_dir(root: &Path) -> BTreeMap<String, (char, u32, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (char, u32, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let perm = meta.mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_dir() {
                out.insert(rel, ('d', perm, String::new()));
                walk(root, &path, out);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, ('l', 0o777, target.to_string_lossy().into_owned()));
            } else {
                out.insert(rel, ('f', perm, meta.len().to_string()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn umoci() -> &'static str {
    let found = Command::new("umoci").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "umoci is missing: these tests compare the import with Debian's umoci \
         (apt-get install umoci; `cargo xtask setup` installs it)"
    );
    "umoci"
}

fn make_image_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/oci/make-image.sh")
}

/// examples/oci/make-image.sh on a fake static server: an OCI layout at `dir`, tag "app".
fn umoci_image(dir: &Path, server: &Path) {
    umoci();
    let o = Command::new(make_image_script())
        .arg(server)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "make-image.sh: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_static_binary_with_files_becomes_nitro_clis_layout() {
    let s = Scratch::new();
    write_exe(&s.path("my-service"), &static_elf(b"service"));
    std::fs::write(s.path("app.toml"), "port = 443\n").unwrap();
    let out = s.path("out");
    let report = s.build(
        &s.path("enclave.toml"),
        r#"
name = "my-service"
version = "1.2.3"
[app]
binary = "my-service"
args = ["/my-service", "--config", "/etc/my-service/app.toml"]
env = { RUST_LOG = "info", API_TOKEN = "visible" }
[[app.files]]
src = "app.toml"
dst = "/etc/my-service/app.toml"
mode = 0o600
"#,
        &out,
    );
    for name in [
        "enclave.eif",
        "measurements.json",
        "bootstrap.cpio",
        "app.cpio",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let app = AppRamdisk::read(&out);
    assert_eq!(
        app.file("cmd"),
        "/my-service\n--config\n/etc/my-service/app.toml\n"
    );
    assert_eq!(app.file("env"), "API_TOKEN=visible\nRUST_LOG=info\n");
    let list = app.listing();
    assert_eq!(list["my-service"], ('f', 0o755, "127".to_string()));
    assert_eq!(list["etc/my-service/app.toml"], ('f', 0o600, "11".into()));
    assert_eq!(list["etc"], ('d', 0o755, String::new()));
    for (dir, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("run", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
    ] {
        assert_eq!(list[dir], ('d', mode, String::new()), "{dir}");
    }
    // What the user needs next.
    let pcr0 = serde_json::from_str::<Value>(
        &std::fs::read_to_string(out.join("measurements.json")).unwrap(),
    )
    .unwrap()["Measurements"]["PCR0"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        report.contains(&format!("PCR0            {pcr0}")),
        "{report}"
    );
    assert!(
        report.contains("PCR1 ") && report.contains("PCR2 "),
        "{report}"
    );
    assert!(report.contains("--memory 64 "), "{report}");
    assert!(
        report.contains("note: API_TOKEN is stored in /env: it is measured into PCR2 and readable by whoever holds the EIF, so it is not a secret"),
        "{report}"
    );
}

#[test]
fn a_dynamic_binary_is_refused_naming_its_loader_and_libraries_until_they_are_shipped() {
    // A real dynamically linked executable of this machine.
    let dynamic = Path::new("/bin/true");
    let s = Scratch::new();
    let manifest = s.path("enclave.toml");
    std::fs::write(&manifest, "[app]\nbinary = \"/bin/true\"\n").unwrap();
    let out = s.path("out");
    let o = s.image(&manifest, &out);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("[app] binary /bin/true: is dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2; libraries libc.so.6)"),
        "{err}"
    );
    assert!(!out.exists());

    // Shipping the loader and libc makes it acceptable.
    let loader = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
    let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    assert!(dynamic.is_file());
    s.build(
        &manifest,
        &format!(
            "[app]\nbinary = \"/bin/true\"\n\
             [[app.files]]\nsrc = {loader:?}\ndst = \"/lib64/ld-linux-x86-64.so.2\"\nmode = 0o755\n\
             [[app.files]]\nsrc = {libc:?}\ndst = \"/lib/x86_64-linux-gnu/libc.so.6\"\nmode = 0o755\n"
        ),
        &out,
    );
    assert_eq!(AppRamdisk::read(&out).file("cmd"), "/true\n");
}

#[test]
fn an_umoci_image_imports_as_umoci_unpacks_it() {
    let s = Scratch::new();
    write_exe(&s.path("server"), &static_elf(b"a static server"));
    let layout = s.path("image");
    umoci_image(&layout, &s.path("server"));
    let out = s.path("out");
    s.build(
        &s.path("enclave.toml"),
        "[app]\noci = \"image\"\ntag = \"app\"\n",
        &out,
    );
    let app = AppRamdisk::read(&out);
    assert_eq!(app.file("cmd"), "/usr/local/bin/app\n");
    assert_eq!(app.file("env"), "PATH=/usr/local/bin:/usr/bin:/bin\n");

    let bundle = s.path("bundle");
    let o = Command::new(umoci())
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:app", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = listing_of_dir(&bundle.join("rootfs"));
    let mut got = app.listing();
    // The mount points init needs are added when the image lacks them.
    for dir in ["dev", "proc", "run", "sys", "tmp"] {
        if !want.contains_key(dir) {
            assert!(got.remove(dir).is_some(), "mount point {dir} missing");
        }
    }
    assert_eq!(got, want);
    // What the example is about: the whiteout removed the log, the links are links.
    assert!(!got.contains_key("var/cache/app/build.log"));
    assert_eq!(got["usr/local/bin/app"].2, "../../../opt/app/server");
    let entries = read_cpio(&app.bytes).unwrap();
    let ino = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name.as_bytes())
            .map(|e| (e.ino, e.nlink))
            .unwrap()
    };
    assert_eq!(
        ino("rootfs/opt/app/server"),
        ino("rootfs/opt/app/server.hardlink")
    );
    assert_eq!(ino("rootfs/opt/app/server").1, 2);
}

/// A tar of `dir`'s contents (an `oci-archive`).
fn tar_of_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `docker save` tarball (the layout Docker 25 writes: blobs named by digest plus a
/// manifest.json) of the image in an OCI layout.
fn docker_save_of_layout(layout: &Path, out: &Path) {
    let read = |rel: &str| std::fs::read(layout.join(rel)).unwrap();
    let index: Value = serde_json::from_slice(&read("index.json")).unwrap();
    let blob = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let manifest: Value = serde_json::from_slice(&read(&blob(
        index["manifests"][0]["digest"].as_str().unwrap(),
    )))
    .unwrap();
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect();
    let docker = json!([{ "Config": config, "RepoTags": ["app:latest"], "Layers": layers }]);
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("manifest.json", docker.to_string().as_bytes());
    add(&config, &read(&config));
    for l in &layers {
        add(l, &read(l));
    }
    b.finish().unwrap();
}

#[test]
fn one_image_gives_one_eif_from_any_directory_and_any_archive_form() {
    let s = Scratch::new();
    write_exe(&s.path("server"), &static_elf(b"a static server"));
    umoci_image(&s.path("first/image"), &s.path("server"));
    // The same layout at another path, deeper, and as an oci-archive and a docker save.
    let copy = s.path("second/a/b/image");
    std::fs::create_dir_all(&copy).unwrap();
    let o = Command::new("cp")
        .arg("-r")
        .arg(s.path("first/image/."))
        .arg(&copy)
        .output()
        .unwrap();
    assert!(o.status.success());
    tar_of_dir(&s.path("first/image"), &s.path("image.oci.tar"));
    docker_save_of_layout(&s.path("first/image"), &s.path("image.docker.tar"));

    let builds = [
        ("first/enclave.toml", "oci = \"image\"\ntag = \"app\""),
        ("second/a/b/enclave.toml", "oci = \"image\"\ntag = \"app\""),
        ("oci-archive.toml", "oci = \"image.oci.tar\"\ntag = \"app\""),
        (
            "docker.toml",
            "oci = \"image.docker.tar\"\ntag = \"app:latest\"",
        ),
    ];
    let mut eifs = Vec::new();
    for (i, (manifest, app)) in builds.iter().enumerate() {
        let out = s.path(&format!("out{i}"));
        s.build(&s.path(manifest), &format!("[app]\n{app}\n"), &out);
        eifs.push((manifest, std::fs::read(out.join("enclave.eif")).unwrap()));
    }
    for (manifest, eif) in &eifs[1..] {
        assert!(
            eif == &eifs[0].1,
            "{manifest} gave another EIF than {}",
            eifs[0].0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile archives: written byte by byte, since no well-behaved tool makes them.

/// One ustar member: name, type flag, mode, data, link name.
struct Member<'a> {
    name: &'a str,
    kind: u8,
    mode: u32,
    data: &'a [u8],
    link: &'a str,
    /// A size to declare other than the data's.
    declared: Option<u64>,
}

fn member<'a>(name: &'a str, kind: u8, data: &'a [u8], link: &'a str) -> Member<'a> {
    Member {
        name,
        kind,
        mode: if kind == b'5' { 0o755 } else { 0o644 },
        data,
        link,
        declared: None,
    }
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

fn tar_bytes(members: &[Member<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut h = [0u8; 512];
        h[..m.name.len()].copy_from_slice(m.name.as_bytes());
        octal(&mut h[100..108], u64::from(m.mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], m.declared.unwrap_or(m.data.len() as u64));
        octal(&mut h[136..148], 0);
        h[156] = m.kind;
        h[157..157 + m.link.len()].copy_from_slice(m.link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h[148..155], sum);
        h[155] = b' ';
        out.extend_from_slice(&h);
        out.extend_from_slice(m.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A layer: the blob as stored, the uncompressed tar its diff_id names, and the size its
/// descriptor declares if not the blob's.
struct Layer {
    blob: Vec<u8>,
    plain: Vec<u8>,
    declared: Option<u64>,
}

impl Layer {
    fn tar(members: &[Member<'_>]) -> Layer {
        let plain = tar_bytes(members);
        Layer {
            blob: plain.clone(),
            plain,
            declared: None,
        }
    }
}

/// Writes an OCI layout of `layers` with Entrypoint ["/app"] at `dir`.
fn layout(dir: &Path, layers: &[Layer]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8]| {
        let hex = sha256_hex(bytes);
        std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Entrypoint": ["/app"] },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| format!("sha256:{}", sha256_hex(&l.plain))).collect::<Vec<_>>(),
        },
    })
    .to_string();
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|l| {
            json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": put(&l.blob),
                "size": l.declared.unwrap_or(l.blob.len() as u64),
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put(config.as_bytes()),
            "size": config.len(),
        },
        "layers": layer_descs,
    })
    .to_string();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(manifest.as_bytes()),
            "size": manifest.len(),
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Imports the layout at `image` and expects one line naming `entry`, with `why`, and no
/// output directory.
fn refused(s: &Scratch, case: &str, entry: &str, why: &str) {
    let manifest = s.path(&format!("{case}.toml"));
    std::fs::write(&manifest, format!("[app]\noci = \"{case}\"\n")).unwrap();
    let out = s.path(&format!("{case}.out"));
    let o = s.image(&manifest, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{case}: {}", err.trim_end());
    assert_eq!(o.status.code(), Some(1), "{case}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{case}: {err}");
    assert!(
        err.contains(entry) && err.contains(why),
        "{case}: expected {entry:?} and {why:?} in: {err}"
    );
    assert!(!out.exists(), "{case}: {} was written", out.display());
}

#[test]
fn hostile_archives_are_refused_naming_the_entry_and_nothing_is_written() {
    let s = Scratch::new();
    let app = static_elf(b"app");
    let ok_app = member("app", b'0', &app, "");

    let cases: Vec<(&str, Vec<Layer>, &str, &str)> = vec![
        (
            "traversal",
            vec![Layer::tar(&[member(
                "../../etc/cron.d/evil",
                b'0',
                b"x",
                "",
            )])],
            "entry \"../../etc/cron.d/evil\"",
            "has a `..` component",
        ),
        (
            "absolute",
            vec![Layer::tar(&[member("/etc/passwd", b'0', b"x", "")])],
            "entry \"/etc/passwd\"",
            "is an absolute path",
        ),
        (
            "symlink-escape",
            vec![Layer::tar(&[member(
                "lib/escape",
                b'2',
                b"",
                "../../../etc/shadow",
            )])],
            "entry \"lib/escape\"",
            "symbolic link to \"../../../etc/shadow\" leaves the image's root",
        ),
        (
            "write-through-symlink",
            vec![
                Layer::tar(&[member("etc", b'2', b"", "/tmp")]),
                Layer::tar(&[member("etc/passwd", b'0', b"x", "")]),
            ],
            "/etc/passwd",
            "its parent /etc is a symbolic link (links are stored, never followed)",
        ),
        (
            "hardlink-outside",
            vec![Layer::tar(&[member(
                "bin/sh",
                b'1',
                b"",
                "../../etc/shadow",
            )])],
            "entry \"bin/sh\"",
            "hard link to \"../../etc/shadow\", which is outside the image",
        ),
        (
            "hardlink-to-nothing",
            vec![Layer::tar(&[member("bin/sh", b'1', b"", "etc/shadow")])],
            "/bin/sh",
            "hard link to /etc/shadow, which is not in the image before it",
        ),
        (
            "device",
            vec![Layer::tar(&[ok_app, member("dev/sda", b'3', b"", "")])],
            "entry \"dev/sda\"",
            "a device node",
        ),
        (
            "declared-size",
            vec![Layer::tar(&[Member {
                declared: Some(3 << 30),
                ..member("huge.bin", b'0', b"not 3 GiB", "")
            }])],
            "entry \"huge.bin\"",
            "declares 3221225472 bytes, beyond what the image's size limit leaves",
        ),
        (
            "declared-blob-size",
            vec![Layer {
                declared: Some(5 << 30),
                ..Layer::tar(&[member("app", b'0', &app, "")])
            }],
            "blob sha256:",
            "declares 5368709120 bytes, beyond the limit",
        ),
    ];
    for (case, layers, entry, why) in &cases {
        layout(&s.path(case), layers);
        refused(&s, case, entry, why);
    }

    // A blob whose bytes are not the ones its digest names.
    layout(
        &s.path("digest"),
        &[Layer::tar(&[member("app", b'0', &app, "")])],
    );
    let plain = tar_bytes(&[member("app", b'0', &app, "")]);
    let blob = s.path("digest/blobs/sha256").join(sha256_hex(&plain));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[600] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    refused(
        &s,
        "digest",
        &format!("blob sha256:{} digest", sha256_hex(&plain)),
        "expected",
    );

    // A gzip layer cut short (its descriptor names the cut blob, so only the gzip is wrong).
    let plain = tar_bytes(&[member(
        "app",
        b'0',
        &static_elf(&common::noise(3, 100_000)),
        "",
    )]);
    let mut blob = gzip(&plain);
    blob.truncate(blob.len() / 2);
    layout(
        &s.path("truncated-gzip"),
        &[Layer {
            blob,
            plain,
            declared: None,
        }],
    );
    refused(
        &s,
        "truncated-gzip",
        "entry \"app\"",
        "truncated or corrupt",
    );
}

/// `zstd -c` of `bytes`, by the zstd command-line tool.
fn zstd(bytes: &[u8]) -> Vec<u8> {
    let child = Command::new("zstd")
        .args(["-q", "-c", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("zstd is missing ({e}): apt-get install zstd (`cargo xtask setup` installs it)")
    });
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn zstd_layers_in_one_frame_or_several_import_as_their_tar_does() {
    let s = Scratch::new();
    let app = static_elf(&common::noise(5, 50_000));
    let plain = tar_bytes(&[
        member("bin", b'5', b"", ""),
        member("bin/app", b'0', &app, ""),
        member("usr/local/bin/app", b'2', b"", "../../../bin/app"),
    ]);
    // Two frames with a skippable frame between them, as zstd:chunked layers have.
    let cut = 4096;
    let mut frames = zstd(&plain[..cut]);
    frames.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    frames.extend_from_slice(&3u32.to_le_bytes());
    frames.extend_from_slice(b"skp");
    frames.extend_from_slice(&zstd(&plain[cut..]));
    let blobs = [
        ("tar", plain.clone()),
        ("zstd", zstd(&plain)),
        ("zstd-frames", frames),
    ];
    let mut ramdisks = Vec::new();
    for (case, blob) in blobs {
        layout(
            &s.path(case),
            &[Layer {
                blob,
                plain: plain.clone(),
                declared: None,
            }],
        );
        let out = s.path(&format!("{case}.out"));
        s.build(
            &s.path(&format!("{case}.toml")),
            &format!("[app]\noci = \"{case}\"\n"),
            &out,
        );
        ramdisks.push((case, std::fs::read(out.join("app.cpio")).unwrap()));
    }
    for (case, bytes) in &ramdisks[1..] {
        assert!(bytes == &ramdisks[0].1, "{case} differs from the plain tar");
    }
}

// ---------------------------------------------------------------------------------------------
// The TLS front and egress.

impl AppRamdisk {
    /// The processes file, read back by the contract's own reader.
    fn processes(&self) -> Vec<contract::processes::Process> {
        contract::processes::parse(&self.file("rootfs/etc/enclave-https/processes")).unwrap()
    }

    fn names(&self) -> Vec<String> {
        read_cpio(&self.bytes)
            .unwrap()
            .iter()
            .map(|e| String::from_utf8_lossy(e.name).into_owned())
            .collect()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_front_and_egress_put_the_app_behind_the_front_and_the_names_on_loopback() {
    let s = Scratch::new();
    write_exe(&s.path("my-service"), &static_elf(b"service"));
    write_exe(&s.path("front"), &static_elf(b"the front"));
    write_exe(&s.path("relay"), &static_elf(b"the relay"));
    let out = s.path("out");
    let report = s.build(
        &s.path("enclave.toml"),
        r#"
egress = ["api.example.com:443", "kms.eu-west-1.amazonaws.com:443", "api.example.com:80"]
egress-relay = "relay"
[app]
binary = "my-service"
args = ["/my-service", "--listen", "127.0.0.1:8080"]
env = { RUST_LOG = "info", A = "1" }
[front]
upstream = "tcp:127.0.0.1:8080"
binary = "front"
args = ["--proxy-protocol"]
env = { Y = "2", X = "1" }
"#,
        &out,
    );
    let app = AppRamdisk::read(&out);
    assert_eq!(
        app.file("cmd"),
        "/enclave-https/server\n--upstream\ntcp:127.0.0.1:8080\n--processes\n/etc/enclave-https/processes\n--proxy-protocol\n"
    );
    assert_eq!(app.file("env"), "X=1\nY=2\n");
    assert_eq!(
        app.file("rootfs/etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 api.example.com\n127.0.0.3 kms.eu-west-1.amazonaws.com\n"
    );
    let processes = app.processes();
    assert_eq!(processes.len(), 2);
    assert_eq!(processes[0].name, "egress");
    assert_eq!(
        processes[0].argv,
        strings(&[
            "/enclave-https/host-relay",
            "--workers",
            "1",
            "--route",
            "tcp:127.0.0.2:443=vsock:3:8000",
            "--route",
            "tcp:127.0.0.3:443=vsock:3:8001",
            "--route",
            "tcp:127.0.0.2:80=vsock:3:8002",
        ])
    );
    assert!(processes[0].env.is_empty());
    assert_eq!(processes[1].name, "app");
    assert_eq!(
        processes[1].argv,
        strings(&["/my-service", "--listen", "127.0.0.1:8080"])
    );
    assert_eq!(processes[1].env, strings(&["A=1", "RUST_LOG=info"]));
    // The relay in the enclave reads its argv as host-relay's own parser does.
    let Ok(host_relay::cli::Command::Run(relay)) =
        host_relay::cli::parse(processes[0].argv[1..].iter().cloned())
    else {
        panic!("host-relay refuses {:?}", processes[0].argv)
    };
    assert_eq!(relay.routes.len(), 3);

    let list = app.listing();
    let front_size = static_elf(b"the front").len().to_string();
    let relay_size = static_elf(b"the relay").len().to_string();
    assert_eq!(list["enclave-https"], ('d', 0o755, String::new()));
    assert_eq!(list["enclave-https/server"], ('f', 0o755, front_size));
    assert_eq!(list["enclave-https/host-relay"], ('f', 0o755, relay_size));
    assert_eq!(list["etc/enclave-https"], ('d', 0o755, String::new()));
    let processes_size = app
        .file("rootfs/etc/enclave-https/processes")
        .len()
        .to_string();
    assert_eq!(
        list["etc/enclave-https/processes"],
        ('f', 0o644, processes_size)
    );
    assert_eq!(list["etc/hosts"].0, 'f');
    assert_eq!(list["etc/hosts"].1, 0o644);
    assert_eq!(list["my-service"].1, 0o755);
    // The egress table: every entry, in the manifest's order, as the contract reads it.
    let table = app.file("rootfs/etc/enclave-https/egress");
    assert_eq!(
        table,
        format!(
            "{}\napi.example.com:443 127.0.0.2:443\n\
             kms.eu-west-1.amazonaws.com:443 127.0.0.3:443\n\
             api.example.com:80 127.0.0.2:80\n",
            contract::egress::HEADER
        )
    );
    assert_eq!(contract::egress::parse(&table).unwrap().len(), 3);
    assert_eq!(
        list["etc/enclave-https/egress"],
        ('f', 0o644, table.len().to_string())
    );

    // The parent's side, next to the image, in host-relay's --routes syntax.
    let routes = std::fs::read_to_string(out.join("egress-routes")).unwrap();
    assert_eq!(
        routes,
        "vsock:any:8000=tcp:api.example.com:443\n\
         vsock:any:8001=tcp:kms.eu-west-1.amazonaws.com:443\n\
         vsock:any:8002=tcp:api.example.com:80\n"
    );
    assert_eq!(
        host_relay::cli::routes_text(&routes, "egress-routes")
            .unwrap()
            .len(),
        3
    );

    // The report says what goes where and what to run on the parent.
    for line in [
        "processes       egress, app (/etc/enclave-https/processes)",
        "egress          api.example.com:443 -> 127.0.0.2:443 in the enclave, parent vsock port 8000",
        "                kms.eu-west-1.amazonaws.com:443 -> 127.0.0.3:443 in the enclave, parent vsock port 8001",
        "                api.example.com:80 -> 127.0.0.2:80 in the enclave, parent vsock port 8002",
        &format!(
            "on the parent   host-relay --routes {}",
            out.join("egress-routes").display()
        ),
    ] {
        assert!(report.contains(line), "{line:?} missing from:\n{report}");
    }
    assert!(!report.contains("note:"), "{report}");

    // The same manifest gives the same bytes.
    let again = s.path("again");
    s.build(
        &s.path("enclave.toml"),
        &std::fs::read_to_string(s.path("enclave.toml")).unwrap(),
        &again,
    );
    for f in ["enclave.eif", "app.cpio", "egress-routes"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn egress_without_a_front_keeps_the_command_and_takes_the_relay_from_enclave_bin() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("bin")).unwrap();
    write_exe(&s.path("bin/fetch"), &static_elf(b"fetch"));
    write_exe(&s.path("bin/host-relay"), &static_elf(b"relay"));
    let manifest = s.path("enclave.toml");
    std::fs::write(
        &manifest,
        "egress = [\"api.example.com:80\"]\n[app]\nbinary = \"${ENCLAVE_BIN}/fetch\"\n\
         args = [\"/fetch\", \"http://api.example.com:80/\"]\nenv = { PATH = \"/\" }\n",
    )
    .unwrap();
    let out = s.path("out");
    let image = |defines: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("image")
            .arg(&manifest)
            .arg("--out")
            .arg(&out)
            .arg("--kernel")
            .arg(s.path("bzImage"))
            .arg("--init")
            .arg(s.path("init"))
            .args(["--cmdline", "console=ttyS0"]);
        for d in defines {
            c.arg("--define").arg(d);
        }
        c.output().unwrap()
    };
    // Without ENCLAVE_BIN the relay is not known: one line naming the key.
    let o = image(&[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("`${ENCLAVE_BIN}` is not defined"), "{err}");
    // With ENCLAVE_BIN for the app but the default relay: egress-relay is named.
    std::fs::write(
        &manifest,
        "egress = [\"api.example.com:80\"]\n[app]\nbinary = \"bin/fetch\"\n",
    )
    .unwrap();
    let o = image(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "egress-relay: is not given: set it to the egress forwarder's static executable"
        ),
        "{err}"
    );
    assert!(!out.exists());

    std::fs::write(
        &manifest,
        "egress = [\"api.example.com:80\"]\n[app]\nbinary = \"${ENCLAVE_BIN}/fetch\"\n\
         args = [\"/fetch\", \"http://api.example.com:80/\"]\nenv = { PATH = \"/\" }\n",
    )
    .unwrap();
    let o = image(&[&format!("ENCLAVE_BIN={}", s.path("bin").display())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = String::from_utf8_lossy(&o.stdout);
    let app = AppRamdisk::read(&out);
    assert_eq!(app.file("cmd"), "/fetch\nhttp://api.example.com:80/\n");
    assert_eq!(app.file("env"), "PATH=/\n");
    let processes = app.processes();
    assert_eq!(processes.len(), 1);
    assert_eq!(processes[0].name, "egress");
    assert_eq!(
        processes[0].argv[3..],
        strings(&["--route", "tcp:127.0.0.2:80=vsock:3:8000"])
    );
    assert_eq!(
        app.file("rootfs/etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 api.example.com\n"
    );
    assert_eq!(
        app.file("rootfs/etc/enclave-https/egress"),
        format!(
            "{}\napi.example.com:80 127.0.0.2:80\n",
            contract::egress::HEADER
        )
    );
    assert_eq!(app.listing()["enclave-https/host-relay"].1, 0o755);
    assert!(!app
        .names()
        .iter()
        .any(|n| n == "rootfs/enclave-https/server"));
    assert_eq!(
        std::fs::read_to_string(out.join("egress-routes")).unwrap(),
        "vsock:any:8000=tcp:api.example.com:80\n"
    );
    assert!(
        report.contains("note: egress without [front]: /cmd stays the application and the forwarder is process `egress` of the processes file, which our init starts; under nitro-cli's own init only /cmd starts, so use our init (the default) or a [front]"),
        "{report}"
    );

    // Built again without egress: no processes file, hosts or relay, and no stale routes.
    std::fs::write(&manifest, "[app]\nbinary = \"${ENCLAVE_BIN}/fetch\"\n").unwrap();
    let o = image(&[&format!("ENCLAVE_BIN={}", s.path("bin").display())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names = AppRamdisk::read(&out).names();
    assert_eq!(
        names,
        strings(&[
            "cmd",
            "env",
            "rootfs",
            "rootfs/dev",
            "rootfs/fetch",
            "rootfs/proc",
            "rootfs/run",
            "rootfs/sys",
            "rootfs/tmp",
        ])
    );
    assert!(!out.join("egress-routes").exists());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("egress"));
}

#[test]
fn a_front_over_a_container_image_replaces_its_hosts_file_and_refuses_a_dynamic_front() {
    let s = Scratch::new();
    let app = static_elf(b"app");
    layout(
        &s.path("image"),
        &[Layer::tar(&[
            member("etc", b'5', b"", ""),
            member("etc/hosts", b'0', b"10.0.0.1 db\n", ""),
            member("app", b'0', &app, ""),
        ])],
    );
    write_exe(&s.path("front"), &static_elf(b"front"));
    write_exe(&s.path("relay"), &static_elf(b"relay"));
    let manifest =
        "egress = [\"db.internal:5432\", \"169.254.169.254:80\"]\negress-relay = \"relay\"\n\
                    [app]\noci = \"image\"\nenv = { PORT = \"8080\" }\n\
                    [front]\nupstream = \"unix:/run/app.sock\"\nbinary = \"front\"\n";
    let out = s.path("out");
    let report = s.build(&s.path("enclave.toml"), manifest, &out);
    let ramdisk = AppRamdisk::read(&out);
    // An IPv4 address is in the egress table only: a hosts file maps names.
    assert_eq!(
        ramdisk.file("rootfs/etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n127.0.0.2 db.internal\n"
    );
    assert!(ramdisk
        .file("rootfs/etc/enclave-https/egress")
        .ends_with("\ndb.internal:5432 127.0.0.2:5432\n169.254.169.254:80 127.0.0.3:80\n"));
    assert!(
        report.contains("note: the image's /etc/hosts is replaced by the egress names' addresses"),
        "{report}"
    );
    assert_eq!(ramdisk.file("env"), "");
    let processes = ramdisk.processes();
    let names: Vec<&str> = processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["egress", "app"]);
    // The image's command and environment, as /cmd and /env would have had them.
    assert_eq!(processes[1].argv, strings(&["/app"]));
    assert_eq!(processes[1].env, strings(&["PORT=8080"]));
    assert!(ramdisk
        .file("cmd")
        .starts_with("/enclave-https/server\n--upstream\nunix:/run/app.sock\n"));

    // The front runs beside whatever the image holds: it must be static.
    let manifest = manifest.replace("binary = \"front\"", "binary = \"/bin/true\"");
    std::fs::write(s.path("dynamic.toml"), manifest).unwrap();
    let o = s.image(&s.path("dynamic.toml"), &s.path("dynamic"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("[front] binary /bin/true: is not a static executable (it runs beside the application, whose root file system may have no libraries)"),
        "{err}"
    );
    assert!(!s.path("dynamic").exists());
}
