//! A full check of the stored blocks: every block's CRC and encoding.
//!
//! Every block we write carries a CRC32
//! (docs/format.md), so a flipped bit in stored numbers is found here
//! instead of being read back as a wrong value.

use super::block_files::BlockFiles;
use super::blocks;
use crate::StoreError;

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyReport {
    /// Blocks read and decoded.
    pub blocks: u64,
    /// Bytes of encoded blocks read.
    pub bytes: u64,
    /// One message per damaged block (file, block, what to do).
    pub damaged: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Reads every block of the last commit. Damaged blocks are listed, not
/// returned as an error, so one bad block does not hide the others.
pub fn verify(block_files: &BlockFiles) -> Result<VerifyReport, StoreError> {
    // Files deleted after this snapshot stay readable through the set.
    let files = block_files.snapshot();
    let mut report = VerifyReport::default();
    for (key, place) in files.places().blocks() {
        report.blocks += 1;
        let bytes = match files.read(place) {
            Ok(bytes) => bytes,
            Err(e) => {
                report.damaged.push(e.to_string());
                continue;
            }
        };
        report.bytes += bytes.len() as u64;
        if let Err(e) = blocks::decode(&files.path(place.file), key, &bytes) {
            report.damaged.push(e.to_string());
        }
    }
    Ok(report)
}
