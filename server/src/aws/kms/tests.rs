//! KMS calls over a scripted transport: the request's shape and signature, the answers KMS
//! gives (errors, a Plaintext that must not be there, malformed ones), and the whole round trip
//! with a `CiphertextForRecipient` made by `openssl cms -encrypt` for the request's key.

use super::*;
use crate::aws::tests::{Answer, Script};
use std::sync::Mutex;

/// Records the public key it was asked to attest; the document is a marker.
#[derive(Debug, Default)]
struct TestAttester {
    public_keys: Mutex<Vec<Vec<u8>>>,
}

const DOC: &[u8] = b"ATTESTATION DOCUMENT";

impl Attester for TestAttester {
    fn attest(
        &self,
        user_data: &[u8],
        nonce: &[u8],
        public_key: &[u8],
    ) -> Result<Vec<u8>, AttestError> {
        assert!(user_data.is_empty() && nonce.is_empty());
        self.public_keys.lock().unwrap().push(public_key.to_vec());
        Ok(DOC.to_vec())
    }
}

fn kms() -> Kms {
    Kms::new(
        "eu-west-1",
        None,
        Provider::explicit(sigv4::Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Zeroizing::new("secret".into()),
            session_token: Some("token".into()),
        }),
    )
    .unwrap()
}

fn members(body: &[u8]) -> Vec<(String, Value)> {
    match contract::json::parse(std::str::from_utf8(body).unwrap()).unwrap() {
        Value::Object(m) => m,
        v => panic!("{v:?}"),
    }
}

fn header<'a>(req: &'a Request, name: &str) -> &'a str {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {:?}", req.headers))
}

fn error_answer(status: u16, body: &'static str) -> Script {
    Script::new(vec![(status, body.as_bytes().to_vec())])
}

#[test]
fn a_decrypt_request_is_signed_json_carrying_the_recipient_document() {
    let http = error_answer(400, r#"{"__type":"AccessDeniedException","message":"no"}"#);
    let attester = TestAttester::default();
    kms()
        .decrypt(&http, &attester, b"blob", Some("alias/k"))
        .unwrap_err();
    let req = &http.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.url.to_string(), "https://kms.eu-west-1.amazonaws.com/");
    assert_eq!(header(req, "X-Amz-Target"), "TrentService.Decrypt");
    assert_eq!(header(req, "Content-Type"), "application/x-amz-json-1.1");
    assert_eq!(header(req, "X-Amz-Security-Token"), "token");
    let auth = header(req, "Authorization");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && auth.contains("/eu-west-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="),
        "{auth}"
    );
    let m = members(&req.body);
    assert_eq!(string_field(&m, "CiphertextBlob").unwrap(), "YmxvYg==");
    assert_eq!(string_field(&m, "KeyId").unwrap(), "alias/k");
    let Some((_, Value::Object(r))) = m.iter().find(|(k, _)| k == "Recipient") else {
        panic!("no Recipient in {m:?}");
    };
    assert_eq!(
        string_field(r, "KeyEncryptionAlgorithm").unwrap(),
        "RSAES_OAEP_SHA_256"
    );
    assert_eq!(base64_field(r, "AttestationDocument").unwrap(), DOC);
    // The document was asked for with a fresh RSA public key (SubjectPublicKeyInfo).
    let keys = attester.public_keys.lock().unwrap();
    assert_eq!(keys.len(), 1);
    let key = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&keys[0]).unwrap();
    assert_eq!(key.key_size_bits(), 2048);
}

#[test]
fn each_call_has_a_key_pair_of_its_own() {
    let http = Script::new(vec![(500, b"{}".to_vec()), (500, b"{}".to_vec())]);
    let attester = TestAttester::default();
    kms().decrypt(&http, &attester, b"blob", None).unwrap_err();
    kms()
        .generate_data_key(&http, &attester, "alias/k", 32)
        .unwrap_err();
    let keys = attester.public_keys.lock().unwrap();
    assert_ne!(keys[0], keys[1]);
    let second = members(&http.requests()[1].body);
    assert_eq!(
        second[1],
        ("NumberOfBytes".to_owned(), Value::Number("32".into()))
    );
}

#[test]
fn refusals_name_the_exception_and_message() {
    let attester = TestAttester::default();
    for (status, body, want) in [
        (
            400,
            r#"{"__type":"com.amazonaws.kms#AccessDeniedException","message":"not allowed by the key policy"}"#,
            "KMS refused (HTTP 400, AccessDeniedException): not allowed by the key policy",
        ),
        (
            400,
            r#"{"__type":"InvalidCiphertextException","Message":"bad blob"}"#,
            "KMS refused (HTTP 400, InvalidCiphertextException): bad blob",
        ),
        (
            503,
            "Service Unavailable\r\n",
            "KMS refused (HTTP 503, unknown): Service Unavailable",
        ),
    ] {
        let e = kms()
            .decrypt(&error_answer(status, body), &attester, b"blob", None)
            .unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn answers_that_are_not_what_the_api_documents_are_refused() {
    let attester = TestAttester::default();
    for (body, want) in [
        ("[]", "KMS: unexpected answer: expected a JSON object, got an array"),
        ("{}", "KMS: unexpected answer: CiphertextForRecipient is missing"),
        (
            r#"{"CiphertextForRecipient":"%%%"}"#,
            "KMS: unexpected answer: CiphertextForRecipient is not base64",
        ),
        (
            r#"{"Plaintext":"AAAA","CiphertextForRecipient":"AAAA"}"#,
            "KMS: unexpected answer: it carries Plaintext, which an answer to a Recipient must not: the key crossed the parent in the clear",
        ),
    ] {
        let e = kms()
            .decrypt(&error_answer(200, body), &attester, b"blob", None)
            .unwrap_err();
        assert_eq!(e.to_string(), want, "{body}");
    }
    let e = kms()
        .decrypt(&error_answer(200, "not json"), &attester, b"blob", None)
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("KMS: unexpected answer: not JSON: "),
        "{e}"
    );
}

#[test]
fn configuration_errors_are_named() {
    let none = |_: &str| None;
    assert_eq!(
        Kms::from_env(none).unwrap_err().to_string(),
        "KMS: AWS_REGION is not set (the KMS key's region)"
    );
    let region = |n: &str| (n == "AWS_REGION").then(|| "EU_WEST".to_owned());
    assert_eq!(
        Kms::from_env(region).unwrap_err().to_string(),
        "KMS: \"EU_WEST\" is not an AWS region (e.g. eu-west-1)"
    );
    let endpoint = |n: &str| match n {
        "AWS_REGION" => Some("eu-west-1".to_owned()),
        "AWS_ENDPOINT_URL_KMS" => Some("https://kms.test:8443/".to_owned()),
        _ => None,
    };
    let k = Kms::from_env(endpoint).unwrap();
    assert_eq!(k.endpoint().to_string(), "https://kms.test:8443/");
    let attester = TestAttester::default();
    let http = Script::new(vec![]);
    assert_eq!(
        kms()
            .decrypt(&http, &attester, b"", None)
            .unwrap_err()
            .to_string(),
        "KMS: a ciphertext blob is 1 to 6144 bytes, not 0"
    );
    assert_eq!(
        kms()
            .generate_data_key(&http, &attester, "k", 0)
            .unwrap_err()
            .to_string(),
        "KMS: a data key is 1 to 1024 bytes, not 0"
    );
    assert!(http.requests().is_empty());
}

/// An answer with `fields` and a `CiphertextForRecipient` of `plaintext`, made by openssl for
/// the public key in the request's attestation document (here: the one the attester saw).
fn recipient_answer(
    attester: &'static TestAttester,
    plaintext: &'static [u8],
    fields: &'static str,
) -> Answer {
    Box::new(move |_req: &Request| {
        let key = attester
            .public_keys
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap();
        let cms = crate::aws::tests::openssl_encrypt_for(&key, plaintext);
        let body = format!(
            "{{{fields}\"CiphertextForRecipient\":\"{}\"}}",
            contract::base64::encode(&cms)
        );
        (200, body.into_bytes())
    })
}

#[test]
fn the_plaintext_comes_back_through_the_recipient_only() {
    let attester: &'static TestAttester = Box::leak(Box::default());
    let http = Script::with(vec![
        recipient_answer(
            attester,
            b"the enclave key, 32 bytes long!!",
            r#""KeyId":"arn:k","#,
        ),
        recipient_answer(
            attester,
            b"0123456789abcdef",
            r#""KeyId":"arn:aws:kms:eu-west-1:1:key/k","CiphertextBlob":"YmxvYg==","#,
        ),
    ]);
    let plain = kms().decrypt(&http, attester, b"blob", None).unwrap();
    assert_eq!(&plain[..], b"the enclave key, 32 bytes long!!");
    let key = kms()
        .generate_data_key(&http, attester, "alias/k", 16)
        .unwrap();
    assert_eq!(&key.plaintext[..], b"0123456789abcdef");
    assert_eq!(key.ciphertext_blob, b"blob");
    assert_eq!(key.key_id, "arn:aws:kms:eu-west-1:1:key/k");
    assert!(!format!("{key:?}").contains("0123"));
}

#[test]
fn without_credentials_no_key_pair_is_made_and_nothing_is_attested() {
    let kms = Kms::new(
        "eu-west-1",
        None,
        Provider::instance_metadata(Url::parse("http://169.254.169.254").unwrap()),
    )
    .unwrap();
    let attester = TestAttester::default();
    // The metadata service answers nothing: the call ends at the credentials.
    let e = kms
        .decrypt(&Script::new(vec![]), &attester, b"blob", None)
        .unwrap_err();
    assert!(matches!(e, KmsError::Credentials(_)), "{e}");
    assert!(attester.public_keys.lock().unwrap().is_empty());
}
