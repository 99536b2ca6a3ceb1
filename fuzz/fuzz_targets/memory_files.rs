//! The files the server reads at start to learn its memory: each parser must return a value or
//! an error for any text, never panic, and a directory it derives must stay under its mount.

#![no_main]

use libfuzzer_sys::fuzz_target;
use server::memory::{cgroup_dir, parse_cgroup, parse_limit, parse_meminfo, parse_mountinfo};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_meminfo(text);
    let _ = parse_limit(text);
    let cgroups = parse_cgroup(text);
    if let Ok(mounts) = parse_mountinfo(text) {
        for m in &mounts {
            let paths = match &cgroups {
                Ok((a, b)) => [a.clone(), b.clone()],
                Err(_) => [None, None],
            };
            for p in paths.iter().flatten() {
                if let Some(dir) = cgroup_dir(m, p) {
                    assert!(
                        dir.starts_with(&m.mount_point),
                        "{dir:?} left {}",
                        m.mount_point
                    );
                }
            }
        }
    }
});
