//! One layer of a container image: its entries read and checked (paths, links, kinds, sizes)
//! before any is applied, then applied onto the root file system: whiteouts and opaque
//! directories first, then the entries, links stored and never followed.

use std::io::{self, Read};

use aws_lc_rs::digest;

use super::compression::decompressed;
use super::{Budget, Limits};
use crate::blob::Blob;
use crate::cpio::Owner;
use crate::error::{Error, Result};
use crate::image::tree::{Kind, Node, Tree};

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
pub(super) fn apply_layer(
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
}
