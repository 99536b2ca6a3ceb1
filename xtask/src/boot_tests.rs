//! Boot tests run by `cargo xtask test` in the emulator: the real image boots in 64 MiB,
//! init does every step it logs, the server answers through the forwarded port, the NSM's
//! PCRs equal the published measurements, and `stop` leaves nothing behind; and three broken
//! images (no server binary, a server that exits at start, no NSM) each end in an explicit
//! console line and a reboot within seconds.

mod clients;
mod kms;

pub use clients::{clients, Proxy};
pub use kms::kms;

use crate::check::Outcome;
use crate::cmd::{err, free_port, output, project_root, run, Context, Result};
use crate::eif::{self, json_string, Image};
use crate::enclave::{self, Options, Summary, Tools};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A broken image must be over this quickly (QEMU start to reboot, under TCG).
const FAULT_LIMIT: Duration = Duration::from_secs(30);

/// Console lines init must print on a good boot.
const GOOD_BOOT_LINES: &[&str] = &[
    "init: mounted devtmpfs on /dev",
    "init: mounted proc on /proc",
    "init: mounted sysfs on /sys",
    "init: clock: ",
    "init: entropy: credited 2048 bits",
    "init: heartbeat: answered by the parent",
    "init: switched root to /rootfs",
    "init: mounted devpts on /dev/pts",
    "init: mounted tmpfs on /dev/shm",
    "init: mounted tmpfs on /tmp",
    "init: mounted tmpfs on /run",
    "init: exec /server as pid",
];

fn outcome(name: &str, r: Result) -> Outcome {
    (name.to_owned(), r.map_err(|e| e.0))
}

/// Builds an image on `image`'s platform from the manifest text `manifest` (in which
/// `${ENCLAVE_BIN}` is the directory of the static enclave binaries) in `faults/NAME`, and
/// returns the directory (enclave.eif, measurements.json).
fn variant(image: &Image, name: &str, manifest: &str) -> Result<PathBuf> {
    let dir = image.dir.join("faults").join(name);
    fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    let file = dir.join("enclave.toml");
    fs::write(&file, manifest).ctx(|| format!("writing {}", file.display()))?;
    eif::pack_image(&image.tool, &image.platform, &file, &dir, true)?;
    Ok(dir)
}

/// [`boot_once`]: there is no retry. (An emulator NSM stall used to be retried here; the
/// device is patched now, ci/patches/, and QEMU's own error line ends a run at once.)
fn boot_expecting(tools: &Tools, image: enclave::Image, dir: &Path, expect: &str) -> Result {
    boot_once(tools, image, dir, expect)
}

/// Boots `image` in the foreground (console not echoed) and checks how it ended.
fn boot_once(tools: &Tools, image: enclave::Image, dir: &Path, expect: &str) -> Result {
    boot_once_with(tools, image, dir, expect, |_| {})
}

/// [`boot_once`], with the harness's options adjusted by `adjust` first (the egress routes).
fn boot_once_with(
    tools: &Tools,
    image: enclave::Image,
    dir: &Path,
    expect: &str,
    adjust: impl FnOnce(&mut Options),
) -> Result {
    let mut opts = Options::new(image);
    opts.dir = dir.to_owned();
    opts.port = free_port()?;
    opts.echo = false;
    opts.memory = "64M".into();
    adjust(&mut opts);
    let summary: Summary = enclave::run(&opts, tools)?;
    let console = fs::read_to_string(dir.join("console.log")).unwrap_or_default();
    let tail = || {
        console
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n  | ")
    };
    if let Some(qemu) = summary
        .ended_by
        .as_deref()
        .filter(|e| e.starts_with("QEMU error"))
    {
        return err(format!("{qemu}; the console ended:\n  | {}", tail()));
    }
    if !console.contains(expect) {
        return err(format!(
            "the console never said {expect:?}; it ended:\n  | {}",
            tail()
        ));
    }
    if console.contains("Kernel panic") {
        return err(format!("the kernel panicked:\n  | {}", tail()));
    }
    match (summary.ended_by.as_deref(), summary.ended_after) {
        (Some("reboot: Restarting system"), Some(t)) if t <= FAULT_LIMIT => {
            println!(
                "       ({expect:?}, then a reboot {:.1}s after QEMU started)",
                t.as_secs_f64()
            );
            Ok(())
        }
        (end, t) => err(format!(
            "expected a reboot within {}s, got {end:?} after {t:?}",
            FAULT_LIMIT.as_secs()
        )),
    }
}

/// The three broken images.
pub fn faults(image: &Image, tools: &Tools) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let runs = image.dir.join("faults");

    // The application is init itself at /init; the command names a /server the image lacks.
    let missing = "[app]\nbinary = \"${ENCLAVE_BIN}/init\"\nargs = [\"/server\"]\n";
    outcomes.push(outcome(
        "fault: server binary missing from the image ends in an error line and a reboot",
        variant(image, "missing-server", missing).and_then(|dir| {
            boot_expecting(
                tools,
                enclave::Image::Eif(dir.join("enclave.eif")),
                &runs.join("missing-server/run"),
                "init: error: starting the application: /server: no such executable",
            )
        }),
    ));

    let exits =
        "[app]\nbinary = \"${ENCLAVE_BIN}/server\"\nargs = [\"/server\", \"--no-such-option\"]\n";
    outcomes.push(outcome(
        "fault: a server that exits at start ends in a status line and a reboot",
        variant(image, "server-exits", exits).and_then(|dir| {
            boot_expecting(
                tools,
                enclave::Image::Eif(dir.join("enclave.eif")),
                &runs.join("server-exits/run"),
                "init: application (pid",
            )
        }),
    ));

    let no_nsm = (|| -> Result {
        let dir = runs.join("no-nsm");
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let mut initrd =
            fs::read(image.dir.join("bootstrap.cpio")).ctx(|| "bootstrap.cpio".into())?;
        initrd.extend(fs::read(image.dir.join("app.cpio")).ctx(|| "app.cpio".into())?);
        fs::write(dir.join("initrd.cpio"), initrd).ctx(|| "writing initrd".into())?;
        boot_expecting(
            tools,
            enclave::Image::Microvm {
                kernel: image.kernel.clone(),
                initrd: dir.join("initrd.cpio"),
                cmdline: eif::cmdline(&project_root())?,
            },
            &dir.join("run"),
            "init: error: NSM: cannot open /dev/nsm",
        )
    })();
    outcomes.push(outcome(
        "fault: no NSM (plain microvm) refuses to start the server and reboots",
        no_nsm,
    ));
    outcomes
}

/// The processes file of [`processes`]: Debian's static busybox as a web server on loopback.
const PROCESSES_FILE: &str = "process web\narg /busybox\narg httpd\narg -f\narg -vv\narg -p\n\
                              arg 127.0.0.1:8080\narg -h\narg /www\n";

/// The page it serves.
const PROCESSES_PAGE: &str = "a page served over the enclave's loopback\n";

/// An image of several processes (its processes file placed by hand through `[[app.files]]`):
/// busybox's httpd, listed as `web`, serves a page on 127.0.0.1 (init brought `lo` up); the
/// `/cmd` program (busybox's sh) fetches it, writes a last line without a newline and exits 3.
/// Every line reaches the console prefixed with its process's name, and the enclave reboots
/// with a line naming the process that ended.
pub fn processes(image: &Image, tools: &Tools) -> Vec<Outcome> {
    let busybox = Path::new("/bin/busybox");
    let r = (|| -> Result {
        if !busybox.is_file() {
            return err("no /bin/busybox: install Debian's busybox-static (`cargo xtask setup`)");
        }
        let dir = image.dir.join("faults").join("processes");
        fs::create_dir_all(dir.join("www")).ctx(|| format!("creating {}", dir.display()))?;
        fs::write(dir.join("processes"), PROCESSES_FILE).ctx(|| "writing processes".into())?;
        fs::write(dir.join("www/index.html"), PROCESSES_PAGE).ctx(|| "writing the page".into())?;
        let manifest = format!(
            "[app]\nbinary = \"{}\"\nargs = [\"/busybox\", \"sh\", \"-c\", \"sleep 2; \
             /busybox wget -q -O - http://127.0.0.1:8080/index.html; printf 'last words'; \
             sleep 1; exit 3\"]\nenv = {{ PATH = \"/\" }}\n\n\
             [[app.files]]\nsrc = \"processes\"\ndst = \"/etc/enclave-https/processes\"\n\
             mode = 0o644\n\n\
             [[app.files]]\nsrc = \"www/index.html\"\ndst = \"/www/index.html\"\nmode = 0o644\n",
            busybox.display()
        );
        let dir = variant(image, "processes", &manifest)?;
        let run = dir.join("run");
        boot_once(
            tools,
            enclave::Image::Eif(dir.join("enclave.eif")),
            &run,
            "init: process busybox (pid",
        )?;
        let console = fs::read_to_string(run.join("console.log")).ctx(|| "console.log".into())?;
        for want in [
            "init: loopback lo up",
            "init: processes: 1 listed in /etc/enclave-https/processes (web)",
            "(web)\n",
            "(busybox)\n",
            "[web] 127.0.0.1:",
            &format!("[busybox] {PROCESSES_PAGE}"),
            "[busybox] last words\n",
            ") exited with status 3 (",
        ] {
            if !console.contains(want) {
                return err(format!("the console never said {want:?}"));
            }
        }
        Ok(())
    })();
    vec![outcome(
        "processes: a listed web server and the application share loopback, their lines are \
         prefixed, and one's exit reboots naming it",
        r,
    )]
}

/// The port of the egress boot test's service, as the enclave names it (`egress.test:8080`).
const EGRESS_PORT: u16 = 8080;

/// What the egress boot test's service answers.
const EGRESS_BODY: &str = "hello from outside the enclave";

/// A tiny HTTP server on 127.0.0.1 answering every request with [`EGRESS_BODY`], recording
/// each request's head; stopped (and its thread joined) when dropped.
struct TestService {
    port: u16,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TestService {
    fn start() -> Result<TestService> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .ctx(|| "binding the egress test's service".into())?;
        let port = listener
            .local_addr()
            .ctx(|| "the egress test's service address".into())?
            .port();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if let Ok(mut r) = seen.lock() {
                    r.push(String::from_utf8_lossy(&head).into_owned());
                }
                let _ = s.write_all(
                    format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{EGRESS_BODY}\n")
                        .as_bytes(),
                );
            }
        });
        Ok(TestService {
            port,
            requests,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The egress routes the build wrote, each target replaced by a service on this machine
/// (which cannot resolve the test's made-up names): `port_of(TARGET)` gives its port on
/// 127.0.0.1. The harness listens for each on the emulator's host socket of its vsock port
/// (`enclave::egress_routes`).
fn routes_to(routes: &str, port_of: impl Fn(&str) -> Result<u16>) -> Result<String> {
    let mut out = String::new();
    for line in routes
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Some((listen, target)) = line.split_once('=') else {
            return err(format!("egress-routes: {line:?} is not LISTEN=TARGET"));
        };
        out.push_str(&format!("{listen}=tcp:127.0.0.1:{}\n", port_of(target)?));
    }
    Ok(out)
}

/// Egress: `fetch` (examples/egress) in the enclave GETs a service on this machine by a name
/// listed in the manifest's `egress` (through /etc/hosts, the forwarder in the enclave, vsock,
/// and host-relay here with the routes the build wrote), and fails to resolve a name that is
/// not listed; then it exits and the enclave reboots.
pub fn egress(image: &Image, tools: &Tools) -> Vec<Outcome> {
    let listed = format!("http://egress.test:{EGRESS_PORT}/hello");
    let unlisted = format!("http://not-listed.test:{EGRESS_PORT}/");
    let r = (|| -> Result {
        let service = TestService::start()?;
        let manifest = format!(
            "egress = [\"egress.test:{EGRESS_PORT}\"]\n[app]\nbinary = \"${{ENCLAVE_BIN}}/fetch\"\n\
             args = [\"/fetch\", \"{listed}\", \"{unlisted}\"]\nenv = {{ PATH = \"/\" }}\n"
        );
        let dir = variant(image, "egress", &manifest)?;
        let run = dir.join("run");
        fs::create_dir_all(&run).ctx(|| format!("creating {}", run.display()))?;
        let routes = fs::read_to_string(dir.join("egress-routes"))
            .ctx(|| "reading the egress-routes the build wrote".into())?;
        let local = dir.join("egress-routes.test");
        fs::write(&local, routes_to(&routes, |_| Ok(service.port))?)
            .ctx(|| format!("writing {}", local.display()))?;
        boot_once_with(
            tools,
            enclave::Image::Eif(dir.join("enclave.eif")),
            &run,
            &format!("fetch {listed}: HTTP/1.0 200 OK: {EGRESS_BODY}"),
            |opts| opts.egress_routes = Some(local.clone()),
        )?;
        let console = fs::read_to_string(run.join("console.log")).ctx(|| "console.log".into())?;
        let want = format!("fetch {unlisted}: failed: cannot resolve not-listed.test");
        if !console.contains(&want) {
            return err(format!("the console never said {want:?}"));
        }
        let requests = service
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let host = format!("GET /hello HTTP/1.0\r\nHost: egress.test:{EGRESS_PORT}\r\n");
        if requests.len() != 1 || !requests[0].starts_with(&host) {
            return err(format!(
                "the service expected one request for egress.test, got {requests:?}"
            ));
        }
        Ok(())
    })();
    vec![outcome(
        "egress: the enclave's fetch reaches a listed name through the forwarder, vsock and \
         host-relay --routes, an unlisted name does not resolve, and the exit reboots",
        r,
    )]
}

/// Boots `eif` in 64 MiB in the background, its run files in `dir`, forwarded from a free
/// port, until its server answers; the options say where (stop it with `enclave::stop`).
pub(crate) fn boot_detached(eif: PathBuf, dir: PathBuf) -> (Options, Result) {
    boot_detached_with(eif, dir, |_| {})
}

/// [`boot_detached`], with the harness's options adjusted by `adjust` first.
fn boot_detached_with(
    eif: PathBuf,
    dir: PathBuf,
    adjust: impl FnOnce(&mut Options),
) -> (Options, Result) {
    let mut opts = Options::new(enclave::Image::Eif(eif));
    opts.dir = dir;
    opts.memory = "64M".into();
    adjust(&mut opts);
    let started = free_port().and_then(|port| {
        opts.port = port;
        enclave::start_detached(&opts, Duration::from_secs(180)).map(drop)
    });
    (opts, started)
}

/// The real image, booted in 64 MiB, serving through the forwarded port.
pub fn serve(image: &Image) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let (opts, started) = boot_detached(image.eif.clone(), image.dir.join("boot-test"));
    let port = opts.port;
    let ok = started.is_ok();
    outcomes.push(outcome(
        "boot: the image boots in 64 MiB and its server answers on vsock",
        started,
    ));
    if ok {
        let console = fs::read_to_string(opts.dir.join("console.log")).unwrap_or_default();
        for line in GOOD_BOOT_LINES {
            let r = if console.contains(line) {
                Ok(())
            } else {
                err(format!("no console line {line:?}"))
            };
            outcomes.push(outcome(&format!("boot: console shows {line:?}"), r));
        }
        outcomes.push(outcome(
            "boot: heartbeat received by the harness",
            harness_saw_heartbeat(&opts.dir),
        ));
        outcomes.push(outcome(
            "boot: GET /health through host-relay (127.0.0.1 → vsock) answers 200",
            health(port),
        ));
        outcomes.push(outcome(
            "boot: PCR0/1/2 in the NSM's attestation document equal measurements.json",
            attested_pcrs(image, port),
        ));
        outcomes.extend(attest_end_to_end(image, port));
        outcomes.push(outcome(
            "boot: 1,000 hostile connections of each kind through host-relay leave the 64 MiB \
             enclave up and a keep-alive client served",
            flood(&opts.dir, port),
        ));
    }
    let stopped = enclave::stop(&opts.dir).and_then(|_| nothing_left(&opts.dir, port));
    outcomes.push(outcome(
        "boot: stop leaves no process, socket or listener behind",
        stopped,
    ));
    outcomes
}

/// An example image: built from its manifest on `image`'s platform, booted in 64 MiB,
/// asked `path` through host-relay (the body must contain `expect`), then attested against
/// the measurements its build wrote.
fn example(image: &Image, name: &str, manifest: &Path, path: &str, expect: &str) -> Vec<Outcome> {
    let dir = image.dir.join("examples").join(name);
    let built = fs::create_dir_all(&dir)
        .ctx(|| format!("creating {}", dir.display()))
        .and_then(|()| eif::pack_image(&image.tool, &image.platform, manifest, &dir, true));
    let ok = built.is_ok();
    let mut outcomes = vec![outcome(
        &format!(
            "example {name}: eif-builder image builds {}",
            manifest.display()
        ),
        built,
    )];
    if !ok {
        return outcomes;
    }
    let (opts, started) = boot_detached(dir.join("enclave.eif"), dir.join("run"));
    let port = opts.port;
    let ok = started.is_ok();
    outcomes.push(outcome(
        &format!("example {name}: boots in 64 MiB"),
        started,
    ));
    if ok {
        let answered = (|| -> Result {
            let body = dir.join("answer");
            let code = curl(port, path, &body)?;
            let text = fs::read_to_string(&body).unwrap_or_default();
            if code == "200" && text.contains(expect) {
                Ok(())
            } else {
                err(format!("HTTP {code}: {text:?}"))
            }
        })();
        outcomes.push(outcome(
            &format!("example {name}: GET {path} through host-relay answers 200 with {expect:?}"),
            answered,
        ));
        let attested = (|| -> Result {
            for extra in [&[][..], &["--from-certificate"][..]] {
                match attest_at(image, port, "", &dir.join("measurements.json"), true, extra)? {
                    (true, text) if text.contains("\"verified\": true") => {}
                    (_, text) => return err(format!("attest {extra:?} failed: {text}")),
                }
            }
            Ok(())
        })();
        outcomes.push(outcome(
            &format!(
                "example {name}: eif-builder attest --insecure-emulator verifies it, from its \
                 endpoint and from its certificate, against the measurements its build wrote"
            ),
            attested,
        ));
    }
    let stopped = enclave::stop(&opts.dir).and_then(|_| nothing_left(&opts.dir, port));
    outcomes.push(outcome(
        &format!("example {name}: stop leaves nothing behind"),
        stopped,
    ));
    outcomes
}

/// The two examples users copy: an application of their own on the server library
/// (examples/hello), and a container image made with umoci (examples/oci).
pub fn examples(image: &Image) -> Vec<Outcome> {
    let root = project_root();
    let mut outcomes = example(
        image,
        "hello",
        &root.join("examples/hello/enclave.toml"),
        "/",
        "hello from the enclave",
    );
    let dir = image.dir.join("examples").join("oci");
    let made = (|| -> Result<PathBuf> {
        if dir.exists() {
            fs::remove_dir_all(&dir).ctx(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        run(Command::new(root.join("examples/oci/make-image.sh"))
            .arg(&image.binaries[1])
            .arg(dir.join("image"))
            .stdout(std::process::Stdio::null()))?;
        let manifest = dir.join("enclave.toml");
        fs::copy(root.join("examples/oci/enclave.toml"), &manifest)
            .ctx(|| "copying examples/oci/enclave.toml".into())?;
        Ok(manifest)
    })();
    match made {
        Ok(manifest) => outcomes.extend(example(
            image,
            "oci",
            &manifest,
            "/health",
            "\"status\":\"ok\"",
        )),
        Err(e) => outcomes.push(outcome(
            "example oci: examples/oci/make-image.sh makes the image with umoci",
            Err(e),
        )),
    }
    outcomes
}

/// examples/front: an unmodified HTTP application, Debian busybox-static's httpd on
/// 127.0.0.1:8080 in a container image made with umoci, behind our front (`[front]`), booted
/// in 64 MiB with host-relay sending PROXY v2: a static file comes back byte for byte, the
/// application's CGI sees the client's address in X-Forwarded-For and Forwarded (only the
/// PROXY header carries it), and `eif-builder attest` verifies the front's attestation
/// endpoint against the measurements the build wrote.
pub fn front(image: &Image) -> Vec<Outcome> {
    let root = project_root();
    let dir = image.dir.join("examples").join("front");
    let made = (|| -> Result {
        if dir.exists() {
            fs::remove_dir_all(&dir).ctx(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        run(Command::new(root.join("examples/front/make-image.sh"))
            .arg("/bin/busybox")
            .arg(dir.join("image"))
            .stdout(std::process::Stdio::null()))?;
        let manifest = dir.join("enclave.toml");
        fs::copy(root.join("examples/front/enclave.toml"), &manifest)
            .ctx(|| "copying examples/front/enclave.toml".into())?;
        eif::pack_image(&image.tool, &image.platform, &manifest, &dir, true)
    })();
    let ok = made.is_ok();
    let mut outcomes = vec![outcome(
        "example front: make-image.sh (busybox httpd, umoci) and eif-builder image with [front]",
        made,
    )];
    if !ok {
        return outcomes;
    }
    let (opts, started) = boot_detached_with(dir.join("enclave.eif"), dir.join("run"), |o| {
        o.proxy_v2 = true
    });
    let port = opts.port;
    let ok = started.is_ok();
    outcomes.push(outcome("example front: boots in 64 MiB", started));
    if ok {
        let file = (|| -> Result {
            let got = dir.join("file.txt");
            let code = curl(port, "/file.txt", &got)?;
            let want: String = (1..=20_000).map(|i| format!("{i}\n")).collect();
            let text = fs::read_to_string(&got).unwrap_or_default();
            if code == "200" && text == want {
                Ok(())
            } else {
                err(format!(
                    "HTTP {code}: {} bytes, {} expected",
                    text.len(),
                    want.len()
                ))
            }
        })();
        outcomes.push(outcome(
            "example front: curl -k https://…/file.txt through host-relay returns busybox \
             httpd's file byte for byte",
            file,
        ));
        let client = (|| -> Result {
            let got = dir.join("whoami.txt");
            let code = curl(port, "/cgi-bin/whoami", &got)?;
            let text = fs::read_to_string(&got).unwrap_or_default();
            let ok = code == "200"
                && text.contains("x-forwarded-for=127.0.0.1\n")
                && text.contains("forwarded=for=\"127.0.0.1:");
            if ok {
                Ok(())
            } else {
                err(format!("HTTP {code}: {text:?}"))
            }
        })();
        outcomes.push(outcome(
            "example front: the application sees the client's address from host-relay's PROXY \
             v2 header (X-Forwarded-For, Forwarded)",
            client,
        ));
        let attested = (|| -> Result {
            for extra in [&[][..], &["--from-certificate"][..]] {
                match attest_at(
                    image,
                    port,
                    "/.well-known/enclave-https/attestation",
                    &dir.join("measurements.json"),
                    true,
                    extra,
                )? {
                    (true, text) if text.contains("\"verified\": true") => {}
                    (_, text) => return err(format!("attest {extra:?} failed: {text}")),
                }
            }
            Ok(())
        })();
        outcomes.push(outcome(
            "example front: eif-builder attest --insecure-emulator verifies the front's \
             attestation endpoint, and with --from-certificate its certificate, against the \
             measurements its build wrote",
            attested,
        ));
    }
    let stopped = enclave::stop(&opts.dir).and_then(|_| nothing_left(&opts.dir, port));
    outcomes.push(outcome(
        "example front: stop leaves nothing behind",
        stopped,
    ));
    outcomes
}

/// `cargo xtask soak`: boots the image `runs` times in a row in 64 MiB, each until its server
/// answers /health through host-relay, and fails at the first boot that does not (naming
/// QEMU's error line when QEMU gave up on a device). The emulator's NSM stall showed in about
/// one boot in fifty before ci/patches/ fixed it. With `busy`, spinning threads keep every CPU
/// of this machine busy meanwhile: the vsock device's start-up race (a host connection while
/// its queues were set up killed it; ci/patches/ again) showed in one boot in four that way.
pub fn soak(image: &Image, runs: usize, busy: bool) -> Result {
    let start = std::time::Instant::now();
    let _spinners = busy.then(Spinners::start);
    for n in 1..=runs {
        let (opts, started) = boot_detached(image.eif.clone(), image.dir.join("soak"));
        let booted = started.and_then(|()| health(opts.port));
        let stopped = enclave::stop(&opts.dir);
        if let Err(e) = booted {
            return err(format!(
                "boot {n} of {runs} failed after {} good ones: {}",
                n - 1,
                e.0
            ));
        }
        stopped?;
        if n % 10 == 0 || n == runs {
            println!(
                "soak: {n} of {runs} boots served /health, none stalled ({:.0}s)",
                start.elapsed().as_secs_f64()
            );
        }
    }
    println!("soak: {runs} boots in a row, every one answered; 0 stalls");
    Ok(())
}

/// One thread per CPU spinning until dropped.
struct Spinners(Arc<AtomicBool>, Vec<thread::JoinHandle<()>>);

impl Spinners {
    fn start() -> Spinners {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = thread::available_parallelism().map_or(2, usize::from);
        let threads = (0..cpus)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        println!("soak: {cpus} spinning thread(s) keep the CPUs busy");
        Spinners(stop, threads)
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

/// The flood tests of `server/tests/floods.rs` against the enclave (its `against_a_remote_server`
/// test); then the enclave must not have rebooted or run out of memory, and still answer.
fn flood(dir: &Path, port: u16) -> Result {
    let out = crate::cmd::cargo()
        .current_dir(project_root())
        .args([
            "test",
            "--locked",
            "-p",
            "server",
            "--test",
            "floods",
            "--",
            "--ignored",
            "--nocapture",
            "against_a_remote_server",
        ])
        .env("ENCLAVE_HTTPS_FLOOD_TARGET", format!("127.0.0.1:{port}"))
        .output()
        .ctx(|| "running the flood test".into())?;
    let said = String::from_utf8_lossy(&out.stderr);
    for line in said
        .lines()
        .filter(|l| l.contains(": 1000 connections tried") || l.contains("good client got"))
    {
        println!("       {line}");
    }
    if !out.status.success() {
        let tail: Vec<&str> = said.lines().rev().take(15).collect();
        return err(format!(
            "the flood test failed:\n  | {}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n  | ")
        ));
    }
    let console = fs::read_to_string(dir.join("console.log")).unwrap_or_default();
    for bad in [
        "reboot:",
        "Out of memory",
        "oom-kill",
        "Kernel panic",
        "init: application (pid",
    ] {
        if let Some(line) = console.lines().find(|l| l.contains(bad)) {
            return err(format!("the enclave did not survive the flood: {line}"));
        }
    }
    health(port)
}

fn harness_saw_heartbeat(dir: &Path) -> Result {
    let log = fs::read_to_string(dir.join("harness.log")).unwrap_or_default();
    if log.contains("heartbeat received from the enclave and answered") {
        Ok(())
    } else {
        err("harness.log has no heartbeat line")
    }
}

fn curl(port: u16, path: &str, out: &Path) -> Result<String> {
    output(
        Command::new("curl")
            .args(["-sS", "-k", "--http1.1", "--max-time", "20", "-o"])
            .arg(out)
            .args(["-w", "%{http_code}"])
            .arg(format!("https://127.0.0.1:{port}{path}")),
    )
}

fn health(port: u16) -> Result {
    let body = std::env::temp_dir().join(format!("enclave-health-{port}"));
    let code = curl(port, "/health", &body)?;
    let text = fs::read_to_string(&body).unwrap_or_default();
    let _ = fs::remove_file(&body);
    if code == "200" {
        Ok(())
    } else {
        err(format!("HTTP {code}: {text}"))
    }
}

fn attested_pcrs(image: &Image, port: u16) -> Result {
    let nonce = "00112233445566778899aabbccddeeff";
    let doc = image.dir.join("boot-test").join("attestation.cbor");
    let code = curl(port, &format!("/attestation?nonce={nonce}"), &doc)?;
    if code != "200" {
        return err(format!("GET /attestation: HTTP {code}"));
    }
    let described = output(
        Command::new(&image.tool)
            .arg("inspect-attestation")
            .arg(&doc),
    )?;
    let published = fs::read_to_string(&image.measurements).ctx(|| "measurements.json".into())?;
    for pcr in ["PCR0", "PCR1", "PCR2"] {
        let (got, want) = (json_string(&described, pcr), json_string(&published, pcr));
        if got.is_none() || got != want {
            return err(format!(
                "{pcr}: the NSM says {got:?}, measurements.json {want:?}"
            ));
        }
    }
    if json_string(&described, "nonce").as_deref() != Some(nonce) {
        return err("the document does not carry our nonce");
    }
    Ok(())
}

/// The measurements of a build that differs from `image` by one byte of the server.
fn other_build_measurements(image: &Image) -> Result<PathBuf> {
    let dir = image.dir.join("faults").join("other-build-server");
    fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    let mut server = fs::read(&image.binaries[1]).ctx(|| "reading the server".into())?;
    let last = server
        .last_mut()
        .ok_or_else(|| crate::cmd::Error("the server binary is empty".into()))?;
    *last ^= 1;
    let patched = dir.join("server");
    fs::write(&patched, server).ctx(|| "writing the patched server".into())?;
    let manifest = fs::read_to_string(project_root().join(eif::DEFAULT_MANIFEST))
        .ctx(|| format!("reading {}", eif::DEFAULT_MANIFEST))?
        .replace("${ENCLAVE_BIN}/server", &patched.display().to_string());
    Ok(variant(image, "other-build", &manifest)?.join("measurements.json"))
}

/// `eif-builder attest` against the running enclave, as a client of the enclave would.
fn attest(image: &Image, port: u16, measurements: &Path, emulator: bool) -> Result<(bool, String)> {
    attest_at(image, port, "", measurements, emulator, &[])
}

/// [`attest`] at the attestation endpoint `path` (empty: the default server's), with more
/// arguments.
fn attest_at(
    image: &Image,
    port: u16,
    path: &str,
    measurements: &Path,
    emulator: bool,
    extra: &[&str],
) -> Result<(bool, String)> {
    let mut c = Command::new(&image.tool);
    c.arg("attest")
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .arg("--measurements")
        .arg(measurements)
        .args(extra);
    if emulator {
        c.arg("--insecure-emulator");
    }
    let out = crate::cmd::capture(&mut c)?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success(), text))
}

fn attest_end_to_end(image: &Image, port: u16) -> Vec<Outcome> {
    let ok = (|| -> Result {
        match attest(image, port, &image.measurements, true)? {
            (true, text) if text.contains("\"verified\": true") => Ok(()),
            (_, text) => err(format!("attest failed: {text}")),
        }
    })();
    let other = (|| -> Result {
        let measurements = other_build_measurements(image)?;
        match attest(image, port, &measurements, true)? {
            (false, text) if text.contains("\"step\": \"pcr\"") => Ok(()),
            (_, text) => err(format!("expected a PCR mismatch, got: {text}")),
        }
    })();
    let unsigned = (|| -> Result {
        match attest(image, port, &image.measurements, false)? {
            (false, _) => Ok(()),
            (true, text) => err(format!("an unsigned document was accepted: {text}")),
        }
    })();
    vec![
        outcome(
            "attest: eif-builder attest --insecure-emulator through host-relay verifies this build",
            ok,
        ),
        outcome(
            "attest: it fails at the PCR step with the measurements of a build one server byte apart",
            other,
        ),
        outcome(
            "attest: without --insecure-emulator the emulator's unsigned document is refused",
            unsigned,
        ),
    ]
}

fn nothing_left(dir: &Path, port: u16) -> Result {
    let sockets: Vec<_> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vm.vsock") || n.ends_with(".sock"))
        .collect();
    if !sockets.is_empty() {
        return err(format!("sockets left in {}: {sockets:?}", dir.display()));
    }
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        return err(format!("something still listens on 127.0.0.1:{port}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::enclave::is_device_error;

    #[test]
    fn qemu_device_errors_are_told_from_warnings() {
        assert!(is_device_error(
            "qemu-system-x86_64: Expected response buffer after request buffer in virtqueue"
        ));
        assert!(is_device_error(
            "qemu-system-x86_64: virtio: zero sized buffers are not allowed"
        ));
        assert!(!is_device_error(
            "qemu-system-x86_64: warning: host doesn't support requested feature"
        ));
        assert!(!is_device_error("harness: qemu: something"));
        assert!(!is_device_error("Expected response buffer"));
    }
}
