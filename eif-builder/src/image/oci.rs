//! Container images without a daemon or any outside tool: an OCI image layout (a directory, or
//! an `oci-archive` tarball of one) or a `docker save` tarball.
//!
//! Every blob is checked against its digest (and its declared size) before it is used, and
//! each layer's uncompressed bytes against the config's `diff_ids`. Layers (tar, plain, gzip or
//! zstd) are applied in order onto a [`Tree`], in memory: whiteouts (`.wh.NAME`) and opaque
//! directories (`.wh..wh..opq`) remove what lower layers had; hard links and symbolic links are
//! stored as links and never followed. Refused, each with a message naming the entry: absolute
//! and `..` paths, links that leave the root, hard links to anything but an earlier regular
//! file, device nodes and FIFOs, and anything past the size limit, declared or read. Modes
//! and owners are kept; times are not (the archive's mtime is the build's).
//!
//! The command and environment are taken as `nitro-cli build-enclave` takes them
//! (aws-nitro-enclaves-cli, `enclave_build/src/docker.rs`, `DockerUtil::extract_image`): `Cmd`
//! if the image has one, else `Entrypoint` (never the two joined), else the image is refused;
//! `Env` as it is. nitro-cli takes `Cmd` only together with `Env` and fails outright on an image
//! without `Env` (an error, or a panic when it has an `Entrypoint`); here such an image gets an
//! empty `/env` and a note. An empty `Cmd` counts as none. `WorkingDir` is not used by
//! nitro-cli either; init starts the program in `/`.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use aws_lc_rs::digest;
use serde_json::Value;

use super::tree::{Kind, Node, Tree};
use crate::blob::Blob;
use crate::cpio::Owner;
use crate::error::{Error, Result};

/// Bounds on what an import reads.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes read in all (archive, blobs, and every layer's uncompressed content).
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 2 << 30 }
    }
}

/// The JSON documents (index, manifests, config) are small.
const MAX_JSON_BYTES: u64 = 4 << 20;

/// What the image config says to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Env`, `KEY=VALUE` each, if the image has it.
    pub env: Option<Vec<String>>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
}

impl Config {
    /// The command nitro-cli would write to `/cmd`, and what the user should know about it.
    pub fn command(&self) -> std::result::Result<(Vec<String>, Vec<String>), String> {
        let mut notes = Vec::new();
        if self.env.is_none() {
            notes.push(
                "the image has no Env: /env is empty here, while nitro-cli build-enclave fails on such an image"
                    .to_string(),
            );
        }
        if let Some(w) = self
            .working_dir
            .as_deref()
            .filter(|w| !w.is_empty() && *w != "/")
        {
            notes.push(format!(
                "the image's WorkingDir {w} is not applied (nitro-cli ignores it; init starts the program in /)"
            ));
        }
        match (&self.cmd, &self.entrypoint) {
            (Some(cmd), entry) if !cmd.is_empty() => {
                if let Some(e) = entry.as_ref().filter(|e| !e.is_empty()) {
                    notes.push(format!(
                        "the image has Entrypoint {e:?} and Cmd {cmd:?}; as nitro-cli build-enclave does, the enclave runs Cmd alone (set [app] args to choose)"
                    ));
                }
                Ok((cmd.clone(), notes))
            }
            (_, Some(e)) if !e.is_empty() => Ok((e.clone(), notes)),
            _ => Err("the image has neither Cmd nor Entrypoint; set [app] args".into()),
        }
    }
}

/// An imported image.
#[derive(Debug)]
pub struct Image {
    /// The image config's command and environment.
    pub config: Config,
    /// Its root file system, every layer applied.
    pub tree: Tree,
    /// The manifest digest, or the docker config name, for messages.
    pub id: String,
}

/// Where blobs come from: a layout directory, or the files of a tarball held in memory.
enum Store<'a> {
    Dir(&'a Path),
    Files(BTreeMap<String, Vec<u8>>),
}

/// The running count of bytes read against [`Limits::max_bytes`].
struct Budget {
    used: u64,
    max: u64,
}

impl Budget {
    fn take(&mut self, n: u64, what: &str) -> Result<()> {
        self.used = self.used.saturating_add(n);
        if self.used > self.max {
            return Err(Error::unsupported(
                what.to_string(),
                format!("the image is larger than the {} byte limit", self.max),
            ));
        }
        Ok(())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    contract::hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// A member name of a tarball: `./` dropped; absolute and `..` refused.
fn member_name(raw: &[u8], what: &str) -> Result<Option<String>> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| Error::malformed(what.to_string(), "a member name is not UTF-8"))?;
    match clean_path(raw) {
        Ok(None) => Ok(None),
        Ok(Some(p)) => Ok(Some(String::from_utf8_lossy(&p).into_owned())),
        Err(why) => Err(Error::invalid(format!("{what} member {text:?}"), why)),
    }
}

/// An entry path as a tar layer stores it: `./` and trailing `/` dropped; `None` for the root
/// itself; absolute paths and `.`/`..` components refused.
pub fn clean_path(raw: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut p = raw;
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
    }
    if p.first() == Some(&b'/') {
        return Err("is an absolute path".into());
    }
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    if p.is_empty() || p == b"." {
        return Ok(None);
    }
    if p.contains(&0) {
        return Err("contains a NUL byte".into());
    }
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" => return Err("has an empty component".into()),
            b"." => return Err("has a `.` component".into()),
            b".." => return Err("has a `..` component".into()),
            _ => {}
        }
    }
    if p.len() > crate::cpio::MAX_PATH_LEN {
        return Err("is too long".into());
    }
    Ok(Some(p.to_vec()))
}

/// Whether a symbolic link at `path` to `target` stays inside the root, read lexically as the
/// kernel would from the link's directory (an absolute target always does: it is resolved
/// against the enclave's root).
pub fn link_stays_inside(path: &[u8], target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return true;
    }
    let mut depth: i64 = i64::try_from(path.split(|&b| b == b'/').count()).unwrap_or(0) - 1;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

impl Store<'_> {
    /// Reads `name` (at most `cap` bytes).
    fn read(&self, name: &str, cap: u64, what: &str) -> Result<Vec<u8>> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(name);
                let meta =
                    std::fs::symlink_metadata(&path).map_err(Error::io_at("cannot read", &path))?;
                if !meta.is_file() {
                    return Err(Error::invalid(
                        what.to_string(),
                        format!("{name} is not a regular file"),
                    ));
                }
                if meta.len() > cap {
                    return Err(Error::unsupported(
                        what.to_string(),
                        format!("{name} is {} bytes; the limit is {cap}", meta.len()),
                    ));
                }
                std::fs::read(&path).map_err(Error::io_at("cannot read", &path))
            }
            Store::Files(files) => {
                let data = files.get(name).ok_or_else(|| {
                    Error::invalid(what.to_string(), format!("{name} is not in the archive"))
                })?;
                if u64::try_from(data.len()).unwrap_or(u64::MAX) > cap {
                    return Err(Error::unsupported(
                        what.to_string(),
                        format!("{name} is {} bytes; the limit is {cap}", data.len()),
                    ));
                }
                Ok(data.clone())
            }
        }
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Store::Dir(dir) => dir.join(name).is_file(),
            Store::Files(files) => files.contains_key(name),
        }
    }
}

/// Imports the image at `path` (a layout directory or a tarball), choosing `tag` when it holds
/// several.
pub fn load(path: &Path, tag: Option<&str>, limits: Limits) -> Result<Image> {
    let what = format!("container image {}", path.display());
    let meta = std::fs::metadata(path).map_err(Error::io_at("cannot read", path))?;
    if meta.is_dir() {
        let mut budget = Budget {
            used: 0,
            max: limits.max_bytes,
        };
        return load_store(&Store::Dir(path), tag, &what, &mut budget);
    }
    if meta.len() > limits.max_bytes {
        return Err(Error::unsupported(
            what,
            format!(
                "{} bytes, larger than the {} byte limit",
                meta.len(),
                limits.max_bytes
            ),
        ));
    }
    let file = std::fs::File::open(path).map_err(Error::io_at("cannot read", path))?;
    load_tarball(file, &what, tag, limits)
}

/// Imports the image in a tarball (an oci-archive or a `docker save`, possibly gzip'd) read
/// from `reader`; `what` names it in messages.
pub fn load_tarball<R: Read>(
    reader: R,
    what: &str,
    tag: Option<&str>,
    limits: Limits,
) -> Result<Image> {
    let mut budget = Budget {
        used: 0,
        max: limits.max_bytes,
    };
    let files = read_tarball(reader, what, &mut budget)?;
    load_store(&Store::Files(files), tag, what, &mut budget)
}

fn load_store(
    store: &Store<'_>,
    tag: Option<&str>,
    what: &str,
    budget: &mut Budget,
) -> Result<Image> {
    if store.has("index.json") {
        load_oci(store, tag, what, budget)
    } else if store.has("manifest.json") {
        load_docker(store, tag, what, budget)
    } else {
        Err(Error::invalid(
            what.to_string(),
            "has neither index.json (an OCI layout) nor manifest.json (docker save)",
        ))
    }
}

/// Every regular member of a (possibly gzip'd) tarball, by clean name.
fn read_tarball<R: Read>(
    reader: R,
    what: &str,
    budget: &mut Budget,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let reader = decompressed(io::BufReader::new(reader))?;
    let mut archive = tar::Archive::new(reader);
    let bad = |e: io::Error| {
        Error::malformed(what.to_string(), format!("not a readable tar archive: {e}"))
    };
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        let Some(name) = member_name(&entry.path_bytes(), what)? else {
            continue;
        };
        if kind.is_dir() || kind.is_pax_global_extensions() {
            continue;
        }
        if !kind.is_file() {
            return Err(Error::unsupported(
                format!("{what} member {name:?}"),
                "only regular files and directories belong in an image archive",
            ));
        }
        let size = entry.size();
        budget.take(size, &format!("{what} member {name:?}"))?;
        let mut data = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
        entry.read_to_end(&mut data).map_err(bad)?;
        files.insert(name, data);
    }
    Ok(files)
}

/// A reader of the plain bytes behind `r`: gzip and zstd are undone.
fn decompressed<'a, R: io::BufRead + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>> {
    let head = r
        .fill_buf()
        .map_err(|e| Error::io("cannot read", None, e))?
        .get(..4)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head == ZSTD_MAGIC || is_skippable_frame(&head) {
        Ok(Box::new(ZstdFrames {
            decoder: ruzstd::decoding::FrameDecoder::new(),
            source: r,
        }))
    } else {
        Ok(Box::new(r))
    }
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A zstd skippable frame starts with 0x184D2A50..=0x184D2A5F, little endian.
fn is_skippable_frame(head: &[u8]) -> bool {
    matches!(head, [0x50..=0x5f, 0x2a, 0x4d, 0x18])
}

/// Every frame of a zstd stream in order, skippable frames skipped (ruzstd's own streaming
/// decoder reads one frame; a layer may hold several, as zstd:chunked ones do).
struct ZstdFrames<R> {
    decoder: ruzstd::decoding::FrameDecoder,
    source: R,
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        use ruzstd::decoding::BlockDecodingStrategy;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.decoder.is_finished() && self.decoder.can_collect() == 0 {
                // Between frames: the next one, or the end of the stream.
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.decoder.reset(&mut self.source) {
                    Ok(()) => {}
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let want = u64::from(length);
                        let skipped =
                            io::copy(&mut (&mut self.source).take(want), &mut io::sink())?;
                        if skipped < want {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "a zstd skippable frame is cut short",
                            ));
                        }
                        continue;
                    }
                    Err(e) => return Err(io::Error::other(format!("zstd: {e}"))),
                }
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::other(format!("zstd: {e}")))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
}

fn json(bytes: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::malformed(what.to_string(), format!("not JSON: {e}")))
}

/// A descriptor's blob: declared size within the limit, then read, size and SHA-256 checked.
fn blob(
    store: &Store<'_>,
    desc: &Value,
    cap: u64,
    what: &str,
    budget: &mut Budget,
) -> Result<Vec<u8>> {
    let digest = desc
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::malformed(what.to_string(), "a descriptor has no digest"))?;
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| {
            Error::unsupported(
                format!("{what} blob {digest}"),
                "only sha256 digests of 64 hex digits",
            )
        })?;
    let what = format!("{what} blob {digest}");
    let declared = desc
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::malformed(what.clone(), "the descriptor has no size"))?;
    if declared > cap || budget.used.saturating_add(declared) > budget.max {
        return Err(Error::unsupported(
            what,
            format!("declares {declared} bytes, beyond the limit"),
        ));
    }
    let data = store.read(&format!("blobs/sha256/{hex}"), declared, &what)?;
    budget.take(u64::try_from(data.len()).unwrap_or(u64::MAX), &what)?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) != declared {
        return Err(Error::mismatch(
            format!("{what} size"),
            declared.to_string(),
            data.len().to_string(),
        ));
    }
    let actual = sha256_hex(&data);
    if actual != hex {
        return Err(Error::mismatch(
            format!("{what} digest"),
            format!("sha256:{hex}"),
            format!("sha256:{actual}"),
        ));
    }
    Ok(data)
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn ref_name(desc: &Value) -> Option<&str> {
    desc.get("annotations")?
        .get("org.opencontainers.image.ref.name")?
        .as_str()
}

fn is_linux_amd64(desc: &Value) -> bool {
    desc.get("platform").is_none_or(|p| {
        p.get("os").and_then(Value::as_str) == Some("linux")
            && p.get("architecture").and_then(Value::as_str) == Some("amd64")
    })
}

/// The one manifest of `list` to take: by tag, or the only one, or the only linux/amd64 one.
fn choose<'v>(list: &'v [Value], tag: Option<&str>, what: &str) -> Result<&'v Value> {
    let candidates: Vec<&Value> = match tag {
        Some(t) => list.iter().filter(|d| ref_name(d) == Some(t)).collect(),
        None if list.len() == 1 => list.iter().collect(),
        None => list.iter().filter(|d| is_linux_amd64(d)).collect(),
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::invalid(
            what.to_string(),
            match tag {
                Some(t) => format!("no image tagged {t:?} (tags: {})", tags(list)),
                None => "holds no linux/amd64 image".to_string(),
            },
        )),
        _ => Err(Error::invalid(
            what.to_string(),
            format!(
                "holds several images; choose one with [app] tag (tags: {})",
                tags(list)
            ),
        )),
    }
}

fn tags(list: &[Value]) -> String {
    let names: Vec<&str> = list.iter().filter_map(ref_name).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn load_oci(
    store: &Store<'_>,
    tag: Option<&str>,
    what: &str,
    budget: &mut Budget,
) -> Result<Image> {
    let index = json(
        &store.read("index.json", MAX_JSON_BYTES, what)?,
        &format!("{what} index.json"),
    )?;
    let list = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::malformed(format!("{what} index.json"), "no manifests array"))?;
    let mut desc = choose(list, tag, what)?.clone();
    // An index may point at another index (a multi-platform image): one level down.
    for _ in 0..2 {
        let media = desc.get("mediaType").and_then(Value::as_str).unwrap_or("");
        if !INDEX_TYPES.contains(&media) {
            break;
        }
        let inner = json(&blob(store, &desc, MAX_JSON_BYTES, what, budget)?, what)?;
        let list = inner
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::malformed(format!("{what} image index"), "no manifests array"))?;
        desc = choose(list, None, what)?.clone();
    }
    let id = desc
        .get("digest")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let manifest = json(
        &blob(store, &desc, MAX_JSON_BYTES, what, budget)?,
        &format!("{what} manifest {id}"),
    )?;
    let config_desc = manifest
        .get("config")
        .ok_or_else(|| Error::malformed(format!("{what} manifest {id}"), "no config"))?;
    let config_json = json(
        &blob(store, config_desc, MAX_JSON_BYTES, what, budget)?,
        &format!("{what} config"),
    )?;
    let (config, diff_ids) = read_config(&config_json, what)?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::malformed(format!("{what} manifest {id}"), "no layers array"))?;
    check_layer_count(layers.len(), diff_ids.len(), what)?;
    let mut tree = Tree::new();
    for (i, (desc, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
        let digest = desc.get("digest").and_then(Value::as_str).unwrap_or("?");
        let layer_what = format!("{what} layer {} of {} ({digest})", i + 1, layers.len());
        let data = blob(store, desc, budget.max, what, budget)?;
        apply_layer(&mut tree, &data, Some(diff_id), &layer_what, budget)?;
    }
    Ok(Image { config, tree, id })
}

fn load_docker(
    store: &Store<'_>,
    tag: Option<&str>,
    what: &str,
    budget: &mut Budget,
) -> Result<Image> {
    let manifest = json(
        &store.read("manifest.json", MAX_JSON_BYTES, what)?,
        &format!("{what} manifest.json"),
    )?;
    let list = manifest
        .as_array()
        .ok_or_else(|| Error::malformed(format!("{what} manifest.json"), "not an array"))?;
    let has_tag = |m: &Value, t: &str| {
        m.get("RepoTags")
            .and_then(Value::as_array)
            .is_some_and(|tags| tags.iter().any(|x| x.as_str() == Some(t)))
    };
    let chosen: Vec<&Value> = match tag {
        Some(t) => list.iter().filter(|m| has_tag(m, t)).collect(),
        None => list.iter().collect(),
    };
    let [entry] = chosen.as_slice() else {
        return Err(Error::invalid(
            what.to_string(),
            match tag {
                Some(t) => format!("no image tagged {t:?} in manifest.json"),
                None => "manifest.json holds several images; choose one with [app] tag".to_string(),
            },
        ));
    };
    let config_name = entry
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::malformed(format!("{what} manifest.json"), "no Config"))?;
    let config_bytes = store.read(config_name, MAX_JSON_BYTES, what)?;
    budget.take(u64::try_from(config_bytes.len()).unwrap_or(u64::MAX), what)?;
    // The config is named by its digest: `HEX.json` (docker) or `blobs/sha256/HEX` (OCI-style).
    let named = config_name
        .strip_prefix("blobs/sha256/")
        .or_else(|| config_name.strip_suffix(".json"))
        .unwrap_or("");
    let actual = sha256_hex(&config_bytes);
    if named != actual {
        return Err(Error::mismatch(
            format!("{what} config {config_name} digest"),
            format!("sha256:{named}"),
            format!("sha256:{actual}"),
        ));
    }
    let (config, diff_ids) = read_config(&json(&config_bytes, &format!("{what} config"))?, what)?;
    let layers: Vec<&str> = entry
        .get("Layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::malformed(format!("{what} manifest.json"), "no Layers"))?
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    check_layer_count(layers.len(), diff_ids.len(), what)?;
    let mut tree = Tree::new();
    for (i, (name, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
        let layer_what = format!("{what} layer {} of {} ({name})", i + 1, layers.len());
        let remaining = budget.max.saturating_sub(budget.used);
        let data = store.read(name, remaining, &layer_what)?;
        budget.take(u64::try_from(data.len()).unwrap_or(u64::MAX), &layer_what)?;
        apply_layer(&mut tree, &data, Some(diff_id), &layer_what, budget)?;
    }
    Ok(Image {
        config,
        tree,
        id: config_name.to_string(),
    })
}

fn check_layer_count(layers: usize, diff_ids: usize, what: &str) -> Result<()> {
    if layers != diff_ids {
        return Err(Error::mismatch(
            format!("{what} layer count"),
            format!("{diff_ids} (the config's diff_ids)"),
            format!("{layers} (the manifest's layers)"),
        ));
    }
    Ok(())
}

fn strings(v: Option<&Value>, what: &str, key: &str) -> Result<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| {
                    Error::malformed(format!("{what} config {key}"), "holds a non-string")
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(Error::malformed(
            format!("{what} config {key}"),
            "is not an array",
        )),
    }
}

/// The parts of an image config we use, and the layers' diff_ids (hex).
fn read_config(v: &Value, what: &str) -> Result<(Config, Vec<String>)> {
    let arch = v.get("architecture").and_then(Value::as_str).unwrap_or("");
    let os = v.get("os").and_then(Value::as_str).unwrap_or("");
    if arch != "amd64" || os != "linux" {
        return Err(Error::unsupported(
            format!("{what} config"),
            format!("the image is for {os}/{arch}; enclaves run linux/amd64"),
        ));
    }
    let c = v.get("config");
    let get = |k: &str| c.and_then(|c| c.get(k));
    let config = Config {
        entrypoint: strings(get("Entrypoint"), what, "Entrypoint")?,
        cmd: strings(get("Cmd"), what, "Cmd")?,
        env: strings(get("Env"), what, "Env")?,
        working_dir: get("WorkingDir").and_then(Value::as_str).map(str::to_owned),
    };
    let diff_ids = v
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .ok_or_else(|| Error::malformed(format!("{what} config"), "no rootfs.diff_ids"))?
        .iter()
        .map(|d| {
            d.as_str()
                .and_then(|s| s.strip_prefix("sha256:"))
                .map(str::to_owned)
                .ok_or_else(|| Error::unsupported(format!("{what} config diff_ids"), "only sha256"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((config, diff_ids))
}

/// Counts and hashes what passes through, and stops at the budget.
struct Tally<'b, R> {
    inner: R,
    hash: digest::Context,
    read: u64,
    left: u64,
    _budget: std::marker::PhantomData<&'b ()>,
}

impl<R: Read> Read for Tally<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or(&[]);
        self.hash.update(got);
        self.read = self
            .read
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        if self.read > self.left {
            return Err(io::Error::other(
                "the uncompressed layer goes past the size limit",
            ));
        }
        Ok(n)
    }
}

/// One layer entry, read before any of the layer is applied.
struct Member {
    path: Vec<u8>,
    mode: u32,
    owner: Owner,
    kind: MemberKind,
}

enum MemberKind {
    Dir,
    File(Vec<u8>),
    Symlink(Vec<u8>),
    HardLink(Vec<u8>),
    /// `.wh.NAME`: remove NAME from the lower layers.
    Whiteout,
    /// `.wh..wh..opq`: empty this directory of what the lower layers put there.
    Opaque,
}

/// One layer (tar, or gzip'd tar) applied onto an empty tree, within `limits`, with no
/// digest to check it against: what an import does with each layer once its digests are
/// checked (for tools and the fuzz target).
pub fn layer_tree(data: &[u8], limits: Limits) -> Result<Tree> {
    let mut tree = Tree::new();
    let mut budget = Budget {
        used: 0,
        max: limits.max_bytes,
    };
    apply_layer(&mut tree, data, None, "layer", &mut budget)?;
    Ok(tree)
}

/// Applies one layer (tar, or gzip'd tar) onto `tree`; its uncompressed SHA-256 must be
/// `diff_id`.
fn apply_layer(
    tree: &mut Tree,
    data: &[u8],
    diff_id: Option<&str>,
    what: &str,
    budget: &mut Budget,
) -> Result<()> {
    let plain = decompressed(data)?;
    let mut tally = Tally {
        inner: plain,
        hash: digest::Context::new(&digest::SHA256),
        read: 0,
        left: budget.max.saturating_sub(budget.used),
        _budget: std::marker::PhantomData,
    };
    let left = tally.left;
    let members = read_members(&mut tally, left, what)?;
    // The tar's end-of-archive blocks count in the digest.
    io::copy(&mut tally, &mut io::sink())
        .map_err(|e| Error::malformed(what.to_string(), format!("truncated or corrupt: {e}")))?;
    budget.take(tally.read, what)?;
    let actual = contract::hex::encode(tally.hash.finish().as_ref());
    if let Some(diff_id) = diff_id.filter(|d| *d != actual) {
        return Err(Error::mismatch(
            format!("{what} uncompressed digest"),
            format!("sha256:{diff_id} (the config's diff_id)"),
            format!("sha256:{actual}"),
        ));
    }
    // Whiteouts first: they remove what the lower layers had, never this layer's own entries.
    for m in &members {
        match m.kind {
            MemberKind::Whiteout => tree.remove(&m.path),
            MemberKind::Opaque => tree.clear_dir(&m.path),
            _ => {}
        }
    }
    for m in members {
        let at = format!("{what} entry");
        let node = |kind| Node {
            mode: m.mode,
            owner: m.owner,
            kind,
        };
        match m.kind {
            MemberKind::Dir => tree.put(&m.path, node(Kind::Dir), &at)?,
            MemberKind::File(bytes) => {
                tree.put_file(&m.path, m.mode, m.owner, Blob::from(bytes), &at)?
            }
            MemberKind::Symlink(target) => tree.put(&m.path, node(Kind::Symlink(target)), &at)?,
            MemberKind::HardLink(target) => tree.put_hard_link(&m.path, &target, &at)?,
            MemberKind::Whiteout | MemberKind::Opaque => {}
        }
    }
    Ok(())
}

/// Every entry of a layer, checked; `left` is what the size limit still allows.
fn read_members<R: Read>(reader: R, left: u64, what: &str) -> Result<Vec<Member>> {
    let mut archive = tar::Archive::new(reader);
    let corrupt =
        |e: io::Error| Error::malformed(what.to_string(), format!("truncated or corrupt: {e}"));
    let mut members = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let refuse = |why: String| Error::invalid(format!("{what} entry {shown:?}"), why);
        let header = entry.header();
        let kind = header.entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let Some(path) = clean_path(&raw_path).map_err(refuse)? else {
            continue; // the root directory itself
        };
        let mode = header.mode().map_err(corrupt)? & 0o7777;
        let owner = Owner {
            uid: u32::try_from(header.uid().map_err(corrupt)?)
                .map_err(|_| refuse("its uid does not fit 32 bits".into()))?,
            gid: u32::try_from(header.gid().map_err(corrupt)?)
                .map_err(|_| refuse("its gid does not fit 32 bits".into()))?,
        };
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (
                path.get(..i).unwrap_or(&[]).to_vec(),
                path.get(i + 1..).unwrap_or(&[]).to_vec(),
            ),
            None => (Vec::new(), path.clone()),
        };
        if name == b".wh..wh..opq" {
            members.push(Member {
                path: dir,
                mode,
                owner,
                kind: MemberKind::Opaque,
            });
            continue;
        }
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let mut target = dir.clone();
            if !target.is_empty() {
                target.push(b'/');
            }
            target.extend_from_slice(hidden);
            members.push(Member {
                path: target,
                mode,
                owner,
                kind: MemberKind::Whiteout,
            });
            continue;
        }
        let member_kind = if kind.is_dir() {
            MemberKind::Dir
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let size = entry.size();
            if size > left {
                return Err(refuse(format!(
                    "declares {size} bytes, beyond what the image's size limit leaves ({left})"
                )));
            }
            let mut data = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
            entry
                .read_to_end(&mut data)
                .map_err(|e| refuse(format!("truncated or corrupt: {e}")))?;
            MemberKind::File(data)
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| refuse("a symbolic link without a target".into()))?;
            if !link_stays_inside(&path, &target) {
                return Err(refuse(format!(
                    "symbolic link to {:?} leaves the image's root",
                    String::from_utf8_lossy(&target)
                )));
            }
            MemberKind::Symlink(target)
        } else if kind.is_hard_link() {
            let raw = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let target = clean_path(&raw).ok().flatten().ok_or_else(|| {
                refuse(format!(
                    "hard link to {:?}, which is outside the image",
                    String::from_utf8_lossy(&raw)
                ))
            })?;
            MemberKind::HardLink(target)
        } else if kind.is_character_special() || kind.is_block_special() {
            return Err(refuse(
                "a device node; images may not carry them (the kernel's devtmpfs provides /dev)"
                    .into(),
            ));
        } else if kind.is_fifo() {
            return Err(refuse("a FIFO; images may not carry them".into()));
        } else {
            return Err(refuse(format!(
                "tar entry type {:?} is not supported",
                kind.as_byte() as char
            )));
        };
        members.push(Member {
            path,
            mode,
            owner,
            kind: member_kind,
        });
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(clean_path(b"./etc/x/").unwrap(), Some(b"etc/x".to_vec()));
        assert_eq!(clean_path(b"./").unwrap(), None);
        assert!(clean_path(b"/etc").unwrap_err().contains("absolute"));
        assert!(clean_path(b"a/../b").unwrap_err().contains("`..`"));
        assert!(clean_path(b"a//b").is_err());
    }

    #[test]
    fn links_inside_and_out() {
        assert!(link_stays_inside(b"bin/sh", b"busybox"));
        assert!(link_stays_inside(b"usr/bin/x", b"../lib/x"));
        assert!(link_stays_inside(b"a", b"/etc/passwd"));
        assert!(!link_stays_inside(b"a", b"../etc"));
        assert!(!link_stays_inside(b"usr/x", b"../../etc"));
        assert!(link_stays_inside(b"usr/x", b"./../y"));
    }

    #[test]
    fn nitro_cli_command_rules() {
        let c = |cmd: Option<&[&str]>, ep: Option<&[&str]>| Config {
            cmd: cmd.map(|v| v.iter().map(|s| s.to_string()).collect()),
            entrypoint: ep.map(|v| v.iter().map(|s| s.to_string()).collect()),
            env: Some(vec!["PATH=/bin".into()]),
            ..Config::default()
        };
        let (cmd, notes) = c(Some(&["/a", "x"]), Some(&["/e"])).command().unwrap();
        assert_eq!(cmd, ["/a", "x"]);
        assert!(notes[0].contains("runs Cmd alone"));
        assert_eq!(c(None, Some(&["/e"])).command().unwrap().0, ["/e"]);
        assert!(c(None, None)
            .command()
            .unwrap_err()
            .contains("neither Cmd nor Entrypoint"));
        let w = Config {
            working_dir: Some("/app".into()),
            ..c(Some(&["/a"]), None)
        };
        assert!(w.command().unwrap().1[0].contains("WorkingDir /app"));
        let no_env = Config {
            env: None,
            ..c(Some(&["/a"]), None)
        };
        let (cmd, notes) = no_env.command().unwrap();
        assert_eq!(cmd, ["/a"]);
        assert!(notes[0].contains("no Env"), "{notes:?}");
    }
}
