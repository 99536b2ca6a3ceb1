#!/bin/sh
# Regenerates the signing fixtures in this directory. They are test-only keys: never use them to
# sign a real image. Run from this directory with OpenSSL 3 (`sh make-signing-keys.sh`); the
# committed files were made with OpenSSL 3.0 on Debian bookworm. The output differs every run
# (fresh keys), so re-running means the PCR8 values in the tests' expectations are recomputed,
# not hard-coded: no golden file depends on these keys.
set -eu

days=$(( ( $(date -d 2125-12-31 +%s) - $(date +%s) ) / 86400 ))

# P-384: the only curve Nitro's PCR8 signing uses. SEC1 ("EC PRIVATE KEY") and PKCS#8 forms of
# the same key, and a self-signed certificate valid until the end of 2125 (the oracle crate
# refuses expired certificates).
openssl ecparam -name secp384r1 -genkey -noout -out p384-key.sec1.pem
openssl pkcs8 -topk8 -nocrypt -in p384-key.sec1.pem -out p384-key.pkcs8.pem
openssl req -x509 -new -key p384-key.sec1.pem -sha384 -days "$days" \
    -subj "/CN=eif-builder test signing key (P-384)" -out p384-cert.pem

# A second P-384 key: paired with the certificate above it must be refused (key mismatch).
openssl ecparam -name secp384r1 -genkey -noout -out p384-other-key.sec1.pem

# P-256 key and certificate: must be refused (wrong curve).
openssl ecparam -name prime256v1 -genkey -noout -out p256-key.sec1.pem
openssl req -x509 -new -key p256-key.sec1.pem -sha256 -days "$days" \
    -subj "/CN=eif-builder test signing key (P-256)" -out p256-cert.pem
