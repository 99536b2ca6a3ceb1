//! Deterministic cpio "newc" archives (the initramfs format): the entry model and the writer.
//!
//! Same entries in, same bytes out, whatever the file system, umask or clock:
//!
//! * entries are written sorted bytewise by path, which puts every directory before its
//!   contents; missing parent directories are created with mode 0755;
//! * uid and gid are 0, every mtime is one fixed value, inode numbers run 1, 2, 3… in output
//!   order, nlink is 2 for directories and 1 otherwise, dev/rdev are 0 except a character
//!   device's rdev;
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
}

#[derive(Clone, Debug)]
struct Node {
    mode: u32,
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
        if target.is_empty() || target.contains(&0) || target.len() > MAX_PATH_LEN {
            return Err(Error::invalid(
                format!("cpio symlink {}", show(path)),
                format!("target {} is empty, too long or contains NUL", show(target)),
            ));
        }
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
                        kind,
                        implicit: false,
                    },
                );
                Ok(())
            }
        }
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
        let mut ino: u32 = 0;
        for (path, node) in &self.entries {
            ino = ino
                .checked_add(1)
                .ok_or_else(|| Error::unsupported("cpio archive", "more than 2^32 entries"))?;
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
                    (S_IFREG, 1, size, (0, 0))
                }
                EntryKind::Symlink(target) => (
                    S_IFLNK,
                    1,
                    u32::try_from(target.len()).unwrap_or(u32::MAX),
                    (0, 0),
                ),
                EntryKind::CharDevice { major, minor } => (S_IFCHR, 1, 0, (*major, *minor)),
            };
            let header = Header {
                ino,
                mode: type_bits | node.mode,
                nlink,
                mtime: self.mtime,
                filesize: size,
                rdevmajor: rdev.0,
                rdevminor: rdev.1,
            };
            emit(&header.encode(path)?)?;
            match &node.kind {
                EntryKind::File(blob) => {
                    blob.stream(u64::from(size), &mut emit)?;
                }
                EntryKind::Symlink(target) => emit(target)?,
                EntryKind::Directory | EntryKind::CharDevice { .. } => {}
            }
            emit(padding(u64::from(size)))?;
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
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

struct Header {
    ino: u32,
    mode: u32,
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
            0, // uid
            0, // gid
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
