//! Encoded blocks in append-only files beside the database.
//!
//! Blocks are most of the stored bytes, and in redb they cost more than
//! themselves: its 4 KiB copy-on-write pages hold a day block of 1-2 KB
//! at about 70%, and its file grows by doubling. A checkpoint instead
//! appends the blocks it writes to a new *block file* (`blocks/N.blk`),
//! syncs it, and commits the blocks' places (in the places log) with the
//! same redb transaction as the rest. Block files are never changed after
//! that: a rewritten block leaves dead bytes behind, counted per file in
//! the `block_files` table; a checkpoint copies the live blocks out of
//! files that are mostly dead (or small) into its own and deletes them
//! once committed.
//!
//! Readers take the set of open files with the places of the same commit
//! (one reference, under the store's gate); a file deleted after that
//! stays readable through the descriptor the set holds. The places live
//! in memory and in a log file beside the block files (`places.rs`).

use super::places::{Places, PlacesLog, PreparedLog, SeriesPlaces, SeriesRef};
use super::tables::{engine, BLOCKS, BLOCK_FILES, LAST_SEEN, META, PLACES_FILE, PLACES_LEN};
use crate::StoreError;
use redb::{ReadableTable, WriteTransaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Directory of the block files inside the data directory.
pub const DIR: &str = "blocks";
/// First bytes of every block file.
pub const MAGIC: &[u8; 8] = b"MNTBLKS1";
/// First byte of a `blocks` value of format versions 2 and 3 that is a
/// place in a block file rather than the block itself (whose first byte is
/// its version, 1).
pub const REF_TAG: u8 = 0x80;
/// Longest such place: the tag and three LEB128 numbers.
pub const MAX_REF_LEN: usize = 1 + 10 + 10 + 5;
/// Length of a [`Stored::identity`]: store nonce, file, offset, length.
const IDENTITY_LEN: usize = 8 + 8 + 8 + 4;

/// Buffered bytes of a file being written before they go to the kernel.
const WRITE_BUFFER: usize = 1 << 20;

/// A block's place: file, offset of its first byte, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub file: u64,
    pub offset: u64,
    pub len: u32,
}

/// A place as format versions 2 and 3 stored it in `blocks`: the tag,
/// then file, offset and length as unsigned LEB128 (7 to 11 bytes for a
/// day block). Read when such a directory is upgraded; written by tests.
#[cfg(test)]
#[derive(Clone, Copy)]
pub struct EncodedRef {
    bytes: [u8; MAX_REF_LEN],
    len: u8,
}

#[cfg(test)]
impl EncodedRef {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl BlockRef {
    #[cfg(test)]
    pub fn encode(&self) -> EncodedRef {
        let mut out = EncodedRef {
            bytes: [0; MAX_REF_LEN],
            len: 1,
        };
        out.bytes[0] = REF_TAG;
        for mut v in [self.file, self.offset, u64::from(self.len)] {
            loop {
                let byte = (v & 0x7F) as u8;
                v >>= 7;
                out.bytes[usize::from(out.len)] = byte | if v == 0 { 0 } else { 0x80 };
                out.len += 1;
                if v == 0 {
                    break;
                }
            }
        }
        out
    }

    /// The place a `blocks` value of format versions 2 and 3 names, if it
    /// names one (the tag and three numbers, nothing after).
    pub fn decode(value: &[u8]) -> Option<BlockRef> {
        let (&tag, mut rest) = value.split_first()?;
        // Also bounds what a damaged value can make a reader copy.
        if tag != REF_TAG || value.len() > MAX_REF_LEN {
            return None;
        }
        let mut next = || -> Option<u64> {
            let mut v = 0u64;
            for (i, &b) in rest.iter().enumerate().take(10) {
                v |= u64::from(b & 0x7F).checked_shl(7 * i as u32)?;
                if b & 0x80 == 0 {
                    rest = &rest[i + 1..];
                    return Some(v);
                }
            }
            None
        };
        let (file, offset, len) = (next()?, next()?, next()?);
        if !rest.is_empty() {
            return None;
        }
        Some(BlockRef {
            file,
            offset,
            len: u32::try_from(len).ok()?,
        })
    }
}

/// File name of block file `id`.
pub fn file_name(id: u64) -> String {
    format!("{id:016}.blk")
}

/// The id of a block file's name, if it is one.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".blk")?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// A stored block: its key (series, resolution, number), its block file
/// and its place there.
pub type StoredBlock = ((u64, u8, u32), PathBuf, BlockRef);

/// The places file the last commit named and its committed length, if
/// the directory has one (format version 4 on).
fn places_at(txn: &redb::ReadTransaction) -> Result<Option<(u64, u64)>, StoreError> {
    let meta = txn.open_table(META).map_err(engine)?;
    let get = |k| -> Result<Option<u64>, StoreError> {
        Ok(meta.get(k).map_err(engine)?.map(|v| v.value()))
    };
    Ok(match (get(PLACES_FILE)?, get(PLACES_LEN)?) {
        (Some(id), Some(len)) => Some((id, len)),
        _ => None,
    })
}

/// Every block of a stopped data directory, with where it is: for tools
/// that read a data directory without opening the store.
pub fn stored_blocks(data_dir: &Path) -> Result<Vec<StoredBlock>, StoreError> {
    let db = redb::Database::open(data_dir.join("minutely.redb")).map_err(engine)?;
    let txn = db.begin_read().map_err(engine)?;
    let (id, len) = places_at(&txn)?.ok_or_else(|| {
        StoreError::Engine("no places file named: open the directory with this build first".into())
    })?;
    let dir = data_dir.join(DIR);
    let places = super::places::read_file(&dir, id, len)?;
    Ok(places
        .blocks()
        .map(|(key, place)| (key, dir.join(file_name(place.file)), place))
        .collect())
}

/// The encoded block at `place` of the block file at `path`.
pub fn read_block(path: &Path, place: BlockRef) -> std::io::Result<Vec<u8>> {
    read_at(&File::open(path)?, place)
}

/// The bytes at `place` of `file`.
fn read_at(file: &File, place: BlockRef) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; place.len as usize];
    file.read_exact_at(&mut buf, place.offset)?;
    Ok(buf)
}

/// The block files of one committed state, open, and where its blocks are.
pub struct FileSet {
    dir: PathBuf,
    /// Tells this store's files from another's in the process-wide block
    /// cache (ids restart in every data directory).
    nonce: u64,
    files: HashMap<u64, Arc<File>>,
    places: Places,
}

impl FileSet {
    /// A block at `place`, as a read meets it.
    pub fn stored(&self, place: BlockRef) -> Stored {
        let mut identity = [0; IDENTITY_LEN];
        identity[..8].copy_from_slice(&self.nonce.to_le_bytes());
        identity[8..16].copy_from_slice(&place.file.to_le_bytes());
        identity[16..24].copy_from_slice(&place.offset.to_le_bytes());
        identity[24..].copy_from_slice(&place.len.to_le_bytes());
        Stored { place, identity }
    }

    /// Where every committed block is.
    pub fn places(&self) -> &Places {
        &self.places
    }

    /// The ids of the files in the set.
    #[cfg(test)]
    pub fn ids(&self) -> std::collections::BTreeSet<u64> {
        self.files.keys().copied().collect()
    }

    /// Where block file `id` is.
    pub fn path(&self, id: u64) -> PathBuf {
        self.dir.join(file_name(id))
    }

    /// The bytes of the block at `place`.
    pub fn read(&self, place: BlockRef) -> Result<Vec<u8>, StoreError> {
        let path = self.path(place.file);
        let file = self
            .files
            .get(&place.file)
            .ok_or_else(|| StoreError::Corrupt {
                file: path.clone(),
                offset: place.offset,
                detail: "the places file names a block file that is not there".into(),
                remedy: "Restore the data directory from a backup (minutely backup)".into(),
            })?;
        read_at(file, place).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => StoreError::Corrupt {
                file: path,
                offset: place.offset,
                detail: format!(
                    "a block of {} bytes runs past the end of the file",
                    place.len
                ),
                remedy: "Restore the data directory from a backup (minutely backup)".into(),
            },
            _ => StoreError::from_io(e),
        })
    }
}

fn next_nonce() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A stored block as read: its place, and what identifies it.
pub struct Stored {
    pub place: BlockRef,
    identity: [u8; IDENTITY_LEN],
}

impl Stored {
    /// Bytes that change whenever the block does (the store and the
    /// place, which files never reuse): what the block cache checks its
    /// entries against.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// The encoded block.
    pub fn bytes(&self, files: &FileSet) -> Result<Vec<u8>, StoreError> {
        files.read(self.place)
    }
}

/// The block files of a data directory, and the log of where their
/// blocks are.
pub struct BlockFiles {
    dir: PathBuf,
    current: RwLock<Arc<FileSet>>,
    next_id: AtomicU64,
    log: Mutex<PlacesLog>,
}

impl BlockFiles {
    /// Opens the files and the places the database names and deletes
    /// block files it does not (written by a checkpoint that never
    /// committed). A directory of an older format, whose blocks redb kept
    /// (inline, or their places), has them moved out first.
    pub fn open(data_dir: &Path, db: &redb::Database) -> Result<BlockFiles, StoreError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(StoreError::from_io)?;
        let (named, log_at) = {
            let txn = db.begin_read().map_err(engine)?;
            let table = txn.open_table(BLOCK_FILES).map_err(engine)?;
            let mut ids = Vec::new();
            for entry in table.iter().map_err(engine)? {
                ids.push(entry.map_err(engine)?.0.value());
            }
            (ids, places_at(&txn)?)
        };
        let mut highest = named.iter().copied().max().unwrap_or(0);
        if let Some((id, _)) = log_at {
            highest = highest.max(id);
        }
        let keep: HashSet<u64> = named.iter().copied().collect();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            highest = highest.max(id);
            if !keep.contains(&id) {
                tracing::info!(
                    "deleting block file {id}, which the database does not name (left by a checkpoint that never committed, or dead before a crash)"
                );
                std::fs::remove_file(entry.path()).map_err(StoreError::from_io)?;
            }
        }
        let mut files = HashMap::with_capacity(named.len());
        for id in named {
            let path = dir.join(file_name(id));
            let file = File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::Corrupt {
                    file: path.clone(),
                    offset: 0,
                    detail: "the database names this block file, which is missing".into(),
                    remedy: "Restore the data directory from a backup (minutely backup); a data directory is copied whole, with its blocks/ directory".into(),
                },
                _ => StoreError::from_io(e),
            })?;
            files.insert(id, Arc::new(file));
        }
        let set = |places| {
            Arc::new(FileSet {
                dir: dir.clone(),
                nonce: next_nonce(),
                files: files.clone(),
                places,
            })
        };
        match log_at {
            Some((id, len)) => {
                let (log, places) = PlacesLog::open(&dir, id, len)?;
                Ok(BlockFiles {
                    current: RwLock::new(set(places)),
                    dir: dir.clone(),
                    next_id: AtomicU64::new(highest + 1),
                    log: Mutex::new(log),
                })
            }
            None => {
                // A new directory, or one whose blocks redb holds.
                let id = highest + 1;
                let (log, prepared) = PlacesLog::create(&dir, id)?;
                let owner = BlockFiles {
                    current: RwLock::new(set(Places::default())),
                    dir: dir.clone(),
                    next_id: AtomicU64::new(id + 1),
                    log: Mutex::new(log),
                };
                owner.adopt_tables(db, prepared)?;
                Ok(owner)
            }
        }
    }

    /// Moves what an older format kept in redb (the `blocks` rows, inline
    /// blocks or places, and `last_seen`) into the places log, writing
    /// inline blocks to a block file, in one commit that also empties
    /// those tables. `created` is the new, empty places file.
    fn adopt_tables(&self, db: &redb::Database, created: PreparedLog) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(engine)?;
        let mut writes = self.writes();
        let mut moved = 0u64;
        {
            let blocks = txn.open_table(BLOCKS).map_err(engine)?;
            for entry in blocks.iter().map_err(engine)? {
                let (k, v) = entry.map_err(engine)?;
                let (sid, res, block) = k.value();
                let place = match BlockRef::decode(v.value()) {
                    Some(place) => place,
                    None => writes.put(v.value())?,
                };
                writes.series_mut(sid).set(res, block, place);
                moved += 1;
            }
            let seen = txn.open_table(LAST_SEEN).map_err(engine)?;
            for entry in seen.iter().map_err(engine)? {
                let (k, v) = entry.map_err(engine)?;
                writes.series_mut(k.value()).note_seen(v.value());
            }
        }
        txn.delete_table(BLOCKS).map_err(engine)?;
        txn.delete_table(LAST_SEEN).map_err(engine)?;
        // The empty file just made takes the whole state as its first
        // changes, so the commit names it with them.
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .committed(created);
        let prepared = writes.prepare(&txn)?;
        txn.commit().map_err(engine)?;
        self.committed(prepared).delete_files();
        if moved > 0 {
            tracing::info!(blocks = moved, "moved the block places out of the database");
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files and places of the last commit (with the files of one
    /// being committed). Take it under the gate, with the head's minutes.
    pub fn snapshot(&self) -> Arc<FileSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Begins the block writes of one write transaction. Only one may be
    /// under way (the store's writer lock): its changes are made against
    /// the places of the last commit.
    pub fn writes(&self) -> BlockWrites<'_> {
        BlockWrites {
            owner: self,
            files: self.snapshot(),
            out: None,
            dead: HashMap::new(),
            collected: HashSet::new(),
            changes: BTreeMap::new(),
            compact_places: false,
        }
    }

    /// Changes the set of files or its places.
    fn update(&self, f: impl FnOnce(&mut HashMap<u64, Arc<File>>, &mut Places)) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut files = current.files.clone();
        // Taken rather than cloned when no reader holds the set: a change
        // of places then copies nothing it does not replace.
        let mut places = match Arc::get_mut(&mut current) {
            Some(set) => std::mem::take(&mut set.places),
            None => current.places.clone(),
        };
        f(&mut files, &mut places);
        *current = Arc::new(FileSet {
            dir: self.dir.clone(),
            nonce: current.nonce,
            files,
            places,
        });
    }

    /// After the commit of `done` (under the gate, so no reader takes the
    /// set between the commit and this): its places become the readers',
    /// files now wholly dead leave the set, and are deleted by
    /// [`Committed::delete_files`] outside it.
    pub fn committed(&self, mut done: Prepared<'_>) -> Committed {
        let changes = std::mem::take(&mut done.changes);
        let dead_files = std::mem::take(&mut done.dead_files);
        self.update(|files, places| {
            for id in &dead_files {
                files.remove(id);
            }
            places.apply(changes);
        });
        if let Some(log) = done.log.take() {
            self.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .committed(log);
        }
        Committed {
            dir: self.dir.clone(),
            dead_files,
        }
    }
}

/// A new block file being appended to.
struct Writer {
    id: u64,
    file: Arc<File>,
    buf: Vec<u8>,
    /// Bytes written, buffered included.
    len: u64,
}

impl Writer {
    fn append(&mut self, block: &[u8]) -> Result<BlockRef, StoreError> {
        let len = u32::try_from(block.len())
            .map_err(|_| StoreError::Engine("a block of 4 GiB or more".into()))?;
        let place = BlockRef {
            file: self.id,
            offset: self.len,
            len,
        };
        self.buf.extend_from_slice(block);
        self.len += u64::from(len);
        if self.buf.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(place)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        (&*self.file)
            .write_all(&self.buf)
            .map_err(StoreError::from_io)?;
        self.buf.clear();
        Ok(())
    }
}

/// What one write transaction does to blocks: new blocks go to a new
/// file; replaced and deleted ones are counted dead in theirs; the series
/// it touches get a new state of places.
pub struct BlockWrites<'a> {
    owner: &'a BlockFiles,
    /// The last commit's files and places.
    files: Arc<FileSet>,
    out: Option<Writer>,
    /// Bytes per file no longer referenced after this transaction.
    dead: HashMap<u64, u64>,
    /// Files whose live blocks this transaction copied out.
    collected: HashSet<u64>,
    /// The new state of each series this transaction touches.
    changes: BTreeMap<u64, SeriesPlaces>,
    /// Write the places as a new snapshot (a clean stop).
    compact_places: bool,
}

/// How eagerly a checkpoint copies live blocks out of old files.
#[derive(Debug, Clone, Copy)]
pub struct Collect {
    /// Files whose live bytes are below this share of their length.
    pub live_below: f64,
    /// Files shorter than this, whatever is live in them.
    pub smaller_than: u64,
    /// At most this many live bytes copied by one transaction.
    pub budget: u64,
    /// Rewrite the places log as one snapshot if it holds changes.
    pub compact_places: bool,
}

impl Collect {
    /// While running: a file's dead half, small files, 64 MiB at a time.
    pub const RUNNING: Collect = Collect {
        live_below: 0.5,
        smaller_than: 1 << 20,
        budget: 64 << 20,
        compact_places: false,
    };
    /// At a clean stop, when time matters less than the disk left behind.
    pub const STOPPING: Collect = Collect {
        live_below: 0.9,
        smaller_than: 1 << 20,
        budget: 1 << 30,
        compact_places: true,
    };
}

impl Drop for BlockWrites<'_> {
    /// A file never prepared for a commit is named by no transaction:
    /// it goes (a full disk should not keep a half-written file).
    fn drop(&mut self) {
        if let Some(w) = self.out.take() {
            self.owner.update(|files, _| {
                files.remove(&w.id);
            });
            let _ = std::fs::remove_file(self.owner.dir.join(file_name(w.id)));
        }
    }
}

impl<'a> BlockWrites<'a> {
    /// Where block file `id` is, for error messages.
    pub fn path(&self, id: u64) -> PathBuf {
        self.files.path(id)
    }

    /// A series' places as this transaction has them so far.
    fn current(&self, sid: u64) -> Option<SeriesRef<'_>> {
        match self.changes.get(&sid) {
            Some(s) => Some(s.as_ref()),
            None => self.files.places().get(sid),
        }
    }

    /// Where a block is, as this transaction has it so far.
    pub fn place(&self, sid: u64, res: u8, block: u32) -> Option<BlockRef> {
        self.current(sid)?.get(res, block)
    }

    /// The series' state in this transaction, copied from the last commit
    /// at the first change.
    pub fn series_mut(&mut self, sid: u64) -> &mut SeriesPlaces {
        let files = &self.files;
        self.changes.entry(sid).or_insert_with(|| {
            files
                .places()
                .get(sid)
                .map(|s| s.to_owned())
                .unwrap_or_default()
        })
    }

    /// Names `place` as the block's; the block it replaces is dead.
    pub fn set_place(&mut self, sid: u64, res: u8, block: u32, place: BlockRef) {
        if let Some(old) = self.series_mut(sid).set(res, block, place) {
            self.release_place(old);
        }
    }

    /// Removes the series' blocks of `res` numbered below `block`.
    pub fn drop_before(&mut self, sid: u64, res: u8, block: u32) {
        // Only a series with such blocks is copied into the changes.
        let any = block > 0
            && self
                .current(sid)
                .is_some_and(|s| !s.range(res, 0, block - 1).is_empty());
        if any {
            for place in self.series_mut(sid).remove_before(res, block) {
                self.release_place(place);
            }
        }
    }

    /// Records that the series has data in the minute starting at `minute`.
    pub fn note_seen(&mut self, sid: u64, minute: i64) {
        self.series_mut(sid).note_seen(minute);
    }

    /// The encoded block at `place` (in this transaction's file, or in
    /// one of the last commit).
    pub fn block(&mut self, place: BlockRef) -> Result<Vec<u8>, StoreError> {
        if let Some(out) = self.out.as_mut().filter(|w| w.id == place.file) {
            out.flush()?;
            return read_at(&out.file, place).map_err(StoreError::from_io);
        }
        self.files.read(place)
    }

    /// Appends `block` to this transaction's file; its place.
    pub fn put(&mut self, block: &[u8]) -> Result<BlockRef, StoreError> {
        if self.out.is_none() {
            let id = self.owner.next_id.fetch_add(1, Ordering::Relaxed);
            let path = self.owner.dir.join(file_name(id));
            let file = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(StoreError::from_io)?;
            let file = Arc::new(file);
            // In the set before the commit that names it: a reader that
            // sees the commit finds the file (one that does not, ignores it).
            self.owner.update(|files, _| {
                files.insert(id, file.clone());
            });
            let mut w = Writer {
                id,
                file,
                buf: Vec::with_capacity(WRITE_BUFFER),
                len: 0,
            };
            w.buf.extend_from_slice(MAGIC);
            w.len = MAGIC.len() as u64;
            self.out = Some(w);
        }
        let out = self.out.as_mut().expect("just opened");
        out.append(block)
    }

    /// Counts the block at `place` dead.
    pub fn release_place(&mut self, place: BlockRef) {
        *self.dead.entry(place.file).or_default() += u64::from(place.len);
    }

    /// Copies the live blocks of old files that `policy` picks into this
    /// transaction's file. Every place in a picked file is moved, so the
    /// file is wholly dead once this commits.
    pub fn collect(&mut self, txn: &WriteTransaction, policy: Collect) -> Result<(), StoreError> {
        self.compact_places |= policy.compact_places;
        let mut picked = HashSet::new();
        {
            let table = txn.open_table(BLOCK_FILES).map_err(engine)?;
            let mut spent = 0;
            let (mut candidates, mut small) = (Vec::new(), Vec::new());
            for entry in table.iter().map_err(engine)? {
                let (id, v) = entry.map_err(engine)?;
                let (id, (live, total)) = (id.value(), v.value());
                let live = live.saturating_sub(self.dead.get(&id).copied().unwrap_or(0));
                if (live as f64) < policy.live_below * total as f64 {
                    candidates.push((live, id));
                } else if total < policy.smaller_than {
                    small.push((live, id));
                }
            }
            // Small files are merged into one: worth it when this
            // transaction writes a file anyway, or two or more would become
            // one (an idle store's stops rewrite nothing).
            if self.out.is_some() || small.len() >= 2 {
                candidates.extend(small);
            }
            // Cheapest first: the most bytes freed for the least copied.
            candidates.sort_unstable();
            for (live, id) in candidates {
                if spent + live > policy.budget {
                    break;
                }
                spent += live;
                picked.insert(id);
            }
        }
        if picked.is_empty() {
            return Ok(());
        }
        // Every series with places: those of the last commit, and those
        // this transaction added.
        let committed = self.files.places().iter().map(|(sid, _)| sid);
        let added = self
            .changes
            .keys()
            .copied()
            .filter(|&sid| self.files.places().get(sid).is_none());
        let mut moves = Vec::new();
        for sid in committed.chain(added) {
            for &(res, block, place) in self.current(sid).into_iter().flat_map(|s| s.blocks) {
                if picked.contains(&place.file) {
                    moves.push(((sid, res, block), place));
                }
            }
        }
        for ((sid, res, block), place) in moves {
            let bytes = self.files.read(place)?;
            let new = self.put(&bytes)?;
            self.set_place(sid, res, block, new);
        }
        self.collected.extend(picked);
        Ok(())
    }

    /// Writes the files' live and total bytes, syncs the new file and
    /// writes the places' changes (synced) and where they end into `meta`:
    /// the transaction may commit once this returns.
    pub fn prepare(mut self, txn: &WriteTransaction) -> Result<Prepared<'a>, StoreError> {
        let mut dead_files: Vec<u64> = Vec::new();
        {
            let mut table = txn.open_table(BLOCK_FILES).map_err(engine)?;
            let mut ids: Vec<u64> = self.dead.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                if self.out.as_ref().is_some_and(|w| w.id == id) {
                    continue;
                }
                let Some((live, total)) = table.get(id).map_err(engine)?.map(|v| v.value()) else {
                    continue;
                };
                let live = live.saturating_sub(self.dead[&id]);
                if live == 0 || self.collected.contains(&id) {
                    table.remove(id).map_err(engine)?;
                    dead_files.push(id);
                } else {
                    table.insert(id, (live, total)).map_err(engine)?;
                }
            }
            for &id in &self.collected {
                if table.remove(id).map_err(engine)?.is_some() {
                    dead_files.push(id);
                }
            }
            if let Some(w) = self.out.as_mut() {
                w.flush()?;
                w.file.sync_data().map_err(StoreError::from_io)?;
                // The file's name must be as durable as the commit naming it.
                File::open(&self.owner.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(StoreError::from_io)?;
                let body = w.len - MAGIC.len() as u64;
                let live = body.saturating_sub(self.dead.get(&w.id).copied().unwrap_or(0));
                table.insert(w.id, (live, w.len)).map_err(engine)?;
            }
        }
        let owner = self.owner;
        let log = owner
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prepare(
                self.files.places(),
                &self.changes,
                self.compact_places,
                || owner.next_id.fetch_add(1, Ordering::Relaxed),
            )?;
        {
            let mut meta = txn.open_table(META).map_err(engine)?;
            meta.insert(PLACES_FILE, log.id).map_err(engine)?;
            meta.insert(PLACES_LEN, log.len).map_err(engine)?;
        }
        // From here the commit may name the file: it stays, whatever follows.
        self.out = None;
        dead_files.sort_unstable();
        dead_files.dedup();
        Ok(Prepared {
            owner,
            dead_files,
            changes: std::mem::take(&mut self.changes),
            log: Some(log),
        })
    }
}

/// Block writes ready to commit. Dropped without
/// [`BlockFiles::committed`] (the commit failed), a new places file goes.
pub struct Prepared<'a> {
    owner: &'a BlockFiles,
    dead_files: Vec<u64>,
    changes: BTreeMap<u64, SeriesPlaces>,
    log: Option<PreparedLog>,
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            self.owner
                .log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .abandoned(log);
        }
    }
}

/// Files to delete after a commit left them wholly dead.
pub struct Committed {
    dir: PathBuf,
    dead_files: Vec<u64>,
}

impl Committed {
    /// Deletes the dead files. Readers holding an older set keep reading
    /// them through their descriptors; a failure leaves a file that the
    /// next start deletes.
    pub fn delete_files(self) {
        for id in self.dead_files {
            let path = self.dir.join(file_name(id));
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("deleting dead block file {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_round_trip_and_blocks_are_not_places() {
        let place = BlockRef {
            file: 7,
            offset: 1 << 40,
            len: 1_700,
        };
        assert_eq!(BlockRef::decode(place.encode().as_slice()), Some(place));
        let small = BlockRef {
            file: 3,
            offset: 100_000,
            len: 900,
        };
        assert_eq!(small.encode().as_slice().len(), 7);
        let widest = BlockRef {
            file: u64::MAX,
            offset: u64::MAX,
            len: u32::MAX,
        };
        assert_eq!(widest.encode().as_slice().len(), MAX_REF_LEN);
        assert_eq!(BlockRef::decode(widest.encode().as_slice()), Some(widest));
        // A block starts with its version (1), never the tag.
        let block = crate::codec::encode_block(
            minutely_core::Kind::Counter,
            &[(0, minutely_core::Agg::Counter(1.0))],
        );
        assert_eq!(BlockRef::decode(&block), None);
        let mut short = place.encode().as_slice().to_vec();
        short.pop();
        assert_eq!(BlockRef::decode(&short), None);
        let mut long = place.encode().as_slice().to_vec();
        long.push(0);
        assert_eq!(BlockRef::decode(&long), None);
    }

    proptest::proptest! {
        #[test]
        fn any_place_round_trips(file: u64, offset: u64, len: u32) {
            let place = BlockRef { file, offset, len };
            let encoded = place.encode();
            proptest::prop_assert_eq!(BlockRef::decode(encoded.as_slice()), Some(place));
            proptest::prop_assert!(encoded.as_slice().len() <= MAX_REF_LEN);
        }

        #[test]
        fn any_bytes_decode_without_panic(tagged: bool, rest: Vec<u8>) {
            // Whatever a damaged value holds: a place or nothing.
            let bytes: Vec<u8> = tagged.then_some(REF_TAG).into_iter().chain(rest).collect();
            if let Some(place) = BlockRef::decode(&bytes) {
                proptest::prop_assert_eq!(bytes[0], REF_TAG);
                proptest::prop_assert_eq!(BlockRef::decode(place.encode().as_slice()), Some(place));
            }
        }
    }

    #[test]
    fn padded_numbers_past_the_longest_place_are_not_a_place() {
        // Each number padded to 10 bytes (0x80 ... 0x00): 31 bytes in all,
        // longer than any place this build writes.
        let padded = |v: u8| [vec![v | 0x80], vec![0x80; 8], vec![0]].concat();
        let value = [vec![REF_TAG], padded(1), padded(2), padded(3)].concat();
        assert_eq!(value.len(), 31);
        assert_eq!(BlockRef::decode(&value), None);
    }

    #[test]
    fn file_names_parse_back() {
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("0000000000000042.wal"), None);
        assert_eq!(parse_name("42.blk"), None);
    }
}
