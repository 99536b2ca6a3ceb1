//! The metadata section: JSON identity and build information, keyed exactly as AWS's `EifIdentityInfo`.
//!
//! The section is not measured, but it is part of the file (and its CRC), so it must be
//! deterministic for an image to be reproducible byte for byte. nitro-cli records the build
//! host's wall-clock time and `docker inspect` output; we record a caller-fixed time, `{}` for
//! Docker, and nothing about the host.

use serde::{Deserialize, Serialize};

use crate::blob::Blob;
use crate::error::Result;

/// The `BuildMetadata` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// RFC 3339 build time, formatted as chrono's `to_rfc3339()`.
    #[serde(rename = "BuildTime")]
    pub build_time: String,
    /// The tool that built the image.
    #[serde(rename = "BuildTool")]
    pub build_tool: String,
    /// Its version.
    #[serde(rename = "BuildToolVersion")]
    pub build_tool_version: String,
    /// Operating system of the image (nitro-cli writes "Linux").
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    /// Kernel release, e.g. `6.12.117`.
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
}

/// The whole metadata section, field for field (and in the same order) as AWS's
/// `EifIdentityInfo`, so that `serde_json::to_vec` gives the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Image name.
    #[serde(rename = "ImageName")]
    pub image_name: String,
    /// Image version.
    #[serde(rename = "ImageVersion")]
    pub image_version: String,
    /// Build information.
    #[serde(rename = "BuildMetadata")]
    pub build: BuildInfo,
    /// nitro-cli stores `docker inspect` output here; we store `{}`.
    #[serde(rename = "DockerInfo")]
    pub docker_info: serde_json::Value,
    /// User-supplied JSON; `null` when there is none (as nitro-cli without `--metadata`).
    #[serde(rename = "CustomMetadata")]
    pub custom_metadata: serde_json::Value,
}

/// What we write as `BuildTool`.
pub const BUILD_TOOL: &str = "eif-builder";
/// What we write as `BuildToolVersion`.
pub const BUILD_TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

impl Identity {
    /// Our defaults: this tool and version, `Linux`, kernel version `unknown`, `DockerInfo {}`,
    /// `CustomMetadata null`. `build_time` should come from [`crate::time`].
    pub fn new(
        image_name: impl Into<String>,
        image_version: impl Into<String>,
        build_time: impl Into<String>,
    ) -> Self {
        Identity {
            image_name: image_name.into(),
            image_version: image_version.into(),
            build: BuildInfo {
                build_time: build_time.into(),
                build_tool: BUILD_TOOL.to_string(),
                build_tool_version: BUILD_TOOL_VERSION.to_string(),
                operating_system: "Linux".to_string(),
                kernel_version: "unknown".to_string(),
            },
            docker_info: serde_json::Value::Object(serde_json::Map::new()),
            custom_metadata: serde_json::Value::Null,
        }
    }

    /// The stored bytes: compact JSON, keys in declaration order.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| crate::Error::invalid("EIF metadata", e.to_string()))
    }
}

/// Offset of the x86 boot protocol's `kernel_version` pointer (u16, little-endian).
const KERNEL_VERSION_PTR: usize = 0x20E;
/// Offset of the setup header signature `HdrS`.
const SETUP_MAGIC_OFFSET: usize = 0x202;
/// The pointer is relative to this offset.
const KERNEL_VERSION_BASE: usize = 0x200;
/// Longest release string we take.
const MAX_RELEASE_LEN: usize = 64;
/// Bytes of a bzImage to read to find the version string.
pub(crate) const KERNEL_PREFIX_LEN: usize = KERNEL_VERSION_BASE + 0x1_0000 + 256;

/// The kernel release (`6.12.117`) from an x86 bzImage's setup header, if it has one.
///
/// The boot protocol stores, at 0x20E, a 16-bit pointer to a NUL-terminated string
/// `"<release> (<user>@<host>) #1 ..."` located at that value + 0x200. Only the first word is
/// kept, and only if it is printable ASCII; anything unexpected gives `None`.
pub fn kernel_version_from_bzimage(image: &[u8]) -> Option<String> {
    if image.get(SETUP_MAGIC_OFFSET..SETUP_MAGIC_OFFSET + 4)? != b"HdrS" {
        return None;
    }
    let ptr = image.get(KERNEL_VERSION_PTR..KERNEL_VERSION_PTR + 2)?;
    let ptr = usize::from(u16::from_le_bytes([*ptr.first()?, *ptr.get(1)?]));
    if ptr == 0 {
        return None;
    }
    let start = ptr.checked_add(KERNEL_VERSION_BASE)?;
    let window = image.get(start..)?;
    let window = window.get(..window.len().min(256))?;
    let text = window.split(|&b| b == 0).next()?;
    let release: Vec<u8> = text
        .iter()
        .copied()
        .take_while(|b| !b.is_ascii_whitespace())
        .collect();
    if release.is_empty()
        || release.len() > MAX_RELEASE_LEN
        || !release.iter().all(|b| b.is_ascii_graphic())
    {
        return None;
    }
    String::from_utf8(release).ok()
}

/// [`kernel_version_from_bzimage`] on the start of `kernel`, or `"unknown"`.
pub fn kernel_version_of(kernel: &Blob) -> Result<String> {
    let prefix = kernel.read_prefix(KERNEL_PREFIX_LEN)?;
    Ok(kernel_version_from_bzimage(&prefix).unwrap_or_else(|| "unknown".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fake_bzimage(release: &str) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20E..0x210].copy_from_slice(&0x0300u16.to_le_bytes());
        let text = format!("{release} (builder@host) #1 SMP");
        image[0x500..0x500 + text.len()].copy_from_slice(text.as_bytes());
        image
    }

    #[test]
    fn json_keys_in_aws_order() {
        let id = Identity::new("app", "1.0", "1970-01-01T00:00:00+00:00");
        let text = String::from_utf8(id.to_bytes().unwrap()).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"ImageName\":\"app\",\"ImageVersion\":\"1.0\",\"BuildMetadata\":{{\"BuildTime\":\"1970-01-01T00:00:00+00:00\",\"BuildTool\":\"eif-builder\",\"BuildToolVersion\":\"{BUILD_TOOL_VERSION}\",\"OperatingSystem\":\"Linux\",\"KernelVersion\":\"unknown\"}},\"DockerInfo\":{{}},\"CustomMetadata\":null}}"
            )
        );
    }

    #[test]
    fn kernel_version_found_and_bounded() {
        assert_eq!(
            kernel_version_from_bzimage(&fake_bzimage("6.12.117")).as_deref(),
            Some("6.12.117")
        );
        // No setup header, truncated images, pointer past the end, odd bytes: None.
        assert_eq!(kernel_version_from_bzimage(b"not a kernel"), None);
        let image = fake_bzimage("6.1");
        for cut in [0, 0x203, 0x20F, 0x500] {
            assert_eq!(kernel_version_from_bzimage(&image[..cut]), None);
        }
        let mut far = image.clone();
        far[0x20E..0x210].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert_eq!(kernel_version_from_bzimage(&far), None);
        let mut weird = image;
        weird[0x500] = 0x80;
        assert_eq!(kernel_version_from_bzimage(&weird), None);
    }
}
