//! The contracts between the crates of enclave-https: every format or rule that more than one
//! crate reads or writes lives here once, so the two sides cannot drift apart.
//!
//! | module | the contract | who writes it | who reads it |
//! | --- | --- | --- | --- |
//! | [`binding`] | how an attestation document is bound to a TLS certificate (`public_key`, `user_data`) | server | eif-builder (`attest`, `verify`) |
//! | [`cert_attestation`] | the attestation document in the server's certificate (extension OID, `user_data`) | server | eif-builder (`attest --from-certificate`, `proxy`) |
//! | [`egress`] | where the enclave reaches each outside service of `egress` (`/etc/enclave-https/egress`) | eif-builder (`image`) | server (`client`) |
//! | [`processes`] | the processes an image runs besides `/cmd` (`/etc/enclave-https/processes`) | eif-builder (`image`) | init, server (`--processes`) |
//! | [`measurements`] | the measurements file (`{"Measurements": {"PCR0": …}}`), read strictly | eif-builder (`build`), xtask | eif-builder (`verify`, `attest`), xtask |
//! | [`proxy_v2`] | the PROXY protocol v2 header: the client's address ahead of its bytes | host-relay (`proxy-v2`) | server (`--proxy-protocol`) |
//! | [`vsock_uds`] | the hybrid-vsock `CONNECT port` / `OK port` handshake | vhost-device-vsock, Firecracker | host-relay, xtask |
//! | [`duration`] | durations on command lines: `500ms`, `10s`, `2m`, `1h` | users | server, host-relay |
//! | [`hex`], [`base64`] | the two text encodings of bytes | everyone | everyone |
//! | [`date`] | civil dates from Unix time and back; the HTTP date | — | server, eif-builder |
//! | [`der`] | a bounds-checked DER reader and writer; the certificate's key, validity and extensions | — | server, eif-builder |
//! | [`json`] | a small strict JSON reader (duplicate keys are errors) | — | [`measurements`] |
//!
//! No dependencies and no `unsafe`: host-relay links this crate, and the relay must never link
//! TLS or crypto code, so where a contract needs a hash (the binding's SHA-256) the caller
//! passes the function in. Every parser returns a typed error naming the bad input and never
//! panics; each has a fuzz target (`contract/fuzz`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod base64;
pub mod binding;
pub mod cert_attestation;
pub mod date;
pub mod der;
pub mod duration;
pub mod egress;
pub mod hex;
pub mod json;
pub mod measurements;
pub mod processes;
pub mod proxy_v2;
pub mod vsock_uds;
