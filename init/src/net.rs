//! The loopback interface: brought up before any process starts, so 127.0.0.0/8 works inside
//! the enclave (applications listen on 127.0.0.1, the egress forwarder on 127.0.0.2, …). The
//! kernel creates `lo` down, with 127.0.0.1/8 ready to be used once it is up.

use crate::error::{Error, Result};
use crate::sys::interface_flags;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// The loopback interface.
pub const LOOPBACK: &str = "lo";

/// IFF_UP from <net/if.h>, in the width of `ifr_flags`.
const IFF_UP: libc::c_short = 0x1;

/// Brings the interface `name` up (a no-op when it already is).
pub fn up(name: &'static str) -> Result {
    let fail = |op: &'static str| move |source| Error::Interface { name, op, source };
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(fail("socket(AF_INET, SOCK_DGRAM)"))?;
    let flags = interface_flags(&sock, name, None).map_err(fail("SIOCGIFFLAGS"))?;
    if flags & IFF_UP == 0 {
        interface_flags(&sock, name, Some(flags | IFF_UP)).map_err(fail("SIOCSIFFLAGS"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_is_named_with_the_errno() {
        let e = up("initnoif0").unwrap_err().to_string();
        assert_eq!(
            e,
            "bringing up the network interface initnoif0: SIOCGIFFLAGS: No such device"
        );
        // Longer than IFNAMSIZ allows: refused before the kernel sees it.
        let e = up("an-interface-name-too-long").unwrap_err().to_string();
        assert!(e.ends_with("SIOCGIFFLAGS: Invalid argument"), "{e}");
    }
}
