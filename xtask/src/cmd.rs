//! Running other programs: every command is echoed before it runs, and a failure names the
//! command that failed, so a CI log reads as the list of steps that were taken.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What went wrong in a task: one line for the user, with the step that failed.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shorthand for task results.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// Builds an [`Error`] from anything printable.
pub fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

/// Adds context to I/O errors: `fs::read(p).ctx(|| format!("reading {}", p.display()))`.
pub trait Context<T> {
    /// Wraps the error with a description of what was being done.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {e}", what())))
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn project_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The `cargo` that runs us (so `cargo +toolchain xtask` stays on that toolchain).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Renders a command the way a user would type it.
pub fn render(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!("{}={} ", k.to_string_lossy(), quote(v)));
        }
    }
    s.push_str(&quote(cmd.get_program()));
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Runs a command with inherited output; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> Result {
    eprintln!("$ {}", render(cmd));
    let status = cmd
        .status()
        .ctx(|| format!("could not start `{}`", render(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        err(format!("`{}` failed ({status})", render(cmd)))
    }
}

/// Runs a command and returns its standard output; its stderr is shown on failure.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = capture(cmd)?;
    if !out.status.success() {
        return err(format!(
            "`{}` failed ({}): {}",
            render(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).ctx(|| format!("`{}` printed non-UTF-8", render(cmd)))
}

/// Runs a command quietly and returns everything about how it ended.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .ctx(|| format!("could not start `{}`", render(cmd)))
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// SHA-256 of a file, in hex, via coreutils (xtask has no dependencies).
pub fn sha256_file(path: &Path) -> Result<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    out.split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| Error(format!("sha256sum printed nothing for {}", path.display())))
}

/// SHA-256 of some bytes, in hex.
pub fn sha256_bytes(data: &[u8]) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ctx(|| "could not start sha256sum".to_string())?;
    child
        .stdin
        .take()
        .ok_or_else(|| Error("sha256sum has no stdin".into()))?
        .write_all(data)
        .ctx(|| "writing to sha256sum".to_string())?;
    let out = child
        .wait_with_output()
        .ctx(|| "waiting for sha256sum".to_string())?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| Error("sha256sum printed nothing".into()))
}

/// The user cache directory for things built outside the clone (kernel, emulator).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("enclave-https");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("enclave-https")
}

/// Human-readable byte count.
pub fn human(bytes: u64) -> String {
    // Display only: the precision lost in the conversion does not matter.
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").ctx(|| "finding a free port".into())?;
    Ok(l.local_addr().ctx(|| "finding a free port".into())?.port())
}

/// Resident memory of process `pid` (VmRSS), KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).ctx(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Error(format!("{path}: no VmRSS")))
}
