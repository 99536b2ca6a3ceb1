//! `init`: PID 1 of the enclave. It does little, in a fixed order, and logs one console line
//! per step:
//!
//! 1. mount /dev (devtmpfs), then make /dev/console its stdin/stdout/stderr, then /proc, /sys;
//!    say the wall clock's time and source (certificate checks depend on it);
//! 2. load the kernel modules shipped in the bootstrap ramdisk (`/*.ko`), if any;
//! 3. seed the kernel's entropy pool from the NSM and check the NSM feeds the kernel's RNG,
//!    while a thread sends the boot heartbeat to the parent (vsock 3:9000);
//! 4. wait for the heartbeat's answer (or its deadline);
//! 5. read the application's `/cmd` and `/env`, switch root into `/rootfs`, mount /dev/pts,
//!    /dev/shm, /tmp and /run there, raise the open-file limit;
//! 6. bring up the loopback interface `lo` (127.0.0.0/8);
//! 7. read the processes file (`/etc/enclave-https/processes` in the new root), if any, and
//!    find every program to run;
//! 8. start the application alone on the console, or, when processes are listed, each of them
//!    and then the application, their output copied to the console line by line as
//!    `[NAME] …`; supervise them (signals forwarded to all, orphans reaped);
//! 9. when one of them ends, or any step fails, say why, sync and reboot, which ends the
//!    enclave (no hang, no kernel panic loop).
//!
//! Which failures are fatal, decided once: every step is, except opening the console (the
//! kernel's console is still there) and the heartbeat (the parent judges a launch without
//! it; the enclave can still serve, and a local run may have no parent listening). Missing
//! NSM randomness is fatal on purpose: the server's TLS keys are made from that pool.
#![deny(unsafe_code)]

mod app;
mod clock;
mod console;
mod entropy;
mod error;
mod heartbeat;
mod modules;
mod mounts;
mod net;
mod output;
mod processes;
mod rootfs;
mod supervise;
mod sys;

use error::{sys as syserr, Error, Result};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::resource::{setrlimit, Resource};
use std::path::Path;

/// Open files the application may have (the kernel's default of 1024 is too few for a
/// server); `fs.nr_open` is far above it.
const NOFILE: u64 = 65_536;

fn main() {
    if std::process::id() != 1 {
        eprintln!("init: this is the enclave's PID 1; it mounts file systems and reboots the machine, so it refuses to run as pid {}", std::process::id());
        std::process::exit(1);
    }
    match boot() {
        Ok(ended) => match &ended.name {
            None => info!(
                "application (pid {}) ended with status {} ({:?}); rebooting",
                ended.pid, ended.code, ended.status
            ),
            Some(name) => info!(
                "process {name} (pid {}) exited with status {} ({:?}); rebooting",
                ended.pid, ended.code, ended.status
            ),
        },
        Err(e) => console::log("error", &format!("{e}; rebooting")),
    }
    supervise::kill_all();
    nix::unistd::sync();
    let _ = reboot(RebootMode::RB_AUTOBOOT);
    // Only reached if reboot itself failed: PID 1 must not exit.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn boot() -> Result<supervise::Ended> {
    info!("enclave-https init {} starting", env!("CARGO_PKG_VERSION"));
    let root = Path::new("/");
    for (i, m) in mounts::EARLY.iter().enumerate() {
        mounts::apply(m, root)?;
        if i == 0 {
            if let Err(e) = console::attach() {
                warn!("{e}; logging to the console the kernel gave us");
            }
        }
        info!("mounted {} on {}", m.fstype, m.target);
    }

    info!("{}", clock::describe(root));
    let cmdline =
        std::fs::read_to_string("/proc/cmdline").map_err(error::io("reading", "/proc/cmdline"))?;
    for module in modules::find(root) {
        let params = modules::load(&module, &cmdline)?;
        info!("loaded kernel module {} [{}]", module.display(), params);
    }

    // The heartbeat waits on the parent; seeding the entropy pool waits on the NSM. Both at
    // once: the heartbeat runs on a thread of its own, joined before the application is read.
    let heartbeat = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(heartbeat::send);
    let mut nsm = entropy::Device::open()?;
    info!("{}", entropy::seed(&mut nsm)?);
    drop(nsm);

    let sent = match heartbeat {
        Ok(thread) => thread.join().unwrap_or(Err(Error::Heartbeat {
            step: "join",
            parent: (heartbeat::PARENT_CID, heartbeat::PORT),
            cause: error::HeartbeatFailure::Thread,
        })),
        // No thread to be had: send it from here.
        Err(_) => heartbeat::send(),
    };
    match sent {
        Ok(took) => info!(
            "heartbeat: answered by the parent in {} ms",
            took.as_millis()
        ),
        Err(e) => warn!("{e}; continuing without it"),
    }

    let app = app::load(root)?;
    let program = app.argv[0].to_string_lossy().into_owned();
    info!(
        "application: {} with {} argument(s) and {} environment variable(s)",
        program,
        app.argv.len() - 1,
        app.env.len()
    );
    rootfs::switch(Path::new("/rootfs"))?;
    info!("switched root to /rootfs");
    for m in mounts::LATE {
        mounts::apply(m, root)?;
        info!("mounted {} on {}", m.fstype, m.target);
    }
    setrlimit(Resource::RLIMIT_NOFILE, NOFILE, NOFILE).map_err(syserr("raising RLIMIT_NOFILE"))?;

    net::up(net::LOOPBACK)?;
    info!("loopback {} up", net::LOOPBACK);

    let listed = processes::read(Path::new(contract::processes::PATH))?;
    if !listed.is_empty() {
        let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
        info!(
            "processes: {} listed in {} ({})",
            listed.len(),
            contract::processes::PATH,
            names.join(", ")
        );
    }
    let starts = processes::plan(&app, &listed, root)?;
    supervise::run(&starts, |i, pid| {
        let Some(start) = starts.get(i) else { return };
        let program = start.program.to_string_lossy();
        match &start.name {
            None => info!("exec {program} as pid {pid}"),
            Some(name) => info!("exec {program} as pid {pid} ({name})"),
        }
    })
}
