//! Switching root into the application's file system (`/rootfs` of the application ramdisk),
//! as AWS's init does: make it a mount point, move the early mounts into it, move it onto `/`
//! and chroot there.

use crate::error::{sys, Error, Result};
use crate::mounts;
use nix::mount::{mount, MsFlags};
use nix::unistd::{chdir, chroot};
use std::path::Path;

/// Switches root into `new_root`.
pub fn switch(new_root: &Path) -> Result {
    if !new_root.is_dir() {
        return Err(Error::Malformed {
            path: new_root.to_owned(),
            reason: "missing: the application ramdisk must hold the root file system there".into(),
        });
    }
    mount(
        Some(new_root),
        new_root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!(
        "bind-mounting {} on itself",
        new_root.display()
    )))?;
    for m in mounts::EARLY {
        let target = new_root.join(m.target.trim_start_matches('/'));
        std::fs::create_dir_all(&target)
            .map_err(crate::error::io("creating the mount point", target.clone()))?;
        mount(
            Some(m.target),
            &target,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(sys(format!("moving {} to {}", m.target, target.display())))?;
    }
    chdir(new_root).map_err(sys(format!("chdir {}", new_root.display())))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(sys(format!("moving {} onto /", new_root.display())))?;
    chroot(".").map_err(sys("chroot"))?;
    chdir("/").map_err(sys("chdir /"))
}
