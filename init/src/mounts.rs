//! The file systems init mounts, as data. The first three are mounted in the initial ramdisk
//! (init needs /dev/console, /dev/nsm, /proc/cmdline and /sys before it switches root) and
//! moved into the application's root; the rest are mounted inside it afterwards.

use crate::error::{Error, Result};
use nix::mount::{mount, MsFlags};
use std::path::Path;

/// One mount.
#[derive(Debug, Clone, Copy)]
pub struct Mount {
    /// File system type (and source name).
    pub fstype: &'static str,
    /// Mount point.
    pub target: &'static str,
    /// Flags.
    pub flags: MsFlags,
    /// File-system specific options.
    pub data: &'static str,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Mounted first, in the initial ramdisk, then moved under the new root.
pub const EARLY: &[Mount] = &[
    Mount {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
    },
    Mount {
        fstype: "proc",
        target: "/proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    Mount {
        fstype: "sysfs",
        target: "/sys",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
];

/// Mounted inside the application's root once it is `/`.
pub const LATE: &[Mount] = &[
    Mount {
        fstype: "devpts",
        target: "/dev/pts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "mode=0620,ptmxmode=0666",
    },
    Mount {
        fstype: "tmpfs",
        target: "/dev/shm",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
    Mount {
        fstype: "tmpfs",
        target: "/tmp",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
    Mount {
        fstype: "tmpfs",
        target: "/run",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=0755",
    },
];

/// Mounts `m` under `root`, creating the mount point if needed. devtmpfs may already be
/// mounted by the kernel (CONFIG_DEVTMPFS_MOUNT): EBUSY there is fine.
pub fn apply(m: &Mount, root: &Path) -> Result {
    let target = root.join(m.target.trim_start_matches('/'));
    if !target.is_dir() {
        std::fs::create_dir_all(&target)
            .map_err(crate::error::io("creating the mount point", target.clone()))?;
    }
    let data = (!m.data.is_empty()).then_some(m.data);
    match mount(Some(m.fstype), &target, Some(m.fstype), m.flags, data) {
        Ok(()) => Ok(()),
        Err(nix::Error::EBUSY) if m.fstype == "devtmpfs" => Ok(()),
        Err(source) => Err(Error::Mount {
            what: m.fstype,
            target,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_what_the_application_expects() {
        let targets: Vec<_> = EARLY.iter().chain(LATE).map(|m| m.target).collect();
        assert_eq!(
            targets,
            ["/dev", "/proc", "/sys", "/dev/pts", "/dev/shm", "/tmp", "/run"]
        );
        // Nothing init mounts lets a file there become setuid.
        assert!(EARLY
            .iter()
            .chain(LATE)
            .all(|m| m.flags.contains(MsFlags::MS_NOSUID)));
        // proc and sysfs hold no programs.
        assert!(EARLY[1..]
            .iter()
            .all(|m| m.flags.contains(MsFlags::MS_NOEXEC)));
    }
}
