//! Writing an EIF: layout, measurement, optional signing, CRC — byte-identical to AWS's `EifBuilder::write_to`.
//!
//! Sections are written in AWS's order: kernel, cmdline, metadata, the ramdisks in the order
//! given, and the signature if signing. Inputs are streamed twice: once to measure (PCR0 must
//! be known before the signature section, whose size enters the header), once to write, while
//! measuring again; if the two measurements differ (an input changed while we read it) the
//! build fails rather than produce an image whose PCRs are not the ones printed.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::header::{
    EifHeader, SectionHeader, SectionType, CRC_OFFSET, HEADER_LEN_U64, MAX_SECTIONS,
    SECTION_HEADER_LEN_U64,
};
use super::metadata::Identity;
use super::PartTracker;
use crate::blob::Blob;
use crate::crc32::Crc32;
use crate::error::{Error, Result};
use crate::measure::{ImageMeasurer, Measurements};
use crate::sign::Signer;

/// Describes an image to write.
#[derive(Debug)]
pub struct EifBuilder {
    kernel: Blob,
    cmdline: String,
    ramdisks: Vec<Blob>,
    identity: Identity,
    signer: Option<Signer>,
}

/// One section's contents while writing.
enum Data<'a> {
    Blob(&'a Blob, u64),
    Bytes(&'a [u8]),
}

impl Data<'_> {
    fn len(&self) -> u64 {
        match self {
            Data::Blob(_, len) => *len,
            Data::Bytes(b) => u64::try_from(b.len()).unwrap_or(u64::MAX),
        }
    }

    fn stream(&self, sink: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        match self {
            Data::Blob(blob, len) => blob.stream(*len, sink),
            Data::Bytes(b) => {
                let mut sink = sink;
                sink(b)
            }
        }
    }
}

impl EifBuilder {
    /// An image of `kernel` booted with `cmdline` (surrounding whitespace is trimmed, as
    /// nitro-cli does), carrying `identity` as its metadata. Add at least one ramdisk.
    pub fn new(kernel: Blob, cmdline: &str, identity: Identity) -> Self {
        EifBuilder {
            kernel,
            cmdline: cmdline.trim().to_string(),
            ramdisks: Vec::new(),
            identity,
            signer: None,
        }
    }

    /// Appends a ramdisk. The first is the bootstrap ramdisk (PCR1), later ones are the
    /// application (PCR2).
    pub fn ramdisk(mut self, ramdisk: Blob) -> Self {
        self.ramdisks.push(ramdisk);
        self
    }

    /// Signs the image (PCR8) with `signer`.
    pub fn signer(mut self, signer: Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    fn check(&self) -> Result<()> {
        if self.ramdisks.is_empty() {
            return Err(Error::invalid("EIF", "needs at least one ramdisk"));
        }
        let sections = 3 + self.ramdisks.len() + usize::from(self.signer.is_some());
        if sections > MAX_SECTIONS {
            return Err(Error::unsupported(
                "EIF",
                format!(
                    "{} ramdisks make {sections} sections; the format allows {MAX_SECTIONS}",
                    self.ramdisks.len()
                ),
            ));
        }
        if self.cmdline.contains('\0') {
            return Err(Error::invalid("kernel command line", "contains a NUL byte"));
        }
        Ok(())
    }

    fn measure(&self, sections: &[(SectionType, Data<'_>)]) -> Result<Measurements> {
        let mut m = ImageMeasurer::new();
        let mut parts = PartTracker::default();
        for (kind, data) in sections {
            let Some(part) = parts.next(*kind) else {
                continue;
            };
            data.stream(|chunk| {
                m.update(part, chunk);
                Ok(())
            })?;
        }
        Ok(m.finish(self.signer.as_ref().map(Signer::certificate_der)))
    }

    /// Writes the image to `out`, starting at its current position; returns the PCRs.
    pub fn write_to<W: Write + Seek>(&self, out: &mut W) -> Result<Measurements> {
        self.check()?;
        let kernel_len = self.kernel.len()?;
        let ramdisk_lens = self
            .ramdisks
            .iter()
            .map(Blob::len)
            .collect::<Result<Vec<u64>>>()?;
        let metadata = self.identity.to_bytes()?;

        let mut sections: Vec<(SectionType, Data<'_>)> = vec![
            (SectionType::Kernel, Data::Blob(&self.kernel, kernel_len)),
            (SectionType::Cmdline, Data::Bytes(self.cmdline.as_bytes())),
            (SectionType::Metadata, Data::Bytes(&metadata)),
        ];
        for (blob, len) in self.ramdisks.iter().zip(&ramdisk_lens) {
            sections.push((SectionType::Ramdisk, Data::Blob(blob, *len)));
        }

        let measurements = self.measure(&sections)?;
        let signature = match &self.signer {
            Some(signer) => Some(signer.signature_section(&measurements.pcr0)?),
            None => None,
        };
        if let Some(signature) = &signature {
            sections.push((SectionType::Signature, Data::Bytes(signature)));
        }

        let mut header = EifHeader::new();
        header.num_sections = u16::try_from(sections.len())
            .map_err(|_| Error::unsupported("EIF", "too many sections"))?;
        let mut offset = HEADER_LEN_U64;
        for (i, (_, data)) in sections.iter().enumerate() {
            let (Some(o), Some(s)) = (
                header.section_offsets.get_mut(i),
                header.section_sizes.get_mut(i),
            ) else {
                return Err(Error::unsupported("EIF", "too many sections"));
            };
            *o = offset;
            *s = data.len();
            offset = offset
                .checked_add(SECTION_HEADER_LEN_U64)
                .and_then(|v| v.checked_add(data.len()))
                .ok_or_else(|| Error::unsupported("EIF", "total size overflows 64 bits"))?;
        }

        let write_err = |e| Error::io("cannot write EIF", None, e);
        let base = out.stream_position().map_err(write_err)?;
        let header_bytes = header.to_bytes();
        let mut crc = Crc32::new();
        crc.update(header_bytes.get(..CRC_OFFSET).unwrap_or(&[]));
        out.write_all(&header_bytes).map_err(write_err)?;
        let mut again = ImageMeasurer::new();
        let mut parts = PartTracker::default();
        for (kind, data) in &sections {
            let section_header = SectionHeader::new(*kind, data.len()).to_bytes();
            crc.update(&section_header);
            out.write_all(&section_header).map_err(write_err)?;
            let part = parts.next(*kind);
            data.stream(|chunk| {
                crc.update(chunk);
                if let Some(part) = part {
                    again.update(part, chunk);
                }
                out.write_all(chunk).map_err(write_err)
            })?;
        }
        let end = out.stream_position().map_err(write_err)?;
        let crc_at = base
            .checked_add(u64::try_from(CRC_OFFSET).unwrap_or(u64::MAX))
            .ok_or_else(|| Error::unsupported("EIF", "output position overflows"))?;
        out.seek(SeekFrom::Start(crc_at)).map_err(write_err)?;
        out.write_all(&crc.finish().to_be_bytes())
            .map_err(write_err)?;
        out.seek(SeekFrom::Start(end)).map_err(write_err)?;
        out.flush().map_err(write_err)?;

        let rechecked = again.finish(self.signer.as_ref().map(Signer::certificate_der));
        if rechecked != measurements {
            return Err(Error::mismatch(
                "PCRs of the inputs between two reads (did an input change during the build?)",
                crate::measure::hex(&measurements.pcr0),
                crate::measure::hex(&rechecked.pcr0),
            ));
        }
        Ok(measurements)
    }

    /// Writes the image to `path` atomically (temporary file, then rename); returns the PCRs.
    pub fn write_file(&self, path: &Path) -> Result<Measurements> {
        crate::fsutil::write_atomically(path, |file| self.write_to(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eif::describe;

    fn builder(ramdisks: usize) -> EifBuilder {
        let mut b = EifBuilder::new(
            Blob::from(b"kernel".to_vec()),
            "\t console=ttyS0 \n",
            Identity::new("t", "1", "1970-01-01T00:00:00+00:00"),
        );
        for i in 0..ramdisks {
            b = b.ramdisk(Blob::from(vec![u8::try_from(i).unwrap(); 3]));
        }
        b
    }

    fn write(b: &EifBuilder) -> Result<Vec<u8>> {
        let mut out = std::io::Cursor::new(Vec::new());
        b.write_to(&mut out)?;
        Ok(out.into_inner())
    }

    #[test]
    fn section_limits() {
        assert!(write(&builder(0))
            .unwrap_err()
            .to_string()
            .contains("at least one ramdisk"));
        assert!(write(&builder(MAX_SECTIONS - 3)).is_ok());
        let err = write(&builder(MAX_SECTIONS - 2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported EIF: 30 ramdisks make 33 sections; the format allows 32"
        );
        let nul = EifBuilder::new(
            Blob::from(b"k".to_vec()),
            "a\0b",
            Identity::new("t", "1", "x"),
        )
        .ramdisk(Blob::from(b"r".to_vec()));
        assert!(write(&nul).is_err());
    }

    #[test]
    fn cmdline_is_trimmed_and_layout_is_aws_order() {
        let eif = write(&builder(2)).unwrap();
        let d = describe(eif.as_slice()).unwrap();
        assert_eq!(d.cmdline, b"console=ttyS0");
        let kinds: Vec<SectionType> = d.sections.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SectionType::Kernel,
                SectionType::Cmdline,
                SectionType::Metadata,
                SectionType::Ramdisk,
                SectionType::Ramdisk
            ]
        );
        assert_eq!(d.header.default_mem, 1 << 30);
        assert_eq!(d.header.default_cpus, 2);
    }

    #[test]
    fn writes_at_the_current_position() {
        let mut out = std::io::Cursor::new(b"prefix".to_vec());
        out.seek(SeekFrom::End(0)).unwrap();
        builder(1).write_to(&mut out).unwrap();
        let bytes = out.into_inner();
        assert_eq!(&bytes[..6], b"prefix");
        assert_eq!(bytes[6..], write(&builder(1)).unwrap());
    }
}
