//! The EIF header (548 bytes) and section header (12 bytes): layout, encoding and raw decoding.
//!
//! All fields are big-endian:
//!
//! ```text
//! offset size field
//!      0    4 magic ".eif"
//!      4    2 version (4)
//!      6    2 flags (bit 0: aarch64; 0 on x86_64)
//!      8    8 default memory (AWS writes 1 GiB; unused at launch)
//!     16    8 default CPUs (AWS writes 2; unused at launch)
//!     24    2 reserved
//!     26    2 number of sections (1..=32)
//!     28  256 32 section offsets (each points at a section header)
//!    284  256 32 section sizes (data only, without the 12-byte section header)
//!    540    4 unused
//!    544    4 CRC-32 of everything else in the file, in file order
//! ```
//!
//! A section header is `type u16, flags u16, size u64`.

use crate::error::{Error, Result};

/// `.eif` in ASCII.
pub const MAGIC: [u8; 4] = *b".eif";
/// The only EIF version this crate writes and reads (the first with a metadata section).
pub const VERSION: u16 = 4;
/// Header flag set for aarch64 images.
pub const FLAG_ARM64: u16 = 0x1;
/// Size of the EIF header.
pub const HEADER_LEN: usize = 548;
/// Offset of the CRC field, the header's last 4 bytes.
pub const CRC_OFFSET: usize = HEADER_LEN - 4;
/// Size of a section header.
pub const SECTION_HEADER_LEN: usize = 12;
/// Most sections an EIF can describe.
pub const MAX_SECTIONS: usize = 32;
/// Default memory AWS's builder records: 1 GiB.
pub const DEFAULT_MEM: u64 = 1024 * 1024 * 1024;
/// Default CPU count AWS's builder records.
pub const DEFAULT_CPUS: u64 = 2;

/// `HEADER_LEN` as a file offset.
pub(crate) const HEADER_LEN_U64: u64 = 548;
/// `SECTION_HEADER_LEN` as a file offset.
pub(crate) const SECTION_HEADER_LEN_U64: u64 = 12;

/// The kind of an EIF section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectionType {
    /// The kernel image (bzImage on x86_64).
    Kernel,
    /// The kernel command line, without a NUL.
    Cmdline,
    /// A cpio initramfs; the first is the "bootstrap" ramdisk.
    Ramdisk,
    /// CBOR list of PCR signatures (PCR8 images).
    Signature,
    /// JSON identity and build information.
    Metadata,
}

impl SectionType {
    /// The type's number in a section header.
    pub fn code(self) -> u16 {
        match self {
            SectionType::Kernel => 1,
            SectionType::Cmdline => 2,
            SectionType::Ramdisk => 3,
            SectionType::Signature => 4,
            SectionType::Metadata => 5,
        }
    }

    /// The type with number `code`, if any (0, "invalid", is not a type).
    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => SectionType::Kernel,
            2 => SectionType::Cmdline,
            3 => SectionType::Ramdisk,
            4 => SectionType::Signature,
            5 => SectionType::Metadata,
            _ => return None,
        })
    }

    /// Lowercase name for messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            SectionType::Kernel => "kernel",
            SectionType::Cmdline => "cmdline",
            SectionType::Ramdisk => "ramdisk",
            SectionType::Signature => "signature",
            SectionType::Metadata => "metadata",
        }
    }
}

/// The EIF header, as stored (no validation beyond field extraction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EifHeader {
    /// Should be [`MAGIC`].
    pub magic: [u8; 4],
    /// Format version.
    pub version: u16,
    /// Header flags.
    pub flags: u16,
    /// Default enclave memory in bytes (informational).
    pub default_mem: u64,
    /// Default enclave CPU count (informational).
    pub default_cpus: u64,
    /// Reserved, 0.
    pub reserved: u16,
    /// Number of sections in use.
    pub num_sections: u16,
    /// File offset of each section's header.
    pub section_offsets: [u64; MAX_SECTIONS],
    /// Data size of each section.
    pub section_sizes: [u64; MAX_SECTIONS],
    /// Unused, 0.
    pub unused: u32,
    /// CRC-32 of the rest of the file.
    pub crc32: u32,
}

/// A cursor that only reads through bounds-checked accessors.
pub(crate) struct BeReader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BeReader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        BeReader { buf, pos: 0, what }
    }

    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.pos.checked_add(N);
        let bytes = end.and_then(|end| self.buf.get(self.pos..end));
        let bytes = bytes.ok_or_else(|| {
            Error::malformed(self.what, format!("truncated at byte {}", self.pos))
        })?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take()?))
    }
}

impl EifHeader {
    /// A version-4 header with AWS's defaults and no sections yet.
    pub fn new() -> Self {
        EifHeader {
            magic: MAGIC,
            version: VERSION,
            flags: 0,
            default_mem: DEFAULT_MEM,
            default_cpus: DEFAULT_CPUS,
            reserved: 0,
            num_sections: 0,
            section_offsets: [0; MAX_SECTIONS],
            section_sizes: [0; MAX_SECTIONS],
            unused: 0,
            crc32: 0,
        }
    }

    /// The 548 stored bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = Vec::with_capacity(HEADER_LEN);
        w.extend_from_slice(&self.magic);
        w.extend_from_slice(&self.version.to_be_bytes());
        w.extend_from_slice(&self.flags.to_be_bytes());
        w.extend_from_slice(&self.default_mem.to_be_bytes());
        w.extend_from_slice(&self.default_cpus.to_be_bytes());
        w.extend_from_slice(&self.reserved.to_be_bytes());
        w.extend_from_slice(&self.num_sections.to_be_bytes());
        for offset in &self.section_offsets {
            w.extend_from_slice(&offset.to_be_bytes());
        }
        for size in &self.section_sizes {
            w.extend_from_slice(&size.to_be_bytes());
        }
        w.extend_from_slice(&self.unused.to_be_bytes());
        w.extend_from_slice(&self.crc32.to_be_bytes());
        out.copy_from_slice(&w);
        out
    }

    /// Extracts the fields of a stored header (any values; see the reader for validation).
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self> {
        let mut r = BeReader::new(bytes, "EIF header");
        let mut header = EifHeader {
            magic: r.take()?,
            version: r.u16()?,
            flags: r.u16()?,
            default_mem: r.u64()?,
            default_cpus: r.u64()?,
            reserved: r.u16()?,
            num_sections: r.u16()?,
            ..EifHeader::new()
        };
        for offset in header.section_offsets.iter_mut() {
            *offset = r.u64()?;
        }
        for size in header.section_sizes.iter_mut() {
            *size = r.u64()?;
        }
        header.unused = r.u32()?;
        header.crc32 = r.u32()?;
        Ok(header)
    }
}

impl Default for EifHeader {
    fn default() -> Self {
        Self::new()
    }
}

/// A section header, as stored: the type is kept as its raw number so a reader can report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    /// Raw type number; see [`SectionType::from_code`].
    pub section_type: u16,
    /// Flags, 0.
    pub flags: u16,
    /// Data size in bytes.
    pub size: u64,
}

impl SectionHeader {
    /// A header for `size` bytes of `kind`.
    pub fn new(kind: SectionType, size: u64) -> Self {
        SectionHeader {
            section_type: kind.code(),
            flags: 0,
            size,
        }
    }

    /// The 12 stored bytes.
    pub fn to_bytes(&self) -> [u8; SECTION_HEADER_LEN] {
        let mut out = [0u8; SECTION_HEADER_LEN];
        let (a, rest) = out.split_at_mut(2);
        let (b, c) = rest.split_at_mut(2);
        a.copy_from_slice(&self.section_type.to_be_bytes());
        b.copy_from_slice(&self.flags.to_be_bytes());
        c.copy_from_slice(&self.size.to_be_bytes());
        out
    }

    /// Extracts the fields of a stored section header.
    pub fn parse(bytes: &[u8; SECTION_HEADER_LEN]) -> Result<Self> {
        let mut r = BeReader::new(bytes, "section header");
        Ok(SectionHeader {
            section_type: r.u16()?,
            flags: r.u16()?,
            size: r.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_layout() {
        let mut h = EifHeader::new();
        h.num_sections = 2;
        h.section_offsets[0] = 548;
        h.section_sizes[0] = 0x0102_0304_0506_0708;
        h.section_offsets[31] = u64::MAX;
        h.crc32 = 0xdead_beef;
        let bytes = h.to_bytes();
        assert_eq!(&bytes[..4], b".eif");
        assert_eq!(&bytes[4..6], &[0, 4]);
        assert_eq!(&bytes[8..16], &(1u64 << 30).to_be_bytes());
        assert_eq!(&bytes[16..24], &2u64.to_be_bytes());
        assert_eq!(&bytes[26..28], &[0, 2]);
        assert_eq!(&bytes[28..36], &548u64.to_be_bytes());
        assert_eq!(&bytes[284..292], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&bytes[544..], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(EifHeader::parse(&bytes).unwrap(), h);
    }

    #[test]
    fn section_header_round_trip() {
        let s = SectionHeader::new(SectionType::Metadata, 77);
        let bytes = s.to_bytes();
        assert_eq!(bytes, [0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 77]);
        assert_eq!(SectionHeader::parse(&bytes).unwrap(), s);
        for code in 0..=6u16 {
            let t = SectionType::from_code(code);
            assert_eq!(t.is_some(), (1..=5).contains(&code));
            if let Some(t) = t {
                assert_eq!(t.code(), code);
            }
        }
    }
}
