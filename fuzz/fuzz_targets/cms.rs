//! KMS's `CiphertextForRecipient` from untrusted bytes: `server::aws::cms::parse`, the BER
//! reader under it (indefinite lengths, constructed strings, nesting) and the EnvelopedData
//! checks. Besides "no panic": what parses has a 16-byte IV and a non-empty encrypted content
//! of whole AES blocks, no longer than the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use server::aws::cms;

fuzz_target!(|data: &[u8]| {
    match cms::parse(data) {
        Ok(env) => {
            let n = env.encrypted_content.len();
            assert!(
                n > 0 && n % 16 == 0 && n <= data.len(),
                "content of {n} bytes"
            );
            assert!(env.encrypted_key.len() <= data.len());
            assert!(env.version == 0 || env.version == 2);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "{message:?}"
            );
        }
    }
});
