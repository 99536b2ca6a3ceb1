//! The local enclave harness behind `cargo xtask run` / `cargo xtask stop`: boots an EIF in
//! QEMU's `nitro-enclave` machine (TCG), with vhost-device-vsock as its vsock device in
//! "hybrid vsock" mode (Unix sockets on this side), answers the boot heartbeat, forwards
//! `127.0.0.1:PORT` to the enclave's vsock port, streams the console and ends QEMU when the
//! enclave reboots (the machine has no power-off, and `reboot=k` does not end QEMU).
//!
//! Files in the run directory (default `target/enclave-run/`): `vhost.sock` (QEMU ↔ device),
//! `vm.vsock` (host → enclave: `CONNECT <port>\n`), `vm.vsock_<port>` (enclave → host
//! listeners, 9000 = heartbeat), `console.log`, `harness.log` and `harness.pid` (detached),
//! `ready` (written once the server's vsock port answers).

use crate::cmd::{err, output, project_root, Context, Error, Result};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The heartbeat port and byte (see init's heartbeat.rs).
const HEARTBEAT_PORT: u32 = 9000;
const HEARTBEAT_BYTE: u8 = 0xB7;
/// The enclave's CID in the emulator.
const GUEST_CID: u32 = 16;
/// Console lines after which the enclave is gone and QEMU only idles.
const ENDED: [&str; 4] = [
    "reboot: Restarting system",
    "reboot: System halted",
    "reboot: Power down",
    "Kernel panic - not syncing",
];

/// What to boot.
#[derive(Debug, Clone)]
pub enum Image {
    /// An EIF in the `nitro-enclave` machine (with the NSM and vsock).
    Eif(PathBuf),
    /// A bzImage and ramdisk in a plain `microvm` machine: no NSM, no vsock (fault tests).
    Microvm {
        /// The kernel.
        kernel: PathBuf,
        /// The ramdisks, concatenated.
        initrd: PathBuf,
        /// The kernel command line.
        cmdline: String,
    },
}

/// Options of `cargo xtask run`.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to boot.
    pub image: Image,
    /// Guest memory, as QEMU takes it (`256M`).
    pub memory: String,
    /// vCPUs.
    pub cpus: u32,
    /// Local TCP port forwarded to the enclave.
    pub port: u16,
    /// The enclave's vsock port the server listens on.
    pub vsock_port: u32,
    /// Run directory.
    pub dir: PathBuf,
    /// Copy the console to our stdout.
    pub echo: bool,
    /// host-relay sends a PROXY v2 header ahead of each client (for a front with
    /// `--proxy-protocol`).
    pub proxy_v2: bool,
    /// The parent's egress routes an image build wrote (`egress-routes`): the relay serves
    /// them too, each `vsock:any:PORT` listener as the emulator's host socket for that port.
    pub egress_routes: Option<PathBuf>,
}

impl Options {
    /// Defaults for the image built by `cargo xtask eif`.
    pub fn new(image: Image) -> Options {
        Options {
            image,
            memory: "256M".into(),
            cpus: 2,
            port: 8443,
            vsock_port: 443,
            dir: run_dir(),
            echo: true,
            proxy_v2: false,
            egress_routes: None,
        }
    }
}

/// The default run directory (not `target/enclave`: that is cargo's output directory for the
/// `enclave` profile).
pub fn run_dir() -> PathBuf {
    crate::eif::target_dir(&project_root()).join("enclave-run")
}

/// Paths of the emulator's parts, built (or found in the cache) by the ci/ scripts.
#[derive(Debug)]
pub struct Tools {
    /// qemu-system-x86_64 with the nitro-enclave machine.
    pub qemu: PathBuf,
    /// vhost-device-vsock with our patches (CID 3 is the host; queue start-up race).
    pub vhost: PathBuf,
    /// Our host-relay, which forwards 127.0.0.1:PORT to the enclave as on a parent instance.
    pub relay: PathBuf,
}

/// Runs the ci/ install scripts (idempotent, cached) and returns the tools.
pub fn tools() -> Result<Tools> {
    let root = project_root();
    let script = |name: &str| -> Result<PathBuf> {
        eprintln!("$ bash ci/{name}");
        let out = output(
            Command::new("bash")
                .arg(root.join("ci").join(name))
                .stderr(Stdio::inherit()),
        )?;
        let path = PathBuf::from(out.trim());
        if path.is_file() {
            Ok(path)
        } else {
            err(format!("ci/{name} printed {out:?}, not a file"))
        }
    };
    crate::cmd::run(crate::cmd::cargo().current_dir(&root).args([
        "build",
        "--locked",
        "--release",
        "-p",
        "host-relay",
    ]))?;
    Ok(Tools {
        qemu: script("qemu.sh")?,
        vhost: script("vhost-device-vsock.sh")?,
        relay: crate::eif::target_dir(&root).join("release/host-relay"),
    })
}

fn log(msg: &str) {
    eprintln!("harness: {msg}");
}

/// Removes what a previous run left (sockets, markers), refusing if one is still running
/// (other than this very process: a detached harness finds its own pid recorded).
fn prepare_dir(dir: &Path) -> Result {
    if let Some(pid) = running_pid(dir).filter(|p| *p != std::process::id()) {
        return err(format!(
            "an enclave is already running from {} (harness pid {pid}); `cargo xtask stop` first",
            dir.display()
        ));
    }
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    for entry in fs::read_dir(dir)
        .ctx(|| format!("reading {}", dir.display()))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("vm.vsock")
            || name.ends_with(".sock")
            || ["ready", "result", "started"].contains(&name.as_str())
        {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The harness pid recorded in `dir`, if that process is alive.
pub fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(dir.join("harness.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Children that must not outlive the harness.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Boots the image and runs until the enclave ends (or QEMU does). Returns a summary.
pub fn run(opts: &Options, tools: &Tools) -> Result<Summary> {
    let dir = &opts.dir;
    prepare_dir(dir)?;
    let mut reaper = Reaper(Vec::new());
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = Arc::new(AtomicBool::new(false));

    let nitro = matches!(opts.image, Image::Eif(_));
    if nitro {
        let vhost = Command::new(&tools.vhost)
            .arg("--guest-cid")
            .arg(GUEST_CID.to_string())
            .arg("--uds-path")
            .arg(dir.join("vm.vsock"))
            .arg("--socket")
            .arg(dir.join("vhost.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(dir.join("vhost-device-vsock.log"))
                    .ctx(|| "creating vhost log".into())?,
            ))
            .spawn()
            .ctx(|| format!("starting {}", tools.vhost.display()))?;
        reaper.0.push(vhost);
        wait_for(|| dir.join("vhost.sock").exists(), Duration::from_secs(10)).map_err(|()| {
            Error("vhost-device-vsock did not create its socket within 10 s".into())
        })?;
        start_heartbeat_listener(dir, heartbeat.clone())?;
        // The relay, as on a parent instance: TCP in, the enclave's vsock port out (here
        // through vhost-device-vsock's Unix socket: the "hybrid vsock" form).
        let mut route = format!(
            "tcp:127.0.0.1:{}=vsock-uds:{}:{}",
            opts.port,
            dir.join("vm.vsock").display(),
            opts.vsock_port
        );
        if opts.proxy_v2 {
            route.push_str(",proxy-v2");
        }
        let mut routes = vec!["--route".to_owned(), route];
        if let Some(file) = &opts.egress_routes {
            let text = fs::read_to_string(file).ctx(|| format!("reading {}", file.display()))?;
            for r in egress_routes(&text, &dir.join("vm.vsock"))
                .map_err(|e| Error(format!("{}: {e}", file.display())))?
            {
                routes.push("--route".into());
                routes.push(r);
            }
        }
        let relay = Command::new(&tools.relay)
            .args(&routes)
            .args(["--workers", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(dir.join("host-relay.log")).ctx(|| "creating relay log".into())?,
            ))
            .spawn()
            .ctx(|| format!("starting {}", tools.relay.display()))?;
        reaper.0.push(relay);
        wait_for(
            || TcpStream::connect(("127.0.0.1", opts.port)).is_ok(),
            Duration::from_secs(10),
        )
        .map_err(|()| {
            Error(format!(
                "host-relay did not listen on 127.0.0.1:{} within 10 s",
                opts.port
            ))
        })?;
    }

    let mut qemu = Command::new(&tools.qemu);
    qemu.args([
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
    ])
    .args([
        "-cpu",
        "max",
        "-smp",
        &opts.cpus.to_string(),
        "-m",
        &opts.memory,
    ])
    .args(["-L", "/usr/share/qemu", "-no-reboot"]);
    match &opts.image {
        Image::Eif(eif) => {
            qemu.arg("-M")
                .arg("nitro-enclave,vsock=vsock0,id=enclave-https-local")
                .arg("-kernel")
                .arg(eif)
                .arg("-chardev")
                .arg(format!(
                    "socket,id=vsock0,path={}",
                    dir.join("vhost.sock").display()
                ));
        }
        Image::Microvm {
            kernel,
            initrd,
            cmdline,
        } => {
            qemu.args(["-M", "microvm"])
                .arg("-kernel")
                .arg(kernel)
                .arg("-initrd")
                .arg(initrd)
                .arg("-append")
                .arg(cmdline);
        }
    }
    qemu.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    log(&format!("$ {}", crate::cmd::render(&qemu)));
    let started = Instant::now();
    let epoch_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let _ = fs::write(dir.join("started"), format!("{epoch_ms}\n"));
    let mut child = qemu
        .spawn()
        .ctx(|| format!("starting {}", tools.qemu.display()))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let qemu_pid = child.id();
    reaper.0.push(child);

    if nitro {
        start_ready_probe(dir, opts.vsock_port, opts.port, started, stop.clone());
    }
    // QEMU reports a device it had to give up on (virtio_error) on stderr and keeps running,
    // while the guest waits minutes for a driver timeout. Such a line ends the run at once, and
    // is what the run's result says.
    let device_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    if let Some(e) = stderr {
        let device_error = Arc::clone(&device_error);
        thread::spawn(move || {
            for line in BufReader::new(e).lines().map_while(|l| l.ok()) {
                log(&format!("qemu: {line}"));
                if is_device_error(&line) {
                    log("QEMU gave up on a device; stopping it now instead of waiting for the guest to time out");
                    if let Ok(mut slot) = device_error.lock() {
                        slot.get_or_insert(line);
                    }
                    let _ = Command::new("kill").arg(qemu_pid.to_string()).status();
                }
            }
        });
    }

    let mut console =
        fs::File::create(dir.join("console.log")).ctx(|| "creating console.log".into())?;
    // The host time of every console line, in ms after QEMU started (for boot benchmarks).
    let mut timing =
        fs::File::create(dir.join("console.timing")).ctx(|| "creating console.timing".into())?;
    let mut summary = Summary::default();
    if let Some(out) = stdout {
        let mut reader = BufReader::new(out);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\r', '\n']);
            let _ = writeln!(console, "{line}");
            let _ = writeln!(timing, "{}\t{line}", started.elapsed().as_millis());
            if opts.echo {
                println!("{line}");
            }
            if let Some(end) = ENDED.iter().find(|e| line.contains(*e)) {
                summary.ended_by = Some((*end).to_owned());
                summary.ended_after = Some(started.elapsed());
                log(&format!(
                    "the enclave ended ({end}) {:.2}s after start; stopping QEMU",
                    started.elapsed().as_secs_f64()
                ));
                let _ = Command::new("kill").arg(qemu_pid.to_string()).status();
                break;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    // Give the stderr thread a moment to record the line that made it stop QEMU.
    thread::sleep(Duration::from_millis(50));
    if let Some(line) = device_error.lock().ok().and_then(|s| s.clone()) {
        summary.ended_by = Some(format!("QEMU error: {line}"));
        summary.ended_after = Some(started.elapsed());
    }
    summary.heartbeat = heartbeat.load(Ordering::SeqCst);
    drop(reaper);
    let _ = fs::write(
        dir.join("result"),
        format!(
            "ended_by={}\n",
            summary.ended_by.as_deref().unwrap_or("qemu exited")
        ),
    );
    let _ = fs::remove_file(dir.join("ready"));
    Ok(summary)
}

/// Whether a line of QEMU's stderr says it gave up on a device: an error report (not a
/// warning) of the running machine, such as virtio-nsm's "Expected response buffer after
/// request buffer in virtqueue".
pub fn is_device_error(line: &str) -> bool {
    let Some((_, message)) = line.split_once(": ") else {
        return false;
    };
    line.starts_with("qemu-system-")
        && !message.starts_with("warning:")
        && !message.starts_with("info:")
        && (message.contains("virtqueue")
            || message.contains("virtio")
            || message.contains("Expected")
            || message.contains("broken"))
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Summary {
    /// The console line that showed the enclave had ended, if one did.
    pub ended_by: Option<String>,
    /// When, after QEMU started.
    pub ended_after: Option<Duration>,
    /// Whether the heartbeat was received and answered.
    pub heartbeat: bool,
}

fn wait_for(mut cond: impl FnMut() -> bool, limit: Duration) -> std::result::Result<(), ()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(())
}

/// Answers the enclave's boot heartbeat (what nitro-cli does before a launch succeeds).
fn start_heartbeat_listener(dir: &Path, seen: Arc<AtomicBool>) -> Result {
    let path = dir.join(format!("vm.vsock_{HEARTBEAT_PORT}"));
    let listener = UnixListener::bind(&path).ctx(|| format!("binding {}", path.display()))?;
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut b = [0u8; 1];
            match s.read_exact(&mut b) {
                Ok(()) if b[0] == HEARTBEAT_BYTE => {
                    let _ = s.write_all(&b);
                    seen.store(true, Ordering::SeqCst);
                    log("heartbeat received from the enclave and answered");
                }
                Ok(()) => log(&format!("heartbeat: unexpected byte 0x{:02X}", b[0])),
                Err(e) => log(&format!("heartbeat: {e}")),
            }
        }
    });
    Ok(())
}

/// Opens a stream to the enclave's vsock `port` through vhost-device-vsock's Unix socket (the
/// hybrid-vsock handshake of `contract::vsock_uds`, as host-relay speaks it).
pub fn vsock_connect(uds: &Path, port: u32, timeout: Duration) -> std::io::Result<UnixStream> {
    use contract::vsock_uds;
    let mut s = UnixStream::connect(uds)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(vsock_uds::connect_request(port).as_bytes())?;
    // Read the reply byte by byte: what follows the line belongs to the application.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < vsock_uds::MAX_REPLY {
        if s.read(&mut b)? == 0 || b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    s.set_read_timeout(None)?;
    match vsock_uds::parse_reply(&line) {
        Ok(_) => Ok(s),
        Err(e) => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("vsock port {port}: {e}"),
        )),
    }
}

/// The parent's egress routes (`vsock:any:PORT=TARGET[,OPTION…]`, one per line, `#`
/// comments) as the relay serves them next to the emulator: a guest connecting to the host's
/// vsock PORT reaches vhost-device-vsock's Unix socket `UDS_PORT`, so that is where the
/// relay listens.
pub fn egress_routes(text: &str, uds: &Path) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (listen, target) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not LISTEN=TARGET: {line:?}", i + 1))?;
        let port = listen
            .strip_prefix("vsock:any:")
            .filter(|p| p.parse::<u32>().is_ok())
            .ok_or_else(|| {
                format!(
                    "line {}: the listener is not vsock:any:PORT: {line:?}",
                    i + 1
                )
            })?;
        out.push(format!("unix:{}_{port}={target}", uds.display()));
    }
    Ok(out)
}

/// Writes `ready` once the server's vsock port accepts a connection.
fn start_ready_probe(
    dir: &Path,
    vsock_port: u32,
    port: u16,
    started: Instant,
    stop: Arc<AtomicBool>,
) {
    let dir = dir.to_owned();
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if vsock_connect(&dir.join("vm.vsock"), vsock_port, Duration::from_secs(2)).is_ok() {
                let secs = started.elapsed().as_secs_f64();
                let _ = fs::write(dir.join("ready"), format!("{secs:.3}\n"));
                log(&format!(
                    "ready {secs:.2}s after start: 127.0.0.1:{port} reaches vsock port {vsock_port} in the enclave"
                ));
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
}

/// Starts the harness in the background (its own process group) and waits until the
/// server answers, the enclave ends, or `limit` passes.
pub fn start_detached(opts: &Options, limit: Duration) -> Result<u32> {
    prepare_dir(&opts.dir)?;
    let _ = fs::remove_file(opts.dir.join("harness.pid"));
    let Image::Eif(eif) = &opts.image else {
        return err("--detach boots EIFs only");
    };
    let exe = std::env::current_exe().ctx(|| "finding the xtask binary".into())?;
    let logf =
        fs::File::create(opts.dir.join("harness.log")).ctx(|| "creating harness.log".into())?;
    let mut child = Command::new(exe)
        .arg("__harness")
        .arg("--eif")
        .arg(eif)
        .args(["--memory", &opts.memory, "--cpus", &opts.cpus.to_string()])
        .args([
            "--port",
            &opts.port.to_string(),
            "--vsock-port",
            &opts.vsock_port.to_string(),
        ])
        .arg("--dir")
        .arg(&opts.dir)
        .args(opts.proxy_v2.then_some("--proxy-v2"))
        .args(
            opts.egress_routes
                .iter()
                .flat_map(|f| [std::ffi::OsStr::new("--egress-routes"), f.as_os_str()]),
        )
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().ctx(|| "harness.log".into())?)
        .stderr(logf)
        .spawn()
        .ctx(|| "starting the harness".into())?;
    let pid = child.id();
    fs::write(opts.dir.join("harness.pid"), format!("{pid}\n"))
        .ctx(|| "writing harness.pid".into())?;
    let start = Instant::now();
    loop {
        if opts.dir.join("ready").exists() {
            return Ok(pid);
        }
        let exited = !matches!(child.try_wait(), Ok(None));
        if opts.dir.join("result").exists() || exited {
            // Say why at once when QEMU gave up on a device.
            let result = fs::read_to_string(opts.dir.join("result")).unwrap_or_default();
            let why = result
                .strip_prefix("ended_by=")
                .map(str::trim)
                .filter(|r| r.starts_with("QEMU error"))
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            return err(format!(
                "the enclave ended before its server answered{why}; see {} and {}",
                opts.dir.join("console.log").display(),
                opts.dir.join("harness.log").display()
            ));
        }
        if start.elapsed() > limit {
            return err(format!(
                "the server did not answer within {}s; `cargo xtask stop`",
                limit.as_secs()
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Processes in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which is in parentheses and may contain spaces).
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // state ppid pgrp …; zombies have ended already
        let zombie = fields.first().is_some_and(|s| *s == "Z" || *s == "X");
        if !zombie && fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            found.push(pid);
        }
    }
    found
}

/// Stops a detached harness and everything it started; returns what was stopped.
pub fn stop(dir: &Path) -> Result<usize> {
    let Ok(text) = fs::read_to_string(dir.join("harness.pid")) else {
        return Ok(0);
    };
    let pgid: u32 = text
        .trim()
        .parse()
        .map_err(|_| Error(format!("{}: bad harness.pid", dir.display())))?;
    let members = group_members(pgid);
    if !members.is_empty() {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pgid}")])
            .status();
        if wait_for(|| group_members(pgid).is_empty(), Duration::from_secs(5)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
            let _ = wait_for(|| group_members(pgid).is_empty(), Duration::from_secs(5));
        }
    }
    let left = group_members(pgid);
    let _ = fs::remove_file(dir.join("harness.pid"));
    prepare_dir(dir)?;
    if left.is_empty() {
        Ok(members.len())
    } else {
        err(format!(
            "processes {left:?} of the enclave harness are still running"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_routes_listen_where_the_emulator_sends_guest_connections() {
        let uds = Path::new("/run/x/vm.vsock");
        assert_eq!(
            egress_routes(
                "# egress\nvsock:any:8000=tcp:api.example.com:443\n\nvsock:any:8001=tcp:b:80,proxy-v2\n",
                uds
            )
            .unwrap(),
            [
                "unix:/run/x/vm.vsock_8000=tcp:api.example.com:443",
                "unix:/run/x/vm.vsock_8001=tcp:b:80,proxy-v2"
            ]
        );
        assert_eq!(
            egress_routes("tcp:1.2.3.4:1=tcp:a:1", uds).unwrap_err(),
            "line 1: the listener is not vsock:any:PORT: \"tcp:1.2.3.4:1=tcp:a:1\""
        );
        assert_eq!(
            egress_routes("x", uds).unwrap_err(),
            "line 1: not LISTEN=TARGET: \"x\""
        );
    }
}
