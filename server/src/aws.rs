//! Talking to AWS from inside the enclave, without an async runtime: what KMS and the
//! instance metadata service need. So far: [`sigv4`], request signing. The HTTPS client,
//! credentials and KMS `Decrypt`/`GenerateDataKey` with `Recipient` come next (issue #14).

pub mod sigv4;
