//! The Enclave Image Format: header layout, metadata, writer and reader.

pub mod header;
pub mod metadata;
pub mod reader;
pub mod writer;

pub use header::{EifHeader, SectionHeader, SectionType};
pub use metadata::{kernel_version_from_bzimage, kernel_version_of, BuildInfo, Identity};
pub use reader::{describe, describe_unverified, EifDescription, ReadAt, SectionInfo};
pub use writer::EifBuilder;

/// Which measured part each section of an image is, fed the sections in file order: the
/// kernel and command line are boot (PCR0, PCR1), the first ramdisk is the bootstrap ramdisk
/// (PCR0, PCR1), every later ramdisk the application (PCR0, PCR2); metadata and the signature
/// are not measured (`None`).
#[derive(Debug, Default)]
pub(crate) struct PartTracker {
    ramdisks_seen: usize,
}

impl PartTracker {
    /// The part of the next section, of type `kind`.
    pub(crate) fn next(&mut self, kind: SectionType) -> Option<crate::measure::Part> {
        use crate::measure::Part;
        match kind {
            SectionType::Kernel | SectionType::Cmdline => Some(Part::Boot),
            SectionType::Ramdisk => {
                self.ramdisks_seen += 1;
                Some(if self.ramdisks_seen == 1 {
                    Part::BootstrapRamdisk
                } else {
                    Part::AppRamdisk
                })
            }
            SectionType::Metadata | SectionType::Signature => None,
        }
    }
}
