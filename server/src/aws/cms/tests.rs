//! Tests of [`super::parse`]: OpenSSL's and KMS's answers (`server/tests/data/cms/`, made by
//! its `make.sh`), the same with bytes changed, and hand-built EnvelopedData for every refusal.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../../tests/data/cms/", $name)) as &[u8],
        )
    };
}

/// Every good OpenSSL fixture: (file, bytes).
const GOOD: &[(&str, &[u8])] = &[
    fixture!("1-keyid.der"),
    fixture!("1-keyid.ber"),
    fixture!("1-issuer.der"),
    fixture!("1-issuer.ber"),
    fixture!("16-keyid.der"),
    fixture!("16-keyid.ber"),
    fixture!("16-issuer.der"),
    fixture!("16-issuer.ber"),
    fixture!("32-keyid.der"),
    fixture!("32-keyid.ber"),
    fixture!("32-issuer.der"),
    fixture!("32-issuer.ber"),
    fixture!("4096-keyid.der"),
    fixture!("4096-keyid.ber"),
    fixture!("4096-issuer.der"),
    fixture!("4096-issuer.ber"),
];

/// The two answers recorded from KMS in AWS's enclave SDK.
const KMS_CONSTRUCTED: &[u8] = fixture!("kms-sdk-c-constructed.ber").1;
const KMS_PRIMITIVE: &[u8] = fixture!("kms-sdk-c-primitive.ber").1;

fn plain_len(name: &str) -> usize {
    name.split('-')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("N-…")
}

fn hex(s: &str) -> Vec<u8> {
    contract::hex::decode(s).expect("hex")
}

/// `bytes` with the first (`nth` = 0) or a later occurrence of `from` replaced by `to`.
fn patch(bytes: &[u8], from: &[u8], to: &[u8], nth: usize) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .nth(nth)
        .map(|(i, _)| i)
        .expect("pattern present");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn openssl_fixtures_parse_in_der_and_streamed_ber() {
    for (name, ber) in GOOD {
        let env = parse(ber).unwrap_or_else(|e| panic!("{name}: {e}"));
        let padded = (plain_len(name) / 16 + 1) * 16;
        assert_eq!(env.encrypted_content.len(), padded, "{name}");
        assert_eq!(env.encrypted_key.len(), 256, "{name}");
        assert_eq!(env.key_encryption, KeyEncryption::RsaesOaepSha256, "{name}");
        if name.contains("keyid") {
            assert_eq!(env.version, 2, "{name}");
            let RecipientId::SubjectKeyIdentifier(ski) = &env.recipient else {
                panic!("{name}: {:?}", env.recipient)
            };
            assert_eq!(ski.len(), 20, "{name}: OpenSSL's SKI is a SHA-1");
        } else {
            assert_eq!(env.version, 0, "{name}");
            assert!(
                matches!(env.recipient, RecipientId::IssuerAndSerialNumber(_)),
                "{name}"
            );
        }
        // DER has the content in one primitive [0]; -stream in OCTET STRING pieces.
        let borrowed = matches!(env.encrypted_content, Cow::Borrowed(_));
        assert_eq!(borrowed, name.ends_with(".der"), "{name}");
        if name.ends_with(".ber") {
            assert_eq!(ber[1], 0x80, "{name}: indefinite length");
        }
    }
}

#[test]
fn der_and_ber_fixtures_share_structure() {
    // Same recipient, same sizes; only the encodings differ.
    let der = parse(fixture!("4096-keyid.der").1).unwrap();
    let ber = parse(fixture!("4096-keyid.ber").1).unwrap();
    assert_eq!(der.recipient, ber.recipient);
    assert_eq!(der.encrypted_content.len(), ber.encrypted_content.len());
}

#[test]
fn kms_answers_recorded_by_the_sdk_parse() {
    let env = parse(KMS_CONSTRUCTED).unwrap();
    assert_eq!(env.version, 2);
    assert_eq!(env.key_encryption, KeyEncryption::RsaesOaepSha256);
    let RecipientId::SubjectKeyIdentifier(ski) = &env.recipient else {
        panic!("{:?}", env.recipient)
    };
    assert_eq!(ski.len(), 32);
    assert_eq!(env.encrypted_key.len(), 256);
    assert!(env.encrypted_key.starts_with(&hex("a0614593a030ee33")));
    assert!(env.encrypted_key.ends_with(&hex("c15f75b90ab0dd")));
    assert_eq!(env.iv, hex("688c6d5f7f31b0fecedf09f2e7c99ac9").as_slice());
    assert_eq!(
        env.encrypted_content.as_ref(),
        hex(
            "70e5caaffd49ad24efe15bf903be9d19895b777d269b57b025f6f67e7ef93f94\
             464515f2ebe034ea0b7621a1ff19292e"
        )
    );

    let env = parse(KMS_PRIMITIVE).unwrap();
    assert_eq!(env.version, 2);
    assert_eq!(env.iv, hex("e66c1172aee0f2f7be34e3afc6b0e4fe").as_slice());
    assert_eq!(env.encrypted_content.len(), 16);
    assert!(matches!(env.encrypted_content, Cow::Borrowed(_)));
    assert!(env.encrypted_key.starts_with(&hex("4a1ca12202e4ce0b")));
}

#[test]
fn every_truncation_is_an_error() {
    let mut all: Vec<(&str, &[u8])> = GOOD.to_vec();
    all.push(("kms constructed", KMS_CONSTRUCTED));
    all.push(("kms primitive", KMS_PRIMITIVE));
    assert_eq!(
        parse(&[]).unwrap_err(),
        CmsError::Missing("ContentInfo SEQUENCE")
    );
    for (name, ber) in all {
        for n in 1..ber.len() {
            assert_eq!(
                parse(&ber[..n]).unwrap_err(),
                CmsError::Truncated,
                "{name} cut to {n}"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut der = fixture!("32-keyid.der").1.to_vec();
    der.push(0);
    assert_eq!(parse(&der).unwrap_err(), CmsError::TrailingBytes(1));
    // A BER answer with one end-of-contents too many.
    let mut ber = KMS_CONSTRUCTED.to_vec();
    ber.extend_from_slice(&[0, 0]);
    assert_eq!(parse(&ber).unwrap_err(), CmsError::TrailingBytes(2));
}

#[test]
fn openssl_refusals_name_what_they_found() {
    let oid = |s: &str| Oid::from_dotted(s);
    let cases: &[(&[u8], CmsError)] = &[
        (
            fixture!("bad-pkcs1.der").1,
            CmsError::KeyEncryption(oid("1.2.840.113549.1.1.1")),
        ),
        (
            fixture!("bad-oaep-sha1.der").1,
            CmsError::OaepHash {
                found: oid("1.3.14.3.2.26"),
                defaulted: true,
            },
        ),
        (
            // MGF1-SHA-1 is the default: OpenSSL leaves maskGenFunc out.
            fixture!("bad-mgf1-sha1.der").1,
            CmsError::OaepMgfHash {
                found: oid("1.3.14.3.2.26"),
                defaulted: true,
            },
        ),
        (fixture!("bad-label.der").1, CmsError::OaepLabel(2)),
        (
            fixture!("bad-aes128.der").1,
            CmsError::ContentEncryption(oid("2.16.840.1.101.3.4.1.2")),
        ),
        (
            fixture!("bad-two-recipients.der").1,
            CmsError::RecipientCount(2),
        ),
    ];
    for (ber, expected) in cases {
        assert_eq!(&parse(ber).unwrap_err(), expected);
    }
    assert_eq!(
        parse(fixture!("bad-pkcs1.der").1).unwrap_err().to_string(),
        "CMS key encryption algorithm is 1.2.840.113549.1.1.1 (rsaEncryption), \
         not rsaesOaep (1.2.840.113549.1.1.7)"
    );
}

/// OIDs' contents, to patch fixtures with.
const RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const ENVELOPED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const SIGNED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const P_SPECIFIED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09];

#[test]
fn changed_algorithm_identifiers_are_refused() {
    let oid = |s: &str| Oid::from_dotted(s);
    // KMS's own answer and OpenSSL's, in both encodings.
    for ber in [
        KMS_CONSTRUCTED,
        KMS_PRIMITIVE,
        fixture!("32-keyid.der").1,
        fixture!("32-issuer.ber").1,
    ] {
        let cases = [
            (
                patch(ber, RSAES_OAEP, RSA_ENCRYPTION, 0),
                CmsError::KeyEncryption(oid("1.2.840.113549.1.1.1")),
            ),
            (
                patch(ber, SHA256, SHA384, 0),
                CmsError::OaepHash {
                    found: oid("2.16.840.1.101.3.4.2.2"),
                    defaulted: false,
                },
            ),
            (
                patch(ber, SHA256, SHA384, 1),
                CmsError::OaepMgfHash {
                    found: oid("2.16.840.1.101.3.4.2.2"),
                    defaulted: false,
                },
            ),
            (
                patch(ber, MGF1, P_SPECIFIED, 0),
                CmsError::OaepMaskGen(oid("1.2.840.113549.1.1.9")),
            ),
            (
                patch(ber, AES256_CBC, AES128_CBC, 0),
                CmsError::ContentEncryption(oid("2.16.840.1.101.3.4.1.2")),
            ),
            (
                patch(ber, ENVELOPED, SIGNED, 0),
                CmsError::ContentType(oid("1.2.840.113549.1.7.2")),
            ),
            (
                patch(ber, DATA, ENCRYPTED_DATA, 0),
                CmsError::EncryptedContentType(oid("1.2.840.113549.1.7.6")),
            ),
        ];
        for (changed, expected) in cases {
            assert_eq!(parse(&changed).unwrap_err(), expected);
        }
    }
}

/// A definite-length element.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let [hi, lo] = u16::try_from(content.len()).unwrap().to_be_bytes();
    match (hi, lo) {
        (0, 0..=0x7f) => out.push(lo),
        (0, _) => out.extend_from_slice(&[0x81, lo]),
        _ => out.extend_from_slice(&[0x82, hi, lo]),
    }
    out.extend_from_slice(content);
    out
}

/// An indefinite-length element.
fn indefinite(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    out.extend_from_slice(content);
    out.extend_from_slice(&[0, 0]);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn oid_tlv(oid: &[u8]) -> Vec<u8> {
    tlv(0x06, oid)
}

/// `AlgorithmIdentifier { oid, params }`.
fn alg(oid: &[u8], params: Option<&[u8]>) -> Vec<u8> {
    tlv(0x30, &cat(&[&oid_tlv(oid), params.unwrap_or_default()]))
}

/// RSAES-OAEP-params as KMS sends them (NULL hash parameters).
fn kms_oaep_params() -> Vec<u8> {
    let sha256 = alg(SHA256, Some(&[0x05, 0x00]));
    tlv(
        0x30,
        &cat(&[&tlv(0xa0, &sha256), &tlv(0xa1, &alg(MGF1, Some(&sha256)))]),
    )
}

/// The pieces of an EnvelopedData, KMS's by default; [`Parts::encode`] makes the ContentInfo.
#[derive(Clone)]
struct Parts {
    version: Vec<u8>,
    originator: Option<Vec<u8>>,
    recipients: Vec<Vec<u8>>,
    eci: Vec<u8>,
    after: Vec<u8>,
}

fn ktri(version: u8, rid: &[u8], key_alg: &[u8], key: &[u8]) -> Vec<u8> {
    tlv(0x30, &cat(&[&tlv(0x02, &[version]), rid, key_alg, key]))
}

fn kms_ktri() -> Vec<u8> {
    ktri(
        2,
        &tlv(0x80, &[0x11; 32]),
        &alg(RSAES_OAEP, Some(&kms_oaep_params())),
        &tlv(0x04, &[0x22; 256]),
    )
}

fn eci(alg_oid: &[u8], iv: &[u8], content: &[u8]) -> Vec<u8> {
    tlv(
        0x30,
        &cat(&[&oid_tlv(DATA), &alg(alg_oid, Some(&tlv(0x04, iv))), content]),
    )
}

impl Parts {
    fn kms() -> Parts {
        Parts {
            version: tlv(0x02, &[2]),
            originator: None,
            recipients: vec![kms_ktri()],
            eci: eci(AES256_CBC, &[0x33; 16], &tlv(0x80, &[0x44; 32])),
            after: Vec::new(),
        }
    }

    fn with_key_alg(key_alg: &[u8]) -> Parts {
        let mut parts = Parts::kms();
        parts.recipients = vec![ktri(
            2,
            &tlv(0x80, &[0x11; 32]),
            key_alg,
            &tlv(0x04, &[0x22; 256]),
        )];
        parts
    }

    fn with_params(params: &[u8]) -> Parts {
        Parts::with_key_alg(&alg(RSAES_OAEP, Some(params)))
    }

    fn with_content(content: &[u8]) -> Parts {
        let mut parts = Parts::kms();
        parts.eci = eci(AES256_CBC, &[0x33; 16], content);
        parts
    }

    fn encode(&self) -> Vec<u8> {
        let ed = tlv(
            0x30,
            &cat(&[
                &self.version,
                self.originator.as_deref().unwrap_or_default(),
                &tlv(0x31, &self.recipients.concat()),
                &self.eci,
                &self.after,
            ]),
        );
        tlv(0x30, &cat(&[&oid_tlv(ENVELOPED), &tlv(0xa0, &ed)]))
    }

    fn parse_err(&self) -> CmsError {
        parse(&self.encode()).unwrap_err()
    }
}

#[test]
fn the_built_kms_shape_parses() {
    let der = Parts::kms().encode();
    let env = parse(&der).unwrap();
    assert_eq!(env.version, 2);
    assert_eq!(
        env.recipient,
        RecipientId::SubjectKeyIdentifier(Cow::Borrowed(&[0x11u8; 32][..]))
    );
    assert_eq!(env.encrypted_key.as_ref(), &[0x22; 256]);
    assert_eq!(env.iv, [0x33; 16]);
    assert_eq!(env.encrypted_content.as_ref(), &[0x44; 32]);
}

#[test]
fn oaep_parameters_accepted_and_refused() {
    let sha256 = alg(SHA256, None);
    let sha256_null = alg(SHA256, Some(&[0x05, 0x00]));
    let hash = |h: &[u8]| tlv(0xa0, h);
    let mgf = |h: &[u8]| tlv(0xa1, &alg(MGF1, Some(h)));
    let params = |parts: &[&[u8]]| tlv(0x30, &parts.concat());
    let empty_label = tlv(0xa2, &alg(P_SPECIFIED, Some(&tlv(0x04, &[]))));

    // Accepted: absent parameters (documented), NULL or absent hash parameters, an empty label.
    let absent = Parts::with_key_alg(&alg(RSAES_OAEP, None)).encode();
    assert_eq!(
        parse(&absent).unwrap().key_encryption,
        KeyEncryption::RsaesOaepAbsentParameters
    );
    for ok in [
        params(&[&hash(&sha256), &mgf(&sha256)]),
        params(&[&hash(&sha256_null), &mgf(&sha256_null)]),
        params(&[&hash(&sha256), &mgf(&sha256), &empty_label]),
    ] {
        let der = Parts::with_params(&ok).encode();
        assert_eq!(
            parse(&der).unwrap().key_encryption,
            KeyEncryption::RsaesOaepSha256
        );
    }

    let sha1 = alg(&[0x2b, 0x0e, 0x03, 0x02, 0x1a], Some(&[0x05, 0x00]));
    let cases = [
        (
            Parts::with_key_alg(&alg(RSAES_OAEP, Some(&[0x05, 0x00]))),
            CmsError::OaepParameters("NULL instead of RSAES-OAEP-params"),
        ),
        (
            Parts::with_key_alg(&alg(RSAES_OAEP, Some(&tlv(0x04, &[])))),
            CmsError::Unexpected {
                field: "RSAES-OAEP-params SEQUENCE",
                tag: 0x04,
            },
        ),
        (
            Parts::with_params(&params(&[&hash(&sha1), &mgf(&sha256)])),
            CmsError::OaepHash {
                found: Oid::from_dotted("1.3.14.3.2.26"),
                defaulted: false,
            },
        ),
        (
            Parts::with_params(&params(&[&hash(&sha256)])),
            CmsError::OaepMgfHash {
                found: Oid::from_dotted("1.3.14.3.2.26"),
                defaulted: true,
            },
        ),
        (
            Parts::with_params(&params(&[&hash(&sha256), &mgf(&sha1)])),
            CmsError::OaepMgfHash {
                found: Oid::from_dotted("1.3.14.3.2.26"),
                defaulted: false,
            },
        ),
        (
            Parts::with_params(&params(&[
                &hash(&sha256),
                &mgf(&sha256),
                &tlv(0xa2, &alg(MGF1, Some(&tlv(0x04, &[])))),
            ])),
            CmsError::OaepSource(Oid::from_dotted("1.2.840.113549.1.1.8")),
        ),
        (
            Parts::with_params(&params(&[
                &hash(&sha256),
                &mgf(&sha256),
                &tlv(0xa2, &alg(P_SPECIFIED, Some(&tlv(0x04, b"label")))),
            ])),
            CmsError::OaepLabel(5),
        ),
        (
            Parts::with_params(&params(&[&hash(&sha256), &mgf(&sha256), &tlv(0xa3, &[])])),
            CmsError::Extra("RSAES-OAEP-params"),
        ),
        (
            Parts::with_params(&params(&[
                &hash(&alg(SHA256, Some(&tlv(0x02, &[1])))),
                &mgf(&sha256),
            ])),
            CmsError::Malformed("hash AlgorithmIdentifier parameters"),
        ),
        (
            Parts::with_params(&params(&[
                &tlv(0xa0, &cat(&[&sha256, &sha256])),
                &mgf(&sha256),
            ])),
            CmsError::Extra("hashFunc [0]"),
        ),
        (
            Parts::with_key_alg(&tlv(
                0x30,
                &cat(&[&oid_tlv(RSAES_OAEP), &kms_oaep_params(), &[0x05, 0x00]]),
            )),
            CmsError::Extra("keyEncryptionAlgorithm"),
        ),
    ];
    for (parts, expected) in cases {
        assert_eq!(parts.parse_err(), expected);
    }
}

#[test]
fn versions_and_recipients() {
    let mut v1 = Parts::kms();
    v1.version = tlv(0x02, &[1]);
    assert_eq!(
        v1.parse_err(),
        CmsError::Version {
            of: "EnvelopedData",
            found: 1
        }
    );
    let mut v0 = Parts::kms();
    v0.version = tlv(0x02, &[0]);
    assert_eq!(parse(&v0.encode()).unwrap().version, 0);
    for (bad, why) in [
        (vec![], "empty"),
        (vec![0xff], "negative"),
        (vec![0x00, 0x02], "non-minimal"),
    ] {
        let mut p = Parts::kms();
        p.version = tlv(0x02, &bad);
        assert_eq!(
            p.parse_err(),
            CmsError::Malformed("EnvelopedData version"),
            "{why}"
        );
    }

    let key_alg = alg(RSAES_OAEP, Some(&kms_oaep_params()));
    let key = tlv(0x04, &[0x22; 256]);
    let issuer = tlv(0x30, &tlv(0x02, &[7]));
    let ski = tlv(0x80, &[0x11; 20]);
    let with = |r: Vec<u8>| Parts {
        recipients: vec![r],
        ..Parts::kms()
    };
    let env = with(ktri(0, &issuer, &key_alg, &key)).encode();
    assert_eq!(
        parse(&env).unwrap().recipient,
        RecipientId::IssuerAndSerialNumber(&[0x02, 0x01, 0x07])
    );
    let cases = [
        (
            with(ktri(3, &ski, &key_alg, &key)),
            CmsError::Version {
                of: "KeyTransRecipientInfo",
                found: 3,
            },
        ),
        (
            with(ktri(2, &issuer, &key_alg, &key)),
            CmsError::Unexpected {
                field: "subjectKeyIdentifier [0] (recipient version 2)",
                tag: 0x30,
            },
        ),
        (
            with(ktri(0, &ski, &key_alg, &key)),
            CmsError::Unexpected {
                field: "issuerAndSerialNumber (recipient version 0)",
                tag: 0x80,
            },
        ),
        (
            with(tlv(0x30, &tlv(0x02, &[2]))),
            CmsError::Missing("subjectKeyIdentifier [0] (recipient version 2)"),
        ),
        (
            with(ktri(2, &ski, &key_alg, &tlv(0x05, &[]))),
            CmsError::Unexpected {
                field: "encryptedKey OCTET STRING",
                tag: 0x05,
            },
        ),
        (
            with(ktri(2, &ski, &key_alg, &cat(&[&key, &[0x05, 0x00]]))),
            CmsError::Extra("KeyTransRecipientInfo"),
        ),
        (with(tlv(0xa1, &[])), CmsError::RecipientKind(0xa1)),
        (
            Parts {
                recipients: vec![],
                ..Parts::kms()
            },
            CmsError::RecipientCount(0),
        ),
        (
            Parts {
                recipients: vec![kms_ktri(), kms_ktri(), kms_ktri()],
                ..Parts::kms()
            },
            CmsError::RecipientCount(3),
        ),
    ];
    for (parts, expected) in cases {
        assert_eq!(parts.parse_err(), expected);
    }
}

#[test]
fn optional_fields_around_the_recipients() {
    // originatorInfo skipped, unprotectedAttrs skipped, anything after refused.
    let mut p = Parts::kms();
    p.originator = Some(tlv(0xa0, &tlv(0xa0, &[])));
    p.after = tlv(0xa1, &tlv(0x30, &[]));
    assert!(parse(&p.encode()).is_ok());
    p.after = cat(&[&tlv(0xa1, &[]), &[0x05, 0x00]]);
    assert_eq!(p.parse_err(), CmsError::Extra("EnvelopedData"));
    p.after = tlv(0x04, &[]);
    assert_eq!(p.parse_err(), CmsError::Extra("EnvelopedData"));
}

#[test]
fn encrypted_content_forms() {
    // Several primitive [0] (as the SDK takes them), nested constructed OCTET STRINGs.
    let pieces = cat(&[&tlv(0x80, &[1; 16]), &tlv(0x80, &[2; 16])]);
    let env = Parts::with_content(&pieces).encode();
    let expected = cat(&[&[1; 16], &[2; 16]]);
    assert_eq!(parse(&env).unwrap().encrypted_content.as_ref(), expected);
    let nested = indefinite(
        0xa0,
        &cat(&[
            &tlv(0x04, &[1; 16]),
            &tlv(0x24, &cat(&[&tlv(0x04, &[2; 10]), &tlv(0x04, &[])])),
            &indefinite(0x24, &tlv(0x04, &[2; 6])),
        ]),
    );
    let env = Parts::with_content(&nested).encode();
    assert_eq!(parse(&env).unwrap().encrypted_content.as_ref(), expected);
    // A constructed encrypted key and SKI are put together too.
    let mut p = Parts::kms();
    p.recipients = vec![ktri(
        2,
        &tlv(
            0xa0,
            &cat(&[&tlv(0x04, &[0x11; 12]), &tlv(0x04, &[0x11; 20])]),
        ),
        &alg(RSAES_OAEP, Some(&kms_oaep_params())),
        &tlv(
            0x24,
            &cat(&[&tlv(0x04, &[0x22; 200]), &tlv(0x04, &[0x22; 56])]),
        ),
    )];
    let der = p.encode();
    let env = parse(&der).unwrap();
    assert_eq!(env.encrypted_key.as_ref(), &[0x22; 256]);
    assert_eq!(
        env.recipient,
        RecipientId::SubjectKeyIdentifier(Cow::Owned(vec![0x11; 32]))
    );

    let cases = [
        (Parts::with_content(&[]), CmsError::NoContent),
        (
            Parts::with_content(&tlv(0x80, &[])),
            CmsError::ContentLength(0),
        ),
        (
            Parts::with_content(&tlv(0x80, &[1; 15])),
            CmsError::ContentLength(15),
        ),
        (
            Parts::with_content(&indefinite(0xa0, &[])),
            CmsError::ContentLength(0),
        ),
        (
            Parts::with_content(&indefinite(0xa0, &tlv(0x04, &[1; 33]))),
            CmsError::ContentLength(33),
        ),
        (
            Parts::with_content(&indefinite(0xa0, &tlv(0x02, &[1]))),
            CmsError::Unexpected {
                field: "encryptedContent piece",
                tag: 0x02,
            },
        ),
        (
            Parts::with_content(&tlv(0x04, &[1; 16])),
            CmsError::Unexpected {
                field: "encryptedContent [0]",
                tag: 0x04,
            },
        ),
        (
            Parts::with_content(&cat(&[&tlv(0x80, &[1; 16]), &tlv(0xa1, &[])])),
            CmsError::Extra("EncryptedContentInfo"),
        ),
        (
            Parts::with_content(&cat(&[
                &indefinite(0xa0, &tlv(0x04, &[1; 16])),
                &tlv(0x80, &[1; 16]),
            ])),
            CmsError::Extra("EncryptedContentInfo"),
        ),
    ];
    for (parts, expected) in cases {
        assert_eq!(parts.parse_err(), expected);
    }

    let with_eci = |eci: Vec<u8>| Parts {
        eci,
        ..Parts::kms()
    };
    let content = tlv(0x80, &[1; 16]);
    assert_eq!(
        with_eci(eci(AES256_CBC, &[0; 8], &content)).parse_err(),
        CmsError::IvLength(8)
    );
    assert_eq!(
        with_eci(eci(AES256_CBC, &[0; 17], &content)).parse_err(),
        CmsError::IvLength(17)
    );
    let no_iv = tlv(
        0x30,
        &cat(&[&oid_tlv(DATA), &alg(AES256_CBC, None), &content]),
    );
    assert_eq!(
        with_eci(no_iv).parse_err(),
        CmsError::Missing("AES-256-CBC IV OCTET STRING")
    );
}

#[test]
fn ber_encoding_errors() {
    let cases: &[(&[u8], CmsError)] = &[
        (&[], CmsError::Missing("ContentInfo SEQUENCE")),
        (&[0x30], CmsError::Truncated),
        (&[0x30, 0x05, 0x06], CmsError::Truncated),
        (&[0x30, 0x82, 0x01], CmsError::Truncated),
        (&[0x30, 0x80], CmsError::Truncated),
        (&[0x30, 0x80, 0x00], CmsError::Truncated),
        (
            &[0x00, 0x00],
            CmsError::Encoding("end-of-contents outside an indefinite-length element"),
        ),
        (
            &[0x30, 0x80, 0x00, 0x01],
            CmsError::Encoding("end-of-contents with a non-zero length"),
        ),
        (
            &[0x3f, 0x01, 0x00],
            CmsError::Encoding("multi-byte tags are not supported"),
        ),
        (
            &[0x04, 0x80, 0x00, 0x00],
            CmsError::Encoding("indefinite length on a primitive element"),
        ),
        (
            &[0x30, 0x85, 0, 0, 0, 0, 0],
            CmsError::Encoding("length of more than four bytes"),
        ),
        (
            &[0x30, 0xff],
            CmsError::Encoding("reserved length byte 0xff"),
        ),
        (
            &[0x31, 0x00],
            CmsError::Unexpected {
                field: "ContentInfo SEQUENCE",
                tag: 0x31,
            },
        ),
        (&[0x30, 0x00], CmsError::Missing("ContentInfo contentType")),
        (&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], CmsError::Truncated),
    ];
    for (input, expected) in cases {
        assert_eq!(&parse(input).unwrap_err(), expected, "{input:02x?}");
    }
    // Non-minimal BER lengths are fine (BER allows them).
    let der = Parts::kms().encode();
    let mut long = vec![0x30, 0x84, 0, 0];
    long.extend_from_slice(&u16::try_from(der.len() - 4).unwrap().to_be_bytes());
    long.extend_from_slice(&der[4..]);
    assert_eq!(der[1], 0x82);
    assert!(parse(&long).is_ok());

    // A [0] with other content after the EnvelopedData, and ContentInfo with more fields.
    let ed = tlv(0x30, &[]);
    let two = tlv(
        0x30,
        &cat(&[&oid_tlv(ENVELOPED), &tlv(0xa0, &cat(&[&ed, &ed]))]),
    );
    assert_eq!(
        parse(&two).unwrap_err(),
        CmsError::Extra("ContentInfo content [0]")
    );
    let more = tlv(0x30, &cat(&[&oid_tlv(ENVELOPED), &tlv(0xa0, &ed), &ed]));
    assert_eq!(parse(&more).unwrap_err(), CmsError::Extra("ContentInfo"));
}

#[test]
fn size_and_depth_are_bounded() {
    let big = vec![0u8; MAX_CMS + 1];
    assert_eq!(parse(&big).unwrap_err(), CmsError::TooLarge(MAX_CMS + 1));

    // Indefinite SEQUENCEs nested 18 deep (depths 0..=17) are refused while scanning for their ends.
    let mut deep = Vec::new();
    for _ in 0..ber::MAX_DEPTH + 2 {
        deep.extend_from_slice(&[0x30, 0x80]);
    }
    for _ in 0..ber::MAX_DEPTH + 2 {
        deep.extend_from_slice(&[0, 0]);
    }
    assert_eq!(parse(&deep).unwrap_err(), CmsError::TooDeep);

    // Constructed OCTET STRINGs nested in the content, as deep as fits, then one more.
    let deep_content = |levels: usize| {
        let mut piece = tlv(0x04, &[1; 16]);
        for _ in 0..levels {
            piece = tlv(0x24, &piece);
        }
        Parts::with_content(&tlv(0xa0, &piece)).encode()
    };
    // ContentInfo 0, [0] 1, EnvelopedData 2, EncryptedContentInfo 3, [0] 4, pieces 5…16.
    assert!(parse(&deep_content(11)).is_ok());
    assert_eq!(parse(&deep_content(12)).unwrap_err(), CmsError::TooDeep);
}

#[test]
fn oids_in_dotted_form() {
    assert_eq!(
        Oid::new(RSA_ENCRYPTION).to_string(),
        "1.2.840.113549.1.1.1 (rsaEncryption)"
    );
    assert_eq!(Oid::new(AES128_CBC).as_str(), "2.16.840.1.101.3.4.1.2");
    assert_eq!(
        Oid::new(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37]).to_string(),
        "1.3.6.1.4.1.311"
    );
    assert_eq!(Oid::new(&[0x88, 0x37, 0x03]).to_string(), "2.999.3");
    assert_eq!(Oid::new(&[0x00]).to_string(), "0.0");
    assert_eq!(Oid::new(&[0x80, 0x01]).to_string(), "malformed OID 0x8001");
    assert_eq!(Oid::new(&[0x2a, 0x86]).to_string(), "malformed OID 0x2a86");
    assert_eq!(Oid::new(&[]).to_string(), "malformed OID 0x");
    let huge = [
        0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
    ];
    assert_eq!(
        Oid::new(&huge).to_string(),
        "malformed OID 0x8180808080808080808000"
    );
}

#[test]
fn every_message() {
    let oid = Oid::from_dotted;
    let cases = [
        (
            CmsError::TooLarge(70000),
            "CMS input of 70000 bytes is over the 65536-byte limit",
        ),
        (
            CmsError::Truncated,
            "CMS: an element runs past the end of its input",
        ),
        (
            CmsError::Encoding("multi-byte tags are not supported"),
            "CMS: invalid BER: multi-byte tags are not supported",
        ),
        (CmsError::TooDeep, "CMS: elements nested more than 16 deep"),
        (
            CmsError::Unexpected {
                field: "recipientInfos SET",
                tag: 0x30,
            },
            "CMS: expected recipientInfos SET, found tag 0x30",
        ),
        (
            CmsError::Missing("ContentInfo SEQUENCE"),
            "CMS: ContentInfo SEQUENCE is missing",
        ),
        (
            CmsError::Extra("EnvelopedData"),
            "CMS: unexpected element at the end of EnvelopedData",
        ),
        (
            CmsError::TrailingBytes(2),
            "CMS: 2 bytes after the ContentInfo",
        ),
        (
            CmsError::Malformed("EnvelopedData version"),
            "CMS: malformed EnvelopedData version",
        ),
        (
            CmsError::ContentType(oid("1.2.840.113549.1.7.2")),
            "CMS content type is 1.2.840.113549.1.7.2 (signedData), not envelopedData \
             (1.2.840.113549.1.7.3)",
        ),
        (
            CmsError::Version {
                of: "EnvelopedData",
                found: 3,
            },
            "CMS: unsupported EnvelopedData version 3",
        ),
        (
            CmsError::RecipientCount(2),
            "CMS: 2 recipients, where exactly one is supported",
        ),
        (
            CmsError::RecipientKind(0xa1),
            "CMS recipient is a KeyAgreeRecipientInfo (tag 0xa1), not a KeyTransRecipientInfo",
        ),
        (
            CmsError::RecipientKind(0x02),
            "CMS recipient is an unknown RecipientInfo (tag 0x02), not a KeyTransRecipientInfo",
        ),
        (
            CmsError::KeyEncryption(oid("1.2.840.113549.1.1.1")),
            "CMS key encryption algorithm is 1.2.840.113549.1.1.1 (rsaEncryption), not rsaesOaep \
             (1.2.840.113549.1.1.7)",
        ),
        (
            CmsError::OaepParameters("NULL instead of RSAES-OAEP-params"),
            "CMS RSAES-OAEP parameters: NULL instead of RSAES-OAEP-params",
        ),
        (
            CmsError::OaepHash {
                found: oid("1.3.14.3.2.26"),
                defaulted: true,
            },
            "CMS RSAES-OAEP hash is 1.3.14.3.2.26 (sha1), the default when hashFunc is absent, \
             not sha256 (2.16.840.1.101.3.4.2.1)",
        ),
        (
            CmsError::OaepHash {
                found: oid("2.16.840.1.101.3.4.2.2"),
                defaulted: false,
            },
            "CMS RSAES-OAEP hash is 2.16.840.1.101.3.4.2.2 (sha384), not sha256 \
             (2.16.840.1.101.3.4.2.1)",
        ),
        (
            CmsError::OaepMaskGen(oid("1.2.3")),
            "CMS RSAES-OAEP mask generation function is 1.2.3, not mgf1 (1.2.840.113549.1.1.8)",
        ),
        (
            CmsError::OaepMgfHash {
                found: oid("1.3.14.3.2.26"),
                defaulted: true,
            },
            "CMS RSAES-OAEP MGF1 hash is 1.3.14.3.2.26 (sha1), the default when maskGenFunc is \
             absent, not sha256 (2.16.840.1.101.3.4.2.1)",
        ),
        (
            CmsError::OaepMgfHash {
                found: oid("1.3.14.3.2.26"),
                defaulted: false,
            },
            "CMS RSAES-OAEP MGF1 hash is 1.3.14.3.2.26 (sha1), not sha256 (2.16.840.1.101.3.4.2.1)",
        ),
        (
            CmsError::OaepSource(oid("1.2.840.113549.1.1.8")),
            "CMS RSAES-OAEP label source is 1.2.840.113549.1.1.8 (mgf1), not pSpecified \
             (1.2.840.113549.1.1.9)",
        ),
        (
            CmsError::OaepLabel(2),
            "CMS RSAES-OAEP label is 2 bytes; only the empty label is supported",
        ),
        (
            CmsError::EncryptedContentType(oid("1.2.840.113549.1.7.6")),
            "CMS encrypted content type is 1.2.840.113549.1.7.6 (encryptedData), not data \
             (1.2.840.113549.1.7.1)",
        ),
        (
            CmsError::ContentEncryption(oid("2.16.840.1.101.3.4.1.2")),
            "CMS content encryption algorithm is 2.16.840.1.101.3.4.1.2 (aes128-CBC), not \
             aes256-CBC (2.16.840.1.101.3.4.1.42)",
        ),
        (
            CmsError::IvLength(8),
            "CMS AES-256-CBC IV is 8 bytes, not 16",
        ),
        (
            CmsError::NoContent,
            "CMS encrypted content is absent (detached content is not supported)",
        ),
        (
            CmsError::ContentLength(15),
            "CMS encrypted content is 15 bytes, not a non-zero multiple of 16",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
        assert!(!message.contains('\n'));
    }
}
