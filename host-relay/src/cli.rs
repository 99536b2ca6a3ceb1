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
         Usage: host-relay --route LISTEN=TARGET [--route ...] [OPTIONS]\n\n\
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
    let routes = values
        .iter()
        .filter(|(f, _)| *f == "route")
        .map(|(_, v)| Route::parse(v))
        .collect::<Result<Vec<_>, _>>()?;
    if routes.is_empty() {
        return Err("no --route given".into());
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
        assert_eq!(p(&[]).unwrap_err(), "no --route given");
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
