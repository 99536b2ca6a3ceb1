//! How much memory the server has, read once at start: the tightest memory cgroup limit on
//! the way from this process's cgroup to the root (v1 `memory.limit_in_bytes` or v2
//! `memory.max`), or else the machine's `MemTotal` (an enclave has no cgroup: its memory is the
//! machine's). The defaults of the memory budget and of `--max-connections` come from it.
//!
//! The parsers take the files' text and return errors instead of guessing; the one function
//! that touches the file system is [`detect`].

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the figure came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A cgroup v1 memory controller limit (the file).
    CgroupV1(PathBuf),
    /// A cgroup v2 `memory.max` (the file).
    CgroupV2(PathBuf),
    /// `/proc/meminfo`'s `MemTotal`.
    MemTotal,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::CgroupV1(p) | Source::CgroupV2(p) => write!(f, "cgroup limit {}", p.display()),
            Source::MemTotal => f.write_str("MemTotal"),
        }
    }
}

/// The memory available to the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure came from.
    pub source: Source,
}

/// Why a file could not be read as expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file.
    pub file: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}

impl std::error::Error for ParseError {}

fn perr(file: &'static str, reason: impl Into<String>) -> ParseError {
    ParseError {
        file,
        reason: reason.into(),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Result<u64, ParseError> {
    let file = "/proc/meminfo";
    let line = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .ok_or_else(|| perr(file, "no MemTotal line"))?;
    let mut words = line.split_whitespace().skip(1);
    let (Some(n), Some("kB"), None) = (words.next(), words.next(), words.next()) else {
        return Err(perr(file, format!("unexpected MemTotal line {line:?}")));
    };
    let kib: u64 = n
        .parse()
        .map_err(|_| perr(file, format!("MemTotal {n:?} is not a number")))?;
    kib.checked_mul(1024)
        .ok_or_else(|| perr(file, "MemTotal too large"))
}

/// A memory limit file's value: bytes, or `None` for no limit (`max` in v2, or a v1 value
/// of a page-rounded `i64::MAX`).
pub fn parse_limit(text: &str) -> Result<Option<u64>, ParseError> {
    let file = "memory limit";
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    let n: u64 = t
        .parse()
        .map_err(|_| perr(file, format!("{t:?} is not a number")))?;
    Ok((n < (1 << 62)).then_some(n))
}

/// The cgroup paths of `/proc/self/cgroup`: (v1 memory controller, v2 unified), each relative
/// to its hierarchy's root.
pub fn parse_cgroup(text: &str) -> Result<(Option<String>, Option<String>), ParseError> {
    let file = "/proc/self/cgroup";
    let (mut v1, mut v2) = (None, None);
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(perr(file, format!("unexpected line {line:?}")));
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_owned());
        }
    }
    Ok((v1, v2))
}

/// A cgroup mount of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The hierarchy's root this mount shows (field 4).
    pub root: String,
    /// Where it is mounted (field 5).
    pub mount_point: String,
    /// v2 (`cgroup2`) or v1 with the memory controller.
    pub v2: bool,
}

/// The memory cgroup mounts (v1 with `memory` among its options, and v2) of a mountinfo text.
pub fn parse_mountinfo(text: &str) -> Result<Vec<CgroupMount>, ParseError> {
    let file = "/proc/self/mountinfo";
    let mut mounts = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (pre, post) = line
            .split_once(" - ")
            .ok_or_else(|| perr(file, format!("no ' - ' separator in {line:?}")))?;
        let fields: Vec<&str> = pre.split(' ').collect();
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else {
            return Err(perr(file, format!("too few fields in {line:?}")));
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or_default();
        let options = post.nth(1).unwrap_or_default();
        let v2 = fstype == "cgroup2";
        if v2 || (fstype == "cgroup" && options.split(',').any(|o| o == "memory")) {
            mounts.push(CgroupMount {
                root: unescape(root),
                mount_point: unescape(mount_point),
                v2,
            });
        }
    }
    Ok(mounts)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|x| (b'0'..=b'7').contains(x)));
        match (c, octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, x| a * 8 + u32::from(x - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of cgroup `path` (relative to its hierarchy's root) under `mount`, if the
/// mount shows that part of the hierarchy.
pub fn cgroup_dir(mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        path
    } else {
        path.strip_prefix(mount.root.as_str())?
    };
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(Path::new(&mount.mount_point).join(rel))
}

/// The tightest limit from `dir` up to the mount point (parents limit their children).
fn tightest_limit(dir: &Path, mount_point: &Path, file: &str) -> Option<(u64, PathBuf)> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut at = Some(dir);
    while let Some(d) = at {
        let f = d.join(file);
        if let Ok(text) = std::fs::read_to_string(&f) {
            if let Ok(Some(n)) = parse_limit(&text) {
                if best.as_ref().is_none_or(|(b, _)| n < *b) {
                    best = Some((n, f));
                }
            }
        }
        if d == mount_point {
            break;
        }
        at = d.parent();
    }
    best
}

/// The memory this process has: the tightest cgroup limit if one is set, else `MemTotal` if
/// smaller, else `None` (nothing readable: not Linux, or /proc missing).
pub fn detect() -> Option<Memory> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t).ok());
    let mut best = total.map(|bytes| Memory {
        bytes,
        source: Source::MemTotal,
    });
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| parse_cgroup(&t).ok());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| parse_mountinfo(&t).ok())
        .unwrap_or_default();
    if let Some((v1, v2)) = cgroups {
        for m in &mounts {
            let (path, file) = match (m.v2, &v1, &v2) {
                (false, Some(p), _) => (p, "memory.limit_in_bytes"),
                (true, _, Some(p)) => (p, "memory.max"),
                _ => continue,
            };
            let Some(dir) = cgroup_dir(m, path) else {
                continue;
            };
            if let Some((bytes, f)) = tightest_limit(&dir, Path::new(&m.mount_point), file) {
                if best.as_ref().is_none_or(|b| bytes < b.bytes) {
                    let source = if m.v2 {
                        Source::CgroupV2(f)
                    } else {
                        Source::CgroupV1(f)
                    };
                    best = Some(Memory { bytes, source });
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_limits() {
        assert_eq!(
            parse_meminfo("MemTotal:       24604772 kB\nMemFree: 1 kB\n"),
            Ok(24_604_772 * 1024)
        );
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err());
        assert!(parse_meminfo("MemTotal: x kB\n").is_err());
        assert_eq!(
            parse_meminfo("MemTotal: 12 MB\n").unwrap_err().to_string(),
            "/proc/meminfo: unexpected MemTotal line \"MemTotal: 12 MB\""
        );
        assert_eq!(parse_limit("max\n"), Ok(None));
        assert_eq!(parse_limit("9223372036854771712\n"), Ok(None));
        assert_eq!(parse_limit("268435456\n"), Ok(Some(268_435_456)));
        assert!(parse_limit("-1").is_err());
    }

    #[test]
    fn cgroup_paths_and_mounts() {
        let cg = "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n";
        assert_eq!(
            parse_cgroup(cg),
            Ok((Some("/process_api/abc".into()), Some("/".into())))
        );
        assert!(parse_cgroup("garbage\n").is_err());
        let mi =
            "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
                  31 25 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                  32 25 0:28 /sub /sys/fs/cgroup/unified\\040x rw - cgroup2 cgroup2 rw\n";
        let m = parse_mountinfo(mi).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, "/sys/fs/cgroup/memory");
        assert!(!m[0].v2 && m[1].v2);
        assert_eq!(m[1].mount_point, "/sys/fs/cgroup/unified x");
        assert_eq!(
            cgroup_dir(&m[0], "/process_api/abc"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"))
        );
        assert_eq!(
            cgroup_dir(&m[1], "/sub/a"),
            Some(PathBuf::from("/sys/fs/cgroup/unified x/a"))
        );
        assert_eq!(cgroup_dir(&m[1], "/other"), None);
        assert_eq!(cgroup_dir(&m[0], "/a/../b"), None);
        assert!(parse_mountinfo("no separator here\n").is_err());
    }

    #[test]
    fn this_machine_has_some_memory() {
        let m = detect().expect("Linux with /proc");
        assert!(m.bytes > 16 * 1024 * 1024, "{m:?}");
    }
}
