//! The system calls nix offers no safe wrapper for: `fork`, `_exit`, the RNDADDENTROPY ioctl
//! and the interface-flags ioctls (SIOCGIFFLAGS, SIOCSIFFLAGS). All of init's `unsafe` is in
//! this file.
#![allow(unsafe_code)]

use nix::unistd::ForkResult;

/// `fork(2)`.
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: init is single-threaded (it starts no threads and links nothing that does), so
    // the child is a full copy with no lock held by another thread; the child only calls
    // async-signal-safe functions (sigprocmask, setsid, execve, write, _exit) on data
    // prepared before the fork.
    unsafe { nix::unistd::fork() }
}

/// The kernel's `struct rand_pool_info` with room for 256 bytes.
#[repr(C)]
struct RandPoolInfo {
    entropy_count: libc::c_int,
    buf_size: libc::c_int,
    buf: [u8; 256],
}

/// `_IOW('R', 0x03, int[2])` from <linux/random.h>.
const RNDADDENTROPY: libc::Ioctl = 0x4008_5203;

/// Mixes `data` (at most 256 bytes) into the kernel's pool and credits `bits` of entropy.
pub fn add_entropy(random: &std::fs::File, data: &[u8], bits: u32) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let mut info = RandPoolInfo {
        entropy_count: libc::c_int::try_from(bits).map_err(|_| nix::Error::EINVAL)?,
        buf_size: libc::c_int::try_from(data.len()).map_err(|_| nix::Error::EINVAL)?,
        buf: [0; 256],
    };
    info.buf
        .get_mut(..data.len())
        .ok_or(nix::Error::EINVAL)?
        .copy_from_slice(data);
    // SAFETY: `info` is a valid, initialized rand_pool_info whose buf_size never exceeds the
    // 256 bytes that follow it; the kernel only reads from the pointer during the call.
    let rc = unsafe {
        libc::ioctl(
            random.as_raw_fd(),
            RNDADDENTROPY,
            &info as *const RandPoolInfo,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}

/// `_exit(2)`: ends a forked child without running the parent's exit handlers.
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns; it is async-signal-safe, so it may
    // be called in the child of a fork.
    unsafe { libc::_exit(code) }
}

/// The part of the kernel's `struct ifreq` that SIOCGIFFLAGS and SIOCSIFFLAGS use: the
/// interface's name, then its flags, padded to the whole structure (the kernel copies all of
/// it in and out).
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    pad: [u8; 22],
}

const _: () = assert!(std::mem::size_of::<IfreqFlags>() == std::mem::size_of::<libc::ifreq>());

/// From <linux/sockios.h>.
const SIOCGIFFLAGS: libc::Ioctl = 0x8913;
const SIOCSIFFLAGS: libc::Ioctl = 0x8914;

/// Runs SIOCGIFFLAGS (`set` is None) or SIOCSIFFLAGS on the interface `name` through
/// `socket`; returns the flags the kernel holds (read) or was given (set).
pub fn interface_flags(
    socket: &std::os::fd::OwnedFd,
    name: &str,
    set: Option<libc::c_short>,
) -> nix::Result<libc::c_short> {
    use std::os::fd::AsRawFd;
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: set.unwrap_or(0),
        pad: [0; 22],
    };
    // The name must leave room for its NUL terminator.
    if name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
        return Err(nix::Error::EINVAL);
    }
    req.name
        .get_mut(..name.len())
        .ok_or(nix::Error::EINVAL)?
        .copy_from_slice(name.as_bytes());
    let request = if set.is_some() {
        SIOCSIFFLAGS
    } else {
        SIOCGIFFLAGS
    };
    // SAFETY: `req` is a valid, initialized buffer of the size of the kernel's struct ifreq,
    // its name NUL-terminated; the kernel reads and writes only within it, during the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), request, &mut req as *mut IfreqFlags) };
    if rc == 0 {
        Ok(req.flags)
    } else {
        Err(nix::Error::last())
    }
}
