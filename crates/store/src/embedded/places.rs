//! Where every stored block is, and each series' newest minute: held in
//! memory and kept in a log file beside the block files
//! (`blocks/N.places`), so redb holds none of it.
//!
//! redb held these as one row per block: 40,000 rows for a day of 10,000
//! series, in pages about half full of a file that grows by doubling
//! (6.2 MB after a clean stop for 0.8 MB of rows). Here a checkpoint
//! appends what it changed as one deflated frame and syncs it; the redb
//! commit then records the log's new length (`places_len` in `meta`), and
//! that commit is what makes the frame count. Bytes past the recorded
//! length (a checkpoint that never committed) are ignored at open and
//! overwritten by the next append. Once the changes outgrow the snapshot
//! the file began with, a checkpoint writes a new file instead: a snapshot
//! of everything, named in the same way by its commit (`places_file`).

use super::block_files::BlockRef;
use super::wal;
use crate::codec::varint::{put_ivarint, put_uvarint, Reader};
use crate::StoreError;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// First bytes of a places file.
pub const MAGIC: &[u8; 8] = b"MNTPLCS1";
/// Version byte at the start of every frame's payload.
const VERSION: u8 = 1;
/// Frame kinds: the changes of one commit, or part of a snapshot.
const KIND_CHANGES: u8 = 0;
const KIND_SNAPSHOT: u8 = 1;
/// Series per snapshot frame, so that no frame nears the log's frame limit.
const SERIES_PER_FRAME: usize = 1 << 16;
/// A frame's payload inflates to at most this.
const MAX_INFLATED: usize = 1 << 30;
/// Changes are appended until they exceed the snapshot by this much.
const MIN_LOG_GROWTH: u64 = 1 << 20;

/// A block: resolution code, block number, place.
pub type Entry = (u8, u32, BlockRef);

/// One series' stored blocks, sorted by resolution and number, and the
/// start of its newest minute with data: as a transaction edits it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesPlaces {
    pub last_seen: Option<i64>,
    pub blocks: Vec<Entry>,
}

/// One series' committed places, as readers see them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesRef<'a> {
    pub last_seen: Option<i64>,
    pub blocks: &'a [Entry],
}

fn find(blocks: &[Entry], res: u8, block: u32) -> Result<usize, usize> {
    blocks.binary_search_by_key(&(res, block), |&(r, b, _)| (r, b))
}

/// Blocks of `res` numbered `first..=last`.
fn range(blocks: &[Entry], res: u8, first: u32, last: u32) -> &[Entry] {
    let lo = find(blocks, res, first).unwrap_or_else(|i| i);
    let hi = find(blocks, res, last)
        .map(|i| i + 1)
        .unwrap_or_else(|i| i)
        .max(lo);
    &blocks[lo..hi]
}

impl SeriesRef<'_> {
    pub fn get(&self, res: u8, block: u32) -> Option<BlockRef> {
        find(self.blocks, res, block).ok().map(|i| self.blocks[i].2)
    }

    /// Blocks of `res` numbered `first..=last`.
    pub fn range(&self, res: u8, first: u32, last: u32) -> &[Entry] {
        range(self.blocks, res, first, last)
    }

    pub fn to_owned(self) -> SeriesPlaces {
        SeriesPlaces {
            last_seen: self.last_seen,
            blocks: self.blocks.to_vec(),
        }
    }
}

impl SeriesPlaces {
    pub fn as_ref(&self) -> SeriesRef<'_> {
        SeriesRef {
            last_seen: self.last_seen,
            blocks: &self.blocks,
        }
    }

    /// Sets a block's place; the place it replaces, if any.
    pub fn set(&mut self, res: u8, block: u32, place: BlockRef) -> Option<BlockRef> {
        match find(&self.blocks, res, block) {
            Ok(i) => Some(std::mem::replace(&mut self.blocks[i].2, place)),
            Err(i) => {
                self.blocks.insert(i, (res, block, place));
                None
            }
        }
    }

    /// Removes the blocks of `res` numbered below `block`; their places.
    pub fn remove_before(&mut self, res: u8, block: u32) -> Vec<BlockRef> {
        let lo = find(&self.blocks, res, 0).unwrap_or_else(|i| i);
        let hi = find(&self.blocks, res, block).unwrap_or_else(|i| i).max(lo);
        self.blocks.drain(lo..hi).map(|(_, _, p)| p).collect()
    }

    pub fn note_seen(&mut self, minute: i64) {
        self.last_seen = Some(self.last_seen.map_or(minute, |o| o.max(minute)));
    }
}

/// Series ids per chunk, as a power of two.
const CHUNK_BITS: u32 = 6;

/// The places of up to 64 neighbouring series in two flat vectors: a
/// series costs its blocks and 24 bytes, not allocations of its own.
#[derive(Debug, Default)]
struct Chunk {
    /// Series in id order, each with where its blocks end in `blocks`.
    series: Vec<ChunkSeries>,
    blocks: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct ChunkSeries {
    sid: u64,
    /// `i64::MIN`: none.
    last_seen: i64,
    end: u32,
}

impl Chunk {
    fn series(&self) -> impl Iterator<Item = (u64, SeriesRef<'_>)> {
        let mut start = 0;
        self.series.iter().map(move |s| {
            let blocks = &self.blocks[start as usize..s.end as usize];
            start = s.end;
            (
                s.sid,
                SeriesRef {
                    last_seen: (s.last_seen != i64::MIN).then_some(s.last_seen),
                    blocks,
                },
            )
        })
    }

    fn get(&self, sid: u64) -> Option<SeriesRef<'_>> {
        let i = self.series.binary_search_by_key(&sid, |s| s.sid).ok()?;
        let start = if i == 0 { 0 } else { self.series[i - 1].end };
        let s = self.series[i];
        Some(SeriesRef {
            last_seen: (s.last_seen != i64::MIN).then_some(s.last_seen),
            blocks: &self.blocks[start as usize..s.end as usize],
        })
    }

    fn push(&mut self, sid: u64, s: SeriesRef<'_>) {
        if s.last_seen.is_none() && s.blocks.is_empty() {
            return;
        }
        self.blocks.extend_from_slice(s.blocks);
        self.series.push(ChunkSeries {
            sid,
            last_seen: s.last_seen.unwrap_or(i64::MIN),
            end: self.blocks.len() as u32,
        });
    }
}

/// The committed places of every series, by series id. Cloning is cheap
/// (readers take one under the gate); a commit rebuilds the chunks it
/// changes, and copies the map of chunks only while readers hold it.
#[derive(Debug, Clone, Default)]
pub struct Places(Arc<BTreeMap<u64, Arc<Chunk>>>);

impl Places {
    pub fn get(&self, sid: u64) -> Option<SeriesRef<'_>> {
        self.0.get(&(sid >> CHUNK_BITS))?.get(sid)
    }

    /// Series ids with anything stored, and what they have, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, SeriesRef<'_>)> {
        self.0.values().flat_map(|c| c.series())
    }

    /// Every block, in key order.
    pub fn blocks(&self) -> impl Iterator<Item = ((u64, u8, u32), BlockRef)> + '_ {
        self.iter().flat_map(|(sid, s)| {
            s.blocks
                .iter()
                .map(move |&(res, block, place)| ((sid, res, block), place))
        })
    }

    /// Replaces the state of each series `changes` names.
    pub fn apply(&mut self, changes: BTreeMap<u64, SeriesPlaces>) {
        if changes.is_empty() {
            return;
        }
        let all = Arc::make_mut(&mut self.0);
        let mut changes = changes.into_iter().peekable();
        while let Some(&(sid, _)) = changes.peek() {
            let key = sid >> CHUNK_BITS;
            let mut new: Vec<(u64, SeriesPlaces)> = Vec::new();
            while let Some(c) = changes.next_if(|(sid, _)| sid >> CHUNK_BITS == key) {
                new.push(c);
            }
            let old = all.remove(&key);
            let mut chunk = Chunk::default();
            let mut new = new.into_iter().peekable();
            for (sid, s) in old.iter().flat_map(|c| c.series()) {
                while let Some((n, ns)) = new.next_if(|(n, _)| *n < sid) {
                    chunk.push(n, ns.as_ref());
                }
                match new.next_if(|(n, _)| *n == sid) {
                    Some((n, ns)) => chunk.push(n, ns.as_ref()),
                    None => chunk.push(sid, s),
                }
            }
            for (n, ns) in new {
                chunk.push(n, ns.as_ref());
            }
            if !chunk.series.is_empty() {
                chunk.series.shrink_to_fit();
                chunk.blocks.shrink_to_fit();
                all.insert(key, Arc::new(chunk));
            }
        }
    }
}

/// The places file being appended to, and where its committed part ends.
pub struct PlacesLog {
    dir: PathBuf,
    id: u64,
    file: File,
    committed: u64,
    /// Where the snapshot the file began with ends.
    snapshot_end: u64,
}

/// What a commit must record (`places_file`, `places_len`) to make a
/// prepared write count.
pub struct PreparedLog {
    pub id: u64,
    pub len: u64,
    /// A new file: the snapshot, and where it ends.
    new: Option<(File, u64)>,
}

/// File name of places file `id`.
pub fn file_name(id: u64) -> String {
    format!("{id:016}.places")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".places")?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl PlacesLog {
    /// Reads the committed part of file `id` (`len` bytes) in `dir` and
    /// deletes every other places file (written by a rewrite that never
    /// committed, or replaced by one that did).
    pub fn open(dir: &Path, id: u64, len: u64) -> Result<(PlacesLog, Places), StoreError> {
        let path = dir.join(file_name(id));
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => corrupt(
                    &path,
                    0,
                    "the database names this file of block places, which is missing".into(),
                ),
                _ => StoreError::from_io(e),
            })?;
        let (places, snapshot_end) = read_committed(&path, &file, len)?;
        // What an uncommitted append left after the committed part.
        file.set_len(len).map_err(StoreError::from_io)?;
        delete_others(dir, id)?;
        let log = PlacesLog {
            dir: dir.to_path_buf(),
            id,
            file,
            committed: len,
            snapshot_end,
        };
        Ok((log, places))
    }

    /// Writes an empty file `id`, for a directory that has none yet; it
    /// counts once a commit records it.
    pub fn create(dir: &Path, id: u64) -> Result<(PlacesLog, PreparedLog), StoreError> {
        delete_others(dir, u64::MAX)?;
        let (file, len) = write_snapshot(dir, id, &Places::default())?;
        let log = PlacesLog {
            dir: dir.to_path_buf(),
            id,
            file: file.try_clone().map_err(StoreError::from_io)?,
            committed: 0,
            snapshot_end: 0,
        };
        Ok((
            log,
            PreparedLog {
                id,
                len,
                new: Some((file, len)),
            },
        ))
    }

    /// Makes `changes` (applied to `base`) durable, uncommitted: appended
    /// to this file, or, when the file has grown past its snapshot or
    /// `compact` asks for it, as a snapshot in a new file `next_id`.
    pub fn prepare(
        &mut self,
        base: &Places,
        changes: &BTreeMap<u64, SeriesPlaces>,
        compact: bool,
        next_id: impl FnOnce() -> u64,
    ) -> Result<PreparedLog, StoreError> {
        let grown = self.committed - self.snapshot_end;
        let rewrite = (compact && grown > 0) || grown > (self.snapshot_end).max(MIN_LOG_GROWTH);
        if rewrite {
            let mut after = base.clone();
            after.apply(changes.clone());
            let id = next_id();
            let (file, len) = write_snapshot(&self.dir, id, &after)?;
            return Ok(PreparedLog {
                id,
                len,
                new: Some((file, len)),
            });
        }
        if changes.is_empty() {
            return Ok(PreparedLog {
                id: self.id,
                len: self.committed,
                new: None,
            });
        }
        let frame = wal::frame(&encode(
            KIND_CHANGES,
            changes.iter().map(|(&k, v)| (k, v.as_ref())),
        ));
        // At the committed end: what an uncommitted try left there goes.
        self.file
            .write_all_at(&frame, self.committed)
            .and_then(|_| self.file.sync_data())
            .map_err(StoreError::from_io)?;
        Ok(PreparedLog {
            id: self.id,
            len: self.committed + frame.len() as u64,
            new: None,
        })
    }

    /// After the commit that recorded `done`: the file and length it named
    /// are this log's now; a replaced file is deleted.
    pub fn committed(&mut self, done: PreparedLog) {
        if let Some((file, end)) = done.new {
            let old = std::mem::replace(&mut self.id, done.id);
            self.file = file;
            self.snapshot_end = end;
            if old != done.id {
                let path = self.dir.join(file_name(old));
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!("deleting replaced places file {}: {e}", path.display());
                }
            }
        }
        self.committed = done.len;
    }

    /// A prepared write whose commit failed: a new file goes.
    pub fn abandoned(&self, done: PreparedLog) {
        if done.new.is_some() && done.id != self.id {
            let _ = std::fs::remove_file(self.dir.join(file_name(done.id)));
        }
    }
}

/// The places of a stopped data directory's committed log, for tools.
pub fn read_file(dir: &Path, id: u64, len: u64) -> Result<Places, StoreError> {
    let path = dir.join(file_name(id));
    let file = File::open(&path).map_err(StoreError::from_io)?;
    Ok(read_committed(&path, &file, len)?.0)
}

fn delete_others(dir: &Path, keep: u64) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_name) {
            if id != keep {
                std::fs::remove_file(entry.path()).map_err(StoreError::from_io)?;
            }
        }
    }
    Ok(())
}

/// Writes and syncs (file and directory) a new file holding `places`.
fn write_snapshot(dir: &Path, id: u64, places: &Places) -> Result<(File, u64), StoreError> {
    let path = dir.join(file_name(id));
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(StoreError::from_io)?;
    let mut bytes = MAGIC.to_vec();
    let all: Vec<(u64, SeriesRef<'_>)> = places.iter().collect();
    for chunk in all.chunks(SERIES_PER_FRAME) {
        bytes.extend(wal::frame(&encode(KIND_SNAPSHOT, chunk.iter().copied())));
    }
    if all.is_empty() {
        bytes.extend(wal::frame(&encode(KIND_SNAPSHOT, std::iter::empty())));
    }
    let written = file
        .write_all_at(&bytes, 0)
        .and_then(|_| file.sync_data())
        .and_then(|_| File::open(dir)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(StoreError::from_io(e));
    }
    Ok((file, bytes.len() as u64))
}

fn read_committed(path: &Path, file: &File, len: u64) -> Result<(Places, u64), StoreError> {
    let size = file.metadata().map_err(StoreError::from_io)?.len();
    if size < len || len < MAGIC.len() as u64 {
        return Err(corrupt(
            path,
            size,
            format!("the file is {size} bytes long; the database says {len} are committed"),
        ));
    }
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(StoreError::from_io)?;
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(path, 0, "not a places file (wrong magic)".into()));
    }
    let mut places = Places::default();
    // Applied a few hundred series at a time: the decoded copies are
    // short-lived and reuse the same memory.
    let mut pending: BTreeMap<u64, SeriesPlaces> = BTreeMap::new();
    let mut at = MAGIC.len();
    let mut snapshot_end = at as u64;
    while at < bytes.len() {
        let (payload, next) =
            wal::frame_at(&bytes, at).map_err(|(d, _)| corrupt(path, at as u64, d.into()))?;
        let kind = decode_each(payload, |sid, s| {
            pending.insert(sid, s);
            if pending.len() >= 512 {
                places.apply(std::mem::take(&mut pending));
            }
        })
        .map_err(|d| corrupt(path, at as u64, d))?;
        at = next;
        if kind == KIND_SNAPSHOT {
            snapshot_end = at as u64;
        }
    }
    places.apply(pending);
    Ok((places, snapshot_end))
}

fn corrupt(path: &Path, offset: u64, detail: String) -> StoreError {
    StoreError::Corrupt {
        file: path.to_path_buf(),
        offset,
        detail,
        remedy: "Restore the data directory from a backup (minutely backup)".into(),
    }
}

/// A frame's payload: version, kind, then deflated: the number of
/// series, and per series its id (delta from the previous), newest minute
/// (0 for none, else 1 + zigzag delta from the previous series' one), and
/// its blocks (resolution, number, file, offset, length). A frame carries
/// each series' whole state, so replaying frames in order is replacing.
fn encode<'a>(kind: u8, series: impl Iterator<Item = (u64, SeriesRef<'a>)>) -> Vec<u8> {
    let series: Vec<_> = series.collect();
    let mut raw = Vec::with_capacity(16 + series.len() * 40);
    put_uvarint(&mut raw, series.len() as u64);
    let (mut prev_sid, mut prev_seen) = (0u64, 0i64);
    for (sid, s) in series {
        put_uvarint(&mut raw, sid.wrapping_sub(prev_sid));
        prev_sid = sid;
        match s.last_seen {
            None => put_uvarint(&mut raw, 0),
            Some(t) => {
                put_uvarint(
                    &mut raw,
                    1 + crate::codec::varint::zigzag(t.wrapping_sub(prev_seen)),
                );
                prev_seen = t;
            }
        }
        put_uvarint(&mut raw, s.blocks.len() as u64);
        let mut end = (0u64, 0u64);
        for &(res, block, place) in s.blocks {
            raw.push(res);
            put_uvarint(&mut raw, u64::from(block));
            put_uvarint(&mut raw, place.file);
            // Blocks written together sit one after another in a file.
            let from = if place.file == end.0 { end.1 } else { 0 };
            put_ivarint(&mut raw, place.offset.wrapping_sub(from) as i64);
            put_uvarint(&mut raw, u64::from(place.len));
            end = (place.file, place.offset + u64::from(place.len));
        }
    }
    let mut out = vec![VERSION, kind];
    put_uvarint(&mut out, raw.len() as u64);
    out.extend(crate::codec::deflate_dense(&raw));
    out
}

#[cfg(test)]
fn decode(payload: &[u8]) -> Result<(u8, Vec<(u64, SeriesPlaces)>), String> {
    let mut out = Vec::new();
    let kind = decode_each(payload, |sid, s| out.push((sid, s)))?;
    Ok((kind, out))
}

/// Decodes a frame's payload, handing each series to `f` in order; its kind.
fn decode_each(payload: &[u8], mut f: impl FnMut(u64, SeriesPlaces)) -> Result<u8, String> {
    let bad = |e: crate::codec::CodecError| e.to_string();
    let mut r = Reader::new(payload);
    let version = r.u8("places version").map_err(bad)?;
    if version != VERSION {
        return Err(format!(
            "places frame of version {version}, which this build cannot read"
        ));
    }
    let kind = r.u8("places kind").map_err(bad)?;
    if kind != KIND_CHANGES && kind != KIND_SNAPSHOT {
        return Err(format!("unknown places frame kind {kind}"));
    }
    let n = r.uvarint("places length").map_err(bad)?;
    let deflated = &payload[payload.len() - r.remaining()..];
    let raw =
        crate::codec::inflate_exact(deflated, n.try_into().unwrap_or(usize::MAX), MAX_INFLATED)
            .map_err(|e| format!("places frame: {e}"))?;
    let mut r = Reader::new(&raw);
    let count = r.uvarint("series count").map_err(bad)?;
    let (mut sid, mut seen) = (0u64, 0i64);
    for _ in 0..count {
        sid = sid.wrapping_add(r.uvarint("series id").map_err(bad)?);
        let s = r.uvarint("last seen").map_err(bad)?;
        let last_seen = if s == 0 {
            None
        } else {
            seen = seen.wrapping_add(crate::codec::varint::unzigzag(s - 1));
            Some(seen)
        };
        let blocks = r.uvarint("block count").map_err(bad)?;
        let mut s = SeriesPlaces {
            last_seen,
            blocks: Vec::with_capacity((blocks as usize).min(r.remaining())),
        };
        let mut end = (0u64, 0u64);
        for _ in 0..blocks {
            let res = r.u8("resolution").map_err(bad)?;
            let block = u32::try_from(r.uvarint("block").map_err(bad)?)
                .map_err(|_| "block number out of range".to_string())?;
            let file = r.uvarint("file").map_err(bad)?;
            let from = if file == end.0 { end.1 } else { 0 };
            let offset = from.wrapping_add(r.ivarint("offset").map_err(bad)? as u64);
            let len = u32::try_from(r.uvarint("length").map_err(bad)?)
                .map_err(|_| "block length out of range".to_string())?;
            end = (file, offset.wrapping_add(u64::from(len)));
            if s.blocks
                .last()
                .is_some_and(|&(r0, b0, _)| (r0, b0) >= (res, block))
            {
                return Err(format!("series {sid}: blocks out of order"));
            }
            s.blocks.push((res, block, BlockRef { file, offset, len }));
        }
        f(sid, s);
    }
    if r.remaining() != 0 {
        return Err("bytes after the last series".into());
    }
    Ok(kind)
}

#[cfg(test)]
mod tests;
