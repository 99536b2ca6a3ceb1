//! Deterministic cpio "newc" archives (the initramfs format): the entry model and the writer.
//!
//! Same entries in, same bytes out, whatever the file system, umask or clock:
//!
//! * entries are written sorted bytewise by path, which puts every directory before its
//!   contents; missing parent directories are created with mode 0755;
//! * uid and gid are 0 unless an entry was added with an owner (an imported container image
//!   keeps its files' owners), every mtime is one fixed value, inode numbers run 1, 2, 3… in
//!   output order, nlink is 2 for directories and 1 otherwise, dev/rdev are 0 except a
//!   character device's rdev;
//! * hard links share their target's inode number and nlink counts them all; the first of
//!   them in output order carries the data, the others none (the kernel's initramfs unpacker
//!   links the later names to the first);
//! * names have no leading `/` and end in a NUL; header+name and data are each padded to 4
//!   bytes; the archive ends with a `TRAILER!!!` entry and no further padding.
//!
//! The archive is uncompressed on purpose: no gzip timestamps, and the kernel needs no
//! decompression memory.

pub mod list;
pub mod reader;
pub mod tree;

use std::collections::BTreeMap;
use std::io::Write;

use crate::blob::Blob;
use crate::error::{Error, Result};

/// newc magic.
pub const MAGIC: &[u8; 6] = b"070701";
/// Size of a newc header.
pub const HEADER_LEN: usize = 110;
/// Name of the final entry.
pub const TRAILER: &str = "TRAILER!!!";
/// Longest path we accept, in bytes (Linux's PATH_MAX without its NUL).
pub const MAX_PATH_LEN: usize = 4095;

/// File-type bits of `c_mode`.
pub const S_IFDIR: u32 = 0o040_000;
/// Regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// Character device.
pub const S_IFCHR: u32 = 0o020_000;
/// Mask of the type bits.
pub const S_IFMT: u32 = 0o170_000;

/// What an entry is.
#[derive(Clone, Debug)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file with these contents.
    File(Blob),
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
    /// A character device node.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A hard link to the regular file at this (archive) path, which must be in the archive
    /// by the time it is written.
    HardLink(Vec<u8>),
}

/// An entry's owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// For each hard-linked file, its number of names; for each hard link, the file it names.
type LinkGroups<'a> = (BTreeMap<&'a [u8], u32>, BTreeMap<&'a [u8], &'a Node>);

#[derive(Clone, Debug)]
struct Node {
    mode: u32,
    owner: Owner,
    kind: EntryKind,
    /// Created as a missing parent rather than declared.
    implicit: bool,
}

/// A set of entries to be written as one archive.
#[derive(Clone, Debug)]
pub struct Archive {
    entries: BTreeMap<Vec<u8>, Node>,
    mtime: u32,
}

fn show(path: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(path))
}

/// Checks and normalizes a path: leading `/`s dropped; no empty, `.` or `..` component; no NUL.
pub fn normalize_path(path: &[u8]) -> Result<Vec<u8>> {
    let what = || format!("cpio path {}", show(path));
    if path.contains(&0) {
        return Err(Error::invalid(what(), "contains a NUL byte"));
    }
    let trimmed = match path.iter().position(|&b| b != b'/') {
        Some(start) => path.get(start..).unwrap_or(&[]),
        None => return Err(Error::invalid(what(), "is empty or the root directory")),
    };
    for component in trimmed.split(|&b| b == b'/') {
        match component {
            b"" => {
                return Err(Error::invalid(
                    what(),
                    "has an empty component (`//` or a trailing `/`)",
                ))
            }
            b"." => return Err(Error::invalid(what(), "has a `.` component")),
            b".." => return Err(Error::invalid(what(), "has a `..` component")),
            _ => {}
        }
    }
    if trimmed.len() > MAX_PATH_LEN {
        return Err(Error::invalid(
            what(),
            format!("is longer than {MAX_PATH_LEN} bytes"),
        ));
    }
    Ok(trimmed.to_vec())
}

fn check_link_target(path: &[u8], target: &[u8]) -> Result<()> {
    if target.is_empty() || target.contains(&0) || target.len() > MAX_PATH_LEN {
        return Err(Error::invalid(
            format!("cpio symlink {}", show(path)),
            format!("target {} is empty, too long or contains NUL", show(target)),
        ));
    }
    Ok(())
}

fn check_mode(path: &[u8], mode: u32) -> Result<()> {
    if mode > 0o7777 {
        return Err(Error::invalid(
            format!("cpio entry {}", show(path)),
            format!("mode {mode:o} has bits beyond 7777"),
        ));
    }
    Ok(())
}

impl Archive {
    /// An empty archive whose entries will all carry `mtime` (seconds since the epoch).
    pub fn new(mtime: u32) -> Self {
        Archive {
            entries: BTreeMap::new(),
            mtime,
        }
    }

    /// Number of entries (including created parents, excluding the trailer).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a directory. Declaring a directory that was created implicitly as a parent sets its
    /// mode; declaring it twice is an error.
    pub fn add_dir(&mut self, path: impl AsRef<[u8]>, mode: u32) -> Result<()> {
        self.insert(path.as_ref(), mode, EntryKind::Directory)
    }

    /// Adds any entry with an owner. A symlink's target and a hard link's target are checked as
    /// [`Archive::add_symlink`] and [`normalize_path`] check them.
    pub fn add_owned(
        &mut self,
        path: impl AsRef<[u8]>,
        mode: u32,
        owner: Owner,
        kind: EntryKind,
    ) -> Result<()> {
        let path = path.as_ref();
        let kind = match kind {
            EntryKind::Symlink(target) => {
                check_link_target(path, &target)?;
                EntryKind::Symlink(target)
            }
            EntryKind::HardLink(target) => EntryKind::HardLink(normalize_path(&target)?),
            other => other,
        };
        self.insert(path, mode, kind)?;
        let key = normalize_path(path)?;
        if let Some(node) = self.entries.get_mut(&key) {
            node.owner = owner;
        }
        Ok(())
    }

    /// Adds a regular file.
    pub fn add_file(&mut self, path: impl AsRef<[u8]>, mode: u32, contents: Blob) -> Result<()> {
        self.insert(path.as_ref(), mode, EntryKind::File(contents))
    }

    /// Adds a symbolic link.
    pub fn add_symlink(
        &mut self,
        path: impl AsRef<[u8]>,
        mode: u32,
        target: impl AsRef<[u8]>,
    ) -> Result<()> {
        let target = target.as_ref();
        let path = path.as_ref();
        check_link_target(path, target)?;
        self.insert(path, mode, EntryKind::Symlink(target.to_vec()))
    }

    /// Adds a character device node (e.g. `/dev/console`, 5:1).
    pub fn add_char_device(
        &mut self,
        path: impl AsRef<[u8]>,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<()> {
        self.insert(path.as_ref(), mode, EntryKind::CharDevice { major, minor })
    }

    fn insert(&mut self, path: &[u8], mode: u32, kind: EntryKind) -> Result<()> {
        let path = normalize_path(path)?;
        check_mode(&path, mode)?;
        // Every ancestor must be a directory; create the missing ones.
        let mut end = 0;
        while let Some(slash) = path
            .get(end..)
            .and_then(|rest| rest.iter().position(|&b| b == b'/'))
        {
            let parent = path.get(..end + slash).unwrap_or(&[]).to_vec();
            match self.entries.get(&parent) {
                Some(Node {
                    kind: EntryKind::Directory,
                    ..
                }) => {}
                Some(_) => {
                    return Err(Error::invalid(
                        format!("cpio path {}", show(&path)),
                        format!("its parent {} is not a directory", show(&parent)),
                    ))
                }
                None => {
                    self.entries.insert(
                        parent,
                        Node {
                            mode: 0o755,
                            owner: Owner::default(),
                            kind: EntryKind::Directory,
                            implicit: true,
                        },
                    );
                }
            }
            end += slash + 1;
        }
        match self.entries.get_mut(&path) {
            Some(existing) if existing.implicit && matches!(kind, EntryKind::Directory) => {
                existing.mode = mode;
                existing.implicit = false;
                Ok(())
            }
            Some(_) => Err(Error::invalid(
                format!("cpio path {}", show(&path)),
                "is listed twice",
            )),
            None => {
                self.entries.insert(
                    path,
                    Node {
                        mode,
                        owner: Owner::default(),
                        kind,
                        implicit: false,
                    },
                );
                Ok(())
            }
        }
    }

    /// Hard-link groups: for every regular file that hard links point at, its path and the
    /// number of names it has; and for every hard link, the file it names.
    fn link_groups(&self) -> Result<LinkGroups<'_>> {
        let mut names: BTreeMap<&[u8], u32> = BTreeMap::new();
        let mut targets = BTreeMap::new();
        for (path, node) in &self.entries {
            if let EntryKind::HardLink(target) = &node.kind {
                let file = match self.entries.get(target) {
                    Some(
                        file @ Node {
                            kind: EntryKind::File(_),
                            ..
                        },
                    ) => file,
                    Some(_) => {
                        return Err(Error::invalid(
                            format!("cpio hard link {}", show(path)),
                            format!("its target {} is not a regular file", show(target)),
                        ))
                    }
                    None => {
                        return Err(Error::invalid(
                            format!("cpio hard link {}", show(path)),
                            format!("its target {} is not in the archive", show(target)),
                        ))
                    }
                };
                let count = names.entry(target.as_slice()).or_insert(1);
                *count = count.saturating_add(1);
                targets.insert(path.as_slice(), file);
            }
        }
        Ok((names, targets))
    }

    /// Writes the archive; returns the number of bytes written.
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<u64> {
        let mut written: u64 = 0;
        let mut emit = |bytes: &[u8]| -> Result<()> {
            out.write_all(bytes)
                .map_err(|e| Error::io("cannot write cpio archive", None, e))?;
            written = written.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
            Ok(())
        };
        let (link_counts, link_targets) = self.link_groups()?;
        // The inode of each hard-linked file, once its first name is written; whether its data
        // has been written.
        let mut group_ino: BTreeMap<&[u8], (u32, bool)> = BTreeMap::new();
        let mut ino: u32 = 0;
        for (path, node) in &self.entries {
            // A hard link is written as its target: same mode, owner and data.
            let (group, node) = match &node.kind {
                EntryKind::HardLink(target) => (
                    Some(target.as_slice()),
                    link_targets.get(path.as_slice()).copied().unwrap_or(node),
                ),
                _ if link_counts.contains_key(path.as_slice()) => (Some(path.as_slice()), node),
                _ => (None, node),
            };
            let (this_ino, carries_data) = match group {
                Some(g) => match group_ino.get_mut(g) {
                    Some((i, done)) => (*i, !std::mem::replace(done, true)),
                    None => {
                        ino = next_ino(ino)?;
                        group_ino.insert(g, (ino, true));
                        (ino, true)
                    }
                },
                None => {
                    ino = next_ino(ino)?;
                    (ino, true)
                }
            };
            let links = group.and_then(|g| link_counts.get(g)).copied().unwrap_or(1);
            let (type_bits, nlink, size, rdev) = match &node.kind {
                EntryKind::Directory => (S_IFDIR, 2, 0, (0, 0)),
                EntryKind::File(blob) => {
                    let len = blob.len()?;
                    let size = u32::try_from(len).map_err(|_| {
                        Error::unsupported(
                            format!("cpio file {}", show(path)),
                            format!("{len} bytes; newc cannot hold 4 GiB or more"),
                        )
                    })?;
                    (S_IFREG, links, if carries_data { size } else { 0 }, (0, 0))
                }
                EntryKind::Symlink(target) => (
                    S_IFLNK,
                    1,
                    u32::try_from(target.len()).unwrap_or(u32::MAX),
                    (0, 0),
                ),
                EntryKind::CharDevice { major, minor } => (S_IFCHR, 1, 0, (*major, *minor)),
                // Resolved to its target above; a link to a link was refused by link_groups.
                EntryKind::HardLink(_) => (S_IFREG, links, 0, (0, 0)),
            };
            let header = Header {
                ino: this_ino,
                mode: type_bits | node.mode,
                uid: node.owner.uid,
                gid: node.owner.gid,
                nlink,
                mtime: self.mtime,
                filesize: size,
                rdevmajor: rdev.0,
                rdevminor: rdev.1,
            };
            emit(&header.encode(path)?)?;
            match &node.kind {
                EntryKind::File(blob) if size > 0 => {
                    blob.stream(u64::from(size), &mut emit)?;
                }
                EntryKind::Symlink(target) => emit(target)?,
                _ => {}
            }
            emit(padding(u64::from(size)))?;
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdevmajor: 0,
            rdevminor: 0,
        };
        emit(&trailer.encode(TRAILER.as_bytes())?)?;
        Ok(written)
    }

    /// The archive in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }
}

/// Zero bytes that pad `len` up to a multiple of 4.
fn padding(len: u64) -> &'static [u8] {
    const ZEROS: [u8; 3] = [0; 3];
    let n = usize::from((4 - (len % 4).to_le_bytes()[0]) % 4);
    ZEROS.get(..n).unwrap_or(&[])
}

fn next_ino(ino: u32) -> Result<u32> {
    ino.checked_add(1)
        .ok_or_else(|| Error::unsupported("cpio archive", "more than 2^32 entries"))
}

struct Header {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    rdevmajor: u32,
    rdevminor: u32,
}

impl Header {
    /// Header, name, NUL and padding to 4 bytes.
    fn encode(&self, name: &[u8]) -> Result<Vec<u8>> {
        let namesize = u32::try_from(name.len() + 1)
            .map_err(|_| Error::unsupported("cpio name", "longer than 2^32 bytes"))?;
        let fields = [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.filesize,
            0, // devmajor
            0, // devminor
            self.rdevmajor,
            self.rdevminor,
            namesize,
            0, // check
        ];
        let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 4);
        out.extend_from_slice(MAGIC);
        for field in fields {
            out.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        out.extend_from_slice(name);
        out.push(0);
        let len = u64::try_from(out.len()).unwrap_or(0);
        out.extend_from_slice(padding(len));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for bad in [
            "", "/", "//", "a//b", "a/", "./a", "a/./b", "a/..", "../a", "a\0b",
        ] {
            assert!(normalize_path(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert_eq!(normalize_path(b"/dev/console").unwrap(), b"dev/console");
        assert_eq!(normalize_path(b"//init").unwrap(), b"init");
        assert_eq!(normalize_path(b"a/..b/c.").unwrap(), b"a/..b/c.");
        assert!(normalize_path(&[b'a'; MAX_PATH_LEN + 1]).is_err());
    }

    #[test]
    fn tree_rules() {
        let mut a = Archive::new(0);
        a.add_file("/bin/tool", 0o755, Blob::from(b"x".to_vec()))
            .unwrap();
        // The implicit parent may be declared once, setting its mode...
        a.add_dir("/bin", 0o700).unwrap();
        // ...but not twice.
        assert!(a.add_dir("/bin", 0o700).is_err());
        assert!(a
            .add_file("/bin/tool", 0o644, Blob::from(b"y".to_vec()))
            .is_err());
        // A file cannot be a parent, nor replace a directory.
        assert!(a
            .add_file("/bin/tool/x", 0o644, Blob::from(b"y".to_vec()))
            .is_err());
        assert!(a
            .add_file("/bin", 0o644, Blob::from(b"y".to_vec()))
            .is_err());
        assert!(a.add_dir("/x", 0o10000).is_err());
        assert!(a.add_symlink("/l", 0o777, "").is_err());
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn exact_bytes_of_a_small_archive() {
        let mut a = Archive::new(0x5f5e_1000);
        a.add_char_device("/dev/console", 0o600, 5, 1).unwrap();
        a.add_file("/init", 0o755, Blob::from(b"hello".to_vec()))
            .unwrap();
        a.add_symlink("/sh", 0o777, "init").unwrap();
        let bytes = a.to_bytes().unwrap();
        let mut want = Vec::new();
        let mut entry = |fields: [u32; 13], name: &str, data: &[u8]| {
            want.extend_from_slice(b"070701");
            for f in fields {
                want.extend_from_slice(format!("{f:08X}").as_bytes());
            }
            want.extend_from_slice(name.as_bytes());
            want.push(0);
            while want.len() % 4 != 0 {
                want.push(0);
            }
            want.extend_from_slice(data);
            while want.len() % 4 != 0 {
                want.push(0);
            }
        };
        let t = 0x5f5e_1000;
        entry([1, 0o40755, 0, 0, 2, t, 0, 0, 0, 0, 0, 4, 0], "dev", b"");
        entry(
            [2, 0o20600, 0, 0, 1, t, 0, 0, 0, 5, 1, 12, 0],
            "dev/console",
            b"",
        );
        entry(
            [3, 0o100755, 0, 0, 1, t, 5, 0, 0, 0, 0, 5, 0],
            "init",
            b"hello",
        );
        entry(
            [4, 0o120777, 0, 0, 1, t, 4, 0, 0, 0, 0, 3, 0],
            "sh",
            b"init",
        );
        entry([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0], "TRAILER!!!", b"");
        assert_eq!(bytes, want);
        assert_eq!(bytes.len() % 4, 0);
    }
}
