//! Helpers shared by the integration tests: synthetic inputs, the AWS oracle, an independent PCR computation.

#![allow(
    dead_code,
    reason = "each test crate uses a different subset of these helpers"
)]

pub mod emulated;

use std::path::{Path, PathBuf};

use aws_nitro_enclaves_image_format::defs::{EifBuildInfo, EifIdentityInfo};
use eif_builder::{Archive, Blob, Identity};
use sha2::{Digest, Sha384};

/// The test data directory.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

/// A deterministic pseudo-random byte stream (xorshift), for synthetic kernels and files.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// A fake bzImage: noise with an x86 setup header whose kernel_version string says `release`.
pub fn fake_kernel(len: usize, release: &str) -> Vec<u8> {
    let mut image = noise(1, len.max(0x800));
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x20E..0x210].copy_from_slice(&0x0400u16.to_le_bytes());
    let text = format!("{release} (eif-builder@tests) #1 SMP\0");
    image[0x600..0x600 + text.len()].copy_from_slice(text.as_bytes());
    image
}

/// A small ramdisk made by our cpio writer; `n` varies its contents.
pub fn ramdisk(n: u8) -> Vec<u8> {
    let mut a = Archive::new(0);
    match n {
        0 => {
            a.add_file("/init", 0o755, Blob::from(noise(10, 3000)))
                .unwrap();
            a.add_char_device("/dev/console", 0o600, 5, 1).unwrap();
        }
        _ => {
            a.add_file(
                "/cmd",
                0o644,
                Blob::from(format!("/bin/app{n}\n").into_bytes()),
            )
            .unwrap();
            a.add_file("/env", 0o644, Blob::from(b"PATH=/bin\n".to_vec()))
                .unwrap();
            a.add_file(
                "/rootfs/bin/app",
                0o755,
                Blob::from(noise(u64::from(n) + 20, 5000)),
            )
            .unwrap();
            for d in ["dev", "proc", "sys", "run", "tmp"] {
                a.add_dir(format!("/rootfs/{d}"), 0o755).unwrap();
            }
            a.add_symlink("/rootfs/bin/sh", 0o777, "app").unwrap();
        }
    }
    a.to_bytes().unwrap()
}

pub const CMDLINE: &str = "reboot=k panic=30 pci=off nomodules console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on";
pub const BUILD_TIME: &str = "2024-05-01T12:00:00+00:00";

/// Our identity for the tests.
pub fn identity() -> Identity {
    let mut id = Identity::new("test-image", "1.2.3", BUILD_TIME);
    id.build.kernel_version = "6.12.117".to_string();
    id
}

/// The same identity in the oracle's types.
pub fn oracle_identity(id: &Identity) -> EifIdentityInfo {
    EifIdentityInfo {
        img_name: id.image_name.clone(),
        img_version: id.image_version.clone(),
        build_info: EifBuildInfo {
            build_time: id.build.build_time.clone(),
            build_tool: id.build.build_tool.clone(),
            build_tool_version: id.build.build_tool_version.clone(),
            img_os: id.build.operating_system.clone(),
            img_kernel: id.build.kernel_version.clone(),
        },
        docker_info: id.docker_info.clone(),
        custom_info: id.custom_metadata.clone(),
    }
}

/// Input files for one image, written into `dir`.
pub struct Inputs {
    pub kernel: PathBuf,
    pub ramdisks: Vec<PathBuf>,
}

pub fn write_inputs(dir: &Path, kernel: &[u8], ramdisks: &[Vec<u8>]) -> Inputs {
    let kernel_path = dir.join("bzImage");
    std::fs::write(&kernel_path, kernel).unwrap();
    let ramdisks = ramdisks
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let p = dir.join(format!("ramdisk{i}.cpio"));
            std::fs::write(&p, r).unwrap();
            p
        })
        .collect();
    Inputs {
        kernel: kernel_path,
        ramdisks,
    }
}

/// SHA-384(48 zero bytes ‖ SHA-384(bytes)), with sha2 rather than aws-lc-rs.
pub fn independent_pcr(parts: &[&[u8]]) -> String {
    let mut inner = Sha384::new();
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha384::new();
    outer.update([0u8; 48]);
    outer.update(inner.finalize());
    hex(&outer.finalize())
}

pub use contract::hex::encode as hex;

/// Sections of an EIF as (type, data), found by walking the header's offset table by hand.
pub fn sections_by_hand(eif: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let be64 = |at: usize| u64::from_be_bytes(eif[at..at + 8].try_into().unwrap());
    let count = usize::from(u16::from_be_bytes([eif[26], eif[27]]));
    (0..count)
        .map(|i| {
            let offset = usize::try_from(be64(28 + 8 * i)).unwrap();
            let size = usize::try_from(be64(284 + 8 * i)).unwrap();
            let kind = u16::from_be_bytes([eif[offset], eif[offset + 1]]);
            (kind, eif[offset + 12..offset + 12 + size].to_vec())
        })
        .collect()
}

/// PCR0/1/2 of an EIF computed from its section bytes with sha2 alone.
pub fn independent_pcrs(eif: &[u8]) -> (String, String, String) {
    let sections = sections_by_hand(eif);
    let boot: Vec<&[u8]> = sections
        .iter()
        .filter(|(k, _)| *k == 1 || *k == 2)
        .map(|(_, d)| d.as_slice())
        .collect();
    let ramdisks: Vec<&[u8]> = sections
        .iter()
        .filter(|(k, _)| *k == 3)
        .map(|(_, d)| d.as_slice())
        .collect();
    let mut all = boot.clone();
    all.extend(&ramdisks);
    let mut first = boot;
    first.push(ramdisks[0]);
    (
        independent_pcr(&all),
        independent_pcr(&first),
        independent_pcr(&ramdisks[1..]),
    )
}
