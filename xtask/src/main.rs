//! `cargo xtask`: the project's build driver. Every task is a plain function; every command
//! it runs is echoed; a failure ends with one line naming the step that failed.

mod bench_boot;
mod bench_front;
mod bench_proxy;
mod bench_relay;
mod bench_server;
mod boot_tests;
mod check;
mod cmd;
mod eif;
mod enclave;
mod fuzz;
mod kernel;
mod setup;

use cmd::{cargo, err, run, Error, Result};
use std::path::PathBuf;

/// (name, usage, what it does). Also the help text.
const TASKS: &[(&str, &str, &str)] = &[
    (
        "eif",
        "[--manifest enclave.toml] [--out DIR] [--kernel BZIMAGE] [--kernel-module FILE.ko]... \
         [--signing-certificate CERT.pem --private-key KEY.pem]",
        "Build an enclave image from a manifest (default rootfs/enclave.toml: our server; \
         examples/hello/enclave.toml is an application of your own) with `eif-builder image`: \
         builds the static enclave binaries (init, server, hello-enclave, host-relay as the \
         egress forwarder, fetch; a manifest names \
         their directory as ${ENCLAVE_BIN}) and the kernel (unless --kernel is given), writes \
         DIR/enclave.eif, DIR/measurements.json and both ramdisks (DIR defaults to target/eif) \
         and prints the PCRs, the sizes and the smallest --memory. Installs what is missing \
         first (musl target, Debian packages).",
    ),
    (
        "kernel",
        "",
        "Build (or reuse from the cache) the enclave kernel pinned in rootfs/kernel/ and print \
         its path.",
    ),
    (
        "run",
        "[--eif FILE] [--memory SIZE] [--cpus N] [--port PORT] [--vsock-port PORT] [--proxy-v2] [--egress-routes FILE] [--detach]",
        "Boot an EIF (default target/eif/enclave.eif) in QEMU's nitro-enclave emulator (TCG, \
         default 256M and 2 vCPUs), answer its boot heartbeat, forward 127.0.0.1:PORT \
         (default 8443) to the enclave's vsock port (default 443) so that \
         `curl -k https://127.0.0.1:8443/health` reaches the server, and stream the console. \
         Ctrl-C stops everything; the run ends by itself when the enclave reboots. With \
         --detach, returns once the server answers; `cargo xtask stop` ends it. \
         --proxy-v2: the relay sends a PROXY v2 header first (for a front started with \
         --proxy-protocol). --egress-routes FILE: also relay the egress routes an image build \
         wrote (DIR/egress-routes), from the enclave out to their targets. Builds the \
         emulator on first use (ci/qemu.sh, ci/vhost-device-vsock.sh; cached).",
    ),
    (
        "bench",
        "boot [--runs N] | server [--secs N] [--rounds N] [--conns N] [--server PATH] | front [--secs N] [--rounds N] [--conns N] [--server PATH] | proxy [--secs N] [--rounds N] | relay [--relay PATH]",
        "Benchmarks (not tests). `bench boot`: boot our image and a reference image (same \
         kernel, cmdline and server; Debian busybox-static + shell-script /init) alternately \
         N times (default 5) in the emulator; print medians of kernel start → /init, /init → \
         server listening and QEMU start → first HTTP response with ratios; write \
         target/bench/boot.json. `bench server`: our server against nginx (one worker) and \
         a hyper + tokio-rustls server, same P-256 certificate, TLS 1.3, pinned CPUs: \
         keep-alive req/s, p99 and CPU per request, full handshakes/s, memory per idle TLS \
         connection; --server PATH measures another build of our server; writes \
         target/bench/server.json. `bench front`: our server in front mode (--upstream) \
         against nginx as a TLS reverse proxy (upstream keep-alive), one worker each, both \
         forwarding to the same nginx serving a 1 KiB file: keep-alive req/s, p99, front CPU \
         per proxied request, memory per idle client TLS connection, with the goals; writes \
         target/bench/front.json. `bench proxy`: GET /health on the booted image (emulator, \
         host-relay) directly over HTTPS and through `eif-builder proxy`, alternating, \
         wrk -c1 (req/s, mean latency: the proxy's added latency) and -c16 (req/s); writes \
         target/bench/proxy.json. `bench relay`: direct vs host-relay \
         vs HAProxy (TCP mode, splicing) vs socat, TCP->TCP and TCP->Unix: bulk throughput, \
         64 connections, setups/s, added p50/p99 latency, relay CPU per GiB, with iperf3 \
         measuring each program too as a cross-check; --relay PATH measures another \
         host-relay build; writes target/bench/relay.json.",
    ),
    (
        "soak",
        "[--runs N] [--busy]",
        "Boot the image N times in a row (default 100) in the emulator, 64 MiB, each until its \
         server answers /health through host-relay; fail at the first that does not, naming \
         QEMU's error line if QEMU gave up on a device (how the emulator's NSM stall showed \
         before ci/patches/ fixed it). --busy keeps every CPU busy with spinning threads \
         meanwhile, which widens start-up races (the vsock device's, fixed in ci/patches/, \
         showed in one boot in four that way).",
    ),
    (
        "fuzz",
        "[TARGET [--runs N]]",
        "Fuzz every parser of untrusted bytes (cargo +nightly fuzz, crate fuzz/): the server's \
         HTTP handling, its front mode (client and application scripted) and memory files, the \
         EIF and cpio readers, attestation documents, the measurements and processes files, \
         PEM/DER, the attest client's HTTP response, the image manifest and layers, host-relay's \
         addresses and routes files and the egress table, the PROXY v2 header, the hybrid-vsock \
         reply, KMS's CMS EnvelopedData and the HTTP client's responses. Without TARGET: each for 20,000 inputs (what \
         `cargo xtask test` runs). With TARGET: that one for N inputs (default 20,000; \
         --runs 0 runs until stopped).",
    ),
    (
        "boot-test",
        "[GROUP]",
        "Build the image and run only the emulator tests of `cargo xtask test` on it; with GROUP \
         (serve, clients, examples, front, faults, processes, egress, kms) only that group.",
    ),
    (
        "stop",
        "",
        "Stop an enclave started with `cargo xtask run --detach`, and check nothing is left.",
    ),
    (
        "setup",
        "",
        "Install the build prerequisites: the musl Rust target and the Debian packages.",
    ),
    (
        "test",
        "[--no-repro]",
        "What CI runs: setup, cargo fmt --check, clippy -D warnings (and for the musl target, on \
         the enclave's crates), host-relay's dependency check, the image build, \
         cargo test for the whole workspace, a short fuzz run of every parser of untrusted \
         bytes (20,000 inputs each, cargo +nightly fuzz), checks on the built image, boot tests in the \
         emulator (the image in 64 MiB serving through vsock with the published PCRs; three \
         broken images that must end in an error line and a reboot), and (unless --no-repro) \
         a second image build from a copy of the sources at another path that must give \
         identical bytes.",
    ),
];

fn help() {
    println!("usage: cargo xtask TASK [OPTIONS]\n\ntasks:");
    for (name, usage, what) in TASKS {
        println!("  {name} {usage}");
        println!("      {what}\n");
    }
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("xtask: error: {e}");
        std::process::exit(1);
    }
}

fn try_main() -> Result {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "eif" => eif::build(&eif_options(&rest)?).map(drop),
        "kernel" => {
            no_args(&rest)?;
            let k = kernel::build()?;
            println!("{}", k.image.display());
            Ok(())
        }
        "setup" => {
            no_args(&rest)?;
            setup::all()
        }
        "test" => test(&rest),
        "run" => run_task(&rest, false),
        "bench" => bench_task(&rest),
        "fuzz" => match rest.first().map(String::as_str) {
            None => fuzz::short_run(),
            Some("-h" | "--help") => {
                help();
                Ok(())
            }
            Some(target) => {
                let runs = match (rest.get(1).map(String::as_str), rest.get(2)) {
                    (None, _) => fuzz::CI_RUNS,
                    (Some("--runs"), Some(n)) => n
                        .parse()
                        .map_err(|_| Error(format!("--runs: not a number: {n}")))?,
                    (Some(other), _) => return err(format!("fuzz: unexpected argument `{other}`")),
                };
                fuzz::run_target(target, runs)
            }
        },
        "soak" => {
            let busy = rest.iter().any(|a| a == "--busy");
            let rest: Vec<String> = rest.into_iter().filter(|a| a != "--busy").collect();
            let runs = runs_option("soak", &rest, 100)?;
            boot_tests::soak(&eif::build(&eif::Options::default())?, runs, busy)
        }
        "boot-test" => {
            let group = match rest.as_slice() {
                [] => None,
                [g] if BOOT_TEST_GROUPS.contains(&g.as_str()) => Some(g.as_str()),
                _ => {
                    return err(format!(
                        "boot-test takes at most one group: {}",
                        BOOT_TEST_GROUPS.join(", ")
                    ))
                }
            };
            boot_test_groups(&eif::build(&eif::Options::default())?, group)
        }
        "__harness" => run_task(&rest, true),
        "__hold-peer" => bench_relay::hold_peer(),
        "stop" => {
            no_args(&rest)?;
            let dir = enclave::run_dir();
            let n = enclave::stop(&dir)?;
            println!("stopped {n} process(es); nothing left running");
            Ok(())
        }
        "" | "help" | "-h" | "--help" => {
            help();
            Ok(())
        }
        other => err(format!(
            "unknown task `{other}`; `cargo xtask help` lists them"
        )),
    }
}

fn no_args(rest: &[String]) -> Result {
    match rest.first() {
        Some(a) if a == "--help" || a == "-h" => {
            help();
            std::process::exit(0)
        }
        Some(a) => err(format!("unexpected argument `{a}`")),
        None => Ok(()),
    }
}

fn eif_options(rest: &[String]) -> Result<eif::Options> {
    let mut o = eif::Options::default();
    let (mut cert, mut key) = (None, None);
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .map(PathBuf::from)
                .ok_or_else(|| Error(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--out" => o.out = Some(value("--out")?),
            "--manifest" => o.manifest = Some(value("--manifest")?),
            "--kernel" => o.kernel = Some(value("--kernel")?),
            "--kernel-module" => o.modules.push(value("--kernel-module")?),
            "--signing-certificate" => cert = Some(value("--signing-certificate")?),
            "--private-key" => key = Some(value("--private-key")?),
            "-h" | "--help" => {
                help();
                std::process::exit(0)
            }
            other => return err(format!("eif: unexpected argument `{other}`")),
        }
    }
    o.signing = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return err("--signing-certificate and --private-key go together"),
    };
    Ok(o)
}

fn run_task(rest: &[String], inner: bool) -> Result {
    let root = cmd::project_root();
    let mut opts = enclave::Options::new(enclave::Image::Eif(
        eif::target_dir(&root).join("eif/enclave.eif"),
    ));
    let mut detach = false;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Error(format!("{name} needs a value")))
        };
        let number = |name: &str, v: String| {
            v.parse::<u32>()
                .map_err(|_| Error(format!("{name}: not a number: {v}")))
        };
        match a.as_str() {
            "--eif" => opts.image = enclave::Image::Eif(value("--eif")?.into()),
            "--memory" => opts.memory = value("--memory")?,
            "--cpus" => opts.cpus = number("--cpus", value("--cpus")?)?,
            "--port" => {
                let v = value("--port")?;
                opts.port = v
                    .parse()
                    .map_err(|_| Error(format!("--port: not a port: {v}")))?;
            }
            "--vsock-port" => opts.vsock_port = number("--vsock-port", value("--vsock-port")?)?,
            "--dir" => opts.dir = value("--dir")?.into(),
            "--detach" => detach = true,
            "--proxy-v2" => opts.proxy_v2 = true,
            "--egress-routes" => opts.egress_routes = Some(value("--egress-routes")?.into()),
            "-h" | "--help" => {
                help();
                return Ok(());
            }
            other => return err(format!("run: unexpected argument `{other}`")),
        }
    }
    if let enclave::Image::Eif(eif) = &opts.image {
        if !eif.is_file() {
            return err(format!(
                "{}: no such image; build it with `cargo xtask eif`",
                eif.display()
            ));
        }
    }
    let tools = enclave::tools()?;
    if detach {
        enclave::start_detached(&opts, std::time::Duration::from_secs(180))?;
        println!(
            "enclave running: curl -k https://127.0.0.1:{}/health; console in {}; \
             stop with `cargo xtask stop`",
            opts.port,
            opts.dir.join("console.log").display()
        );
        return Ok(());
    }
    opts.echo = !inner;
    let summary = enclave::run(&opts, &tools)?;
    println!(
        "harness: heartbeat {}; {}",
        if summary.heartbeat {
            "received"
        } else {
            "NOT received"
        },
        summary.ended_by.as_deref().unwrap_or("QEMU exited")
    );
    Ok(())
}

/// The `--runs N` (a positive number) of `task`'s arguments, else `default`.
fn runs_option(task: &str, rest: &[String], default: usize) -> Result<usize> {
    let mut runs = default;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Error("--runs needs a positive number".into()))?;
            }
            other => return err(format!("{task}: unexpected argument `{other}`")),
        }
    }
    Ok(runs)
}

fn bench_task(rest: &[String]) -> Result {
    match rest.first().map(String::as_str) {
        Some("boot") => bench_boot::boot(runs_option("bench boot", &rest[1..], 5)?),
        Some("server") => bench_server::run(&rest[1..]),
        Some("front") => bench_front::run(&rest[1..]),
        Some("proxy") => bench_proxy::run(&rest[1..]),
        Some("relay") => match &rest[1..] {
            [] => bench_relay::run(None),
            [flag, path] if flag == "--relay" => bench_relay::run(Some(PathBuf::from(path))),
            _ => err("bench relay: the only option is --relay PATH (a host-relay binary)"),
        },
        Some(other) => err(format!(
            "unknown benchmark `{other}`; available: boot, server, front, proxy, relay"
        )),
        None => err("which benchmark? available: boot, server, front, proxy, relay"),
    }
}

/// The groups of boot tests, in the order they run.
const BOOT_TEST_GROUPS: [&str; 8] = [
    "serve",
    "clients",
    "examples",
    "front",
    "faults",
    "processes",
    "egress",
    "kms",
];

/// The emulator tests on a built image.
fn boot_tests(image: &eif::Image) -> Result {
    boot_test_groups(image, None)
}

/// The emulator tests on a built image: every group, or the one named.
fn boot_test_groups(image: &eif::Image, only: Option<&str>) -> Result {
    let tools = enclave::tools()?;
    let mut outcomes = Vec::new();
    for group in BOOT_TEST_GROUPS {
        if only.is_some_and(|g| g != group) {
            continue;
        }
        outcomes.extend(match group {
            "serve" => boot_tests::serve(image),
            "examples" => boot_tests::examples(image),
            "front" => boot_tests::front(image),
            "faults" => boot_tests::faults(image, &tools),
            "processes" => boot_tests::processes(image, &tools),
            "egress" => boot_tests::egress(image, &tools),
            "clients" => boot_tests::clients(image),
            _ => boot_tests::kms(image, &tools),
        });
    }
    check::report("boot tests", &outcomes)
}

fn test(rest: &[String]) -> Result {
    let mut repro = true;
    for a in rest {
        match a.as_str() {
            "--no-repro" => repro = false,
            "-h" | "--help" => {
                help();
                return Ok(());
            }
            other => return err(format!("test: unexpected argument `{other}`")),
        }
    }
    let root = cmd::project_root();
    setup::all()?;
    run(cargo()
        .current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().current_dir(&root).args([
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The enclave's binaries are built for musl: lint them as they are built.
    run(cargo()
        .current_dir(&root)
        .args([
            "clippy",
            "--locked",
            "--target",
            "x86_64-unknown-linux-musl",
        ])
        .args(eif::ENCLAVE_CRATES)
        .args(["--", "-D", "warnings"]))?;
    check::relay_links_no_crypto()?;
    let image = eif::build(&eif::Options::default())?;
    run(cargo()
        .current_dir(&root)
        .args(["test", "--locked", "--workspace"])
        // The flood tests need a memory cgroup: in CI they must run, never skip.
        .env("ENCLAVE_HTTPS_REQUIRE_CGROUP", "1"))?;
    fuzz::short_run()?;
    check::image(&image, &image.tool)?;
    boot_tests(&image)?;
    if repro {
        check::reproducible(&image)?;
    }
    println!("xtask test: all steps passed");
    Ok(())
}
