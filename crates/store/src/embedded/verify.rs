//! A full check of the stored blocks: every block's CRC and encoding.
//!
//! redb has no page checksums, but every block we write carries a CRC32
//! (docs/format.md), so a flipped bit in stored numbers is found here
//! instead of being read back as a wrong value.

use super::block_files::BlockFiles;
use super::blocks;
use super::tables::{engine, BLOCKS};
use crate::StoreError;
use redb::{Database, ReadableTable};

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

/// Reads every block in one read transaction. Damaged blocks are listed,
/// not returned as an error, so one bad block does not hide the others;
/// an `Err` means the table itself could not be read.
pub fn verify(db: &Database, block_files: &BlockFiles) -> Result<VerifyReport, StoreError> {
    // Files deleted after this snapshot stay readable through the set.
    let files = block_files.snapshot();
    // A damaged page can make redb panic while iterating: report the file.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut report = VerifyReport::default();
        let (txn, files) = (db.begin_read().map_err(engine)?, &files);
        let table = txn.open_table(BLOCKS).map_err(engine)?;
        for entry in table.iter().map_err(engine)? {
            let (k, v) = entry.map_err(engine)?;
            let (key, value) = (k.value(), v.value());
            report.blocks += 1;
            let bytes = match files.stored(value).bytes(files) {
                Ok(bytes) => bytes,
                Err(e) => {
                    report.damaged.push(e.to_string());
                    continue;
                }
            };
            report.bytes += bytes.len() as u64;
            if let Err(e) = blocks::decode(&files.file_of(value), key, &bytes) {
                report.damaged.push(e.to_string());
            }
        }
        Ok(report)
    }));
    match run {
        Ok(result) => result,
        Err(_) => Err(StoreError::Corrupt {
            file: files.db_path().to_path_buf(),
            offset: 0,
            detail: "the block table is damaged and cannot be read to the end".into(),
            remedy: "Restore the data directory from a backup (minutely backup)".into(),
        }),
    }
}
