//! Adding a directory tree (`cpio --dir`) with normalized metadata: only names, contents, link targets and the exec bit survive.
//!
//! Directories become 0755; files 0755 if any execute bit is set, else 0644; symlinks 0777
//! with their target unchanged. Owners, timestamps and other mode bits of the tree are ignored,
//! so two checkouts of the same tree give the same archive. Device nodes, FIFOs and sockets
//! are refused: declare device nodes explicitly in a `--list` manifest.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use super::Archive;
use crate::blob::Blob;
use crate::error::{Error, Result};

/// How deep a tree may nest.
const MAX_DEPTH: usize = 256;

/// Adds every entry below `root` (not `root` itself) to `archive`, under `prefix` (e.g. `""` or
/// `"rootfs"`). Entries are visited in bytewise name order.
pub fn add_tree(archive: &mut Archive, root: &Path, prefix: &[u8]) -> Result<()> {
    let meta = fs::metadata(root).map_err(Error::io_at("cannot stat", root))?;
    if !meta.is_dir() {
        return Err(Error::invalid(
            format!("--dir {}", root.display()),
            "is not a directory",
        ));
    }
    let prefix: Vec<u8> = prefix.iter().copied().skip_while(|&b| b == b'/').collect();
    let mut prefix = prefix;
    while prefix.last() == Some(&b'/') {
        prefix.pop();
    }
    if !prefix.is_empty() {
        archive.add_dir(&prefix, 0o755)?;
    }
    walk(archive, root, &prefix, 0)
}

fn walk(archive: &mut Archive, dir: &Path, archive_dir: &[u8], depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::unsupported(
            format!("directory {}", dir.display()),
            format!("nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io_at("cannot list", dir))? {
        let entry = entry.map_err(Error::io_at("cannot list", dir))?;
        children.push(entry.file_name());
    }
    children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in children {
        let source = dir.join(&name);
        let mut path = archive_dir.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        let meta = fs::symlink_metadata(&source).map_err(Error::io_at("cannot stat", &source))?;
        let file_type = meta.file_type();
        if file_type.is_dir() {
            archive.add_dir(&path, 0o755)?;
            walk(archive, &source, &path, depth + 1)?;
        } else if file_type.is_file() {
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            archive.add_file(&path, mode, Blob::Path(source))?;
        } else if file_type.is_symlink() {
            let target =
                fs::read_link(&source).map_err(Error::io_at("cannot read link", &source))?;
            archive.add_symlink(&path, 0o777, target.as_os_str().as_bytes())?;
        } else {
            let kind = if file_type.is_char_device() {
                "character device"
            } else if file_type.is_block_device() {
                "block device"
            } else if file_type.is_fifo() {
                "FIFO"
            } else if file_type.is_socket() {
                "socket"
            } else {
                "special file"
            };
            return Err(Error::invalid(
                format!("{}", source.display()),
                format!("is a {kind}; a --dir tree may hold only directories, files and symlinks (list device nodes in a --list manifest)"),
            ));
        }
    }
    Ok(())
}
