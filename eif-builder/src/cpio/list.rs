//! The ramdisk manifest (`cpio --list`): one entry per line, in the spirit of the kernel's gen_init_cpio.
//!
//! ```text
//! # comment; blank lines are ignored
//! dir   /dev                 0755
//! file  /init   ${INIT}      0755        # source path, relative to this file's directory
//! nod   /dev/console 0600 c 5 1          # character devices only
//! slink /bin/sh busybox      0777
//! ```
//!
//! Fields are separated by spaces or tabs; modes are octal; `${NAME}` is replaced by the value
//! given with `--define NAME=VALUE` (an undefined name is an error). Unlike gen_init_cpio there
//! are no uid/gid fields: everything belongs to root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Archive;
use crate::blob::Blob;
use crate::error::{Error, Result};

/// Largest manifest we read.
const MAX_LIST_LEN: u64 = 16 * 1024 * 1024;

/// One parsed manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListEntry {
    /// `dir PATH MODE`
    Dir {
        /// Path in the archive.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// `file PATH SOURCE MODE`
    File {
        /// Path in the archive.
        path: String,
        /// Where the contents come from (resolved against the manifest's directory).
        source: PathBuf,
        /// Permission bits.
        mode: u32,
    },
    /// `nod PATH MODE c MAJOR MINOR`
    CharDevice {
        /// Path in the archive.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// `slink PATH TARGET MODE`
    Symlink {
        /// Path in the archive.
        path: String,
        /// Link target, stored as given.
        target: String,
        /// Permission bits.
        mode: u32,
    },
}

/// Replaces every `${NAME}` in `token` by its `--define` (the image manifest's paths use it
/// too).
pub fn substitute(
    token: &str,
    defines: &BTreeMap<String, String>,
) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = token;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or(""));
        let after = rest.get(start + 2..).unwrap_or("");
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{token}`"))?;
        let name = after.get(..end).unwrap_or("");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad variable name `${{{name}}}`"));
        }
        let value = defines
            .get(name)
            .ok_or_else(|| format!("`${{{name}}}` is not defined (use --define {name}=VALUE)"))?;
        out.push_str(value);
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

fn mode(field: &str) -> std::result::Result<u32, String> {
    match u32::from_str_radix(field, 8) {
        Ok(m) if m <= 0o7777 && !field.starts_with('+') => Ok(m),
        _ => Err(format!("bad mode `{field}` (expected octal, at most 7777)")),
    }
}

fn number(field: &str, what: &str) -> std::result::Result<u32, String> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} `{field}` (expected a decimal number)"));
    }
    field
        .parse()
        .map_err(|_| format!("bad {what} `{field}` (too large)"))
}

fn parse_line(fields: &[String], base_dir: &Path) -> std::result::Result<ListEntry, String> {
    let arity = |n: usize, usage: &str| {
        if fields.len() == n {
            Ok(())
        } else {
            Err(format!(
                "`{}` takes {} fields, found {}: expected `{usage}`",
                fields.first().map_or("", String::as_str),
                n - 1,
                fields.len().saturating_sub(1)
            ))
        }
    };
    let f = |i: usize| fields.get(i).map_or("", String::as_str);
    match f(0) {
        "dir" => {
            arity(3, "dir PATH MODE")?;
            Ok(ListEntry::Dir {
                path: f(1).to_string(),
                mode: mode(f(2))?,
            })
        }
        "file" => {
            arity(4, "file PATH SOURCE MODE")?;
            Ok(ListEntry::File {
                path: f(1).to_string(),
                source: base_dir.join(f(2)),
                mode: mode(f(3))?,
            })
        }
        "nod" => {
            arity(6, "nod PATH MODE c MAJOR MINOR")?;
            if f(3) != "c" {
                return Err(format!(
                    "bad device type `{}`: only character devices (`c`) are supported",
                    f(3)
                ));
            }
            Ok(ListEntry::CharDevice {
                path: f(1).to_string(),
                mode: mode(f(2))?,
                major: number(f(4), "major number")?,
                minor: number(f(5), "minor number")?,
            })
        }
        "slink" => {
            arity(4, "slink PATH TARGET MODE")?;
            Ok(ListEntry::Symlink {
                path: f(1).to_string(),
                target: f(2).to_string(),
                mode: mode(f(3))?,
            })
        }
        other => Err(format!(
            "unknown directive `{other}` (expected dir, file, nod or slink)"
        )),
    }
}

/// Parses manifest `text`; `file` names the manifest in errors, and relative sources are
/// resolved against `base_dir`. Returns each entry with its line number.
pub fn parse_list(
    text: &str,
    file: &Path,
    base_dir: &Path,
    defines: &BTreeMap<String, String>,
) -> Result<Vec<(usize, ListEntry)>> {
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let err = |detail: String| Error::List {
            file: file.to_path_buf(),
            line,
            detail,
        };
        let content = raw.split('#').next().unwrap_or("");
        let fields: Vec<&str> = content.split_ascii_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let fields = fields
            .iter()
            .map(|f| substitute(f, defines))
            .collect::<std::result::Result<Vec<String>, String>>()
            .map_err(err)?;
        entries.push((line, parse_line(&fields, base_dir).map_err(err)?));
    }
    Ok(entries)
}

/// Adds parsed entries to `archive`; an entry the archive refuses is reported at its line.
pub fn add_entries(
    archive: &mut Archive,
    file: &Path,
    entries: Vec<(usize, ListEntry)>,
) -> Result<()> {
    for (line, entry) in entries {
        let result = match entry {
            ListEntry::Dir { path, mode } => archive.add_dir(path, mode),
            ListEntry::File { path, source, mode } => {
                let meta = std::fs::metadata(&source).map_err(|e| Error::List {
                    file: file.to_path_buf(),
                    line,
                    detail: format!("source {}: {e}", source.display()),
                })?;
                if !meta.is_file() {
                    return Err(Error::List {
                        file: file.to_path_buf(),
                        line,
                        detail: format!("source {} is not a regular file", source.display()),
                    });
                }
                archive.add_file(path, mode, Blob::Path(source))
            }
            ListEntry::CharDevice {
                path,
                mode,
                major,
                minor,
            } => archive.add_char_device(path, mode, major, minor),
            ListEntry::Symlink { path, target, mode } => archive.add_symlink(path, mode, target),
        };
        result.map_err(|e| Error::List {
            file: file.to_path_buf(),
            line,
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// Reads the manifest at `path` and adds its entries to `archive`.
pub fn add_list(
    archive: &mut Archive,
    path: &Path,
    defines: &BTreeMap<String, String>,
) -> Result<()> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(Error::io_at("cannot open", path))?;
    let mut bytes = Vec::new();
    file.take(MAX_LIST_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io_at("cannot read", path))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_LIST_LEN {
        return Err(Error::invalid(
            format!("ramdisk list {}", path.display()),
            "is larger than 16 MiB",
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| Error::List {
        file: path.to_path_buf(),
        line: 1 + e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .map_or(0, |ok| ok.iter().filter(|&&b| b == b'\n').count()),
        detail: "not valid UTF-8".to_string(),
    })?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let entries = parse_list(&text, path, base_dir, defines)?;
    add_entries(archive, path, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defines() -> BTreeMap<String, String> {
        BTreeMap::from([("INIT".to_string(), "/abs/init".to_string())])
    }

    fn parse(text: &str) -> Result<Vec<(usize, ListEntry)>> {
        parse_list(text, Path::new("boot.list"), Path::new("/base"), &defines())
    }

    #[test]
    fn parses_every_directive() {
        let got = parse(
            "# bootstrap\n\ndir /dev 0755\nfile /init ${INIT} 0755 # the init\nfile /x rel/x 644\n\tnod /dev/console 0600 c 5 1\nslink /bin/sh busybox 0777\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                (
                    3,
                    ListEntry::Dir {
                        path: "/dev".into(),
                        mode: 0o755
                    }
                ),
                (
                    4,
                    ListEntry::File {
                        path: "/init".into(),
                        source: "/abs/init".into(),
                        mode: 0o755
                    }
                ),
                (
                    5,
                    ListEntry::File {
                        path: "/x".into(),
                        source: "/base/rel/x".into(),
                        mode: 0o644
                    }
                ),
                (
                    6,
                    ListEntry::CharDevice {
                        path: "/dev/console".into(),
                        mode: 0o600,
                        major: 5,
                        minor: 1
                    }
                ),
                (
                    7,
                    ListEntry::Symlink {
                        path: "/bin/sh".into(),
                        target: "busybox".into(),
                        mode: 0o777
                    }
                ),
            ]
        );
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_and_part() {
        assert_eq!(
            error_of("dir /a 0755\nfiel /init x 0755\n"),
            "boot.list:2: unknown directive `fiel` (expected dir, file, nod or slink)"
        );
        assert_eq!(
            error_of("dir /dev 0855\n"),
            "boot.list:1: bad mode `0855` (expected octal, at most 7777)"
        );
        assert_eq!(
            error_of("dir /dev 17777\n"),
            "boot.list:1: bad mode `17777` (expected octal, at most 7777)"
        );
        assert_eq!(
            error_of("file /init ${NOPE} 0755\n"),
            "boot.list:1: `${NOPE}` is not defined (use --define NOPE=VALUE)"
        );
        assert!(error_of("file /init ${INIT 0755\n").contains("unterminated"));
        assert!(error_of("file /init ${} 0755\n").contains("bad variable name"));
        assert!(error_of("nod /dev/sda 0600 b 8 0\n").contains("only character devices"));
        assert!(error_of("nod /dev/x 0600 c 5 -1\n").contains("bad minor number `-1`"));
        assert!(error_of("dir /dev\n").contains("`dir` takes 2 fields, found 1"));
    }

    #[test]
    fn archive_errors_keep_the_line() {
        let mut archive = Archive::new(0);
        let entries = parse("dir /a 0755\n\ndir /a 0700\n").unwrap();
        let err = add_entries(&mut archive, Path::new("boot.list"), entries).unwrap_err();
        assert_eq!(
            err.to_string(),
            "boot.list:3: cpio path \"a\": is listed twice"
        );
        let entries = parse("slink /x/../y t 0777\n").unwrap();
        let err = add_entries(&mut archive, Path::new("boot.list"), entries).unwrap_err();
        assert!(
            err.to_string().starts_with("boot.list:1: cpio path"),
            "{err}"
        );
        assert!(err.to_string().contains("`..`"), "{err}");
    }

    #[test]
    fn substitution() {
        let d = BTreeMap::from([
            ("A".to_string(), "x y".to_string()),
            ("B_2".to_string(), "z".to_string()),
        ]);
        assert_eq!(substitute("pre${A}mid${B_2}", &d).unwrap(), "prex ymidz");
        assert_eq!(substitute("$A ${A}", &d).unwrap(), "$A x y");
    }
}
