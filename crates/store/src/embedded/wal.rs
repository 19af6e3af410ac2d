//! The write-ahead log: what makes a push durable before its minutes reach
//! redb. A directory of segments `NNNNNNNNNNNNNNNN.wal`, each a run of frames
//! `[u32 len][u32 crc32(payload)][payload]` (little-endian). A checkpoint
//! seals the current segment and deletes sealed ones once their minutes are
//! in redb.
//!
//! A torn frame at the end of the newest segment is what a crash mid-write
//! leaves: it was never acknowledged, so it is cut off. Any other bad frame
//! is corruption and stops the start with the file and offset.

use super::record::Record;
use crate::StoreError;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

const FRAME_HEADER: usize = 8;
/// Larger frames cannot come from a push within the body limits; a length
/// beyond it means a torn or corrupt header.
const MAX_FRAME: usize = 1 << 30;

pub struct Wal {
    dir: PathBuf,
    file: File,
    seq: u64,
    len: u64,
    /// Since when frames wait for a sync: the oldest write since the last
    /// sync, or the last sync that failed (so a failing disk is retried
    /// one interval later, not in a loop).
    unsynced_since: Option<Instant>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

/// Sequence numbers of the segments in `dir`, ascending.
fn segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

impl Wal {
    /// Opens the log, returning every record still in it (oldest first) and
    /// a writer on a fresh segment.
    /// Segments up to `applied_through` are already in redb (a crash came
    /// between a checkpoint's commit and their deletion): they are deleted,
    /// not replayed, so no point counts twice.
    pub fn open(dir: &Path, applied_through: u64) -> Result<(Wal, Vec<Record>), StoreError> {
        fs::create_dir_all(dir).map_err(StoreError::from_io)?;
        Wal::remove_through(dir, applied_through)?;
        let seqs = segments(dir)?;
        let mut records = Vec::new();
        for (i, &seq) in seqs.iter().enumerate() {
            let newest = i + 1 == seqs.len();
            read_segment(&segment_path(dir, seq), newest, &mut records)?;
        }
        let seq = seqs.last().copied().unwrap_or(0).max(applied_through) + 1;
        let file = create_segment(dir, seq)?;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                file,
                seq,
                len: 0,
                unsynced_since: None,
            },
            records,
        ))
    }

    /// Appends frames, and syncs them to disk if `sync` (else a later
    /// [`Wal::sync`] does). On failure the segment is cut back to where it
    /// was, so a failed push leaves nothing behind.
    pub fn append(&mut self, payloads: &[&[u8]], sync: bool) -> Result<(), StoreError> {
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + FRAME_HEADER).sum());
        for p in payloads {
            put_frame(&mut buf, p);
        }
        append_bytes(&mut self.file, &mut self.len, &buf, sync)?;
        if sync {
            // A synced append also synced every earlier frame of the file.
            self.unsynced_since = None;
        } else {
            self.unsynced_since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// When the frames not yet synced were written (the oldest of them),
    /// or the last sync of them failed; `None` when all are synced.
    pub fn unsynced_since(&self) -> Option<Instant> {
        self.unsynced_since
    }

    /// Syncs the frames written since the last sync.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.unsynced_since.is_some() {
            if let Err(e) = self.file.sync_data() {
                self.unsynced_since = Some(Instant::now());
                return Err(StoreError::from_io(e));
            }
            self.unsynced_since = None;
        }
        Ok(())
    }

    /// Seals the current segment (synced: only the newest segment may end
    /// torn) and starts the next; returns the sealed one.
    pub fn rotate(&mut self) -> Result<u64, StoreError> {
        self.sync()?;
        let next = create_segment(&self.dir, self.seq + 1)?;
        let sealed = self.seq;
        self.file = next;
        self.seq += 1;
        self.len = 0;
        Ok(sealed)
    }

    /// Deletes sealed segments up to and including `seq`.
    pub fn remove_through(dir: &Path, seq: u64) -> Result<(), StoreError> {
        for s in segments(dir)?.into_iter().filter(|&s| s <= seq) {
            let path = segment_path(dir, s);
            fs::remove_file(&path).map_err(|e| {
                StoreError::Io(std::io::Error::new(
                    e.kind(),
                    format!("removing {}: {e}", path.display()),
                ))
            })?;
        }
        Ok(())
    }
}

fn create_segment(dir: &Path, seq: u64) -> Result<File, StoreError> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| {
            StoreError::from_io(std::io::Error::new(
                e.kind(),
                format!("creating {}: {e}", path.display()),
            ))
        })?;
    // The new name must survive a crash too, or a synced frame in it could vanish.
    File::open(dir)?.sync_all().map_err(StoreError::from_io)?;
    Ok(file)
}

/// Appends `bytes` to `file`, `len` bytes long, and syncs them. On failure
/// the file is cut back to `len`, so nothing half-written stays before
/// later frames.
pub fn append_synced(file: &mut File, len: &mut u64, bytes: &[u8]) -> Result<(), StoreError> {
    append_bytes(file, len, bytes, true)
}

/// [`append_synced`], with the sync left to the caller unless `sync`.
fn append_bytes(
    file: &mut File,
    len: &mut u64,
    bytes: &[u8],
    sync: bool,
) -> Result<(), StoreError> {
    let written = file
        .write_all(bytes)
        .and_then(|_| if sync { file.sync_data() } else { Ok(()) });
    match written {
        Ok(()) => {
            *len += bytes.len() as u64;
            Ok(())
        }
        Err(e) => {
            // Best effort: if even this fails the torn tail is cut at the next start.
            let _ = file.set_len(*len);
            let _ = file.seek(SeekFrom::Start(*len));
            Err(StoreError::from_io(e))
        }
    }
}

/// `payload` as one frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER);
    put_frame(&mut out, payload);
    out
}

fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The records of a file of frames. In the `newest` file a torn frame at
/// the end (a crash mid-write) is cut; any other damage is refused.
pub fn read_segment(path: &Path, newest: bool, out: &mut Vec<Record>) -> Result<(), StoreError> {
    let bytes = fs::read(path)?;
    let mut at = 0usize;
    while at < bytes.len() {
        // A crash can leave a zero-filled tail where the file grew but data did not land.
        let zero_tail = newest && bytes[at..].iter().all(|&b| b == 0);
        match frame_at(&bytes, at).map_err(|(d, end)| (d, end || zero_tail)) {
            Ok((payload, next)) => {
                if zero_tail {
                    return cut_tail(path, at, "zero-filled tail");
                }
                let record =
                    Record::decode(payload).map_err(|e| corrupt(path, at, e.to_string()))?;
                out.push(record);
                at = next;
            }
            Err((detail, at_end)) if newest && at_end => return cut_tail(path, at, detail),
            Err((detail, _)) => return Err(corrupt(path, at, detail.to_string())),
        }
    }
    Ok(())
}

fn cut_tail(path: &Path, at: usize, detail: &str) -> Result<(), StoreError> {
    tracing::warn!(file = %path.display(), offset = at, "cutting a torn tail ({detail}): a write a crash interrupted, never acknowledged or committed");
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(at as u64)?;
    Ok(())
}

/// The frame at `at` and where the next starts, or what is wrong with it and
/// whether the damage reaches the end of the file (as a torn write does).
pub fn frame_at(bytes: &[u8], at: usize) -> Result<(&[u8], usize), (&'static str, bool)> {
    let header = bytes
        .get(at..at + FRAME_HEADER)
        .ok_or(("truncated frame header", true))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_FRAME {
        return Err(("frame length out of range", false));
    }
    let start = at + FRAME_HEADER;
    let payload = bytes
        .get(start..start + len)
        .ok_or(("truncated frame", true))?;
    if crc32fast::hash(payload) != crc {
        return Err(("checksum mismatch", start + len == bytes.len()));
    }
    Ok((payload, start + len))
}

fn corrupt(path: &Path, offset: usize, detail: String) -> StoreError {
    StoreError::Corrupt {
        file: path.to_path_buf(),
        offset: offset as u64,
        detail,
        remedy: "Restore the data directory from a backup, or move this file out of the wal directory to start without the points it holds".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::record::BatchEntry;

    fn rec(n: u64) -> Vec<u8> {
        let r = Record {
            batch: Some(BatchEntry {
                key: n as u128,
                ts: 0.0,
                accepted: n,
            }),
            ..Default::default()
        };
        let mut buf = Vec::new();
        r.encode(&mut buf);
        buf
    }

    #[test]
    fn replays_across_segments_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, recs) = Wal::open(dir.path(), 0).unwrap();
            assert!(recs.is_empty());
            wal.append(&[&rec(1), &rec(2)], true).unwrap();
            wal.rotate().unwrap();
            wal.append(&[&rec(3)], false).unwrap();
        }
        // A crash mid-write: half a frame at the end of the newest segment.
        let newest = segment_path(dir.path(), 2);
        let mut f = OpenOptions::new().append(true).open(&newest).unwrap();
        f.write_all(&rec(4)[..5]).unwrap();
        drop(f);
        let (_wal, recs) = Wal::open(dir.path(), 0).unwrap();
        let got: Vec<u64> = recs
            .iter()
            .map(|r| r.batch.as_ref().unwrap().accepted)
            .collect();
        assert_eq!(got, vec![1, 2, 3]);
        // The torn tail was cut, so the segment is now whole and not "newest".
        let (_wal, recs) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(recs.len(), 3);
    }

    /// The writer times its sync from the oldest unsynced write: later
    /// writes do not push it back.
    #[test]
    fn unsynced_since_is_the_oldest_write_since_the_last_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(wal.unsynced_since(), None);
        wal.append(&[&rec(1)], false).unwrap();
        let first = wal.unsynced_since().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        wal.append(&[&rec(2)], false).unwrap();
        assert_eq!(wal.unsynced_since(), Some(first));
        wal.sync().unwrap();
        assert_eq!(wal.unsynced_since(), None);
        wal.append(&[&rec(3)], false).unwrap();
        assert!(wal.unsynced_since().unwrap() > first);
    }

    #[test]
    fn unsynced_frames_are_tracked_until_a_sync_or_a_synced_append() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
        assert!(wal.unsynced_since().is_none());
        wal.append(&[&rec(1)], false).unwrap();
        assert!(wal.unsynced_since().is_some());
        wal.sync().unwrap();
        assert!(wal.unsynced_since().is_none());
        wal.append(&[&rec(2)], false).unwrap();
        wal.append(&[&rec(3)], true).unwrap();
        assert!(
            wal.unsynced_since().is_none(),
            "a synced append syncs the frames before it"
        );
        wal.append(&[&rec(4)], false).unwrap();
        wal.rotate().unwrap();
        assert!(wal.unsynced_since().is_none(), "a sealed segment is synced");
        drop(wal);
        // Unsynced or not, every frame is in the files (as after kill -9).
        let (_wal, recs) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(recs.len(), 4);
    }

    #[test]
    fn flipped_byte_in_sealed_segment_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
            wal.append(&[&rec(1), &rec(2)], true).unwrap();
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        match Wal::open(dir.path(), 0) {
            Err(StoreError::Corrupt { file, offset, .. }) => {
                assert_eq!(file, path);
                assert_eq!(offset, 0);
            }
            other => panic!("expected corruption, got {:?}", other.map(|_| ())),
        }
    }
}

#[cfg(test)]
mod applied_tests {
    use super::*;
    use crate::embedded::record::BatchEntry;

    #[test]
    fn segments_already_in_the_database_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |n: u64| {
            let mut buf = Vec::new();
            Record {
                batch: Some(BatchEntry {
                    key: n as u128,
                    ts: 0.0,
                    accepted: n,
                }),
                ..Default::default()
            }
            .encode(&mut buf);
            buf
        };
        {
            let (mut wal, _) = Wal::open(dir.path(), 0).unwrap();
            wal.append(&[&rec(1)], true).unwrap();
            wal.rotate().unwrap();
            wal.append(&[&rec(2)], false).unwrap();
        }
        // Segment 1 was checkpointed; the crash came before its deletion.
        let (wal, recs) = Wal::open(dir.path(), 1).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].batch.as_ref().unwrap().accepted, 2);
        assert_eq!(wal.seq, 3);
        assert!(!segment_path(dir.path(), 1).exists());
    }
}
