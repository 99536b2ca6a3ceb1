//! The command line: a table of options, a hand parser (no clap: the relay should stay small
//! enough to read in one sitting) and the `--help` text generated from the same table.

use crate::addr::{Addr, Route};
use crate::connector::Policy;
use crate::error::Usage;
use crate::worker::Settings;
use std::fmt::Write as _;
use std::time::Duration;

/// One option: flag, value name (`None` for a switch), default, help.
struct Opt(
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

const OPTIONS: &[Opt] = &[
    Opt("route", Some("LISTEN=TARGET[,proxy-v2][,max-conns=N]"), None,
        "A route (repeatable, at least one). LISTEN: tcp:HOST:PORT, unix:PATH or vsock:CID|any:PORT. TARGET: tcp:HOST:PORT, unix:PATH, vsock:CID:PORT or vsock-uds:PATH:PORT. A vsock listener only ever connects to its one target."),
    Opt("routes", Some("FILE"), None,
        "Routes from FILE (repeatable, with or without --route): one LISTEN=TARGET[,OPTION...] per line; blank lines and lines starting with # are skipped. `eif-builder image` writes the parent's egress routes as such a file (egress-routes)."),
    Opt("workers", Some("N"), Some("0"), "Worker threads, one epoll loop each; 0 means one per CPU."),
    Opt("max-conns", Some("N"), Some("10000"), "Connections per route; beyond it new ones are accepted and closed at once."),
    Opt("idle-timeout", Some("DURATION"), Some("10m"), "Close a connection after this long without a byte moving (0: never)."),
    Opt("linger", Some("DURATION"), Some("5s"), "Once the target has ended its side and the client has been sent EOF, close the pair if the client has not closed its side within this long (a client that half-closes first, and waits for an answer, is not affected)."),
    Opt("connect-timeout", Some("DURATION"), Some("5s"), "Time for one attempt to reach the target (including the vsock-uds handshake)."),
    Opt("connect-retries", Some("N"), Some("8"), "Further attempts while the target refuses or is absent (an enclave booting); 100 ms apart, doubling, at most 2 s."),
    Opt("drain-timeout", Some("DURATION"), Some("30s"), "After SIGTERM/SIGINT: stop accepting, let open connections run this long, exit 0."),
    Opt("proxy-v2", None, None, "Send a PROXY protocol v2 header to every target (per route: ,proxy-v2)."),
    Opt("no-splice", None, None, "Copy with read/write instead of splice(2) (for tests and odd kernels)."),
    Opt("metrics", Some("tcp:HOST:PORT"), None, "Serve Prometheus text counters there (any request path)."),
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the relay.
    Run(Box<Args>),
    /// Print this text and exit 0 (`--help`, `--version`).
    Print(String),
}

/// The parsed options.
#[derive(Debug)]
pub struct Args {
    /// The routes.
    pub routes: Vec<Route>,
    /// Worker threads (0: one per CPU).
    pub workers: usize,
    /// Default per-route connection limit.
    pub max_conns: usize,
    /// `--proxy-v2` for every route.
    pub proxy_v2: bool,
    /// `--metrics`.
    pub metrics: Option<Addr>,
    /// Timeouts and data path.
    pub settings: Settings,
}

/// The `--help` text.
pub fn help() -> String {
    let mut s = format!(
        "host-relay {} - forward bytes between TCP, Unix sockets and vsock (splice, no payload parsing)\n\n\
         Usage: host-relay --route LISTEN=TARGET [--route ...] [--routes FILE ...] [OPTIONS]\n\n\
         Example: host-relay --route tcp:0.0.0.0:443=vsock:16:443 --metrics tcp:127.0.0.1:9100\n\nOptions:\n",
        env!("CARGO_PKG_VERSION")
    );
    for Opt(flag, value, default, help) in OPTIONS {
        let _ = write!(s, "  --{flag}");
        if let Some(v) = value {
            let _ = write!(s, " {v}");
        }
        if let Some(d) = default {
            let _ = write!(s, "  [default: {d}]");
        }
        let _ = writeln!(s, "\n      {help}");
    }
    s.push_str(
        "  -h, --help     Print this help.\n  -V, --version  Print the version.\n\n\
         DURATION: 500ms, 10s, 2m or a number of seconds. Logs go to stderr, one line per \
         connection open and close\n(bytes each way, duration, data path, reason).\n",
    );
    s
}

fn duration(flag: &str, v: &str) -> Result<Duration, Usage> {
    contract::duration::parse(v).map_err(|e| Usage(format!("--{flag}: {e}")))
}

fn number(flag: &str, v: &str) -> Result<usize, Usage> {
    v.parse()
        .map_err(|_| Usage(format!("--{flag}: `{v}` is not a number")))
}

/// The largest `--routes` file read.
pub const MAX_ROUTES_FILE: u64 = 1 << 20;

/// The routes of a `--routes` file's `text`; `file` names it in errors, with the line.
pub fn routes_text(text: &str, file: &str) -> Result<Vec<Route>, Usage> {
    let mut routes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = Route::parse(line)
            .map_err(|e| Usage(format!("--routes {file} line {}: {}", i + 1, e.0)))?;
        routes.push(r);
    }
    if routes.is_empty() {
        return Err(Usage(format!("--routes {file}: lists no route")));
    }
    Ok(routes)
}

/// Reads a `--routes` file (at most [`MAX_ROUTES_FILE`] bytes of UTF-8).
pub fn routes_file(file: &str) -> Result<Vec<Route>, Usage> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| Usage(format!("--routes {file}: cannot read it: {e}"));
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_ROUTES_FILE + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_ROUTES_FILE {
        return Err(Usage(format!(
            "--routes {file}: larger than {MAX_ROUTES_FILE} bytes"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Usage(format!("--routes {file}: is not UTF-8 text")))?;
    routes_text(&text, file)
}

/// Parses the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, Usage> {
    let mut values: Vec<(&'static str, String)> = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Command::Print(help())),
            "-V" | "--version" => {
                return Ok(Command::Print(format!(
                    "host-relay {}\n",
                    env!("CARGO_PKG_VERSION")
                )))
            }
            _ => {}
        }
        let Some(body) = a.strip_prefix("--") else {
            return Err(Usage(format!("unexpected argument `{a}`")));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) if OPTIONS.iter().any(|o| o.0 == n) => (n, Some(v.to_string())),
            _ => (body, None),
        };
        let Some(opt) = OPTIONS.iter().find(|o| o.0 == name) else {
            return Err(Usage(format!("unknown option `--{name}`")));
        };
        let v = match (opt.1, inline) {
            (None, None) => String::new(),
            (None, Some(_)) => return Err(Usage(format!("--{name} takes no value"))),
            (Some(_), Some(v)) => v,
            (Some(_), None) => it
                .next()
                .ok_or_else(|| Usage(format!("--{name} needs a value")))?,
        };
        values.push((opt.0, v));
    }
    let get = |flag: &str| -> String {
        values
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                OPTIONS
                    .iter()
                    .find(|o| o.0 == flag)
                    .and_then(|o| o.2.map(String::from))
            })
            .unwrap_or_default()
    };
    let has = |flag: &str| values.iter().any(|(f, _)| *f == flag);
    let mut routes = Vec::new();
    for (flag, v) in &values {
        match *flag {
            "route" => routes.push(Route::parse(v)?),
            "routes" => routes.extend(routes_file(v)?),
            _ => {}
        }
    }
    if routes.is_empty() {
        return Err("no --route or --routes given".into());
    }
    let idle = duration("idle-timeout", &get("idle-timeout"))?;
    let metrics = if has("metrics") {
        let m = Addr::parse(&get("metrics"), true).map_err(|e| Usage(format!("--metrics {e}")))?;
        if !matches!(m, Addr::Tcp { .. }) {
            return Err("--metrics must be a tcp: address".into());
        }
        Some(m)
    } else {
        None
    };
    let retries = number("connect-retries", &get("connect-retries"))?;
    Ok(Command::Run(Box::new(Args {
        routes,
        workers: number("workers", &get("workers"))?,
        max_conns: number("max-conns", &get("max-conns"))?,
        proxy_v2: has("proxy-v2"),
        metrics,
        settings: Settings {
            idle_timeout: (!idle.is_zero()).then_some(idle),
            linger: duration("linger", &get("linger"))?,
            policy: Policy {
                timeout: duration("connect-timeout", &get("connect-timeout"))?,
                retries: u32::try_from(retries)
                    .map_err(|_| Usage::from("--connect-retries: too large"))?,
                backoff: Duration::from_millis(100),
            },
            drain: duration("drain-timeout", &get("drain-timeout"))?,
            no_splice: has("no-splice"),
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string())).map_err(|e| e.0)
    }

    #[test]
    fn defaults_and_values() {
        let Command::Run(a) = p(&[
            "--route",
            "tcp:127.0.0.1:0=unix:/x",
            "--route=tcp:127.0.0.1:1=tcp:a:2",
            "--workers",
            "3",
            "--idle-timeout",
            "0",
            "--no-splice",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.routes.len(), 2);
        assert_eq!(a.workers, 3);
        assert_eq!(a.max_conns, 10000);
        assert_eq!(a.settings.idle_timeout, None);
        assert_eq!(a.settings.policy.timeout, Duration::from_secs(5));
        assert_eq!(a.settings.drain, Duration::from_secs(30));
        assert_eq!(a.settings.linger, Duration::from_secs(5));
        assert!(a.settings.no_splice && !a.proxy_v2);
        assert!(matches!(p(&["--help"]), Ok(Command::Print(_))));
    }

    #[test]
    fn errors() {
        assert_eq!(p(&[]).unwrap_err(), "no --route or --routes given");
        assert!(p(&["--route"]).unwrap_err().contains("needs a value"));
        assert!(p(&["--fast"])
            .unwrap_err()
            .contains("unknown option `--fast`"));
        assert!(p(&["--route", "tcp:h:1=tcp:h:70000"])
            .unwrap_err()
            .contains("bad port `70000`"));
        assert!(p(&["--route", "tcp:h:1=tcp:h:7", "--workers", "x"])
            .unwrap_err()
            .contains("--workers"));
        assert!(p(&["--route", "tcp:h:1=tcp:h:7", "--metrics", "unix:/m"])
            .unwrap_err()
            .contains("tcp"));
        assert!(p(&["--route", "tcp:h:1=tcp:h:7", "--no-splice=1"])
            .unwrap_err()
            .contains("no value"));
    }

    #[test]
    fn a_routes_file_has_a_route_per_line() {
        let text = "# the parent's egress\n\nvsock:any:8000=tcp:api.example.com:443\n  vsock:any:8001=tcp:kms.example:443,max-conns=5  \n";
        let routes = routes_text(text, "egress-routes").unwrap();
        let shown: Vec<String> = routes
            .iter()
            .map(|r| format!("{}={}", r.listen, r.target))
            .collect();
        assert_eq!(
            shown,
            [
                "vsock:any:8000=tcp:api.example.com:443",
                "vsock:any:8001=tcp:kms.example:443"
            ]
        );
        assert_eq!(routes[1].max_conns, Some(5));
        let e = |t: &str| routes_text(t, "f").unwrap_err().0;
        assert_eq!(
            e("# one\nvsock:any:8000=tcp:a:443\nvsock:any:8001=tcp:a:0\n"),
            "--routes f line 3: route target `tcp:a:0`: bad port `0` (a target needs 1-65535)"
        );
        assert_eq!(
            e("tcp:1:1\n"),
            "--routes f line 1: route `tcp:1:1`: missing `=` between LISTEN and TARGET"
        );
        assert_eq!(e("# nothing\n\n"), "--routes f: lists no route");

        // From a file, after and before --route, in command-line order.
        let dir = std::env::temp_dir().join(format!("host-relay-routes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("egress-routes");
        std::fs::write(&file, text).unwrap();
        let file = file.to_str().unwrap();
        let Command::Run(a) = p(&["--route", "tcp:h:1=tcp:h:7", "--routes", file]).unwrap() else {
            panic!()
        };
        assert_eq!(a.routes.len(), 3);
        assert_eq!(a.routes[0].target.to_string(), "tcp:h:7");
        assert_eq!(a.routes[2].target.to_string(), "tcp:kms.example:443");
        let missing = dir.join("missing");
        let missing = missing.to_str().unwrap();
        let e = p(&["--routes", missing]).unwrap_err();
        assert!(
            e.starts_with(&format!("--routes {missing}: cannot read it: ")),
            "{e}"
        );
        std::fs::write(dir.join("binary"), b"\xff\xfe").unwrap();
        let binary = dir.join("binary");
        assert_eq!(
            p(&["--routes", binary.to_str().unwrap()]).unwrap_err(),
            format!("--routes {}: is not UTF-8 text", binary.display())
        );
        let big = dir.join("big");
        std::fs::write(&big, "#".repeat(1 << 20 | 1)).unwrap();
        assert_eq!(
            p(&["--routes", big.to_str().unwrap()]).unwrap_err(),
            format!("--routes {}: larger than 1048576 bytes", big.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations_are_the_shared_syntax() {
        let route = ["--route", "tcp:h:1=tcp:h:7"];
        let run = |extra: &[&str]| {
            let mut a = route.to_vec();
            a.extend_from_slice(extra);
            p(&a)
        };
        let Ok(Command::Run(a)) = run(&["--idle-timeout", "1h", "--connect-timeout", "500ms"])
        else {
            panic!()
        };
        assert_eq!(a.settings.idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(a.settings.policy.timeout, Duration::from_millis(500));
        let e = run(&["--linger", "5d"]).unwrap_err();
        assert_eq!(
            e,
            "--linger: invalid duration \"5d\": the unit must be ms, s, m or h"
        );
        // Too large is an error now, not silently capped.
        assert!(run(&["--idle-timeout", "99999999999999999h"])
            .unwrap_err()
            .contains("too large"));
    }
}
