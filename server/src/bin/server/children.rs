//! `--processes FILE`: starting the processes an image lists besides its `/cmd` when no one
//! else does. Our init starts them itself (and sets `ENCLAVE_HTTPS_INIT` in every process it
//! starts); under nitro-cli's init only `/cmd` runs, so the front starts them, with their own
//! argv and environment and its stdout and stderr, and exits when one of them ends, which
//! ends the enclave as the application's exit would.

use contract::processes::{self, Process};
use server::{Error, Result};
use std::path::Path;
use std::process::{Child, Command};

/// Starts what `file` lists, unless our init did; a thread per child waits for it and exits
/// the server when it ends.
pub fn start(file: &Path) -> Result<()> {
    if std::env::var_os(processes::STARTED_BY_INIT).is_some() {
        println!(
            "server: the processes of {} were started by init",
            file.display()
        );
        return Ok(());
    }
    let list = read(file)?;
    let mut children = Vec::new();
    for p in &list {
        let child = spawn(p).map_err(|e| {
            Error::Config(format!(
                "{}: starting process {} ({}): {e}",
                file.display(),
                p.name,
                p.argv.first().map_or("", String::as_str)
            ))
        })?;
        println!("server: started process {} as pid {}", p.name, child.id());
        children.push((p.name.clone(), child));
    }
    // One waiting thread per child: the first to see its child end ends the server.
    for (name, mut child) in children {
        std::thread::Builder::new()
            .name(format!("wait-{name}"))
            .spawn(move || {
                let status = child.wait();
                println!(
                    "server: process {name} (pid {}) ended ({}); exiting",
                    child.id(),
                    status.map_or_else(|e| e.to_string(), |s| s.to_string())
                );
                std::process::exit(1);
            })
            .map_err(Error::Spawn)?;
    }
    Ok(())
}

/// Reads and parses the file, errors naming it (and the line).
fn read(file: &Path) -> Result<Vec<Process>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Config(format!("--processes {}: {e}", file.display())))?;
    processes::parse(&text)
        .map_err(|e| Error::Config(format!("--processes {}: {e}", file.display())))
}

fn spawn(p: &Process) -> std::io::Result<Child> {
    let (program, args) = p
        .argv
        .split_first()
        .ok_or(std::io::ErrorKind::InvalidInput)?;
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear();
    for kv in &p.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_is_named_with_its_line() {
        let dir = std::env::temp_dir().join(format!("children-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("processes");
        std::fs::write(&f, "process app\nfoo bar\n").unwrap();
        let e = read(&f).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "processes: line 2: unknown keyword \"foo\" (expected process, arg or env)"
            ),
            "{e}"
        );
        let e = read(&dir.join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing: No such file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
