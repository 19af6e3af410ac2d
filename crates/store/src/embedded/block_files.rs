//! Encoded blocks in append-only files beside the database, redb keeping
//! only where each block is.
//!
//! Blocks are most of the stored bytes, and in redb they cost more than
//! themselves: its 4 KiB copy-on-write pages hold a day block of 1-2 KB
//! at about 70%, and its file grows by doubling. A checkpoint instead
//! appends the blocks it writes to a new *block file* (`blocks/N.blk`),
//! syncs it, and commits the blocks' places in the same redb transaction
//! as the rest. Block files are never changed after that: a rewritten
//! block leaves dead bytes behind, counted per file in the `block_files`
//! table; a checkpoint copies the live blocks out of files that are
//! mostly dead (or small) into its own and deletes them once committed.
//!
//! Readers pair a redb snapshot with the set of open files of the same
//! commit (taken together under the store's gate); a file deleted after
//! that stays readable through the descriptor the set holds.

use super::tables::{engine, BLOCK_FILES};
use crate::StoreError;
use redb::{ReadableTable, WriteTransaction};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Directory of the block files inside the data directory.
pub const DIR: &str = "blocks";
/// First bytes of every block file.
pub const MAGIC: &[u8; 8] = b"MNTBLKS1";
/// First byte of a `blocks` value that is a place in a block file rather
/// than the block itself (whose first byte is its version, 1).
pub const REF_TAG: u8 = 0x80;
/// Longest encoded [`BlockRef`]: the tag and three LEB128 numbers.
pub const MAX_REF_LEN: usize = 1 + 10 + 10 + 5;
/// Length of a [`Stored::identity`] of a block in a file, at most.
const IDENTITY_LEN: usize = 8 + MAX_REF_LEN;

/// Buffered bytes of a file being written before they go to the kernel.
const WRITE_BUFFER: usize = 1 << 20;

/// A block's place: file, offset of its first byte, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub file: u64,
    pub offset: u64,
    pub len: u32,
}

/// A place as stored in `blocks`: the tag, then file, offset and length
/// as unsigned LEB128 (7 to 11 bytes for a day block).
#[derive(Clone, Copy)]
pub struct EncodedRef {
    bytes: [u8; MAX_REF_LEN],
    len: u8,
}

impl EncodedRef {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl BlockRef {
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

    /// The place a `blocks` value names, if it names one (the tag and
    /// three numbers, nothing after).
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

/// The encoded block a `blocks` value of the data directory `data_dir`
/// holds or names: for tools that read a stopped store's redb file.
pub fn read_stored(data_dir: &Path, value: &[u8]) -> std::io::Result<Vec<u8>> {
    match BlockRef::decode(value) {
        None => Ok(value.to_vec()),
        Some(place) => read_at(
            &File::open(data_dir.join(DIR).join(file_name(place.file)))?,
            place,
        ),
    }
}

/// The bytes at `place` of `file`.
fn read_at(file: &File, place: BlockRef) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; place.len as usize];
    file.read_exact_at(&mut buf, place.offset)?;
    Ok(buf)
}

/// The block files of one committed state, open.
pub struct FileSet {
    dir: PathBuf,
    /// The database, which holds the blocks of format version 1 inline.
    db_path: PathBuf,
    /// Tells this store's files from another's in the process-wide block
    /// cache (ids restart in every data directory).
    nonce: u64,
    files: HashMap<u64, Arc<File>>,
}

impl FileSet {
    /// What a stored `blocks` value holds: the block, or where it is.
    pub fn stored<'v>(&self, value: &'v [u8]) -> Stored<'v> {
        match BlockRef::decode(value) {
            None => Stored::Inline(value),
            Some(place) => {
                let mut identity = [0; IDENTITY_LEN];
                identity[..8].copy_from_slice(&self.nonce.to_le_bytes());
                identity[8..8 + value.len()].copy_from_slice(value);
                Stored::InFile(place, identity, 8 + value.len() as u8)
            }
        }
    }

    /// A set of no files.
    #[cfg(test)]
    pub fn none() -> FileSet {
        FileSet {
            dir: PathBuf::new(),
            db_path: PathBuf::new(),
            nonce: 0,
            files: HashMap::new(),
        }
    }

    /// The ids of the files in the set.
    #[cfg(test)]
    pub fn ids(&self) -> std::collections::BTreeSet<u64> {
        self.files.keys().copied().collect()
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The file that holds the block a `blocks` value holds or names, for
    /// error messages.
    pub fn file_of(&self, value: &[u8]) -> PathBuf {
        match BlockRef::decode(value) {
            Some(place) => self.path(place.file),
            None => self.db_path.clone(),
        }
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
                detail: "the database names a block file that is not there".into(),
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

/// A `blocks` value as read: the block itself, or its place in a file.
pub enum Stored<'v> {
    Inline(&'v [u8]),
    /// The place, and the identity's bytes and length.
    InFile(BlockRef, [u8; IDENTITY_LEN], u8),
}

impl<'v> Stored<'v> {
    /// Bytes that change whenever the block does (the block itself, or
    /// the store and place of a file's block, which files never reuse):
    /// what the block cache checks its entries against.
    pub fn identity(&self) -> &[u8] {
        match self {
            Stored::Inline(bytes) => bytes,
            Stored::InFile(_, identity, len) => &identity[..usize::from(*len)],
        }
    }

    /// The encoded block.
    pub fn bytes(&self, files: &FileSet) -> Result<Cow<'v, [u8]>, StoreError> {
        match self {
            Stored::Inline(bytes) => Ok(Cow::Borrowed(bytes)),
            Stored::InFile(place, ..) => files.read(*place).map(Cow::Owned),
        }
    }
}

/// The block files of a data directory.
pub struct BlockFiles {
    dir: PathBuf,
    current: RwLock<Arc<FileSet>>,
    next_id: AtomicU64,
}

impl BlockFiles {
    /// Opens the files the database (`db`, at `db_path`) names and deletes
    /// those it does not (written by a checkpoint that never committed).
    pub fn open(
        data_dir: &Path,
        db_path: &Path,
        db: &redb::Database,
    ) -> Result<BlockFiles, StoreError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(StoreError::from_io)?;
        let named: Vec<u64> = {
            let txn = db.begin_read().map_err(engine)?;
            let table = txn.open_table(BLOCK_FILES).map_err(engine)?;
            let mut ids = Vec::new();
            for entry in table.iter().map_err(engine)? {
                ids.push(entry.map_err(engine)?.0.value());
            }
            ids
        };
        let mut highest = named.iter().copied().max().unwrap_or(0);
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
        Ok(BlockFiles {
            current: RwLock::new(Arc::new(FileSet {
                dir: dir.clone(),
                db_path: db_path.to_path_buf(),
                nonce: next_nonce(),
                files,
            })),
            dir,
            next_id: AtomicU64::new(highest + 1),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files of the last commit (and of one being committed). Take it
    /// with the redb snapshot, under the gate.
    pub fn snapshot(&self) -> Arc<FileSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Begins the block writes of one write transaction.
    pub fn writes(&self) -> BlockWrites<'_> {
        BlockWrites {
            owner: self,
            files: self.snapshot(),
            out: None,
            dead: HashMap::new(),
            collected: HashSet::new(),
        }
    }

    /// Adds (before the commit) or drops (after it) files of the set.
    fn update(&self, f: impl FnOnce(&mut HashMap<u64, Arc<File>>)) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let mut files = current.files.clone();
        f(&mut files);
        *current = Arc::new(FileSet {
            dir: self.dir.clone(),
            db_path: current.db_path.clone(),
            nonce: current.nonce,
            files,
        });
    }

    /// After the commit of `done` (under the gate, so no reader takes the
    /// set between the commit and this): files now wholly dead leave the
    /// set, and are deleted by [`Committed::delete_files`] outside it.
    pub fn committed(&self, done: &Prepared) -> Committed {
        if !done.dead_files.is_empty() {
            self.update(|files| {
                for id in &done.dead_files {
                    files.remove(id);
                }
            });
        }
        Committed {
            dir: self.dir.clone(),
            dead_files: done.dead_files.clone(),
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
/// file; replaced and deleted ones are counted dead in theirs.
pub struct BlockWrites<'a> {
    owner: &'a BlockFiles,
    files: Arc<FileSet>,
    out: Option<Writer>,
    /// Bytes per file no longer referenced after this transaction.
    dead: HashMap<u64, u64>,
    /// Files whose live blocks this transaction copied out.
    collected: HashSet<u64>,
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
}

impl Collect {
    /// While running: a file's dead half, small files, 64 MiB at a time.
    pub const RUNNING: Collect = Collect {
        live_below: 0.5,
        smaller_than: 1 << 20,
        budget: 64 << 20,
    };
    /// At a clean stop, when time matters less than the disk left behind.
    pub const STOPPING: Collect = Collect {
        live_below: 0.9,
        smaller_than: 1 << 20,
        budget: 1 << 30,
    };
}

impl Drop for BlockWrites<'_> {
    /// A file never prepared for a commit is named by no transaction:
    /// it goes (a full disk should not keep a half-written file).
    fn drop(&mut self) {
        if let Some(w) = self.out.take() {
            self.owner.update(|files| {
                files.remove(&w.id);
            });
            let _ = std::fs::remove_file(self.owner.dir.join(file_name(w.id)));
        }
    }
}

impl BlockWrites<'_> {
    /// The file a `blocks` value's block is in, for error messages.
    pub fn file_of(&self, value: &[u8]) -> PathBuf {
        self.files.file_of(value)
    }

    /// The encoded block a `blocks` value holds or names.
    pub fn block<'v>(&mut self, value: &'v [u8]) -> Result<Cow<'v, [u8]>, StoreError> {
        match BlockRef::decode(value) {
            None => Ok(Cow::Borrowed(value)),
            Some(place) => {
                if let Some(out) = self.out.as_mut().filter(|w| w.id == place.file) {
                    out.flush()?;
                    let bytes = read_at(&out.file, place).map_err(StoreError::from_io)?;
                    return Ok(Cow::Owned(bytes));
                }
                self.files.read(place).map(Cow::Owned)
            }
        }
    }

    /// Appends `block` to this transaction's file; the value to store.
    pub fn put(&mut self, block: &[u8]) -> Result<EncodedRef, StoreError> {
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
            self.owner.update(|files| {
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
        Ok(out.append(block)?.encode())
    }

    /// Counts a `blocks` value that is being replaced or deleted.
    pub fn release(&mut self, value: &[u8]) {
        if let Some(place) = BlockRef::decode(value) {
            self.release_place(place);
        }
    }

    /// Counts the block at `place` dead.
    pub fn release_place(&mut self, place: BlockRef) {
        *self.dead.entry(place.file).or_default() += u64::from(place.len);
    }

    /// Copies the live blocks of old files that `policy` picks into this
    /// transaction's file. Every value naming a picked file is moved, so
    /// the file is wholly dead once this commits.
    pub fn collect(
        &mut self,
        txn: &WriteTransaction,
        blocks: &mut redb::Table<(u64, u8, u32), &'static [u8]>,
        policy: Collect,
    ) -> Result<(), StoreError> {
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
        let mut moves = Vec::new();
        for entry in blocks.iter().map_err(engine)? {
            let (k, v) = entry.map_err(engine)?;
            if let Some(place) = BlockRef::decode(v.value()) {
                if picked.contains(&place.file) {
                    moves.push((k.value(), place));
                }
            }
        }
        for (key, place) in moves {
            let block = self.files.read(place)?;
            let value = self.put(&block)?;
            blocks.insert(key, value.as_slice()).map_err(engine)?;
            self.release_place(place);
        }
        self.collected.extend(picked);
        Ok(())
    }

    /// Writes the files' live and total bytes and syncs the new file: the
    /// transaction may commit once this returns.
    pub fn prepare(mut self, txn: &WriteTransaction) -> Result<Prepared, StoreError> {
        let mut table = txn.open_table(BLOCK_FILES).map_err(engine)?;
        let mut dead_files: Vec<u64> = Vec::new();
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
        // From here the commit may name the file: it stays, whatever follows.
        self.out = None;
        dead_files.sort_unstable();
        dead_files.dedup();
        Ok(Prepared { dead_files })
    }
}

/// Block writes ready to commit.
pub struct Prepared {
    dead_files: Vec<u64>,
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
            // As a read meets it: a block, or a place with its identity.
            let _ = FileSet::none().stored(&bytes).identity().len();
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
        // Read as a block (which then fails its checksum), never a panic.
        assert!(matches!(FileSet::none().stored(&value), Stored::Inline(_)));
    }

    #[test]
    fn file_names_parse_back() {
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("0000000000000042.wal"), None);
        assert_eq!(parse_name("42.blk"), None);
    }
}
