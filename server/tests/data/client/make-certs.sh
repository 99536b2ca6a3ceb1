#!/bin/sh
# Regenerates the TLS fixtures of the client's tests (server/tests/client.rs). Test-only keys and
# certificates: never trust them anywhere else. Run from this directory with OpenSSL 3
# (`sh make-certs.sh`); the committed files were made with OpenSSL 3.0 on Debian. Every run
# makes fresh keys, and the tests read the files, so nothing else needs updating.
#
#   ca.pem             a test CA (P-256), valid 2025-01-01 to 2125-12-31: the client's extra root
#   leaf.pem, leaf.key the server's certificate from that CA, valid 2025 to 2125, for the names
#                      localhost, kms.test and 127.0.0.1
#   expired.pem        the same key and names from the same CA, valid 2020-01-01 to 2021-01-01
#   future.pem         the same again, valid 2200-01-01 to 2201-01-01
#   untrusted.pem      the same key and names from another CA, valid 2025 to 2125: no root the
#                      client has issued it
#
# `openssl ca` is used because OpenSSL 3.0's `req`/`x509` cannot set a validity in the past.
set -eu

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/ca.cnf" <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = $work
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = leaf
unique_subject = no
[ any ]
commonName = supplied
[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:kms.test, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
touch "$work/index.txt"
echo 1000 > "$work/serial"

openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
openssl req -new -key "$work/ca.key" -subj "/CN=enclave-https client test CA" -out "$work/ca.csr"
openssl ca -batch -notext -config "$work/ca.cnf" -selfsign -keyfile "$work/ca.key" \
    -extensions root -startdate 20250101000000Z -enddate 21251231235959Z \
    -in "$work/ca.csr" -out ca.pem

openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out leaf.key
openssl req -new -key leaf.key -subj "/CN=localhost" -out "$work/leaf.csr"
sign() { # START END OUT
    openssl ca -batch -notext -config "$work/ca.cnf" -cert ca.pem -keyfile "$work/ca.key" \
        -startdate "$1" -enddate "$2" -in "$work/leaf.csr" -out "$3"
}
sign 20250101000000Z 21251231235959Z leaf.pem
sign 20200101000000Z 20210101000000Z expired.pem
sign 22000101000000Z 22010101000000Z future.pem

# Another CA, thrown away: the client has no root that issued untrusted.pem.
openssl ecparam -name prime256v1 -genkey -noout -out "$work/other.key"
openssl req -new -key "$work/other.key" -subj "/CN=some other CA" -out "$work/other.csr"
openssl ca -batch -notext -config "$work/ca.cnf" -selfsign -keyfile "$work/other.key" \
    -extensions root -startdate 20250101000000Z -enddate 21251231235959Z \
    -in "$work/other.csr" -out "$work/other.pem"
openssl ca -batch -notext -config "$work/ca.cnf" -cert "$work/other.pem" \
    -keyfile "$work/other.key" -startdate 20250101000000Z -enddate 21251231235959Z \
    -in "$work/leaf.csr" -out untrusted.pem
