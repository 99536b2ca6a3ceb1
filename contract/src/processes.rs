//! The processes file: what an image runs besides its `/cmd` (the application behind the TLS
//! front, the egress forwarder). `eif-builder image` writes it at [`PATH`] inside the
//! application's root file system; our `init` starts every process it lists, and the front
//! (`server --processes PATH`) starts them itself when it runs under another init (nitro-cli's),
//! so an image boots the same under both.
//!
//! ```text
//! process app
//! arg /bin/busybox
//! arg httpd
//! env PATH=/bin
//! process egress
//! arg /enclave-https/host-relay
//! arg tcp:127.0.0.2:443=vsock:3:8000
//! ```
//!
//! One item per line, `KEYWORD VALUE` split at the first space; the value is everything after
//! it, spaces included. `process NAME` begins a process; its `arg` lines are its argv in order
//! (at least one, the first not empty), its `env` lines its whole environment (`KEY=VALUE`).
//! Nothing else is allowed: no comments, no blank lines, no NUL. Every error names the line.

use std::fmt;

/// Where the file is, inside the application's root file system.
pub const PATH: &str = "/etc/enclave-https/processes";

/// The environment variable our init sets in every process it starts; the front sees it and
/// leaves starting the listed processes to init.
pub const STARTED_BY_INIT: &str = "ENCLAVE_HTTPS_INIT";

/// The largest file read.
pub const MAX_BYTES: usize = 64 * 1024;

/// The most processes listed.
pub const MAX_PROCESSES: usize = 16;

/// The longest process name.
pub const MAX_NAME: usize = 32;

/// One process to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its name, for console lines and errors: `[a-z0-9_-]`, 1 to [`MAX_NAME`] characters.
    pub name: String,
    /// argv, the program first (a path, or a name looked up in the `PATH` of `env`).
    pub argv: Vec<String>,
    /// The environment, `KEY=VALUE` each.
    pub env: Vec<String>,
}

/// Why a processes file (or a list to write as one) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessesError {
    /// The 1-based line, or 0 when the error is about the whole file or a list to write.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ProcessesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl std::error::Error for ProcessesError {}

fn err(line: usize, reason: impl Into<String>) -> ProcessesError {
    ProcessesError {
        line,
        reason: reason.into(),
    }
}

/// Whether `name` is a valid process name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_value(line: usize, what: &str, value: &str) -> Result<(), ProcessesError> {
    if value.contains('\0') {
        return Err(err(line, format!("{what} contains a NUL byte")));
    }
    if value.contains('\n') || value.contains('\r') {
        return Err(err(
            line,
            format!("{what} contains a line break: {value:?}"),
        ));
    }
    Ok(())
}

fn check_env(line: usize, value: &str) -> Result<(), ProcessesError> {
    check_value(line, "env", value)?;
    match value.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(()),
        _ => Err(err(line, format!("env is not KEY=VALUE: {value:?}"))),
    }
}

fn check_process(line: usize, p: &Process) -> Result<(), ProcessesError> {
    if p.argv.first().is_none_or(|a| a.is_empty()) {
        return Err(err(
            line,
            format!(
                "process {} has no program: its first `arg` names it",
                p.name
            ),
        ));
    }
    Ok(())
}

/// Reads a processes file.
pub fn parse(text: &str) -> Result<Vec<Process>, ProcessesError> {
    if text.len() > MAX_BYTES {
        return Err(err(
            0,
            format!("is {} bytes, more than the {MAX_BYTES} allowed", text.len()),
        ));
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut out: Vec<Process> = Vec::new();
    if body.is_empty() {
        return Ok(out);
    }
    let mut started = 0;
    for (i, l) in body.split('\n').enumerate() {
        let n = i + 1;
        let (keyword, value) = l.split_once(' ').ok_or_else(|| {
            err(
                n,
                format!("expected `process`, `arg` or `env` and a value: {l:?}"),
            )
        })?;
        match keyword {
            "process" => {
                if let Some(last) = out.last() {
                    check_process(started, last)?;
                }
                if !valid_name(value) {
                    return Err(err(
                        n,
                        format!("bad process name {value:?}: 1 to {MAX_NAME} of a-z, 0-9, - and _"),
                    ));
                }
                if out.iter().any(|p| p.name == value) {
                    return Err(err(n, format!("process {value} is listed twice")));
                }
                if out.len() == MAX_PROCESSES {
                    return Err(err(n, format!("more than {MAX_PROCESSES} processes")));
                }
                started = n;
                out.push(Process {
                    name: value.to_owned(),
                    argv: Vec::new(),
                    env: Vec::new(),
                });
            }
            "arg" | "env" => {
                let Some(p) = out.last_mut() else {
                    return Err(err(n, format!("`{keyword}` before any `process` line")));
                };
                if keyword == "arg" {
                    check_value(n, "arg", value)?;
                    p.argv.push(value.to_owned());
                } else {
                    check_env(n, value)?;
                    p.env.push(value.to_owned());
                }
            }
            other => {
                return Err(err(
                    n,
                    format!("unknown keyword {other:?} (expected process, arg or env)"),
                ))
            }
        }
    }
    if let Some(last) = out.last() {
        check_process(started, last)?;
    }
    Ok(out)
}

/// Writes a processes file that [`parse`] reads back as `processes`; refuses what it could
/// not (a bad name, a line break in a value, an empty program, too many).
pub fn write(processes: &[Process]) -> Result<String, ProcessesError> {
    if processes.len() > MAX_PROCESSES {
        return Err(err(0, format!("more than {MAX_PROCESSES} processes")));
    }
    let mut out = String::new();
    for (i, p) in processes.iter().enumerate() {
        if !valid_name(&p.name) {
            return Err(err(
                0,
                format!(
                    "bad process name {:?}: 1 to {MAX_NAME} of a-z, 0-9, - and _",
                    p.name
                ),
            ));
        }
        if processes[..i].iter().any(|q| q.name == p.name) {
            return Err(err(0, format!("process {} is listed twice", p.name)));
        }
        check_process(0, p)?;
        out.push_str("process ");
        out.push_str(&p.name);
        out.push('\n');
        for a in &p.argv {
            check_value(0, "arg", a)?;
            out.push_str("arg ");
            out.push_str(a);
            out.push('\n');
        }
        for e in &p.env {
            check_env(0, e)?;
            out.push_str("env ");
            out.push_str(e);
            out.push('\n');
        }
    }
    if out.len() > MAX_BYTES {
        return Err(err(
            0,
            format!(
                "would be {} bytes, more than the {MAX_BYTES} allowed",
                out.len()
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, argv: &[&str], env: &[&str]) -> Process {
        Process {
            name: name.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn round_trip() {
        let list = vec![
            p(
                "app",
                &["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:8080"],
                &["PATH=/bin", "A=b c=d"],
            ),
            p(
                "egress",
                &[
                    "/enclave-https/host-relay",
                    "tcp:127.0.0.2:443=vsock:3:8000",
                ],
                &[],
            ),
            p("x", &["prog", "", "two words"], &[]),
        ];
        let text = write(&list).unwrap();
        assert!(
            text.starts_with("process app\narg /bin/busybox\narg httpd\n"),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), list);
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(e("arg x\n"), "line 1: `arg` before any `process` line");
        assert_eq!(
            e("process a\narg x\nfoo y\n"),
            "line 3: unknown keyword \"foo\" (expected process, arg or env)"
        );
        assert_eq!(
            e("process a\n\n"),
            "line 2: expected `process`, `arg` or `env` and a value: \"\""
        );
        assert_eq!(
            e("process A\n"),
            "line 1: bad process name \"A\": 1 to 32 of a-z, 0-9, - and _"
        );
        assert_eq!(
            e("process a\narg x\nprocess a\narg y\n"),
            "line 3: process a is listed twice"
        );
        assert_eq!(
            e("process a\nenv x\n"),
            "line 2: env is not KEY=VALUE: \"x\""
        );
        assert_eq!(
            e("process a\nenv =x\n"),
            "line 2: env is not KEY=VALUE: \"=x\""
        );
        assert_eq!(
            e("process a\nenv A=1\nprocess b\narg x\n"),
            "line 1: process a has no program: its first `arg` names it"
        );
        assert_eq!(
            e("process a\narg \n"),
            "line 1: process a has no program: its first `arg` names it"
        );
        assert_eq!(
            e("process a\narg x\0y\n"),
            "line 2: arg contains a NUL byte"
        );
        let many: String = (0..17).map(|i| format!("process p{i}\narg x\n")).collect();
        assert_eq!(e(&many), "line 33: more than 16 processes");
        assert!(e(&"x".repeat(MAX_BYTES + 1)).contains("more than the 65536 allowed"));
    }

    #[test]
    fn write_refuses_what_parse_could_not_read_back() {
        let e = |l: Vec<Process>| write(&l).unwrap_err().to_string();
        assert_eq!(
            e(vec![p("a", &["x\ny"], &[])]),
            "arg contains a line break: \"x\\ny\""
        );
        assert_eq!(
            e(vec![p("a", &[], &[])]),
            "process a has no program: its first `arg` names it"
        );
        assert_eq!(
            e(vec![p("a b", &["x"], &[])]),
            "bad process name \"a b\": 1 to 32 of a-z, 0-9, - and _"
        );
        assert_eq!(
            e(vec![p("a", &["x"], &[]), p("a", &["y"], &[])]),
            "process a is listed twice"
        );
        assert_eq!(
            e(vec![p("a", &["x"], &["NOEQUALS"])]),
            "env is not KEY=VALUE: \"NOEQUALS\""
        );
    }
}
