//! The options of the default application binary: flags, each with an environment variable
//! (the flag wins), defaults, and the `--help` text generated from the same table. The
//! defaults of `--memory-budget` and `--max-connections` come from the memory the server has
//! (read once at start, `server::memory`), which [`parse`] is given.
//!
//! Written out instead of using clap: clap (derive, env, help) added about 220 KB to the static
//! enclave binary (2.55 MB against 2.33 MB) for fifteen options.

use server::{Limits, ListenAddr};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// One option.
struct Opt {
    flag: &'static str,
    env: Option<&'static str>,
    /// The value's name in the help; `None` for a switch.
    value: Option<&'static str>,
    default: Option<&'static str>,
    help: &'static str,
}

const fn opt(
    flag: &'static str,
    env: &'static str,
    value: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Opt {
    Opt {
        flag,
        env: Some(env),
        value: Some(value),
        default,
        help,
    }
}

/// Every option. Defaults of the limits are those of [`Limits::for_memory`] (a test checks).
const OPTIONS: &[Opt] = &[
    opt("listen", "LISTEN", "ADDR", Some("vsock:443"),
        "Where to listen: vsock:PORT (any CID) or tcp:ADDR:PORT (IPv6 in brackets; port 0 picks a free port, named in the startup line)."),
    opt("tls-cert", "TLS_CERT_PATH", "FILE", None,
        "PEM certificate chain, leaf first, instead of the generated certificate (needs --tls-key)."),
    opt("tls-key", "TLS_KEY_PATH", "FILE", None,
        "PEM private key (PKCS#8, SEC1 or PKCS#1) of --tls-cert."),
    Opt {
        flag: "plain-http",
        env: None,
        value: None,
        default: None,
        help: "Serve plain HTTP without TLS: local TCP work only, refused on vsock. A flag only, no environment variable, so it cannot be switched on by accident.",
    },
    opt("workers", "WORKERS", "N", Some("0"),
        "Worker threads, each with its own event loop; 0 means one per CPU."),
    opt("max-connections", "MAX_CONNECTIONS", "N|auto", Some("auto"),
        "Concurrent connections; beyond it new ones are closed at once while open ones keep working. auto: from the memory (see below)."),
    opt("memory-budget", "MEMORY_BUDGET", "BYTES|auto", Some("auto"),
        "Bytes the server may hold for all connections together (requests, responses, TLS buffers, private data); near it new connections are refused, new requests get 503 and the connections holding the most unfinished input stop being read. BYTES: a number, or with K, M or G (binary). auto: from the memory (see below)."),
    opt("max-header-bytes", "MAX_HEADER_BYTES", "BYTES", Some("8192"),
        "Bytes of request line and headers (431 beyond)."),
    opt("max-headers", "MAX_HEADERS", "N", Some("64"),
        "Header lines per request (431 beyond; at most 128)."),
    opt("max-uri-bytes", "MAX_URI_BYTES", "BYTES", Some("4096"),
        "Bytes of the request target (414 beyond)."),
    opt("max-body-bytes", "MAX_BODY_BYTES", "BYTES", Some("1048576"),
        "Bytes of a request body, after chunked decoding (413 beyond)."),
    opt("max-requests-per-connection", "MAX_REQUESTS_PER_CONNECTION", "N", Some("100000"),
        "Requests per connection; the last one is answered with Connection: close."),
    opt("handshake-timeout", "HANDSHAKE_TIMEOUT", "DURATION", Some("10s"),
        "Time for the TLS handshake, from accept (10s, 500ms, 2m)."),
    opt("request-timeout", "REQUEST_TIMEOUT", "DURATION", Some("30s"),
        "Time from a request's first byte to its last: slow clients are disconnected."),
    opt("idle-timeout", "IDLE_TIMEOUT", "DURATION", Some("60s"),
        "Time a connection may stay idle between requests."),
    opt("send-timeout", "SEND_TIMEOUT", "DURATION", Some("10s"),
        "The slow-reader guard: while responses wait to be sent, the client must take at least 16 KiB of them (or all of them) within each such period, or it is disconnected."),
    opt("drain-timeout", "DRAIN_TIMEOUT", "DURATION", Some("5s"),
        "On SIGTERM or SIGINT: stop accepting, let requests in progress finish for at most this long, then exit 0."),
    opt("nsm-device", "NSM_DEVICE", "PATH", Some("/dev/nsm"),
        "The Nitro Secure Module; when it cannot be opened, /attestation answers 503."),
    opt("upstream", "UPSTREAM", "ADDR", None,
        "Front mode: terminate TLS here and forward every request except the attestation endpoint to your HTTP application at tcp:IP:PORT or unix:PATH (HTTP/1.1, keep-alive, bodies streamed both ways, hop-by-hop headers dropped, the client in Forwarded and X-Forwarded-For). An application that refuses, resets or answers garbage gets the client a 502; one silent for --upstream-timeout a 504. /health and /private-data are not served in front mode."),
    opt("attestation-path", "ATTESTATION_PATH", "PATH", Some("/.well-known/enclave-https/attestation"),
        "Front mode: where the attestation endpoint answers (GET PATH?nonce=HEX), out of the way of your application's paths."),
    opt("upstream-timeout", "UPSTREAM_TIMEOUT", "DURATION", Some("60s"),
        "Front mode: how long the application may take to answer, or stay silent in the middle of an exchange (504 before its answer began; the connection is cut after)."),
    opt("upstream-pool", "UPSTREAM_POOL", "N", Some("32"),
        "Front mode: idle keep-alive connections to the application kept per worker, in the pool or by the client connection that used them last (its next request needs no new connection)."),
    opt("local-attestation", "LOCAL_ATTESTATION", "ADDR|off", Some("tcp:127.0.0.1:9901"),
        "Front mode: the application's own attestation API, plain HTTP on a loopback address only: GET /attestation?nonce=HEX&user_data=HEX&public_key=HEX answers the NSM's document (application/cbor) with the fields the application chose, so it can attest its own results. off: none."),
    Opt {
        flag: "proxy-protocol",
        env: None,
        value: None,
        default: None,
        help: "Every connection starts with a PROXY protocol v2 header (host-relay's proxy-v2 route option): its client address goes to the application in front mode. Without this flag such a header is refused like any other bytes that are not TLS.",
    },
    opt("processes", "PROCESSES", "FILE", None,
        "Start the processes FILE lists (/etc/enclave-https/processes in an image with a front: the application, the egress forwarder) and exit when one of them does; skipped when ENCLAVE_HTTPS_INIT is set, because our init started them already. This is how an image boots under nitro-cli's own init."),
];

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server.
    Run(Box<Args>),
    /// Print this text and exit successfully (`--help`, `--version`).
    Print(String),
}

/// The parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--listen`.
    pub listen: ListenAddr,
    /// `--tls-cert` and `--tls-key`, both or neither.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// `--plain-http`.
    pub plain_http: bool,
    /// `--workers` (0: one per CPU).
    pub workers: usize,
    /// The limits and timeouts.
    pub limits: Limits,
    /// `--nsm-device`.
    pub nsm_device: PathBuf,
    /// `--drain-timeout`.
    pub drain_timeout: Duration,
    /// Front mode (`--upstream` and its options).
    pub front: Option<server::front::Front>,
    /// `--proxy-protocol`.
    pub proxy_protocol: bool,
    /// `--local-attestation` (front mode; None: off).
    pub local_attestation: Option<ListenAddr>,
    /// `--processes`.
    pub processes: Option<PathBuf>,
}

/// The `--help` text.
pub fn help() -> String {
    let mut s = format!(
        "server {} - the enclave's HTTPS server: GET /health, GET /attestation?nonce=HEX,\n\
         POST and GET /private-data; or, with --upstream, an attested TLS front for your HTTP\n\
         application (the attestation endpoint at --attestation-path, everything else forwarded)\n\n\
         Usage: server [OPTIONS]\n\n\
         Options (each can also be set by the environment variable shown; the flag wins):\n",
        env!("CARGO_PKG_VERSION")
    );
    for o in OPTIONS {
        let _ = write!(s, "  --{}", o.flag);
        if let Some(v) = o.value {
            let _ = write!(s, " {v}");
        }
        if let Some(e) = o.env {
            let _ = write!(s, "  [env: {e}]");
        }
        if let Some(d) = o.default {
            let _ = write!(s, "  [default: {d}]");
        }
        let _ = writeln!(s, "\n      {}", o.help);
    }
    s.push_str(
        "  -h, --help\n      Print this help.\n  -V, --version\n      Print the version.\n\n\
         Environment only:\n  ENCLAVE_KEY_BASE64\n      The enclave key: standard base64 of exactly \
         32 bytes (the server refuses to start\n      otherwise; the variable is removed from \
         its environment once read). Default: a key generated\n      at start. Placed in the \
         image's /env it is measured into PCR2 and readable by anyone who holds\n      the EIF, \
         the parent instance included: it keeps the key across restarts, it is not a secret.\n\
         ENCLAVE_KEY_KMS_CIPHERTEXT\n      Instead: the enclave key encrypted under an AWS KMS \
         key (base64 of the ciphertext blob of\n      `aws kms encrypt`), decrypted at start \
         with an attestation document (Recipient), so KMS releases\n      it only to the \
         measurements its key policy names. Needs AWS_REGION, credentials (AWS_ACCESS_KEY_ID \
         and\n      AWS_SECRET_ACCESS_KEY, else the instance metadata service), and the image's \
         egress entries\n      kms.REGION.amazonaws.com:443 (and 169.254.169.254:80). \
         ENCLAVE_TEST_CA_FILE adds trust anchors for\n      a local stand-in (tests only).\n\n\
         /private-data: a slot per capability. POST with Authorization: Bearer TOKEN stores a \
         JSON body (at most\n1 MiB) sealed with AES-256-GCM under a key derived from the \
         enclave key, in the slot named by a keyed\nhash of TOKEN; GET returns it, DELETE \
         empties it. Whoever holds TOKEN can read it, nobody else can:\nmake it from at least \
         128 random bits (openssl rand -hex 16); shorter tokens get 401, as do requests\n\
         without one. What survives a restart: nothing, unless the key comes from KMS or \
         ENCLAVE_KEY_BASE64, and even then\nonly the key: the sealed data lives in memory and is always lost.\n\n\
         Memory: the server reads the memory it has at start (its cgroup's limit, else \
         MemTotal) and by default\ntakes half of what is left after 16 MiB as its memory \
         budget, and one connection per 64 KiB of the first half\nof that budget (at most \
         10000) as --max-connections; the startup line says both figures.\n\n\
         By default the TLS key pair (ECDSA P-256) is generated at start from the kernel's RNG, \
         with a self-signed\ncertificate; the private key never leaves the process. stdout gets \
         a startup line naming the bound\naddress, the TLS mode and the certificate's SHA-256, \
         then one line per request:\nMETHOD PATH STATUS BODY_BYTES MICROSECONDSus (no query, \
         headers or bodies).\n",
    );
    s
}

fn find(flag: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.flag == flag)
}

/// A byte count: digits, optionally followed by K, M or G (powers of 1024).
pub fn parse_bytes(text: &str) -> Option<usize> {
    let (digits, factor) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1usize << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_mul(factor)
}

/// Parses the arguments (without the program name), reading unset options from `env`; the
/// `auto` defaults are those of [`Limits::for_memory`] with `memory` bytes.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
    memory: u64,
) -> Result<Command, String> {
    let mut given: Vec<(&'static str, String)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Print(help())),
            "-V" | "--version" => {
                return Ok(Command::Print(format!(
                    "server {}\n",
                    env!("CARGO_PKG_VERSION")
                )));
            }
            _ => {}
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?} (see --help)"));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let o = find(name).ok_or_else(|| format!("unknown option --{name} (see --help)"))?;
        if given.iter().any(|(f, _)| *f == o.flag) {
            return Err(format!("--{name} given more than once"));
        }
        let value = match (o.value, inline) {
            (None, None) => String::new(),
            (None, Some(_)) => return Err(format!("--{name} takes no value")),
            (Some(_), Some(v)) => v,
            (Some(v), None) => args
                .next()
                .ok_or_else(|| format!("--{name} needs a value ({v})"))?,
        };
        given.push((o.flag, value));
    }
    let get = |flag: &str| -> Option<String> {
        let o = find(flag)?;
        given
            .iter()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| v.clone())
            .or_else(|| o.env.and_then(&env).filter(|v| !v.is_empty()))
            .or_else(|| o.default.map(str::to_owned))
    };
    let value = |flag: &str| get(flag).unwrap_or_default();
    let number = |flag: &str| -> Result<u64, String> {
        let v = value(flag);
        v.parse()
            .map_err(|_| format!("--{flag}: {v:?} is not a non-negative integer"))
    };
    let size = |flag: &str| -> Result<usize, String> {
        usize::try_from(number(flag)?).map_err(|_| format!("--{flag}: too large"))
    };
    let duration =
        |flag: &str| contract::duration::parse(&value(flag)).map_err(|e| format!("--{flag}: {e}"));
    let auto = |flag: &str, default: usize, parse: fn(&str) -> Option<usize>| {
        let v = value(flag);
        if v == "auto" {
            return Ok(default);
        }
        parse(&v).ok_or_else(|| format!("--{flag}: {v:?} is neither auto nor a valid number"))
    };
    let for_memory = Limits::for_memory(memory);

    let listen = value("listen")
        .parse::<ListenAddr>()
        .map_err(|e| format!("--listen: {e}"))?;
    let plain_http = given.iter().any(|(f, _)| *f == "plain-http");
    let tls_files = match (get("tls-cert"), get("tls-key")) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if plain_http && tls_files.is_some() {
        return Err("--plain-http cannot be combined with --tls-cert/--tls-key".into());
    }
    let limits = Limits {
        max_connections: auto("max-connections", for_memory.max_connections, |v| {
            v.parse().ok()
        })?,
        memory_budget: auto("memory-budget", for_memory.memory_budget, parse_bytes)?,
        max_header_bytes: size("max-header-bytes")?,
        max_headers: size("max-headers")?,
        max_uri_bytes: size("max-uri-bytes")?,
        max_body_bytes: size("max-body-bytes")?,
        max_requests_per_connection: number("max-requests-per-connection")?,
        handshake_timeout: duration("handshake-timeout")?,
        request_timeout: duration("request-timeout")?,
        idle_timeout: duration("idle-timeout")?,
        send_timeout: duration("send-timeout")?,
    };
    let proxy_protocol = given.iter().any(|(f, _)| *f == "proxy-protocol");
    let front = match get("upstream") {
        None if proxy_protocol => {
            return Err("--proxy-protocol is for front mode: it needs --upstream".into())
        }
        None => None,
        Some(up) => {
            let upstream = up
                .parse::<server::front::UpstreamAddr>()
                .map_err(|e| format!("--upstream: {e}"))?;
            let path = value("attestation-path");
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                return Err(format!(
                    "--attestation-path: {path:?} is not a path (it starts with / and has no query)"
                ));
            }
            let mut front = server::front::Front::new(upstream);
            front.local_paths = vec![path];
            front.proxy_protocol = proxy_protocol;
            front.upstream_timeout = duration("upstream-timeout")?;
            front.pool = size("upstream-pool")?;
            Some(front)
        }
    };
    let local_attestation = match (&front, value("local-attestation").as_str()) {
        (None, _) | (_, "off") => None,
        (Some(_), v) => match v.parse::<ListenAddr>() {
            Ok(ListenAddr::Tcp(a)) if a.ip().is_loopback() => Some(ListenAddr::Tcp(a)),
            Ok(_) => {
                return Err(format!(
                    "--local-attestation: {v:?} is not a loopback TCP address: the API is for processes inside the enclave only"
                ))
            }
            Err(e) => return Err(format!("--local-attestation: {e}")),
        },
    };
    Ok(Command::Run(Box::new(Args {
        front,
        local_attestation,
        proxy_protocol,
        processes: get("processes").map(PathBuf::from),
        listen,
        tls_files,
        plain_http,
        workers: size("workers")?,
        limits,
        nsm_device: PathBuf::from(value("nsm-device")),
        drain_timeout: duration("drain-timeout")?,
    })))
}

/// The workers to start for `--workers N` (0: one per CPU).
pub fn workers(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Args, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        match parse(
            args.iter().map(|s| (*s).to_owned()),
            |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            256 << 20,
        )? {
            Command::Run(a) => Ok(*a),
            Command::Print(s) => Err(format!("printed {s}")),
        }
    }

    #[test]
    fn defaults_match_the_library() {
        let a = run(&[], &[]).unwrap();
        assert_eq!(a.listen, ListenAddr::Vsock(443));
        assert_eq!(a.limits, Limits::default());
        assert_eq!(a.workers, 0);
        assert!(!a.plain_http);
        assert_eq!(a.tls_files, None);
        assert_eq!(a.nsm_device, PathBuf::from("/dev/nsm"));
        assert_eq!(a.drain_timeout, Duration::from_secs(5));
    }

    #[test]
    fn the_enclave_key_has_no_flag() {
        // A flag would show the key in the process list: ENCLAVE_KEY_BASE64 only (main.rs).
        let key = format!("{}=", "A".repeat(43));
        let e = run(&["--enclave-key", &key], &[]).unwrap_err();
        assert!(e.contains("unknown option --enclave-key"), "{e}");
    }

    #[test]
    fn memory_budget_and_connections_default_from_the_memory() {
        let a = run(&[], &[]).unwrap();
        assert_eq!(a.limits.memory_budget, 120 << 20);
        assert_eq!(a.limits.max_connections, 426);
        let a = run(&["--memory-budget", "64M", "--max-connections", "50"], &[]).unwrap();
        assert_eq!(a.limits.memory_budget, 64 << 20);
        assert_eq!(a.limits.max_connections, 50);
        let a = run(&[], &[("MEMORY_BUDGET", "1G"), ("MAX_CONNECTIONS", "auto")]).unwrap();
        assert_eq!(a.limits.memory_budget, 1 << 30);
        assert_eq!(a.limits.max_connections, 426);
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("8k"), Some(8192));
        for bad in ["", "M", "1.5M", "-1", "1T", "99999999999999999999G"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
        let e = run(&["--memory-budget", "lots"], &[]).unwrap_err();
        assert_eq!(
            e,
            "--memory-budget: \"lots\" is neither auto nor a valid number"
        );
    }

    #[test]
    fn flags_win_over_environment() {
        let a = run(
            &[
                "--listen",
                "tcp:127.0.0.1:0",
                "--idle-timeout=500ms",
                "--plain-http",
            ],
            &[
                ("LISTEN", "vsock:1"),
                ("WORKERS", "3"),
                ("IDLE_TIMEOUT", "9s"),
            ],
        )
        .unwrap();
        assert_eq!(a.listen, "tcp:127.0.0.1:0".parse().unwrap());
        assert_eq!(a.workers, 3);
        assert_eq!(a.limits.idle_timeout, Duration::from_millis(500));
        assert!(a.plain_http);
        let a = run(
            &[],
            &[
                ("TLS_CERT_PATH", "c"),
                ("TLS_KEY_PATH", "k"),
                ("LISTEN", ""),
            ],
        )
        .unwrap();
        assert_eq!(a.tls_files, Some(("c".into(), "k".into())));
        assert_eq!(a.listen, ListenAddr::Vsock(443));
    }

    #[test]
    fn mistakes_are_explained() {
        for (args, env, needle) in [
            (&["--tls-cert", "c"][..], &[][..], "go together"),
            (&["--listen", "udp:1"], &[], "--listen"),
            (&["--listen"], &[], "needs a value"),
            (&["--nope"], &[], "unknown option --nope"),
            (&["stray"], &[], "unexpected argument"),
            (&["--workers", "-1"], &[], "--workers"),
            (&["--workers", "1", "--workers", "2"], &[], "more than once"),
            (&["--plain-http=yes"], &[], "takes no value"),
            (
                &["--plain-http", "--tls-cert", "c", "--tls-key", "k"],
                &[],
                "cannot be combined",
            ),
            (&[], &[("IDLE_TIMEOUT", "soon")], "--idle-timeout"),
            (
                &[],
                &[("PLAIN_HTTP", "1"), ("MAX_BODY_BYTES", "x")],
                "--max-body-bytes",
            ),
        ] {
            let e = run(args, env).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn help_lists_every_option_and_variable() {
        let Ok(Command::Print(h)) = parse(["--help".to_owned()], |_| None, 0) else {
            panic!("no help")
        };
        for o in OPTIONS {
            assert!(h.contains(&format!("--{}", o.flag)));
            if let Some(e) = o.env {
                assert!(h.contains(&format!("[env: {e}]")));
            }
        }
        assert!(
            matches!(parse(["-V".to_owned()], |_| None, 0), Ok(Command::Print(v)) if v.starts_with("server "))
        );
    }

    #[test]
    fn front_mode_options() {
        let a = run(&["--upstream", "tcp:127.0.0.1:8080"], &[]).unwrap();
        let front = a.front.unwrap();
        assert_eq!(front.upstream.to_string(), "tcp:127.0.0.1:8080");
        assert_eq!(
            front.local_paths,
            ["/.well-known/enclave-https/attestation"]
        );
        assert!(!front.proxy_protocol);
        assert_eq!(
            a.local_attestation,
            Some("tcp:127.0.0.1:9901".parse().unwrap())
        );
        let a = run(
            &[
                "--upstream",
                "unix:/run/app.sock",
                "--proxy-protocol",
                "--attestation-path",
                "/_attest",
            ],
            &[("LOCAL_ATTESTATION", "off"), ("UPSTREAM_TIMEOUT", "5s")],
        )
        .unwrap();
        let front = a.front.unwrap();
        assert!(front.proxy_protocol);
        assert_eq!(front.local_paths, ["/_attest"]);
        assert_eq!(front.upstream_timeout, Duration::from_secs(5));
        assert_eq!(a.local_attestation, None);
        // Without --upstream there is no front and no local API.
        let a = run(&[], &[]).unwrap();
        assert!(a.front.is_none() && a.local_attestation.is_none());
        for (args, msg) in [
            (&["--proxy-protocol"][..], "--proxy-protocol is for front mode: it needs --upstream"),
            (&["--upstream", "tcp:localhost:80"], "--upstream: `tcp:localhost:80`: expected tcp:IP:PORT with a numeric IP (IPv6 in brackets): there is no name lookup in an enclave"),
            (&["--upstream", "tcp:127.0.0.1:80", "--attestation-path", "x"], "--attestation-path: \"x\" is not a path (it starts with / and has no query)"),
            (&["--upstream", "tcp:127.0.0.1:80", "--local-attestation", "tcp:0.0.0.0:9901"], "--local-attestation: \"tcp:0.0.0.0:9901\" is not a loopback TCP address: the API is for processes inside the enclave only"),
        ] {
            assert_eq!(run(args, &[]).unwrap_err(), msg);
        }
    }
}
