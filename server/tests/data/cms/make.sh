#!/bin/sh
# Makes the CMS EnvelopedData fixtures of server/src/aws/cms and server/src/aws/recipient
# with the real `openssl cms -encrypt` (OpenSSL 3.0), in the shape KMS's CiphertextForRecipient
# has: RSA-OAEP with SHA-256 and MGF1-SHA-256 for the content key, AES-256-CBC for the content.
#
#   recipient.key, recipient.pk8   THE TEST KEY (RSA-2048; PEM and PKCS#8 DER). A test key,
#   recipient.pem                  published here: never use it for anything else. Its
#                                  self-signed certificate has a subjectKeyIdentifier.
#   other.key, other.pem           a second test key, for "encrypted for someone else"
#   plain-N.bin                    N random bytes (1, 16, 32, 4096)
#   N-keyid.der, N-issuer.der      plain-N.bin for recipient.pem, DER, with a subjectKeyIdentifier
#                                  (version 2, what KMS sends) or issuerAndSerialNumber recipient
#   N-keyid.ber, N-issuer.ber      the same streamed (-stream): BER, indefinite lengths, the
#                                  content in OCTET STRING pieces
#   bad-*.der                      plain-32.bin encrypted in ways that must be refused
#
# Keys, certificates and plaintexts are made only when missing; the ciphertexts every run
# (they differ each time: random content keys, IVs and OAEP seeds). Check any of them with
# `openssl asn1parse -inform DER -i -in FILE`.
#
# kms-sdk-c-constructed.ber and kms-sdk-c-primitive.ber are not made here: they are the two
# answers recorded from KMS in AWS's enclave SDK (github.com/aws/aws-nitro-enclaves-sdk-c,
# commit e86d2cf4988a831e8d2144b1acb5f06f059b6089, tests/kmstool-enclaves/cms_test.c,
# `input_ber` and `input_ber_w_ctx`; Apache-2.0), written out as bytes. Their private key is
# not public, so the tests only parse them.
set -eu
cd "$(dirname "$0")"

case "$(openssl version)" in
OpenSSL\ 3.*) ;;
*) echo "make.sh: needs OpenSSL 3 (found: $(openssl version))" >&2; exit 1 ;;
esac

key() { # NAME CN: an RSA-2048 test key, its PKCS#8 DER and a self-signed certificate
    if [ ! -f "$1.key" ]; then
        openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key"
        openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 36500 -out "$1.pem"
    fi
    openssl pkcs8 -topk8 -nocrypt -in "$1.key" -outform DER -out "$1.pk8"
}
key recipient cms-test-recipient
key other cms-test-other
rm -f other.pk8

for n in 1 16 32 4096; do
    [ -f "plain-$n.bin" ] || openssl rand -out "plain-$n.bin" "$n"
done

OAEP_SHA256="-keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256"

# encrypt OUT IN [options...]: AES-256-CBC, binary input, DER output.
encrypt() {
    out=$1 in=$2
    shift 2
    openssl cms -encrypt -binary -in "$in" -outform DER -out "$out" "$@"
}

for n in 1 16 32 4096; do
    # shellcheck disable=SC2086 # OAEP_SHA256 is several words
    {
        encrypt "$n-keyid.der" "plain-$n.bin" -aes-256-cbc -recip recipient.pem $OAEP_SHA256 -keyid
        encrypt "$n-keyid.ber" "plain-$n.bin" -aes-256-cbc -stream -recip recipient.pem $OAEP_SHA256 -keyid
        encrypt "$n-issuer.der" "plain-$n.bin" -aes-256-cbc -recip recipient.pem $OAEP_SHA256
        encrypt "$n-issuer.ber" "plain-$n.bin" -aes-256-cbc -stream -recip recipient.pem $OAEP_SHA256
    }
done

p=plain-32.bin
# shellcheck disable=SC2086
{
    encrypt bad-other-recipient.der $p -aes-256-cbc -recip other.pem $OAEP_SHA256 -keyid
    encrypt bad-two-recipients.der $p -aes-256-cbc -recip recipient.pem $OAEP_SHA256 -keyid \
        -recip other.pem $OAEP_SHA256 -keyid
    encrypt bad-aes128.der $p -aes-128-cbc -recip recipient.pem $OAEP_SHA256 -keyid
    encrypt bad-label.der $p -aes-256-cbc -recip recipient.pem $OAEP_SHA256 \
        -keyopt rsa_oaep_label:0102 -keyid
    encrypt bad-mgf1-sha1.der $p -aes-256-cbc -recip recipient.pem \
        -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha1 -keyid
}
# PKCS#1 v1.5 (rsaEncryption), and OAEP with its defaults (SHA-1: empty parameters).
encrypt bad-pkcs1.der $p -aes-256-cbc -recip recipient.pem -keyid
encrypt bad-oaep-sha1.der $p -aes-256-cbc -recip recipient.pem -keyopt rsa_padding_mode:oaep -keyid

# Every good fixture decrypts with openssl itself to what was encrypted.
for f in [0-9]*-*.der [0-9]*-*.ber; do
    n=${f%%-*}
    openssl cms -decrypt -binary -inform DER -in "$f" -inkey recipient.key | cmp -s - "plain-$n.bin" ||
        { echo "make.sh: $f does not decrypt to plain-$n.bin" >&2; exit 1; }
done
echo "make.sh: fixtures written to $(pwd)"
