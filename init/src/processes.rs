//! What init starts: the `/cmd` program alone, on the console, when the image has no processes
//! file (or an empty one); otherwise every process the file ([`contract::processes::PATH`] in
//! the application's root) lists, then the `/cmd` program, each with its output prefixed by
//! its name on the console and `ENCLAVE_HTTPS_INIT=1` in its environment.

use crate::app::{self, App};
use crate::error::{Error, Result};
use crate::supervise::Start;
use contract::processes::{self as file, Process, STARTED_BY_INIT};
use std::ffi::CString;
use std::path::Path;

/// The name of the `/cmd` process when its program's file name cannot be used.
pub const CMD: &str = "cmd";

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads the processes file at `path`; a missing file lists nothing.
pub fn read(path: &Path) -> Result<Vec<Process>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::error::io("reading", path)(e)),
    };
    if meta.len() > file::MAX_BYTES as u64 {
        return Err(bad(
            path,
            format!(
                "is {} bytes, more than the {} allowed",
                meta.len(),
                file::MAX_BYTES
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(crate::error::io("reading", path))?;
    let text = String::from_utf8(bytes).map_err(|_| bad(path, "is not UTF-8 text"))?;
    file::parse(&text).map_err(|e| bad(path, e.to_string()))
}

/// The name of the `/cmd` process: its program's file name, or [`CMD`] when that is not a
/// valid process name or a listed process has it (then `cmd-2`, `cmd-3`, … if `cmd` is taken
/// too).
pub fn cmd_name(program: &str, listed: &[Process]) -> String {
    let free = |n: &str| file::valid_name(n) && !listed.iter().any(|p| p.name == n);
    let base = program.rsplit('/').next().unwrap_or(program);
    if free(base) {
        return base.to_owned();
    }
    std::iter::once(CMD.to_owned())
        .chain((2..=file::MAX_PROCESSES + 2).map(|i| format!("{CMD}-{i}")))
        .find(|n| free(n))
        .unwrap_or_else(|| CMD.to_owned())
}

/// Adds `ENCLAVE_HTTPS_INIT=1` to `env` unless it sets that variable already.
pub fn mark(env: &mut Vec<CString>) {
    let prefix = format!("{STARTED_BY_INIT}=");
    if !env
        .iter()
        .any(|e| e.as_bytes().starts_with(prefix.as_bytes()))
    {
        env.push(CString::from(c"ENCLAVE_HTTPS_INIT=1"));
    }
}

/// Finds `program` as execvp would with the PATH of `env`, in the root `root`; the error says
/// why not.
fn executable(program: &str, env: &[CString], root: &Path) -> std::result::Result<CString, String> {
    let path = app::path_var(env);
    let found = app::resolve(program, &path, root).ok_or_else(|| {
        format!("no such executable in the application's root file system (PATH={path})")
    })?;
    CString::new(found.as_os_str().as_encoded_bytes())
        .map_err(|_| "the path contains a NUL byte".to_owned())
}

fn cstrings(name: &str, program: &str, v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| Error::Process {
                name: name.to_owned(),
                program: program.to_owned(),
                reason: "an argument or variable contains a NUL byte".into(),
            })
        })
        .collect()
}

/// What to start, in order: the listed processes, then the `/cmd` program (alone and
/// unnamed, on the console itself, when nothing is listed). Every program is found before
/// anything starts.
pub fn plan(app: &App, listed: &[Process], root: &Path) -> Result<Vec<Start>> {
    let program = app
        .argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cmd = executable(&program, &app.env, root).map_err(|reason| Error::Exec {
        program: program.clone(),
        reason,
    })?;
    if listed.is_empty() {
        return Ok(vec![Start {
            name: None,
            program: cmd,
            argv: app.argv.clone(),
            env: app.env.clone(),
        }]);
    }
    let mut starts = Vec::with_capacity(listed.len() + 1);
    for p in listed {
        let first = p.argv.first().map(String::as_str).unwrap_or_default();
        let argv = cstrings(&p.name, first, &p.argv)?;
        let mut env = cstrings(&p.name, first, &p.env)?;
        let program = executable(first, &env, root).map_err(|reason| Error::Process {
            name: p.name.clone(),
            program: first.to_owned(),
            reason,
        })?;
        mark(&mut env);
        starts.push(Start {
            name: Some(p.name.clone()),
            program,
            argv,
            env,
        });
    }
    let mut env = app.env.clone();
    mark(&mut env);
    starts.push(Start {
        name: Some(cmd_name(&program, listed)),
        program: cmd,
        argv: app.argv.clone(),
        env,
    });
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn listed(names: &[&str]) -> Vec<Process> {
        names
            .iter()
            .map(|n| Process {
                name: (*n).into(),
                argv: vec!["/x".into()],
                env: vec![],
            })
            .collect()
    }

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn the_cmd_process_is_named_after_its_program() {
        assert_eq!(cmd_name("/server", &[]), "server");
        assert_eq!(cmd_name("/usr/bin/my-app_2", &listed(&["web"])), "my-app_2");
        assert_eq!(cmd_name("busybox", &[]), "busybox");
        assert_eq!(cmd_name("/bin/My.App", &[]), "cmd", "not a valid name");
        assert_eq!(cmd_name("/dir/", &[]), "cmd", "empty");
        assert_eq!(cmd_name("/server", &listed(&["server"])), "cmd", "taken");
        assert_eq!(cmd_name("/server", &listed(&["server", "cmd"])), "cmd-2");
        assert_eq!(cmd_name("/cmd", &listed(&["cmd", "cmd-2"])), "cmd-3");
    }

    #[test]
    fn the_environment_gets_the_marker_once() {
        let mut env = vec![c("PATH=/bin")];
        mark(&mut env);
        assert_eq!(env, [c("PATH=/bin"), c("ENCLAVE_HTTPS_INIT=1")]);
        mark(&mut env);
        assert_eq!(env.len(), 2, "added once");
        let mut own = vec![c("ENCLAVE_HTTPS_INIT=0")];
        mark(&mut own);
        assert_eq!(
            own,
            [c("ENCLAVE_HTTPS_INIT=0")],
            "a value of its own is kept"
        );
        let mut other = vec![c("ENCLAVE_HTTPS_INIT_X=1")];
        mark(&mut other);
        assert_eq!(other.len(), 2, "another variable is not the marker");
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("init-processes-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        dir
    }

    #[test]
    fn the_file_is_optional_and_its_errors_name_it_and_the_line() {
        let dir = scratch("read");
        let f = dir.join("processes");
        assert_eq!(read(&f).unwrap(), vec![], "missing: nothing listed");
        std::fs::write(&f, "process web\narg /bin/httpd\nenv PATH=/bin\n").unwrap();
        let got = read(&f).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].argv, ["/bin/httpd"]);
        std::fs::write(&f, "process web\narg /bin/httpd\nbogus x\n").unwrap();
        assert_eq!(
            read(&f).unwrap_err().to_string(),
            format!(
                "{}: line 3: unknown keyword \"bogus\" (expected process, arg or env)",
                f.display()
            )
        );
        std::fs::write(&f, b"process w\xff\n").unwrap();
        assert_eq!(
            read(&f).unwrap_err().to_string(),
            format!("{}: is not UTF-8 text", f.display())
        );
        std::fs::write(&f, "x".repeat(file::MAX_BYTES + 1)).unwrap();
        assert_eq!(
            read(&f).unwrap_err().to_string(),
            format!(
                "{}: is 65537 bytes, more than the 65536 allowed",
                f.display()
            )
        );
        let unreadable = dir.join("bin"); // a directory: metadata works, reading does not
        assert!(read(&unreadable)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("reading {}: ", unreadable.display())));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_plan_starts_the_listed_processes_then_cmd() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("plan");
        for tool in ["server", "httpd"] {
            let p = dir.join("bin").join(tool);
            std::fs::write(&p, b"").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let app = App {
            argv: vec![c("server"), c("--flag")],
            env: vec![c("PATH=/bin")],
        };
        // Nothing listed: exactly the application, unnamed, its environment untouched.
        let alone = plan(&app, &[], &dir).unwrap();
        assert_eq!(alone.len(), 1);
        assert_eq!(alone[0].name, None);
        assert_eq!(alone[0].program, c("/bin/server"));
        assert_eq!(alone[0].env, app.env);

        let web = Process {
            name: "web".into(),
            argv: vec!["httpd".into(), "-f".into()],
            env: vec![],
        };
        let all = plan(&app, std::slice::from_ref(&web), &dir).unwrap();
        let names: Vec<_> = all.iter().map(|s| s.name.as_deref()).collect();
        assert_eq!(names, [Some("web"), Some("server")]);
        assert_eq!(all[0].program, c("/bin/httpd"), "found in the default PATH");
        assert_eq!(all[0].argv, [c("httpd"), c("-f")]);
        assert_eq!(all[0].env, [c("ENCLAVE_HTTPS_INIT=1")]);
        assert_eq!(all[1].env, [c("PATH=/bin"), c("ENCLAVE_HTTPS_INIT=1")]);

        let missing = Process {
            name: "gone".into(),
            argv: vec!["nothere".into()],
            env: vec!["PATH=/opt".into()],
        };
        assert_eq!(
            plan(&app, &[web, missing], &dir).unwrap_err().to_string(),
            "starting process gone: nothere: no such executable in the application's root \
             file system (PATH=/opt)"
        );
        let nul = Process {
            name: "nul".into(),
            argv: vec!["httpd".into(), "a\0b".into()],
            env: vec![],
        };
        assert_eq!(
            plan(&app, &[nul], &dir).unwrap_err().to_string(),
            "starting process nul: httpd: an argument or variable contains a NUL byte"
        );
        let lost = App {
            argv: vec![c("nope")],
            env: vec![],
        };
        assert!(plan(&lost, &[], &dir)
            .unwrap_err()
            .to_string()
            .starts_with("starting the application: nope: no such executable"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
