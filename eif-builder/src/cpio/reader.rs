//! A bounded newc reader for checking archives: never panics, never allocates by an untrusted size.

use crate::error::{Error, Result};

use super::{HEADER_LEN, MAGIC, MAX_PATH_LEN, TRAILER};

/// One entry of a parsed archive, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpioEntry<'a> {
    /// Name without its NUL.
    pub name: &'a [u8],
    /// Inode number.
    pub ino: u32,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time.
    pub mtime: u32,
    /// Device major (of the file system).
    pub devmajor: u32,
    /// Device minor.
    pub devminor: u32,
    /// Device major of a device node.
    pub rdevmajor: u32,
    /// Device minor of a device node.
    pub rdevminor: u32,
    /// Contents (file data or symlink target).
    pub data: &'a [u8],
}

fn bad(offset: usize, detail: impl Into<String>) -> Error {
    Error::malformed(format!("cpio archive at byte {offset}"), detail)
}

/// A header field: 8 hex digits, a big-endian u32.
fn hex_field(bytes: &[u8], offset: usize, name: &str) -> Result<u32> {
    if bytes.len() != 8 {
        return Err(bad(offset, format!("{name} is truncated")));
    }
    let not_hex = || bad(offset, format!("{name} is not 8 hex digits"));
    let text = std::str::from_utf8(bytes).map_err(|_| not_hex())?;
    let be: [u8; 4] = contract::hex::decode(text)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(not_hex)?;
    Ok(u32::from_be_bytes(be))
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Parses every entry of a newc archive up to and excluding `TRAILER!!!`.
///
/// Checks the magic and hex digits of each header, that each name fits its `namesize`
/// (1..=4096, NUL-terminated, no other NUL), that data fits the input, and that the trailer is
/// present; data after the trailer is ignored (padding). Memory used is one small record per
/// entry, each at least 112 input bytes, so it is bounded by the input size.
pub fn read_cpio(data: &[u8]) -> Result<Vec<CpioEntry<'_>>> {
    let mut entries = Vec::new();
    let mut pos: usize = 0;
    loop {
        let header = pos
            .checked_add(HEADER_LEN)
            .and_then(|end| data.get(pos..end))
            .ok_or_else(|| bad(pos, "truncated header (no TRAILER!!! entry?)"))?;
        let (magic, rest) = header
            .split_at_checked(6)
            .ok_or_else(|| bad(pos, "truncated header"))?;
        if magic != MAGIC {
            return Err(bad(
                pos,
                "bad magic (expected 070701, newc without checksums)",
            ));
        }
        let mut fields = [0u32; 13];
        const NAMES: [&str; 13] = [
            "c_ino",
            "c_mode",
            "c_uid",
            "c_gid",
            "c_nlink",
            "c_mtime",
            "c_filesize",
            "c_devmajor",
            "c_devminor",
            "c_rdevmajor",
            "c_rdevminor",
            "c_namesize",
            "c_check",
        ];
        for ((slot, chunk), name) in fields.iter_mut().zip(rest.chunks(8)).zip(NAMES) {
            *slot = hex_field(chunk, pos, name)?;
        }
        let [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, _check] =
            fields;
        let namesize = usize::try_from(namesize).unwrap_or(usize::MAX);
        if namesize == 0 || namesize > MAX_PATH_LEN + 1 {
            return Err(bad(
                pos,
                format!("c_namesize {namesize} is outside 1..=4096"),
            ));
        }
        let name_start = pos + HEADER_LEN;
        let name_with_nul = name_start
            .checked_add(namesize)
            .and_then(|end| data.get(name_start..end))
            .ok_or_else(|| bad(pos, "name runs past the end of the archive"))?;
        let (&nul, name) = name_with_nul
            .split_last()
            .ok_or_else(|| bad(pos, "empty name"))?;
        if nul != 0 || name.contains(&0) {
            return Err(bad(pos, "name is not NUL-terminated or contains NUL"));
        }
        let data_start =
            align4(name_start + namesize).ok_or_else(|| bad(pos, "offset overflow"))?;
        let size = usize::try_from(filesize).unwrap_or(usize::MAX);
        let contents = data_start
            .checked_add(size)
            .and_then(|end| data.get(data_start..end))
            .ok_or_else(|| {
                bad(
                    pos,
                    format!("c_filesize {filesize} runs past the end of the archive"),
                )
            })?;
        if name == TRAILER.as_bytes() {
            return Ok(entries);
        }
        entries.push(CpioEntry {
            name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            devmajor,
            devminor,
            rdevmajor,
            rdevminor,
            data: contents,
        });
        pos = align4(data_start + size).ok_or_else(|| bad(pos, "offset overflow"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::Archive;

    fn sample() -> Vec<u8> {
        let mut a = Archive::new(7);
        a.add_file("/etc/motd", 0o644, b"hi\n".to_vec().into())
            .unwrap();
        a.add_char_device("/dev/console", 0o600, 5, 1).unwrap();
        a.add_symlink("/bin/sh", 0o777, "busybox").unwrap();
        a.to_bytes().unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let entries = read_cpio(&bytes).unwrap();
        let names: Vec<&[u8]> = entries.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                &b"bin"[..],
                b"bin/sh",
                b"dev",
                b"dev/console",
                b"etc",
                b"etc/motd"
            ]
        );
        assert!(entries
            .iter()
            .enumerate()
            .all(|(i, e)| usize::try_from(e.ino).unwrap() == i + 1));
        assert!(entries
            .iter()
            .all(|e| e.uid == 0 && e.gid == 0 && e.mtime == 7));
        assert_eq!(entries[1].data, b"busybox");
        assert_eq!((entries[3].rdevmajor, entries[3].rdevminor), (5, 1));
        assert_eq!(entries[5].data, b"hi\n");
    }

    #[test]
    fn every_truncation_and_flip_is_handled() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(read_cpio(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut flipped = bytes.clone();
                flipped[i] ^= bit;
                let _ = read_cpio(&flipped);
            }
        }
    }

    #[test]
    fn hostile_sizes() {
        let mut h = b"070701".to_vec();
        for v in [1u32, 0o100644, 0, 0, 1, 0, 0xFFFF_FFFF, 0, 0, 0, 0, 2, 0] {
            h.extend_from_slice(format!("{v:08X}").as_bytes());
        }
        h.extend_from_slice(b"a\0");
        assert!(read_cpio(&h).is_err());
        let mut big_name = h.clone();
        big_name[94..102].copy_from_slice(b"FFFFFFFF");
        assert!(read_cpio(&big_name).is_err());
        let mut zero_name = h;
        zero_name[94..102].copy_from_slice(b"00000000");
        assert!(read_cpio(&zero_name).is_err());
    }
}
