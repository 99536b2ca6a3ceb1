//! `eif-builder image`'s readers on untrusted bytes: the ELF linking check, one container
//! image layer (applied, then written as the application ramdisk), a whole oci-archive or
//! `docker save` tarball, and the manifest. Each gives a value or an error, never a panic, and
//! stays within the size limit it is given.

#![no_main]

use eif_builder::image::{elf, manifest, oci};
use eif_builder::Archive;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let limits = oci::Limits {
        max_bytes: 4 << 20,
    };
    let _ = elf::linking(data);
    if let Ok(tree) = oci::layer_tree(data, limits) {
        let mut archive = Archive::new(0);
        if tree.add_to(&mut archive, b"rootfs").is_ok() {
            let _ = archive.to_bytes();
        }
    }
    let _ = oci::load_tarball(data, "fuzz.tar", None, limits);
    if let Ok(text) = std::str::from_utf8(data) {
        let defines = BTreeMap::from([("ENCLAVE_BIN".to_owned(), "/bin".to_owned())]);
        let _ = manifest::parse(text, Path::new("enclave.toml"), Path::new("/base"), &defines);
    }
});
