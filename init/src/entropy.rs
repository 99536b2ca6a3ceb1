//! Seeding the kernel's entropy pool from the Nitro Secure Module before anything that needs
//! randomness runs: random bytes from the NSM's GetRandom, mixed in and credited with the
//! RNDADDENTROPY ioctl, and a check that the kernel's hardware RNG is the NSM's
//! (`nsm-hwrng`), so the pool keeps being fed by it. No NSM means no trustworthy randomness
//! for the TLS keys: init fails closed, never falls back silently.

use crate::error::{Error, Result};
use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use std::os::fd::AsRawFd;

/// How many random bytes to credit: 2048 bits, eight times what the kernel needs to
/// consider its CRNG seeded.
pub const SEED_BYTES: usize = 256;

/// Where the kernel says which hardware RNG feeds it.
pub const RNG_CURRENT: &str = "/sys/class/misc/hw_random/rng_current";

/// The NSM's name for its hardware RNG.
pub const NSM_HWRNG: &str = "nsm-hwrng";

/// The source of random bytes (the NSM; a fake in tests).
pub trait Nsm {
    /// Up to a few hundred random bytes.
    fn get_random(&mut self) -> Result<Vec<u8>>;
}

/// The NSM device.
#[derive(Debug)]
pub struct Device(std::fs::File);

impl Device {
    /// Opens `/dev/nsm`, explaining what its absence means.
    pub fn open() -> Result<Device> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/nsm")
            .map(Device)
            .map_err(Error::NoNsm)
    }
}

impl Nsm for Device {
    fn get_random(&mut self) -> Result<Vec<u8>> {
        match aws_nitro_enclaves_nsm_api::driver::nsm_process_request(
            self.0.as_raw_fd(),
            Request::GetRandom,
        ) {
            Response::GetRandom { random } => Ok(random),
            Response::Error(code) => Err(Error::Nsm(format!("GetRandom failed: {code:?}"))),
            _ => Err(Error::Nsm("GetRandom: unexpected response".into())),
        }
    }
}

/// Collects at least [`SEED_BYTES`] from the NSM (a few requests at most).
pub fn gather(nsm: &mut dyn Nsm) -> Result<Vec<u8>> {
    let mut seed = Vec::with_capacity(SEED_BYTES);
    for _ in 0..8 {
        let chunk = nsm.get_random()?;
        if chunk.is_empty() {
            return Err(Error::Nsm("GetRandom returned no bytes".into()));
        }
        seed.extend_from_slice(&chunk);
        if seed.len() >= SEED_BYTES {
            seed.truncate(SEED_BYTES);
            return Ok(seed);
        }
    }
    Err(Error::Nsm(format!(
        "GetRandom gave only {} bytes in 8 requests",
        seed.len()
    )))
}

/// Whether `rng_current`'s content names the NSM's RNG.
pub fn is_nsm_hwrng(rng_current: &str) -> bool {
    rng_current.trim() == NSM_HWRNG
}

/// Seeds the pool and checks the hardware RNG; returns a line for the log.
pub fn seed(nsm: &mut dyn Nsm) -> Result<String> {
    let bytes = gather(nsm)?;
    let random = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/random")
        .map_err(crate::error::io("opening", "/dev/random"))?;
    let bits = u32::try_from(bytes.len() * 8).unwrap_or(u32::MAX);
    crate::sys::add_entropy(&random, &bytes, bits)
        .map_err(crate::error::sys("crediting entropy (RNDADDENTROPY)"))?;
    let current = std::fs::read_to_string(RNG_CURRENT).map_err(|e| Error::HwRng {
        found: format!(
            "cannot be read at {RNG_CURRENT} ({e}): the kernel has none (CONFIG_HW_RANDOM)"
        ),
    })?;
    if !is_nsm_hwrng(&current) {
        return Err(Error::HwRng {
            found: format!("is {:?}, not {NSM_HWRNG}", current.trim()),
        });
    }
    let avail = std::fs::read_to_string("/proc/sys/kernel/random/entropy_avail")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    Ok(format!(
        "entropy: credited {bits} bits ({} bytes from NSM GetRandom); hw rng {NSM_HWRNG}; entropy_avail {avail}",
        bytes.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<Vec<u8>>);
    impl Nsm for Fake {
        fn get_random(&mut self) -> Result<Vec<u8>> {
            self.0.pop().ok_or_else(|| Error::Nsm("gone".into()))
        }
    }

    #[test]
    fn gathers_enough_bytes_over_several_requests() {
        let mut nsm = Fake(vec![vec![1; 200], vec![2; 100]]);
        let seed = gather(&mut nsm).unwrap();
        assert_eq!(seed.len(), SEED_BYTES);
        assert_eq!((seed[0], seed[255]), (2, 1));
    }

    #[test]
    fn refuses_empty_and_short_answers() {
        assert!(gather(&mut Fake(vec![vec![]])).is_err());
        assert!(gather(&mut Fake(vec![vec![1; 10]; 8])).is_err());
        assert!(gather(&mut Fake(vec![])).is_err());
    }

    #[test]
    fn only_the_nsm_rng_passes() {
        assert!(is_nsm_hwrng("nsm-hwrng\n"));
        assert!(!is_nsm_hwrng("none\n"));
        assert!(!is_nsm_hwrng("virtio_rng.0\n"));
    }
}
