//! Series definitions in an append-only file beside the database
//! (`series.defs`), in the log's frames: one record of definitions per
//! checkpoint that made series durable.
//!
//! Definitions never change once written, and redb holds small values in
//! pages about half full in a file that grows by doubling: with 10,000
//! series their table took 2.6 MB of pages, and the database file kept
//! 9 MB after a clean stop where 3.4 MB sufficed without it.
//!
//! A checkpoint appends and syncs its new definitions before it commits.
//! A crash between the two leaves definitions that the log still holds
//! and replays: reading the same id twice is harmless (the index keeps
//! the first). A frame torn by a crash at the end is cut at the next open.
//!
//! At open, a file that one deflated record of its distinct definitions
//! would hold in less than half the bytes (plain records of an older
//! version, many small frames, repeats) is rewritten as that record: in a
//! temporary file, synced, then renamed over it.

use super::record::{Record, SeriesDef};
use super::wal;
use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Name of the file in the data directory.
pub const FILE: &str = "series.defs";
/// Where a rewrite is written before it replaces [`FILE`].
const REWRITE: &str = "series.defs.new";
/// Smaller files are left as they are.
const MIN_REWRITE_BYTES: u64 = 64 << 10;

pub struct SeriesFile {
    file: File,
    len: u64,
}

impl SeriesFile {
    /// Opens (or creates) the file and returns every definition in it.
    pub fn open(data_dir: &Path) -> Result<(SeriesFile, Vec<SeriesDef>), StoreError> {
        let path = data_dir.join(FILE);
        let file = open_for_append(&path)?;
        let mut records = Vec::new();
        // As the newest log segment: a torn last frame is cut.
        wal::read_segment(&path, true, &mut records)?;
        let len = std::fs::metadata(&path)?.len();
        let mut seen = std::collections::HashSet::new();
        let defs: Vec<SeriesDef> = records
            .into_iter()
            .flat_map(|r| r.series)
            .filter(|d| seen.insert(d.id))
            .collect();
        let leftover = data_dir.join(REWRITE);
        if leftover.exists() {
            std::fs::remove_file(&leftover).map_err(StoreError::from_io)?;
        }
        let mut f = SeriesFile { file, len };
        if len >= MIN_REWRITE_BYTES {
            f.rewrite_if_smaller(data_dir, &defs)?;
        }
        Ok((f, defs))
    }

    /// Replaces the file with one deflated record of `defs` if that takes
    /// less than half its bytes.
    fn rewrite_if_smaller(
        &mut self,
        data_dir: &Path,
        defs: &[SeriesDef],
    ) -> Result<(), StoreError> {
        let record = Record {
            batch: None,
            series: defs.to_vec(),
            points: Vec::new(),
        };
        let mut payload = Vec::new();
        record.encode_deflated(&mut payload);
        let frame = wal::frame(&payload);
        if 2 * frame.len() as u64 >= self.len {
            return Ok(());
        }
        let (tmp, path) = (data_dir.join(REWRITE), data_dir.join(FILE));
        let written = std::fs::write(&tmp, &frame)
            .and_then(|_| File::open(&tmp)?.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .and_then(|_| File::open(data_dir)?.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::from_io(e));
        }
        tracing::info!(
            series = defs.len(),
            before = self.len,
            after = frame.len(),
            "rewrote the series definitions as one deflated record"
        );
        self.file = open_for_append(&path)?;
        self.len = frame.len() as u64;
        Ok(())
    }

    /// Appends `defs` as one frame and syncs it. On failure the file is
    /// cut back to where it was.
    pub fn append(&mut self, defs: &[SeriesDef]) -> Result<(), StoreError> {
        if defs.is_empty() {
            return Ok(());
        }
        let record = Record {
            batch: None,
            series: defs.to_vec(),
            points: Vec::new(),
        };
        // Deflated: names, apps and tag keys repeat from one series to the
        // next (10,000 definitions take 0.9 MB plain).
        let mut payload = Vec::with_capacity(32 * defs.len() + 16);
        record.encode_deflated(&mut payload);
        wal::append_synced(&mut self.file, &mut self.len, &wal::frame(&payload))
    }
}

/// The file at `path`, created if missing, for reads and appends.
fn open_for_append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(StoreError::from_io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use minutely_core::{Kind, Tags};

    fn def(id: u64) -> SeriesDef {
        SeriesDef {
            id,
            app: "shop".into(),
            env: "prod".into(),
            name: format!("m{id}"),
            kind: Kind::Gauge,
            tags: Tags::from_pairs([("region", "eu")]),
        }
    }

    #[test]
    fn definitions_come_back_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut f, defs) = SeriesFile::open(dir.path()).unwrap();
            assert!(defs.is_empty());
            f.append(&[def(0), def(1)]).unwrap();
            f.append(&[]).unwrap();
            f.append(&[def(2)]).unwrap();
        }
        let path = dir.path().join(FILE);
        let whole = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of appending a third frame.
        let mut torn = std::fs::read(&path).unwrap();
        torn.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3]);
        std::fs::write(&path, &torn).unwrap();
        let (mut f, defs) = SeriesFile::open(dir.path()).unwrap();
        assert_eq!(defs, vec![def(0), def(1), def(2)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        f.append(&[def(3)]).unwrap();
        drop(f);
        let (_, defs) = SeriesFile::open(dir.path()).unwrap();
        assert_eq!(defs.len(), 4);

        // Damage before the last frame is not a torn write: refused.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let err = SeriesFile::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains(FILE), "{err}");
    }

    #[test]
    fn a_file_of_plain_records_and_repeats_is_rewritten_smaller() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        // As an older version wrote it: one plain record a checkpoint, and a
        // checkpoint repeated after a crash.
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for chunk in 0..20u64 {
            let defs: Vec<SeriesDef> = (chunk * 100..chunk * 100 + 100).map(def).collect();
            let mut payload = Vec::new();
            Record {
                series: defs.clone(),
                ..Record::default()
            }
            .encode(&mut payload);
            bytes.extend(wal::frame(&payload));
            if chunk == 7 {
                bytes.extend(wal::frame(&payload));
            }
            want.extend(defs);
        }
        std::fs::write(&path, &bytes).unwrap();
        // A rewrite that a crash stopped before its rename.
        std::fs::write(dir.path().join(REWRITE), b"half").unwrap();
        let (mut f, defs) = SeriesFile::open(dir.path()).unwrap();
        assert_eq!(defs, want);
        assert!(!dir.path().join(REWRITE).exists());
        let rewritten = std::fs::metadata(&path).unwrap().len();
        assert!(
            rewritten * 4 < bytes.len() as u64,
            "{rewritten} of {}",
            bytes.len()
        );
        // Appends go on after it; a second open reads the same and leaves it.
        f.append(&[def(5_000)]).unwrap();
        drop(f);
        want.push(def(5_000));
        let len = std::fs::metadata(&path).unwrap().len();
        let (_, defs) = SeriesFile::open(dir.path()).unwrap();
        assert_eq!(defs, want);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }
}
