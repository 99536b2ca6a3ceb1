//! The client's rustls side: the default configuration (Mozilla's roots from `webpki-roots`,
//! compiled in, plus extra trust anchors), reading extra roots from a PEM file, and turning
//! rustls's errors into [`ClientError`]s that say what to do (a certificate refused for its
//! time names the enclave's clock).
//!
//! The configuration is the server's: the aws-lc-rs provider, TLS 1.3 and 1.2, ALPN `http/1.1`.
//! A caller that needs its own verifier (the attesting proxy) builds its own `ClientConfig`
//! and passes it in [`super::ClientOptions::tls`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, ClientConfig, RootCertStore};

use super::error::{CertificateTime, ClientError};

/// The largest PEM file of extra roots read.
pub const MAX_ROOTS_FILE: u64 = 1 << 20;

/// A client configuration trusting Mozilla's roots (webpki-roots, as compiled in) and
/// `extra_roots` (DER certificates, e.g. a private CA's, or from [`read_pem_roots`]).
pub fn tls_config(extra_roots: &[CertificateDer<'_>]) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for (i, der) in extra_roots.iter().enumerate() {
        roots.add(der.clone().into_owned()).map_err(|e| {
            ClientError::Config(format!(
                "extra root certificate {} of {} is not usable as a trust anchor: {e}",
                i + 1,
                extra_roots.len()
            ))
        })?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ClientError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM file (`CERTIFICATE` blocks; other blocks are skipped), at least
/// one. Errors name the path.
pub fn read_pem_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |reason: String| ClientError::Roots {
        path: path.to_path_buf(),
        reason,
    };
    let text = super::read_at_most(path, MAX_ROOTS_FILE).map_err(|e| bad(e.to_string()))?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_ROOTS_FILE {
        return Err(bad(format!("larger than {MAX_ROOTS_FILE} bytes")));
    }
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The environment variable naming a PEM file of extra trust anchors, for tests against a
/// local stand-in of an outside service (`kms-standin`). An image that sets it trusts that CA
/// for every outside service: its manifest shows it, and programs announce it at start.
pub const TEST_CA_ENV: &str = "ENCLAVE_TEST_CA_FILE";

/// The trust anchors of [`TEST_CA_ENV`] and the file they came from, if the variable is set
/// (`var` reads the environment); none otherwise.
pub fn test_roots_from_env(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<(PathBuf, Vec<CertificateDer<'static>>)>, ClientError> {
    match var(TEST_CA_ENV) {
        Some(path) => {
            let path = PathBuf::from(path);
            let roots = read_pem_roots(&path)?;
            Ok(Some((path, roots)))
        }
        None => Ok(None),
    }
}

fn unix(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// rustls's error for `host` as a [`ClientError`]: a certificate refused for its time becomes
/// [`ClientError::CertificateTime`] (with rustls's time and the certificate's bound when it
/// gives them, else the system clock), anything else [`ClientError::Tls`].
pub fn tls_error(host: &str, error: rustls::Error) -> ClientError {
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| unix(d.as_secs()))
    };
    let (now, problem) = match &error {
        rustls::Error::InvalidCertificate(CertificateError::Expired) => {
            (now(), CertificateTime::Expired(None))
        }
        rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after }) => {
            (
                unix(time.as_secs()),
                CertificateTime::Expired(Some(unix(not_after.as_secs()))),
            )
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidYet) => {
            (now(), CertificateTime::NotValidYet(None))
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
            time,
            not_before,
        }) => (
            unix(time.as_secs()),
            CertificateTime::NotValidYet(Some(unix(not_before.as_secs()))),
        ),
        _ => {
            return ClientError::Tls {
                host: host.to_owned(),
                error,
            }
        }
    };
    ClientError::CertificateTime {
        host: host.to_owned(),
        now,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::UnixTime;
    use std::time::Duration;

    #[test]
    fn certificate_time_errors_name_the_clock() {
        let at = |s: u64| UnixTime::since_unix_epoch(Duration::from_secs(s));
        let e = tls_error(
            "kms.us-east-1.amazonaws.com",
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                time: at(1_796_191_200),
                not_after: at(1_767_225_600),
            }),
        );
        assert_eq!(
            e.to_string(),
            "the certificate of kms.us-east-1.amazonaws.com is not valid at this enclave's clock, 2026-12-02T06:00:00Z (it expired 2026-01-01T00:00:00Z); check the time init logged at boot"
        );
        let e = tls_error(
            "a.test",
            rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                time: at(0),
                not_before: at(86_400),
            }),
        );
        assert_eq!(
            e.to_string(),
            "the certificate of a.test is not valid at this enclave's clock, 1970-01-01T00:00:00Z (it is valid from 1970-01-02T00:00:00Z); check the time init logged at boot"
        );
        // Without context, the system clock.
        let e = tls_error(
            "a.test",
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        let ClientError::CertificateTime { now, problem, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(problem, CertificateTime::Expired(None));
        assert!(now > 1_700_000_000);
        let e = tls_error(
            "a.test",
            rustls::Error::InvalidCertificate(CertificateError::NotValidYet),
        );
        assert!(e
            .to_string()
            .ends_with("(it is not valid yet); check the time init logged at boot"));
        let e = tls_error(
            "a.test",
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
        );
        assert_eq!(
            e.to_string(),
            "TLS with a.test failed: invalid peer certificate: NotValidForName"
        );
    }

    #[test]
    fn roots_files() {
        let dir = std::env::temp_dir().join(format!("client-roots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = read_pem_roots(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("extra root certificates {}: ", missing.display())),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        assert_eq!(
            read_pem_roots(&empty).unwrap_err().to_string(),
            format!(
                "extra root certificates {}: no CERTIFICATE block",
                empty.display()
            )
        );
        let broken = dir.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = read_pem_roots(&broken).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("extra root certificates {}: ", broken.display())),
            "{e}"
        );
        let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/client/ca.pem");
        let roots = read_pem_roots(&ca).unwrap();
        assert_eq!(roots.len(), 1);
        assert!(tls_config(&roots).is_ok());
        // DER that is no certificate is refused as a trust anchor, naming which.
        let e = tls_config(&[CertificateDer::from(vec![0x30, 0x00])]).unwrap_err();
        assert!(
            e.to_string().starts_with("TLS client configuration: extra root certificate 1 of 1 is not usable as a trust anchor: "),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
