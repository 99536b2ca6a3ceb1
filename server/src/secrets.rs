//! Secrets given to the process in its environment (the usual way for a container or an
//! enclave image to pass configuration), taken so that no copy stays behind.

use zeroize::Zeroizing;

/// Takes the value of the environment variable `name`: returns it (wiped from memory when
/// dropped), overwrites the original bytes with zeros (so `/proc/self/environ` no longer shows
/// it) and removes the variable (so child processes do not inherit it). Call it at start,
/// before any other thread exists.
pub fn take_env(name: &str) -> Option<Zeroizing<String>> {
    let value = Zeroizing::new(std::env::var(name).ok()?);
    crate::sys::wipe_env(name);
    std::env::remove_var(name);
    Some(value)
}

// Tested end to end (tests/server.rs): the server's /proc/PID/environ no longer shows the key.
