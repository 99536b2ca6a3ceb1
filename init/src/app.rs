//! The application to start, read from the application ramdisk in nitro-cli's layout: `/cmd`
//! holds one argv element per line (no shell splitting), `/env` one `KEY=VALUE` per line.
//! Both are required; anything malformed is an error that names the file and line (AWS's
//! init crashes on a missing file instead).

use crate::error::{Error, Result};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Larger files are not a command line: refuse them before reading.
pub const MAX_FILE: u64 = 64 * 1024;

/// PATH when `/env` sets none (as AWS's init).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// argv, argv[0] first.
    pub argv: Vec<CString>,
    /// The environment, `KEY=VALUE`.
    pub env: Vec<CString>,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Splits a file into lines, dropping one final newline.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// Parses `/cmd`.
pub fn parse_cmd(path: &Path, text: &str) -> Result<Vec<CString>> {
    if text.is_empty() || text == "\n" {
        return Err(bad(
            path,
            "is empty: it must name the program to run on its first line",
        ));
    }
    let argv = lines(text)
        .map(|(n, l)| {
            CString::new(l).map_err(|_| bad(path, format!("line {n} contains a NUL byte")))
        })
        .collect::<Result<Vec<_>>>()?;
    if argv.first().is_none_or(|a| a.as_bytes().is_empty()) {
        return Err(bad(
            path,
            "line 1 is empty: it must name the program to run",
        ));
    }
    Ok(argv)
}

/// Parses `/env` (an empty file is a valid, empty environment).
pub fn parse_env(path: &Path, text: &str) -> Result<Vec<CString>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    lines(text)
        .map(|(n, l)| {
            let (key, _) = l
                .split_once('=')
                .ok_or_else(|| bad(path, format!("line {n} is not KEY=VALUE: {l:?}")))?;
            if key.is_empty() {
                return Err(bad(path, format!("line {n} has an empty name: {l:?}")));
            }
            CString::new(l).map_err(|_| bad(path, format!("line {n} contains a NUL byte")))
        })
        .collect()
}

fn read(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        bad(
            path,
            format!("{e} (the application ramdisk must hold /cmd and /env beside /rootfs)"),
        )
    })?;
    if meta.len() > MAX_FILE {
        return Err(bad(
            path,
            format!("is {} bytes, more than {MAX_FILE}", meta.len()),
        ));
    }
    let bytes = std::fs::read(path).map_err(crate::error::io("reading", path))?;
    String::from_utf8(bytes).map_err(|_| bad(path, "is not UTF-8 text"))
}

/// Reads `/cmd` and `/env` from `dir`.
pub fn load(dir: &Path) -> Result<App> {
    let (cmd, env) = (dir.join("cmd"), dir.join("env"));
    Ok(App {
        argv: parse_cmd(&cmd, &read(&cmd)?)?,
        env: parse_env(&env, &read(&env)?)?,
    })
}

/// The value of PATH in `env`, or the default.
pub fn path_var(env: &[CString]) -> String {
    env.iter()
        .filter_map(|e| e.to_str().ok()?.strip_prefix("PATH="))
        .next_back()
        .unwrap_or(DEFAULT_PATH)
        .to_owned()
}

/// Finds the program as execvp would: a name with a `/` is used as is; otherwise the first
/// executable file of that name in PATH. `root` prefixes every candidate (tests).
pub fn resolve(program: &str, path: &str, root: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(root.join(p.strip_prefix("/").unwrap_or(p)))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[CString]) -> Vec<&str> {
        v.iter().map(|c| c.to_str().unwrap()).collect()
    }

    #[test]
    fn cmd_is_one_argument_per_line() {
        let p = Path::new("/cmd");
        assert_eq!(
            strs(&parse_cmd(p, "/server\n--listen\nvsock:443\n").unwrap()),
            ["/server", "--listen", "vsock:443"]
        );
        assert_eq!(
            strs(&parse_cmd(p, "/bin/x\na b  c\n").unwrap()),
            ["/bin/x", "a b  c"]
        );
        assert_eq!(strs(&parse_cmd(p, "/x\n\n").unwrap()), ["/x", ""]);
        assert!(parse_cmd(p, "").unwrap_err().to_string().contains("empty"));
        assert!(parse_cmd(p, "\n/x\n")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(parse_cmd(p, "/x\0y\n").is_err());
    }

    #[test]
    fn env_lines_must_be_key_value() {
        let p = Path::new("/env");
        assert_eq!(
            strs(&parse_env(p, "A=1\nB=x=y\nC=\n").unwrap()),
            ["A=1", "B=x=y", "C="]
        );
        assert!(parse_env(p, "").unwrap().is_empty());
        let e = parse_env(p, "A=1\nnonsense\n").unwrap_err().to_string();
        assert!(e.contains("/env") && e.contains("line 2"), "{e}");
        assert!(parse_env(p, "=1\n")
            .unwrap_err()
            .to_string()
            .contains("empty name"));
    }

    #[test]
    fn path_lookup_follows_execvp() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("init-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/tool"), b"").unwrap();
        std::fs::set_permissions(dir.join("bin/tool"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(dir.join("bin/data"), b"").unwrap();
        assert_eq!(
            resolve("tool", "/nope:/bin", &dir),
            Some(PathBuf::from("/bin/tool"))
        );
        assert_eq!(
            resolve("/bin/tool", "", &dir),
            Some(PathBuf::from("/bin/tool"))
        );
        assert_eq!(resolve("data", "/bin", &dir), None, "not executable");
        assert_eq!(resolve("missing", "/bin", &dir), None);
        assert_eq!(path_var(&[CString::new("PATH=/a").unwrap()]), "/a");
        assert_eq!(path_var(&[]), DEFAULT_PATH);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
