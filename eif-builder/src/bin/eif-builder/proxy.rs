//! `eif-builder proxy`: its arguments, and the start of the attested proxy
//! ([`eif_builder::proxy`]).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::attestation::{load_policy, parse_convention, parse_max_age, PolicyArgs};
use eif_builder::attest::client::{Convention, Target};
use eif_builder::proxy::{ProxyConfig, Upstream};
use eif_builder::{Error, Result};

#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// The enclave's HTTPS server, https://HOST:PORT (through the relay), and its attestation
    /// endpoint's path if not /attestation.
    #[arg(value_name = "URL")]
    url: String,
    /// Where clients connect, in plain HTTP: keep it on loopback (127.0.0.1:PORT), since what
    /// goes over it is the plaintext the enclave protects.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    #[command(flatten)]
    policy: PolicyArgs,
    /// A document carried in the enclave's certificate older than this is not used; the
    /// endpoint is asked with a fresh nonce instead (e.g. 24h; 0s: always ask the endpoint)
    /// [default: no limit].
    #[arg(long, value_name = "DURATION")]
    max_age: Option<String>,
    /// How the endpoint is asked: enclave-https or nitriding (see `attest --help`).
    #[arg(long, value_name = "NAME", default_value = "enclave-https", value_parser = parse_convention)]
    convention: Convention,
    /// Seconds to wait for the enclave: connecting, and each read and write.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
    /// Client connections served at once; more are answered 503.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_clients: usize,
    /// Idle attested connections to the enclave kept for reuse.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pool: usize,
}

pub(crate) fn proxy(args: ProxyArgs) -> Result<()> {
    let max_age_secs = parse_max_age(args.max_age.as_deref())?;
    let (root_der, accepted) = load_policy(&args.policy)?;
    let target = Target::parse_with(&args.url, args.convention.default_path())?;
    if args.max_clients == 0 {
        return Err(Error::Invalid {
            what: "--max-clients 0".to_string(),
            detail: "must be at least 1".to_string(),
        });
    }
    let listener = TcpListener::bind(args.listen).map_err(|source| Error::Io {
        action: "cannot listen on",
        path: Some(PathBuf::from(args.listen.to_string())),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        action: "cannot read the address of",
        path: Some(PathBuf::from(args.listen.to_string())),
        source,
    })?;
    if !local.ip().is_loopback() {
        eprintln!(
            "eif-builder proxy: WARNING: listening on {local}, not loopback: the plaintext of \
             every exchange crosses the network between the client and this proxy"
        );
    }
    eprintln!(
        "eif-builder proxy: http://{local}/ -> https://{} (every connection attested before use; accepted: {})",
        target.authority(),
        accepted.names()
    );
    let config = ProxyConfig {
        target,
        convention: args.convention,
        accepted,
        root_der,
        allow_debug: args.policy.allow_debug,
        insecure_emulator: args.policy.insecure_emulator,
        max_age_secs,
        timeout: Duration::from_secs(args.timeout.max(1)),
        max_clients: args.max_clients,
        pool: args.pool,
    };
    eif_builder::proxy::serve(listener, Arc::new(Upstream::new(config))).map_err(|source| {
        Error::Io {
            action: "cannot accept on",
            path: Some(PathBuf::from(local.to_string())),
            source,
        }
    })
}
