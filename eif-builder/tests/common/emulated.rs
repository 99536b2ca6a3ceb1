//! Attestation documents shaped like those of QEMU's emulated NSM (COSE algorithm -1, zero
//! signature, zeroed certificate and bundle), with the fields a test chooses.

use ciborium::value::Value;

/// The PCRs of the emulated enclave.
pub const PCR0: [u8; 48] = [0xa0; 48];
/// PCR1.
pub const PCR1: [u8; 48] = [0xa1; 48];
/// PCR2.
pub const PCR2: [u8; 48] = [0xa2; 48];

fn enc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

/// SHA-256.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .try_into()
        .unwrap()
}

/// The fields a document carries.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    /// `public_key`.
    pub public_key: Vec<u8>,
    /// `user_data`.
    pub user_data: Vec<u8>,
    /// `nonce`.
    pub nonce: Vec<u8>,
    /// Milliseconds since the Unix epoch (0: a fixed time in 2025).
    pub timestamp_ms: u64,
}

impl Fields {
    /// Bound to `cert` as the server binds the endpoint's documents (`contract::binding`).
    pub fn endpoint(cert: &[u8], nonce: &[u8]) -> Fields {
        let b = contract::binding::Binding::of_certificate(cert, sha256).unwrap();
        Fields {
            public_key: b.public_key.to_vec(),
            user_data: b.user_data,
            nonce: nonce.to_vec(),
            timestamp_ms: 0,
        }
    }
}

/// An emulator-shaped document with PCR0/1/2 of this file and `fields`.
pub fn document(fields: &Fields) -> Vec<u8> {
    let mut pcrs: Vec<(Value, Value)> = (0..16u8)
        .map(|i| (i.into(), Value::Bytes(vec![0; 48])))
        .collect();
    pcrs[0].1 = Value::Bytes(PCR0.to_vec());
    pcrs[1].1 = Value::Bytes(PCR1.to_vec());
    pcrs[2].1 = Value::Bytes(PCR2.to_vec());
    let timestamp = if fields.timestamp_ms == 0 {
        1_760_000_000_000
    } else {
        fields.timestamp_ms
    };
    let payload = Value::Map(vec![
        ("module_id".into(), "i-emulated-enc0000000000000001".into()),
        ("digest".into(), "SHA384".into()),
        ("timestamp".into(), timestamp.into()),
        ("pcrs".into(), Value::Map(pcrs)),
        ("certificate".into(), Value::Bytes(vec![0; 500])),
        (
            "cabundle".into(),
            Value::Array(vec![Value::Bytes(vec![0; 500])]),
        ),
        ("public_key".into(), Value::Bytes(fields.public_key.clone())),
        ("user_data".into(), Value::Bytes(fields.user_data.clone())),
        ("nonce".into(), Value::Bytes(fields.nonce.clone())),
    ]);
    enc(&Value::Array(vec![
        Value::Bytes(enc(&Value::Map(vec![(1.into(), (-1).into())]))),
        Value::Map(vec![]),
        Value::Bytes(enc(&payload)),
        Value::Bytes(vec![0; 96]),
    ]))
}

/// A measurements file for these PCRs, PCR0 given.
pub fn measurements(pcr0: &[u8]) -> String {
    let hex = eif_builder::measure::hex;
    format!(
        "{{\"Measurements\": {{\"PCR0\": \"{}\", \"PCR1\": \"{}\", \"PCR2\": \"{}\"}}}}",
        hex(pcr0),
        hex(&PCR1),
        hex(&PCR2)
    )
}

/// An NSM that answers emulator-shaped documents, made at a chosen time.
pub struct FakeNsm {
    /// The documents' timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl server::nsm::Attester for FakeNsm {
    fn attest(
        &self,
        user_data: &[u8],
        nonce: &[u8],
        public_key: &[u8],
    ) -> Result<Vec<u8>, server::nsm::AttestError> {
        Ok(document(&Fields {
            public_key: public_key.to_vec(),
            user_data: user_data.to_vec(),
            nonce: nonce.to_vec(),
            timestamp_ms: self.timestamp_ms,
        }))
    }
}

/// A certificate (and its key) carrying a document made `age` seconds ago, as the enclave's
/// server makes it at start.
pub fn attested_certificate(age: u64) -> server::cert::Generated {
    let made = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - age;
    server::cert::generate_attested(
        &FakeNsm {
            timestamp_ms: made * 1000,
        },
        i64::try_from(made).unwrap(),
    )
    .unwrap()
}

/// A TLS server configuration (TLS 1.3 and 1.2, aws-lc-rs) for one certificate and its key.
pub fn tls_config(
    cert_der: Vec<u8>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> std::sync::Arc<rustls::ServerConfig> {
    std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.into()], key)
        .unwrap(),
    )
}

/// [`tls_config`] for a certificate the server library generated.
pub fn tls_config_of(g: &server::cert::Generated) -> std::sync::Arc<rustls::ServerConfig> {
    tls_config(
        g.cert_der.clone(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(g.key_pkcs8.to_vec().into()),
    )
}
