//! The `eif-builder` command line: `build` an EIF, `describe` one, make a `cpio` ramdisk
//! (`image.rs`), or inspect, `verify` and `attest` Nitro attestation documents
//! (`attestation.rs`), and run the attested `proxy` (`proxy.rs`). This file holds the command table and what both families share.

mod attestation;
mod image;
mod proxy;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use attestation::{AttestArgs, InspectArgs, Verdict, VerifyArgs};
use clap::{Parser, Subcommand};
use eif_builder::{Error, Result};
use image::{BuildArgs, CpioArgs, DescribeArgs, ImageArgs};

/// Reproducible AWS Nitro Enclave images: build an EIF, describe one, or make a cpio ramdisk.
///
/// Output depends only on the inputs and the options: timestamps come from --build-time,
/// --mtime or SOURCE_DATE_EPOCH (default 0), never from the clock or the host.
#[derive(Debug, Parser)]
#[command(name = "eif-builder", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an enclave image from a manifest (enclave.toml): your application on a kernel and
    /// init, with no Docker anywhere.
    ///
    /// The application is `binary` (a static executable, placed at /NAME; a dynamic one only
    /// with its loader and libraries in [[app.files]]) or `oci` (an OCI layout directory, an
    /// oci-archive or a `docker save` tarball: every blob's digest checked, layers applied with
    /// whiteouts, links stored and never followed; its Cmd, else its Entrypoint, and Env taken
    /// as nitro-cli build-enclave takes them). Keys:
    ///
    ///   name, version                EIF metadata
    ///   [app] binary | oci, tag      the application (exactly one of binary and oci)
    ///   [app] args = [...]           the whole command, program first (overrides the image's)
    ///   [app] env = { K = "V" }      added to, or replacing, the image's variables
    ///   [[app.files]] src, dst, mode files added to the root file system
    ///   [kernel] path, modules, cmdline, init   the platform (else --kernel, --init, ...)
    ///   [signing] certificate, key   PCR8
    ///   [front] upstream             our HTTPS server as a TLS front before the application:
    ///                                where the app listens, tcp:IP:PORT or unix:PATH
    ///   [front] binary, args, env    the front's executable (default ${ENCLAVE_BIN}/server),
    ///                                more arguments, its environment
    ///   egress = ["NAME:PORT", ...]  (top level) the outside services the enclave may reach;
    ///                                NAME a lower-case DNS host name (not an IP address, not
    ///                                localhost), PORT 1-65535, each once, at most 200
    ///   egress-relay = "PATH"        (top level) the forwarder, host-relay built for the
    ///                                enclave (default ${ENCLAVE_BIN}/host-relay)
    ///
    /// With [front], /cmd runs /enclave-https/server --upstream UPSTREAM --processes
    /// /etc/enclave-https/processes, and the application becomes process `app` of that file.
    /// With egress, each name gets a loopback address (127.0.0.2, ...) in /etc/hosts and each
    /// entry the parent's vsock port 8000+i; process `egress` forwards them, and
    /// --out/egress-routes holds the parent's side: `host-relay --routes egress-routes`.
    ///
    /// Paths are relative to the manifest; ${NAME} comes from --define. Writes enclave.eif,
    /// measurements.json, bootstrap.cpio and app.cpio to --out, all checked before any is
    /// written, and prints the PCRs, the sizes and the smallest --memory for
    /// `nitro-cli run-enclave`. Anything in /env is measured and readable by whoever holds the
    /// image: it is not a place for secrets.
    // Verbatim: the table of keys keeps its lines; the one-line summary is given whole.
    #[command(
        verbatim_doc_comment,
        about = "Build an enclave image from a manifest (enclave.toml): your application on a kernel and init, with no Docker anywhere."
    )]
    Image(ImageArgs),
    /// Build an EIF from a kernel, a command line and ramdisks, and print its PCRs.
    ///
    /// The file is byte-identical to what nitro-cli's image library writes for the same inputs
    /// and metadata. It is written to a temporary file beside OUTPUT and renamed into place, so
    /// a failure leaves no partial image. The PCRs are printed to stdout as nitro-cli
    /// build-enclave prints them.
    Build(BuildArgs),
    /// Check an EIF and print what it contains, as JSON shaped like nitro-cli describe-eif.
    ///
    /// Every size and offset is checked against the file before use; the CRC and the PCRs are
    /// recomputed, and a signature is verified against its certificate and the image's PCR0.
    /// Any problem (truncation, corruption, CRC or signature mismatch) is reported on stderr
    /// with exit status 1 and nothing on stdout.
    Describe(DescribeArgs),
    /// Write a deterministic cpio (newc) ramdisk from a manifest and/or a directory tree.
    ///
    /// Entries are sorted by path with parents first (missing parents are created 0755),
    /// owned by root, all with the same mtime, numbered 1, 2, 3…; the archive is uncompressed.
    Cpio(CpioArgs),
    /// Print what an attestation document says, WITHOUT verifying it.
    ///
    /// Parses the COSE_Sign1 document an enclave's NSM produced and prints its fields as JSON
    /// (PCRs as PCR0, PCR1, …; byte fields in hex; absent fields as null), with
    /// "verified": false. Nothing here proves the document genuine: no signature, certificate
    /// chain or validity time is checked. Useful to look at a document, and to compare the
    /// PCRs of QEMU's emulated NSM (which cannot sign) with measurements.json. To check a
    /// document, use `verify`.
    InspectAttestation(InspectArgs),
    /// Verify an attestation document against a measurements file and print a JSON verdict.
    ///
    /// Checks, in order: the ES384 COSE signature with the leaf certificate's key; the chain
    /// leaf → cabundle → the AWS Nitro root (embedded and pinned by SHA-256, or --root), with
    /// CA constraints and every certificate valid at --at (default: now); that PCR0/1/2 (and
    /// PCR8 when the measurements have it) equal the measurements; the nonce, if --nonce. A
    /// debug-mode enclave (PCR0/1/2 all zero) is refused, and with --allow-debug accepted only
    /// against measurements that are zero too (never a real image's). Prints
    /// {"verified": true|false, "step", "reason", "pcrs", "module_id", "timestamp", …} on
    /// stdout; exit status 0 only when verified.
    Verify(VerifyArgs),
    /// Fetch a fresh attestation document from a running enclave over TLS, verify it and its
    /// binding to that TLS connection, and print the verified PCRs as a JSON verdict.
    ///
    /// No CA is needed: the server's certificate is accepted and recorded, then authenticated
    /// by the document, which must carry our fresh 32-byte nonce, public_key = the
    /// certificate's SubjectPublicKeyInfo and user_data = SHA-256 of its DER, besides passing
    /// every check of `verify` at the current time. With --from-certificate, the document the
    /// certificate itself carries is verified instead and nothing is sent; with --convention
    /// nitriding, a nitriding enclave's endpoint is asked. Exit status 0 only when verified.
    Attest(AttestArgs),
    /// A local HTTP proxy to an enclave that verifies it first: plain HTTP in, attested TLS out.
    ///
    /// Point any HTTP client at --listen (curl http://127.0.0.1:PORT/health). Every new TLS
    /// connection to the enclave is attested before a request goes over it: from the document
    /// its certificate carries when there is one (no round trip; one older than --max-age is
    /// not used), else from the endpoint with a fresh nonce over that very connection, with
    /// every check of `attest`. Attested connections are kept alive and reused. A failure
    /// answers 502 with the reason (header X-Enclave-Refused: STEP) and sends the request
    /// nowhere. Every response carries what was verified: X-Enclave-PCR0, -PCR1, -PCR2 (and
    /// -PCR8 of a signed image), X-Enclave-Image (with an Accepted list), X-Enclave-Module-Id,
    /// X-Enclave-Attestation (certificate, nonce or nitriding). Requests are read with the
    /// enclave server's own HTTP/1.1 layer: bodies up to 16 MiB, responses up to 64 MiB.
    Proxy(proxy::ProxyArgs),
}

/// Names `path` in an I/O error that does not name a file yet.
pub(crate) fn at_path(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Io {
            action,
            path: None,
            source,
        } => Error::Io {
            action,
            path: Some(path.to_path_buf()),
            source,
        },
        other => other,
    }
}

pub(crate) fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Io {
            action: "cannot write to stdout",
            path: None,
            source: e,
        })
}

/// Reads a small input file whole, refusing one larger than `max` bytes.
pub(crate) fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |action| {
        move |source| Error::Io {
            action,
            path: Some(path.to_path_buf()),
            source,
        }
    };
    let file = std::fs::File::open(path).map_err(io("cannot open"))?;
    let mut bytes = Vec::new();
    file.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io("cannot read"))?;
    if bytes.len() > max {
        return Err(Error::Unsupported {
            what: format!("{}", path.display()),
            detail: format!("larger than {max} bytes"),
        });
    }
    Ok(bytes)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |r: Result<()>| r.map(|()| Verdict::Verified);
    let result = match cli.command {
        Command::Image(args) => done(image::image(args)),
        Command::Build(args) => done(image::build(args)),
        Command::Describe(args) => done(image::describe(args)),
        Command::Cpio(args) => done(image::cpio(args)),
        Command::InspectAttestation(args) => done(attestation::inspect_attestation(args)),
        Command::Verify(args) => attestation::verify(args),
        Command::Attest(args) => attestation::attest(args),
        Command::Proxy(args) => done(proxy::proxy(args)),
    };
    match result {
        Ok(Verdict::Verified) => ExitCode::SUCCESS,
        Ok(Verdict::Refused) => ExitCode::FAILURE,
        Err(e) => {
            let message = e.to_string().replace(['\n', '\r'], " ");
            eprintln!("eif-builder: error: {message}");
            ExitCode::FAILURE
        }
    }
}
