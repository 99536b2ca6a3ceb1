//! The default application binary: `/health`, `/attestation` and `/private-data` over HTTPS, on vsock inside the
//! enclave or TCP on a developer's machine. See `server --help` (and `cli.rs`).

use server::app::{encode_hex, App};
use server::cli::{self, Args, Command};
use server::nsm::{Attester, Nsm};
use server::vault::{EnclaveKey, KeySource, Vault};
use server::{Config, Error, Identity, ListenAddr, Server};
use std::process::ExitCode;
use std::sync::Arc;

fn run(args: Args) -> server::Result<()> {
    if args.plain_http && matches!(args.listen, ListenAddr::Vsock(_)) {
        return Err(Error::Config(
            "--plain-http is for local TCP work only; the vsock listener always uses TLS".into(),
        ));
    }
    let workers = cli::workers(args.workers);
    raise_open_files_limit(args.limits.max_connections);
    let config = Config {
        listen: args.listen,
        workers,
        limits: args.limits,
    };
    let (tls, cert_der, mode) = if args.plain_http {
        (None, Vec::new(), "plain HTTP, no TLS".to_owned())
    } else {
        let identity = match &args.tls_files {
            Some((cert, key)) => Identity::from_pem_files(cert, key)?,
            None => Identity::generate()?,
        };
        let cert_der = identity.leaf_der().to_vec();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert_der);
        let source = match identity.source() {
            server::tls::Source::Generated => "generated self-signed P-256 certificate",
            server::tls::Source::Files => "certificate from file",
        };
        let mode = format!(
            "TLS 1.3/1.2, {source}, cert sha256 {}",
            encode_hex(digest.as_ref())
        );
        (Some(identity.into_config()?), cert_der, mode)
    };
    let attester: Option<Box<dyn Attester>> = match Nsm::open(&args.nsm_device) {
        Ok(nsm) => {
            println!("server: NSM {} opened", args.nsm_device.display());
            Some(Box::new(nsm))
        }
        Err(e) => {
            println!(
                "server: NSM {} not available ({e}); /attestation answers 503",
                args.nsm_device.display()
            );
            None
        }
    };
    let vault = match &args.enclave_key {
        Some(key) => Vault::new(key)?,
        None => Vault::new(&EnclaveKey::generate()?)?,
    };
    println!(
        "server: enclave key {}; /private-data is kept in memory only (lost on restart)",
        match vault.key_source() {
            KeySource::Environment => "from ENCLAVE_KEY_BASE64 (the same after a restart)",
            KeySource::Generated => "generated at start (lost on restart)",
        }
    );
    let mut server = Server::bind(&config, tls)?;
    // Before any thread starts, so that all of them block the two signals.
    server.stop_on_signals(args.drain_timeout)?;
    let app = App::new(server.stats(), attester, &cert_der, vault);
    // The line tests and harnesses wait for: the address ends at the first space.
    println!(
        "server {}: listening on {} ({mode}; {workers} worker(s))",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
    );
    server.run(Arc::new(app))
}

/// Raises the soft limit on open files to the hard one: each connection is a descriptor, and
/// the usual soft limit (1024) is far below the default connection limit. Says so when even
/// the hard limit is below `max_connections` (accepting then pauses briefly at the limit).
fn raise_open_files_limit(max_connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(64);
    if limit < wanted {
        println!(
            "server: warning: the open-files limit is {limit}, below --max-connections {max_connections} plus room for the server's own files"
        );
    }
}

fn main() -> ExitCode {
    let parsed = cli::parse(std::env::args().skip(1), |name| std::env::var(name).ok());
    let result = match parsed {
        Ok(Command::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(args)) => run(*args),
        Err(msg) => {
            eprintln!("server: {msg}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server: {e}");
            ExitCode::FAILURE
        }
    }
}
