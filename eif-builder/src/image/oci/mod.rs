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

mod compression;
pub mod layer;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use aws_lc_rs::digest;
use serde_json::Value;

use super::tree::Tree;
use crate::error::{Error, Result};
use compression::decompressed;
pub use layer::layer_tree;
use layer::{apply_layer, clean_path};

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

impl Store<'_> {
    /// Reads `name` (at most `cap` bytes); a tarball's member is lent, not copied.
    fn read(&self, name: &str, cap: u64, what: &str) -> Result<Cow<'_, [u8]>> {
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
                std::fs::read(&path)
                    .map(Cow::Owned)
                    .map_err(Error::io_at("cannot read", &path))
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
                Ok(Cow::Borrowed(data))
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

fn json(bytes: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::malformed(what.to_string(), format!("not JSON: {e}")))
}

/// A descriptor's blob: declared size within the limit, then read, size and SHA-256 checked.
fn blob<'s>(
    store: &'s Store<'_>,
    desc: &Value,
    cap: u64,
    what: &str,
    budget: &mut Budget,
) -> Result<Cow<'s, [u8]>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
