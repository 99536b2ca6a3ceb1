//! The default application binary: `/health`, `/attestation` and `/private-data` over HTTPS, on
//! vsock inside the enclave or TCP on a developer's machine. See `server --help` (`cli.rs`);
//! the routes are in `app.rs`, the private data in `vault.rs`. Everything else is the `server`
//! library, which your own application uses the same way (see its crate documentation).

mod app;
mod children;
mod cli;
mod kms_key;
mod vault;

use app::App;
use cli::{Args, Command};
use server::attest::Attestation;
use server::memory::{self, Memory};
use server::nsm::{Attester, Nsm};
use server::{Config, Error, Identity, ListenAddr, Server};
use std::process::ExitCode;
use std::sync::Arc;
use vault::{EnclaveKey, KeySource, Vault};

const MIB: u64 = 1024 * 1024;

/// Where the enclave key comes from, as the environment says.
enum KeyFrom {
    /// Generated at start.
    Nothing,
    /// `ENCLAVE_KEY_BASE64`.
    Environment(EnclaveKey),
    /// `ENCLAVE_KEY_KMS_CIPHERTEXT`, decrypted by KMS at start.
    Kms(String),
}

fn run(args: Args, key: KeyFrom, memory: Option<Memory>) -> server::Result<()> {
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
    let (tls, cert_der, mode) = if args.plain_http {
        (None, Vec::new(), "plain HTTP, no TLS".to_owned())
    } else {
        let identity = match &args.tls_files {
            Some((cert, key)) => Identity::from_pem_files(cert, key)?,
            None => Identity::generate_for(attester.as_deref())?,
        };
        let cert_der = identity.leaf_der().to_vec();
        let source = match identity.source() {
            server::tls::Source::Generated => "generated self-signed P-256 certificate",
            server::tls::Source::Files => "certificate from file",
        };
        let carried = match contract::cert_attestation::document(&cert_der) {
            Ok(Some(doc)) => format!(
                ", carrying its attestation document ({} bytes, extension {})",
                doc.len(),
                contract::cert_attestation::OID_TEXT
            ),
            _ => String::new(),
        };
        let mode = format!(
            "TLS 1.3/1.2, {source}{carried}, cert sha256 {}",
            contract::hex::encode(&server::attest::sha256(&cert_der))
        );
        (Some(identity.into_config()?), cert_der, mode)
    };
    let mut server = Server::bind(&config, tls)?;
    // Front mode serves no /private-data: no vault, no enclave key.
    let vault = match (&args.front, key) {
        (Some(_), KeyFrom::Nothing) => None,
        (Some(_), _) => {
            return Err(Error::Config(
                "front mode has no /private-data and no enclave key: unset ENCLAVE_KEY_BASE64 and ENCLAVE_KEY_KMS_CIPHERTEXT".into(),
            ))
        }
        (None, key) => {
            let key = match key {
                KeyFrom::Environment(key) => key,
                KeyFrom::Kms(ciphertext) => {
                    kms_key::fetch(&ciphertext, attester.as_deref(), |n| std::env::var(n).ok())
                        .map_err(Error::Key)?
                }
                KeyFrom::Nothing => EnclaveKey::generate()?,
            };
            let key_id = key.id();
            // The private data of all clients together: a quarter of the budget, counted in it.
            let vault = Vault::new(&key, config.limits.memory_budget / 4, Some(server.budget()))?;
            drop(key);
            println!(
                "server: enclave key {} (key id {key_id}); /private-data keeps a sealed slot per bearer token, in memory only (lost on restart)",
                match vault.key_source() {
                    KeySource::Environment => "from ENCLAVE_KEY_BASE64 (the same after a restart; readable by whoever holds the image: not a secret)",
                    KeySource::Kms => "from AWS KMS (ENCLAVE_KEY_KMS_CIPHERTEXT, released to this enclave's attestation document; the same after a restart)",
                    KeySource::Generated => "generated at start (lost on restart)",
                }
            );
            Some(vault)
        }
    };
    // Before any thread starts, so that all of them block the two signals.
    server.stop_on_signals(args.drain_timeout)?;
    let attestation = Attestation::boxed(attester, &cert_der);
    if let Some(file) = &args.processes {
        children::start(file)?;
    }
    let handler: Arc<dyn server::Handler> = match (args.front, vault) {
        (Some(front), _) => {
            let path = front.local_paths.first().cloned().unwrap_or_default();
            println!(
                "server: front for the application at {}; attestation at {path}{}",
                front.upstream,
                if front.proxy_protocol {
                    "; client addresses from PROXY v2 headers"
                } else {
                    ""
                }
            );
            server.front(front);
            if let Some(addr) = args.local_attestation {
                local_attestation(addr, &args.nsm_device)?;
            }
            Arc::new(move |req: &server::Request<'_>| attestation.handle(req))
        }
        (None, Some(vault)) => Arc::new(App::new(
            server.stats(),
            server.budget(),
            attestation,
            vault,
        )),
        (None, None) => return Err(Error::Config("no enclave key".into())),
    };
    let memory = match &memory {
        Some(m) => format!("{} MiB from {}", m.bytes / MIB, m.source),
        None => "unknown memory".to_owned(),
    };
    // The line tests and harnesses wait for: the address ends at the first space.
    println!(
        "server {}: listening on {} ({mode}; {workers} worker(s); memory budget {} MiB, at most {} connections, for {memory})",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
        config.limits.memory_budget as u64 / MIB,
        config.limits.max_connections,
    );
    server.run(handler)
}

/// Starts the application's local attestation API (front mode): a small plain-HTTP server of
/// its own on a loopback address, with its own NSM handle and a 4 MiB budget.
fn local_attestation(addr: ListenAddr, nsm_device: &std::path::Path) -> server::Result<()> {
    let attester = Nsm::open(nsm_device)
        .ok()
        .map(|n| Box::new(n) as Box<dyn Attester>);
    let limits = server::Limits {
        max_connections: 64,
        memory_budget: server::config::MIN_MEMORY_BUDGET,
        ..server::Limits::default()
    };
    let config = Config {
        listen: addr,
        workers: 1,
        limits,
    };
    let local = Server::bind(&config, None)?;
    println!(
        "server: local attestation API for the application on {} (GET /attestation?nonce=HEX&user_data=HEX&public_key=HEX)",
        local.local_addr()
    );
    let api = Arc::new(server::attest::LocalAttestation::new(attester));
    std::thread::Builder::new()
        .name("local-attestation".into())
        .spawn(move || {
            if let Err(e) = local.run(api) {
                eprintln!("server: local attestation API: {e}");
            }
        })
        .map_err(Error::Spawn)?;
    Ok(())
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
    let memory = memory::detect();
    // 256 MiB when nothing says otherwise (not Linux, no /proc): the README's enclave size.
    let bytes = memory.as_ref().map_or(256 * MIB, |m| m.bytes);
    // Taken first, while no other thread exists: no copy stays in the environment (a child
    // process or /proc/self/environ would show it). An environment variable only: a flag would
    // show the key in the process list.
    let key = match (
        server::secrets::take_env(vault::KEY_ENV),
        std::env::var(vault::KMS_ENV).ok(),
    ) {
        (Some(_), Some(_)) => {
            eprintln!(
                "server: {} and {} are both set; the enclave key comes from one of them",
                vault::KEY_ENV,
                vault::KMS_ENV
            );
            return ExitCode::from(2);
        }
        (Some(text), None) => match EnclaveKey::from_base64(&text) {
            Ok(key) => KeyFrom::Environment(key),
            Err(msg) => {
                eprintln!("server: {msg}");
                return ExitCode::from(2);
            }
        },
        (None, Some(ciphertext)) => KeyFrom::Kms(ciphertext),
        (None, None) => KeyFrom::Nothing,
    };
    let parsed = cli::parse(
        std::env::args().skip(1),
        |name| std::env::var(name).ok(),
        bytes,
    );
    let result = match parsed {
        Ok(Command::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(args)) => run(*args, key, memory),
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
