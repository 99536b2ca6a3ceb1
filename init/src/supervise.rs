//! Starting the processes and staying PID 1 for them, the way tini does: every signal is
//! blocked in init and read from a signalfd; SIGCHLD reaps every exited process (so orphans
//! never stay zombies); every other signal (SIGTERM, SIGINT, …) is forwarded to every started
//! process. When one of them ends, its status is returned (exit code, or 128 + signal number
//! as a shell reports it) and the caller ends the enclave. A named process writes into a pipe
//! that init copies to the console line by line ([`crate::output`]), polled with the signalfd;
//! an unnamed one (the application alone) has the console itself.

use crate::error::{sys, Result};
use crate::output::{Pipe, READ_BUDGET};
use crate::sys::{exit_child, fork};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execve, setsid, ForkResult, Pid};
use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsFd;

/// Signals that mean a fault in init itself: left unblocked so they act at once.
const SYNCHRONOUS: [Signal; 7] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// The most bytes read from every pipe once a process has ended, before the enclave stops
/// (what the pipes hold then, unless a process keeps writing).
const FINAL_READ: usize = 4 * READ_BUDGET;

/// The exit status a shell would report for a wait status.
pub fn status_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Exit code of a child whose execve failed, as shells use them.
pub fn exec_failure_code(e: nix::Error) -> i32 {
    match e {
        nix::Error::ENOENT => 127,
        nix::Error::EACCES | nix::Error::ENOEXEC => 126,
        _ => 1,
    }
}

/// One process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Its name: its output goes through a pipe to the console, prefixed `[name] `. None:
    /// the console is its own stdout and stderr (the application started alone).
    pub name: Option<String>,
    /// The program's path, resolved.
    pub program: CString,
    /// argv, argv[0] first.
    pub argv: Vec<CString>,
    /// The environment, `KEY=VALUE`.
    pub env: Vec<CString>,
}

/// What ended the first started process to end.
#[derive(Debug)]
pub struct Ended {
    /// Its name (None: the application started alone).
    pub name: Option<String>,
    /// Its pid.
    pub pid: Pid,
    /// Its status as a shell reports it.
    pub code: i32,
    /// The raw wait status, for the log.
    pub status: WaitStatus,
}

/// In the child: becomes `start`'s process (never returns).
fn exec(start: &Start, previous: &SigSet, out: Option<&std::os::fd::OwnedFd>) -> ! {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(previous), None);
    let _ = setsid();
    if let Some(w) = out {
        if let Err(e) = nix::unistd::dup2_stdout(w).and_then(|()| nix::unistd::dup2_stderr(w)) {
            let _ = writeln!(
                std::io::stderr(),
                "init: error: redirecting the output of {}: {}",
                start.program.to_string_lossy(),
                e.desc()
            );
            exit_child(1);
        }
    }
    let err = match execve(&start.program, &start.argv, &start.env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let _ = writeln!(
        std::io::stderr(),
        "init: error: exec {}: {}",
        start.program.to_string_lossy(),
        err.desc()
    );
    exit_child(exec_failure_code(err));
}

/// Forks and execs every process of `starts` in order, and supervises them until one ends.
/// `started` is called with each one's index and pid once it runs.
pub fn run(starts: &[Start], mut started: impl FnMut(usize, Pid)) -> Result<Ended> {
    let mut blocked = SigSet::all();
    for s in SYNCHRONOUS {
        blocked.remove(s);
    }
    let mut previous = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&blocked), Some(&mut previous))
        .map_err(sys("blocking signals"))?;
    let signals = SignalFd::with_flags(&blocked, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys("signalfd"))?;

    let mut children = Vec::with_capacity(starts.len());
    let mut pipes = Vec::new();
    for (i, start) in starts.iter().enumerate() {
        let pipe = match &start.name {
            Some(name) => {
                let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                    .map_err(sys(format!("making the output pipe of {name}")))?;
                fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(sys(format!(
                    "making the output pipe of {name} non-blocking"
                )))?;
                Some((Pipe::new(r, name), w))
            }
            None => None,
        };
        let child = match fork().map_err(sys("fork"))? {
            ForkResult::Child => exec(start, &previous, pipe.as_ref().map(|(_, w)| w)),
            ForkResult::Parent { child } => child,
        };
        // The write end now belongs to the child alone.
        pipes.extend(pipe.map(|(r, _)| r));
        children.push(child);
        started(i, child);
    }

    let mut console = std::io::stderr();
    loop {
        // The signalfd (owner None), then every open pipe (owner: its index).
        let ready: Vec<Option<usize>> = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let mut owners = vec![None];
            for (i, pipe) in pipes.iter().enumerate() {
                if let Some(fd) = pipe.fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                    owners.push(Some(i));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(sys("waiting for signals and output (poll)")(e)),
            }
            owners
                .into_iter()
                .zip(&fds)
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(owner, _)| owner)
                .collect()
        };
        for &i in ready.iter().flatten() {
            if let Some(pipe) = pipes.get_mut(i) {
                pipe.pump(READ_BUDGET, &mut console);
            }
        }
        if ready.contains(&None) {
            if let Some(ended) = handle_signals(&signals, starts, &children)? {
                // Its last words, and whatever the others said meanwhile.
                for pipe in &mut pipes {
                    pipe.pump(FINAL_READ, &mut console);
                    pipe.close(&mut console);
                }
                return Ok(ended);
            }
        }
    }
}

/// Reads every pending signal: forwards each to every started process, reaps on SIGCHLD.
/// Returns what ended the first started process to end, if one did.
fn handle_signals(signals: &SignalFd, starts: &[Start], children: &[Pid]) -> Result<Option<Ended>> {
    loop {
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(None),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(sys("reading signals")(e)),
        };
        let Ok(signal) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) else {
            continue;
        };
        if signal != Signal::SIGCHLD {
            for &child in children {
                match kill(child, signal) {
                    Ok(()) | Err(nix::Error::ESRCH) => {}
                    Err(e) => crate::warn!("forwarding {signal} to pid {child}: {}", e.desc()),
                }
            }
            continue;
        }
        // SIGCHLDs coalesce: reap everything that has exited.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => break,
                Ok(status) => {
                    let started = children.iter().position(|&c| Some(c) == status.pid());
                    if let (Some(i), Some(code)) = (started, status_code(status)) {
                        return Ok(Some(Ended {
                            name: starts.get(i).and_then(|s| s.name.clone()),
                            pid: children.get(i).copied().unwrap_or(Pid::from_raw(0)),
                            code,
                            status,
                        }));
                    }
                    // Otherwise an orphan, reaped (or a started process stopped, not ended).
                }
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(sys("waiting for the application (waitpid)")(e)),
            }
        }
    }
}

/// Ends every remaining process (the application's orphans) before the enclave stops, and
/// reaps them.
pub fn kill_all() {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while let Ok(status) = waitpid(Pid::from_raw(-1), None) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_shell() {
        let p = Pid::from_raw(7);
        assert_eq!(status_code(WaitStatus::Exited(p, 3)), Some(3));
        assert_eq!(
            status_code(WaitStatus::Signaled(p, Signal::SIGTERM, false)),
            Some(143)
        );
        assert_eq!(status_code(WaitStatus::StillAlive), None);
        assert_eq!(exec_failure_code(nix::Error::ENOENT), 127);
        assert_eq!(exec_failure_code(nix::Error::EACCES), 126);
        assert_eq!(exec_failure_code(nix::Error::E2BIG), 1);
    }
}
