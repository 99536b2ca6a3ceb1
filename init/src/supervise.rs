//! Starting the application and staying PID 1 for it, the way tini does: every signal is
//! blocked in init and read from a signalfd; SIGCHLD reaps every exited process (so orphans
//! never stay zombies); every other signal (SIGTERM, SIGINT, …) is forwarded to the
//! application. When the application ends, its status is returned (exit code, or 128 +
//! signal number as a shell reports it) and the caller ends the enclave.

use crate::error::{sys, Result};
use crate::sys::{exit_child, fork};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execve, setsid, ForkResult, Pid};
use std::ffi::CString;
use std::io::Write;

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

/// What ended the application.
#[derive(Debug)]
pub struct Ended {
    /// Its pid.
    pub pid: Pid,
    /// Its status as a shell reports it.
    pub code: i32,
    /// The raw wait status, for the log.
    pub status: WaitStatus,
}

/// Forks, execs `program` with `argv` and `env` in the child, and supervises it until it
/// ends. `started` is called with the child's pid once it runs.
pub fn run(
    program: &CString,
    argv: &[CString],
    env: &[CString],
    started: impl FnOnce(Pid),
) -> Result<Ended> {
    let mut blocked = SigSet::all();
    for s in SYNCHRONOUS {
        blocked.remove(s);
    }
    let mut previous = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&blocked), Some(&mut previous))
        .map_err(sys("blocking signals"))?;
    let signals = SignalFd::with_flags(&blocked, SfdFlags::SFD_CLOEXEC).map_err(sys("signalfd"))?;

    let child = match fork().map_err(sys("fork"))? {
        ForkResult::Child => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
            let _ = setsid();
            let err = match execve(program, argv, env) {
                Err(e) => e,
                Ok(never) => match never {},
            };
            let _ = writeln!(
                std::io::stderr(),
                "init: error: exec {}: {}",
                program.to_string_lossy(),
                err.desc()
            );
            exit_child(exec_failure_code(err));
        }
        ForkResult::Parent { child } => child,
    };
    started(child);

    loop {
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(sys("reading signals")(e)),
        };
        let Ok(signal) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) else {
            continue;
        };
        if signal != Signal::SIGCHLD {
            match kill(child, signal) {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(e) => crate::warn!("forwarding {signal} to pid {child}: {}", e.desc()),
            }
            continue;
        }
        // SIGCHLDs coalesce: reap everything that has exited.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => break,
                Ok(status) if status.pid() == Some(child) => {
                    if let Some(code) = status_code(status) {
                        return Ok(Ended {
                            pid: child,
                            code,
                            status,
                        });
                    }
                }
                Ok(_) => {} // an orphan, reaped
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
