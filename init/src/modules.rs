//! Kernel modules shipped in the bootstrap ramdisk (`/*.ko`, such as AWS's `nsm.ko` for AWS's
//! kernel), loaded with finit_module and the `<module>.<param>=<value>` options found on the
//! kernel command line, as modprobe would pass them. Our own kernel has everything built in
//! and ships none.

use crate::error::{Error, Result};
use nix::kmod::{finit_module, ModuleInitFlags};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Module names compare with `-` and `_` as the same character, as the kernel does.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The parameters for `module` found in the kernel command line, space-separated.
pub fn params_for(module: &str, cmdline: &str) -> String {
    let want = normalize(module);
    cmdline
        .split_ascii_whitespace()
        .filter_map(|tok| {
            let (name, rest) = tok.split_once('.')?;
            (normalize(name) == want && rest.contains('=')).then_some(rest)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `.ko` files in `dir`, sorted so the load order does not depend on the file system.
pub fn find(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ko") && p.is_file())
        .collect();
    found.sort();
    found
}

/// Loads one module. Already loaded (or built in) is fine.
pub fn load(path: &Path, cmdline: &str) -> Result<String> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let params = params_for(&name, cmdline);
    let file = std::fs::File::open(path).map_err(crate::error::io("opening", path))?;
    let c_params = CString::new(params.clone()).map_err(|_| Error::Malformed {
        path: "/proc/cmdline".into(),
        reason: "contains a NUL byte".into(),
    })?;
    match finit_module(&file, &c_params, ModuleInitFlags::empty()) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(params),
        Err(source) => Err(Error::Module {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_this_modules_parameters_only() {
        let cmdline = "console=ttyS0 nsm.debug=1 nsm_x.y=2 nsm.flag other.a=b nsm.b=c=d";
        assert_eq!(params_for("nsm", cmdline), "debug=1 b=c=d");
        assert_eq!(params_for("other", cmdline), "a=b");
        assert_eq!(params_for("absent", cmdline), "");
        assert_eq!(params_for("nsm-x", cmdline), "y=2");
    }
}
