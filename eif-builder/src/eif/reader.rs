//! Reading an EIF from untrusted bytes: every field checked before it is used, every size before anything is read or allocated.
//!
//! The checks, in order (the first failure is returned):
//!
//! 1. the file holds a whole 548-byte header; magic `.eif`; version 4; flags 0 (aarch64 images
//!    are refused as unsupported); section count 1..=32; table entries past the count are 0;
//! 2. every section header, before any section data is read: its table offset is exactly where
//!    the previous section ended (sections are contiguous from byte 548, as AWS writes them);
//!    the 12-byte header lies inside the file; its type is known, its flags are 0, its size
//!    equals the table's, and its data ends inside the file (checked arithmetic); the last
//!    section ends exactly at the end of the file;
//! 3. exactly one kernel and one cmdline section, at least one ramdisk, at most one metadata and
//!    one signature section; cmdline, metadata and signature sections are below fixed size caps
//!    (the only sections held in memory);
//! 4. the data is streamed once in 64 KiB chunks through the CRC and the PCR hashers.
//!
//! Then the metadata (JSON) and signature (CBOR) sections are parsed; if one does not parse and
//! the CRC does not match either, the CRC mismatch is reported, as the likelier diagnosis.
//! [`describe_unverified`] stops there. [`describe`] also requires that the CRC matches, and
//! that a signature, if present, verifies with its certificate over the recomputed PCR0.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::header::{
    EifHeader, SectionHeader, SectionType, CRC_OFFSET, FLAG_ARM64, HEADER_LEN, HEADER_LEN_U64,
    MAGIC, MAX_SECTIONS, SECTION_HEADER_LEN, SECTION_HEADER_LEN_U64, VERSION,
};
use super::metadata::Identity;
use crate::blob::CHUNK;
use crate::crc32::Crc32;
use crate::error::{Error, Result};
use crate::measure::{hex, ImageMeasurer, Measurements};
use crate::sign::{parse_signature_section, SignatureSection};

/// Largest command line we accept (Linux's x86 limit is 2048 bytes; this is generous).
pub const MAX_CMDLINE_LEN: u64 = 64 * 1024;
/// Largest metadata section we accept.
pub const MAX_METADATA_LEN: u64 = 1024 * 1024;
/// Largest signature section we accept (a real one is a few KiB).
pub const MAX_SIGNATURE_LEN: u64 = 64 * 1024;

/// Random access to the bytes of an image, with a known length.
pub trait ReadAt {
    /// Total length in bytes.
    fn size(&mut self) -> io::Result<u64>;
    /// Fills `buf` from `offset`. Callers check `offset + buf.len() <= size()` first.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl ReadAt for &[u8] {
    fn size(&mut self) -> io::Result<u64> {
        u64::try_from(self.len()).map_err(|_| io::Error::other("input too large"))
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let src = self.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for File {
    fn size(&mut self) -> io::Result<u64> {
        self.seek(SeekFrom::End(0))
    }

    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.seek(SeekFrom::Start(offset))?;
        self.read_exact(buf)
    }
}

/// One section as found in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// Its type.
    pub kind: SectionType,
    /// File offset of its 12-byte header.
    pub offset: u64,
    /// Data size.
    pub size: u64,
}

/// Everything [`describe`] learns about an image.
#[derive(Clone, Debug)]
pub struct EifDescription {
    /// The header as stored.
    pub header: EifHeader,
    /// Sections in file order.
    pub sections: Vec<SectionInfo>,
    /// The CRC recomputed over the file.
    pub computed_crc: u32,
    /// PCR0/1/2 recomputed from the sections; PCR8 from the signing certificate, if any.
    pub measurements: Measurements,
    /// The kernel command line.
    pub cmdline: Vec<u8>,
    /// The metadata section, if present.
    pub identity: Option<Identity>,
    /// The signature section, if present, with its verification outcome.
    pub signature: Option<SignatureSection>,
}

impl EifDescription {
    /// Whether the stored CRC matches the file.
    pub fn crc_ok(&self) -> bool {
        self.header.crc32 == self.computed_crc
    }

    /// Fails unless the CRC matches and any signature is valid and covers this image's PCR0.
    pub fn verify(&self) -> Result<()> {
        if !self.crc_ok() {
            return Err(crc_mismatch(self.header.crc32, self.computed_crc));
        }
        if let Some(sig) = &self.signature {
            if !sig.signature_valid {
                return Err(Error::mismatch(
                    "PCR signature",
                    "a COSE signature made by the signing certificate's key",
                    "a signature that does not verify",
                ));
            }
            if sig.register_index != 0 {
                return Err(Error::unsupported(
                    "signature section",
                    format!(
                        "it signs PCR{}; only PCR0 signatures are known",
                        sig.register_index
                    ),
                ));
            }
            if sig.register_value != self.measurements.pcr0 {
                return Err(Error::mismatch(
                    "signed PCR0",
                    hex(&self.measurements.pcr0),
                    hex(&sig.register_value),
                ));
            }
        }
        Ok(())
    }
}

fn crc_mismatch(stored: u32, computed: u32) -> Error {
    Error::mismatch(
        "EIF CRC32",
        format!("0x{stored:08x} (stored in the header)"),
        format!("0x{computed:08x} (computed over the file)"),
    )
}

fn malformed(what: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::malformed(what, detail)
}

fn read_at<R: ReadAt>(
    src: &mut R,
    offset: u64,
    buf: &mut [u8],
    file_len: u64,
    what: &str,
) -> Result<()> {
    let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
    match offset.checked_add(len) {
        Some(end) if end <= file_len => {}
        _ => {
            return Err(malformed(
                what,
                format!(
                    "{len} bytes at offset {offset} run past the end of the {file_len}-byte file"
                ),
            ))
        }
    }
    src.read_exact_at(offset, buf)
        .map_err(|e| Error::io("cannot read EIF", None, e))
}

/// Parses and measures an image without judging its CRC or signature; see [`describe`].
pub fn describe_unverified<R: ReadAt>(mut src: R) -> Result<EifDescription> {
    let file_len = src
        .size()
        .map_err(|e| Error::io("cannot read EIF", None, e))?;
    if file_len < HEADER_LEN_U64 {
        return Err(malformed(
            "EIF header",
            format!("the file is {file_len} bytes, shorter than the {HEADER_LEN}-byte header"),
        ));
    }
    let mut header_bytes = [0u8; HEADER_LEN];
    read_at(&mut src, 0, &mut header_bytes, file_len, "EIF header")?;
    let header = EifHeader::parse(&header_bytes)?;
    if header.magic != MAGIC {
        return Err(malformed(
            "EIF header magic",
            format!(
                "found {}, expected {} (\".eif\")",
                hex(&header.magic),
                hex(&MAGIC)
            ),
        ));
    }
    if header.version != VERSION {
        return Err(Error::unsupported(
            "EIF version",
            format!("{} (only version {VERSION} is supported)", header.version),
        ));
    }
    if header.flags & FLAG_ARM64 != 0 {
        return Err(Error::unsupported(
            "EIF header flags",
            format!(
                "0x{:04x}: an aarch64 image (only x86_64 images are supported)",
                header.flags
            ),
        ));
    }
    if header.flags != 0 {
        return Err(malformed(
            "EIF header flags",
            format!("0x{:04x} has unknown bits set", header.flags),
        ));
    }
    let count = usize::from(header.num_sections);
    if count == 0 || count > MAX_SECTIONS {
        return Err(malformed(
            "EIF header section count",
            format!("{count} (must be 1..={MAX_SECTIONS})"),
        ));
    }
    for i in count..MAX_SECTIONS {
        let offset = header.section_offsets.get(i).copied().unwrap_or(0);
        let size = header.section_sizes.get(i).copied().unwrap_or(0);
        if offset != 0 || size != 0 {
            return Err(malformed(
                format!("EIF header section table entry {i}"),
                format!(
                    "beyond the section count {count} but not zero (offset {offset}, size {size})"
                ),
            ));
        }
    }

    // Pass 1: every section header, before any data.
    let mut sections = Vec::with_capacity(count);
    let mut expected_offset = HEADER_LEN_U64;
    for i in 0..count {
        let offset = header.section_offsets.get(i).copied().unwrap_or(0);
        let table_size = header.section_sizes.get(i).copied().unwrap_or(0);
        let what = format!("section {i}");
        if offset != expected_offset {
            return Err(malformed(
                format!("EIF header offset of {what}"),
                format!("{offset}, expected {expected_offset} (sections must follow each other from byte {HEADER_LEN})"),
            ));
        }
        let mut sh_bytes = [0u8; SECTION_HEADER_LEN];
        read_at(
            &mut src,
            offset,
            &mut sh_bytes,
            file_len,
            &format!("{what} header"),
        )?;
        let sh = SectionHeader::parse(&sh_bytes)?;
        let kind = SectionType::from_code(sh.section_type).ok_or_else(|| {
            malformed(
                format!("{what} header type"),
                format!("{} is not a known section type (1..=5)", sh.section_type),
            )
        })?;
        let what = format!("section {i} ({})", kind.name());
        if sh.flags != 0 {
            return Err(malformed(
                format!("{what} header flags"),
                format!("0x{:04x}, expected 0", sh.flags),
            ));
        }
        if sh.size != table_size {
            return Err(malformed(
                format!("{what} header size"),
                format!(
                    "{} differs from the EIF header's section size {table_size}",
                    sh.size
                ),
            ));
        }
        let data_end = offset
            .checked_add(SECTION_HEADER_LEN_U64)
            .and_then(|v| v.checked_add(sh.size))
            .filter(|&end| end <= file_len)
            .ok_or_else(|| {
                malformed(
                    format!("{what} size"),
                    format!(
                        "{} bytes at offset {} run past the end of the {file_len}-byte file",
                        sh.size,
                        offset.saturating_add(SECTION_HEADER_LEN_U64)
                    ),
                )
            })?;
        sections.push(SectionInfo {
            kind,
            offset,
            size: sh.size,
        });
        expected_offset = data_end;
    }
    if expected_offset != file_len {
        return Err(malformed(
            "EIF",
            format!(
                "{} trailing bytes after the last section (the file is {file_len} bytes)",
                file_len - expected_offset
            ),
        ));
    }
    let count_of = |kind| sections.iter().filter(|s| s.kind == kind).count();
    for (kind, min, max) in [
        (SectionType::Kernel, 1, 1),
        (SectionType::Cmdline, 1, 1),
        (SectionType::Ramdisk, 1, MAX_SECTIONS),
        (SectionType::Metadata, 0, 1),
        (SectionType::Signature, 0, 1),
    ] {
        let n = count_of(kind);
        if n < min || n > max {
            let want = match (min, max) {
                (1, 1) => "exactly one".to_string(),
                (0, 1) => "at most one".to_string(),
                _ => "at least one".to_string(),
            };
            return Err(malformed(
                "EIF sections",
                format!("{n} {} sections, expected {want}", kind.name()),
            ));
        }
    }
    for s in &sections {
        let cap = match s.kind {
            SectionType::Cmdline => MAX_CMDLINE_LEN,
            SectionType::Metadata => MAX_METADATA_LEN,
            SectionType::Signature => MAX_SIGNATURE_LEN,
            SectionType::Kernel | SectionType::Ramdisk => continue,
        };
        if s.size > cap {
            return Err(Error::unsupported(
                format!("{} section", s.kind.name()),
                format!("{} bytes is more than the {cap}-byte limit", s.size),
            ));
        }
    }

    // Pass 2: stream the data through the CRC and the PCRs.
    let mut crc = Crc32::new();
    crc.update(header_bytes.get(..CRC_OFFSET).unwrap_or(&[]));
    let mut measurer = ImageMeasurer::new();
    let mut buf = vec![0u8; CHUNK];
    let mut cmdline = Vec::new();
    let mut metadata = Vec::new();
    let mut signature = Vec::new();
    let mut parts = super::PartTracker::default();
    for s in &sections {
        let mut sh_bytes = [0u8; SECTION_HEADER_LEN];
        read_at(
            &mut src,
            s.offset,
            &mut sh_bytes,
            file_len,
            "section header",
        )?;
        crc.update(&sh_bytes);
        let part = parts.next(s.kind);
        let keep = match s.kind {
            SectionType::Cmdline => Some(&mut cmdline),
            SectionType::Metadata => Some(&mut metadata),
            SectionType::Signature => Some(&mut signature),
            SectionType::Kernel | SectionType::Ramdisk => None,
        };
        let mut keep = keep;
        let mut pos = s.offset.saturating_add(SECTION_HEADER_LEN_U64);
        let mut left = s.size;
        while left > 0 {
            let n = usize::try_from(left.min(u64::try_from(CHUNK).unwrap_or(u64::MAX)))
                .unwrap_or(CHUNK);
            let chunk = buf.get_mut(..n).unwrap_or(&mut []);
            read_at(&mut src, pos, chunk, file_len, "section data")?;
            crc.update(chunk);
            if let Some(part) = part {
                measurer.update(part, chunk);
            }
            if let Some(keep) = keep.as_deref_mut() {
                keep.extend_from_slice(chunk);
            }
            let n64 = u64::try_from(n).unwrap_or(u64::MAX);
            pos = pos.saturating_add(n64);
            left -= n64;
        }
    }

    // A metadata or signature section that does not parse in a file whose CRC is wrong is
    // best reported as the CRC mismatch: the file is damaged, not oddly built.
    let computed_crc = crc.finish();
    let crc_error = |e: Error| {
        if computed_crc == header.crc32 {
            e
        } else {
            crc_mismatch(header.crc32, computed_crc)
        }
    };
    let identity = if sections.iter().any(|s| s.kind == SectionType::Metadata) {
        Some(
            serde_json::from_slice::<Identity>(&metadata)
                .map_err(|e| malformed("metadata section", format!("not the expected JSON: {e}")))
                .map_err(crc_error)?,
        )
    } else {
        None
    };
    let signature = if sections.iter().any(|s| s.kind == SectionType::Signature) {
        Some(parse_signature_section(&signature).map_err(crc_error)?)
    } else {
        None
    };
    let measurements = measurer.finish(signature.as_ref().map(|s| s.certificate_der.as_slice()));
    Ok(EifDescription {
        header,
        sections,
        computed_crc,
        measurements,
        cmdline,
        identity,
        signature,
    })
}

/// Parses, measures and verifies an image: [`describe_unverified`], then
/// [`EifDescription::verify`].
pub fn describe<R: ReadAt>(src: R) -> Result<EifDescription> {
    let description = describe_unverified(src)?;
    description.verify()?;
    Ok(description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eif::{EifBuilder, Identity};
    use crate::{Blob, Signer};

    fn small_eif(signed: bool) -> Vec<u8> {
        let mut b = EifBuilder::new(
            Blob::from(b"kernel bytes, not a real kernel".to_vec()),
            " console=ttyS0 ",
            Identity::new("t", "1", "1970-01-01T00:00:00+00:00"),
        )
        .ramdisk(Blob::from(b"first ramdisk".to_vec()))
        .ramdisk(Blob::from(b"second".to_vec()));
        if signed {
            let signer = Signer::from_pem(
                include_bytes!("../../tests/data/p384-cert.pem").to_vec(),
                include_bytes!("../../tests/data/p384-key.sec1.pem"),
            )
            .unwrap();
            b = b.signer(signer);
        }
        let mut out = std::io::Cursor::new(Vec::new());
        b.write_to(&mut out).unwrap();
        out.into_inner()
    }

    #[test]
    fn round_trip() {
        let eif = small_eif(false);
        let d = describe(eif.as_slice()).unwrap();
        assert_eq!(d.cmdline, b"console=ttyS0");
        let kinds: Vec<_> = d.sections.iter().map(|s| s.kind).collect();
        use SectionType::*;
        assert_eq!(kinds, [Kernel, Cmdline, Metadata, Ramdisk, Ramdisk]);
        assert!(d.signature.is_none() && d.measurements.pcr8.is_none());
        let signed = small_eif(true);
        let d = describe(signed.as_slice()).unwrap();
        assert!(d.signature.is_some() && d.measurements.pcr8.is_some());
    }

    /// Every truncation and every single-byte change of a small image is an error, never a panic
    /// (the CRC catches any change the structural checks let through).
    #[test]
    fn every_truncation_and_byte_flip_is_refused() {
        for signed in [false, true] {
            let eif = small_eif(signed);
            for cut in 0..eif.len() {
                assert!(describe_unverified(&eif[..cut]).is_err(), "cut at {cut}");
            }
            let masks: &[u8] = if signed {
                &[0x01, 0xff]
            } else {
                &[0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff]
            };
            for i in 0..eif.len() {
                for &mask in masks {
                    let mut bad = eif.clone();
                    bad[i] ^= mask;
                    let _ = describe_unverified(bad.as_slice());
                    assert!(
                        describe(bad.as_slice()).is_err(),
                        "flip {mask:#x} at {i} went unnoticed"
                    );
                }
            }
        }
    }

    fn patch_u64(eif: &mut [u8], at: usize, v: u64) {
        eif[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }

    fn error_of(eif: &[u8]) -> String {
        describe(eif).unwrap_err().to_string()
    }

    #[test]
    fn precise_messages() {
        let eif = small_eif(false);
        let mut e = eif.clone();
        e[0] = b'x';
        assert_eq!(
            error_of(&e),
            "malformed EIF header magic: found 78656966, expected 2e656966 (\".eif\")"
        );
        let mut e = eif.clone();
        e[5] = 3;
        assert_eq!(
            error_of(&e),
            "unsupported EIF version: 3 (only version 4 is supported)"
        );
        let mut e = eif.clone();
        e[7] = 1;
        assert!(error_of(&e).contains("aarch64"));
        let mut e = eif.clone();
        e[26..28].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            error_of(&e),
            "malformed EIF header section count: 0 (must be 1..=32)"
        );
        let mut e = eif.clone();
        e[26..28].copy_from_slice(&33u16.to_be_bytes());
        assert_eq!(
            error_of(&e),
            "malformed EIF header section count: 33 (must be 1..=32)"
        );
        // A huge size in both the table and the section header.
        let mut e = eif.clone();
        patch_u64(&mut e, 284, 1 << 63);
        patch_u64(&mut e, 548 + 4, 1 << 63);
        assert_eq!(
            error_of(&e),
            format!("malformed section 0 (kernel) size: 9223372036854775808 bytes at offset 560 run past the end of the {}-byte file", eif.len())
        );
        let mut e = eif.clone();
        patch_u64(&mut e, 284, u64::MAX);
        assert!(error_of(&e).contains("differs from the EIF header's section size"));
        let mut e = eif.clone();
        e.push(0);
        assert_eq!(
            error_of(&e),
            format!(
                "malformed EIF: 1 trailing bytes after the last section (the file is {} bytes)",
                eif.len() + 1
            )
        );
        let mut e = eif.clone();
        e[28 + 8 * 2 + 7] ^= 1; // the offset of section 2
        assert_eq!(
            error_of(&e),
            format!("malformed EIF header offset of section 2: {}, expected {} (sections must follow each other from byte 548)", 548 + 12 + 31 + 12 + 13 + 1, 548 + 12 + 31 + 12 + 13)
        );
        let mut e = eif.clone();
        e[10] ^= 1; // default memory: only the CRC notices
        assert!(
            error_of(&e).starts_with("EIF CRC32 mismatch: expected 0x"),
            "{}",
            error_of(&e)
        );
        let n = e.len();
        let mut e = eif.clone();
        e[n - 1] ^= 1; // last byte of the last ramdisk
        assert!(error_of(&e).starts_with("EIF CRC32 mismatch"));
    }
}
