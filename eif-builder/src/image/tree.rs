//! The application's root file system as the image will hold it: built up from a binary and its
//! files, or from a container image's layers, then written under `rootfs/` of the application
//! ramdisk. Nothing here touches the disk: links are stored, never followed.

use std::collections::BTreeMap;

use crate::blob::Blob;
use crate::cpio::{Archive, EntryKind, Owner};
use crate::error::{Error, Result};

/// What an entry is.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file; names sharing an `inode` are hard links of one file.
    File {
        /// Its contents.
        data: Blob,
        /// Which file this is, for hard links.
        inode: u64,
    },
    /// A symbolic link and its target, as stored.
    Symlink(Vec<u8>),
}

/// One entry.
#[derive(Clone, Debug)]
pub struct Node {
    /// Permission bits (at most 0o7777).
    pub mode: u32,
    /// Owner.
    pub owner: Owner,
    /// What it is.
    pub kind: Kind,
}

/// A root file system; paths are relative (`etc/passwd`), already checked by the caller.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<Vec<u8>, Node>,
    next_inode: u64,
}

fn show(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// The strict descendants of `dir` in a sorted map: keys from `dir/` up to `dir0` (`/` + 1).
fn below(dir: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut lo = dir.to_vec();
    lo.push(b'/');
    let mut hi = dir.to_vec();
    hi.push(b'/' + 1);
    (lo, hi)
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// The entry at `path`.
    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every entry, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Node)> {
        self.nodes.iter()
    }

    /// Removes `path` and everything below it; nothing there is not an error (a whiteout may
    /// name what a lower layer never had).
    pub fn remove(&mut self, path: &[u8]) {
        self.nodes.remove(path);
        self.clear_dir(path);
    }

    /// Removes everything below `dir`, keeping `dir` (an opaque directory).
    pub fn clear_dir(&mut self, dir: &[u8]) {
        if dir.is_empty() {
            self.nodes.clear();
            return;
        }
        let (lo, hi) = below(dir);
        let doomed: Vec<Vec<u8>> = self.nodes.range(lo..hi).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Every ancestor of `path` must be a directory; missing ones are created (0755, root),
    /// as container runtimes do. A symbolic link on the way is refused, not followed.
    fn make_parents(&mut self, path: &[u8], what: &str) -> Result<()> {
        let mut end = 0;
        while let Some(slash) = path
            .get(end..)
            .and_then(|r| r.iter().position(|&b| b == b'/'))
        {
            let parent = path.get(..end + slash).unwrap_or(&[]).to_vec();
            match self.nodes.get(&parent).map(|n| &n.kind) {
                Some(Kind::Dir) => {}
                Some(Kind::Symlink(_)) => {
                    return Err(Error::invalid(
                        format!("{what} {}", show(path)),
                        format!(
                            "its parent {} is a symbolic link (links are stored, never followed)",
                            show(&parent)
                        ),
                    ))
                }
                Some(Kind::File { .. }) => {
                    return Err(Error::invalid(
                        format!("{what} {}", show(path)),
                        format!("its parent {} is not a directory", show(&parent)),
                    ))
                }
                None => {
                    self.nodes.insert(
                        parent,
                        Node {
                            mode: 0o755,
                            owner: Owner::default(),
                            kind: Kind::Dir,
                        },
                    );
                }
            }
            end += slash + 1;
        }
        Ok(())
    }

    /// Puts `node` at `path`, replacing what is there; `what` names the source in messages.
    /// A directory over a directory only takes the new mode and owner (its contents stay).
    pub fn put(&mut self, path: &[u8], node: Node, what: &str) -> Result<()> {
        self.make_parents(path, what)?;
        let keep_children = matches!(
            (self.nodes.get(path).map(|n| &n.kind), &node.kind),
            (Some(Kind::Dir), Kind::Dir)
        );
        if !keep_children {
            self.clear_dir(path);
        }
        self.nodes.insert(path.to_vec(), node);
        Ok(())
    }

    /// A new regular file (its own inode).
    pub fn put_file(
        &mut self,
        path: &[u8],
        mode: u32,
        owner: Owner,
        data: Blob,
        what: &str,
    ) -> Result<()> {
        self.next_inode += 1;
        let inode = self.next_inode;
        self.put(
            path,
            Node {
                mode,
                owner,
                kind: Kind::File { data, inode },
            },
            what,
        )
    }

    /// A hard link at `path` to the regular file at `target`.
    pub fn put_hard_link(&mut self, path: &[u8], target: &[u8], what: &str) -> Result<()> {
        let node = match self.nodes.get(target) {
            Some(
                n @ Node {
                    kind: Kind::File { .. },
                    ..
                },
            ) => n.clone(),
            Some(_) => {
                return Err(Error::invalid(
                    format!("{what} {}", show(path)),
                    format!("hard link to {}, which is not a regular file", show(target)),
                ))
            }
            None => {
                return Err(Error::invalid(
                    format!("{what} {}", show(path)),
                    format!(
                        "hard link to {}, which is not in the image before it",
                        show(target)
                    ),
                ))
            }
        };
        if path == target {
            return Ok(());
        }
        self.put(path, node, what)
    }

    /// Adds every entry under `prefix` (e.g. `rootfs`) to `archive`. Names of one file beyond
    /// its first (in path order) become hard links to the first.
    pub fn add_to(&self, archive: &mut Archive, prefix: &[u8]) -> Result<()> {
        let mut first_name: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for (path, node) in &self.nodes {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(path);
            let kind = match &node.kind {
                Kind::Dir => EntryKind::Directory,
                Kind::Symlink(target) => EntryKind::Symlink(target.clone()),
                Kind::File { data, inode } => match first_name.get(inode) {
                    Some(first) => EntryKind::HardLink(first.clone()),
                    None => {
                        first_name.insert(*inode, full.clone());
                        EntryKind::File(data.clone())
                    }
                },
            };
            archive.add_owned(&full, node.mode, node.owner, kind)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(t: &mut Tree, p: &str, data: &str) {
        t.put_file(
            p.as_bytes(),
            0o644,
            Owner::default(),
            Blob::from(data.as_bytes()),
            "test",
        )
        .unwrap();
    }

    #[test]
    fn layers_replace_remove_and_clear() {
        let mut t = Tree::new();
        file(&mut t, "etc/a", "1");
        file(&mut t, "etc/b", "2");
        assert!(matches!(t.get(b"etc").unwrap().kind, Kind::Dir));
        // A directory re-declared keeps its contents and takes the new mode.
        t.put(
            b"etc",
            Node {
                mode: 0o700,
                owner: Owner { uid: 1, gid: 2 },
                kind: Kind::Dir,
            },
            "test",
        )
        .unwrap();
        assert_eq!(t.get(b"etc").unwrap().mode, 0o700);
        assert!(t.get(b"etc/a").is_some());
        t.remove(b"etc/a");
        assert!(t.get(b"etc/a").is_none());
        t.clear_dir(b"etc");
        assert!(t.get(b"etc/b").is_none() && t.get(b"etc").is_some());
        // A file over a directory removes the directory's contents.
        file(&mut t, "etc/c", "3");
        file(&mut t, "etc", "now a file");
        assert!(t.get(b"etc/c").is_none());
        // "etcx" sorts inside etc's range only if the bound is wrong.
        file(&mut t, "d/x", "1");
        file(&mut t, "d0", "keep");
        t.remove(b"d");
        assert!(t.get(b"d0").is_some());
    }

    #[test]
    fn links_are_never_followed() {
        let mut t = Tree::new();
        t.put(
            b"lib",
            Node {
                mode: 0o777,
                owner: Owner::default(),
                kind: Kind::Symlink(b"/usr/lib".to_vec()),
            },
            "test",
        )
        .unwrap();
        let e = t
            .put_file(
                b"lib/x",
                0o644,
                Owner::default(),
                Blob::from(&b""[..]),
                "entry",
            )
            .unwrap_err();
        assert!(e.to_string().contains("/lib is a symbolic link"), "{e}");
        assert!(t.put_hard_link(b"h", b"lib", "entry").is_err());
        assert!(t
            .put_hard_link(b"h", b"missing", "entry")
            .unwrap_err()
            .to_string()
            .contains("not in the image before it"));
    }

    #[test]
    fn hard_links_become_one_inode_in_the_archive() {
        let mut t = Tree::new();
        file(&mut t, "z", "data");
        t.put_hard_link(b"a", b"z", "entry").unwrap();
        // The original goes away; the link keeps the data.
        file(&mut t, "y", "other");
        t.put_hard_link(b"b", b"y", "entry").unwrap();
        t.remove(b"y");
        let mut archive = Archive::new(0);
        t.add_to(&mut archive, b"rootfs").unwrap();
        let bytes = archive.to_bytes().unwrap();
        let entries = crate::cpio::reader::read_cpio(&bytes).unwrap();
        let find = |n: &str| entries.iter().find(|e| e.name == n.as_bytes()).unwrap();
        let (a, z, b) = (find("rootfs/a"), find("rootfs/z"), find("rootfs/b"));
        assert_eq!(a.ino, z.ino);
        assert_eq!((a.nlink, z.nlink), (2, 2));
        assert_eq!((a.data, z.data), (&b"data"[..], &b""[..]));
        assert_eq!((b.nlink, b.data), (1, &b"other"[..]));
    }
}
