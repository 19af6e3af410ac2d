//! The redb database handle, closed and reopened after an I/O error.
//!
//! Once a write to the file fails (a full disk during a checkpoint), redb
//! refuses every later operation on that handle ("Previous I/O error
//! occurred"). The committed state on disk is intact, so the store closes
//! the handle and opens the file again; the operation that met the error
//! runs once more on the new handle.

use super::tables::engine;
use crate::StoreError;
use redb::{Builder, Database};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a reopen waits for operations still holding the old handle
/// (each is short: a read, a write transaction) to finish.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

type Opener = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

pub struct Db {
    path: PathBuf,
    open: Opener,
    slot: RwLock<Slot>,
}

struct Slot {
    /// `None` only after a reopen failed; the next use tries again.
    db: Option<Arc<Database>>,
    /// Bumped by every reopen, so two threads that met the same broken
    /// handle reopen it once.
    generation: u64,
}

impl Db {
    /// Opens (or creates) the database with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Db, redb::DatabaseError> {
        let file = path.to_path_buf();
        Db::with_opener(
            path,
            Box::new(move || Builder::new().set_cache_size(cache_bytes).create(&file)),
        )
    }

    /// A database that `open` opens, and opens again after an I/O error.
    fn with_opener(path: &Path, open: Opener) -> Result<Db, redb::DatabaseError> {
        let db = open()?;
        Ok(Db {
            path: path.to_path_buf(),
            open,
            slot: RwLock::new(Slot {
                db: Some(Arc::new(db)),
                generation: 0,
            }),
        })
    }

    /// The current handle. Hold it (not the lock) for as long as a
    /// transaction begun on it lives: a reopen waits for every holder.
    pub fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.current().map(|(_, db)| db)
    }

    fn current(&self) -> Result<(u64, Arc<Database>), StoreError> {
        {
            let slot = self.slot.read().unwrap_or_else(|p| p.into_inner());
            if let Some(db) = &slot.db {
                return Ok((slot.generation, db.clone()));
            }
        }
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if slot.db.is_none() {
            slot.db = Some(Arc::new((self.open)().map_err(engine)?));
        }
        let db = slot.db.clone().expect("just filled");
        Ok((slot.generation, db))
    }

    /// Runs `f` on the current handle; if the handle is broken by an
    /// earlier I/O error, reopens the database and runs `f` once more.
    pub fn with<T>(
        &self,
        mut f: impl FnMut(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (generation, db) = self.current()?;
        match f(&db) {
            Err(e) if is_previous_io(&e) => {
                drop(db);
                self.reopen(generation)?;
                f(&*self.get()?)
            }
            other => other,
        }
    }

    /// Replaces the handle of `generation` with a fresh one on the same
    /// file, unless another thread already did. The caller must not hold
    /// a handle.
    pub fn reopen(&self, generation: u64) -> Result<(), StoreError> {
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if slot.generation != generation {
            return Ok(());
        }
        // redb holds the file lock until every transaction on the old
        // handle is gone; new ones wait on `slot`.
        let started = Instant::now();
        while slot.db.as_ref().map_or(1, Arc::strong_count) > 1 {
            if started.elapsed() > DRAIN_WAIT {
                return Err(StoreError::Engine(format!(
                    "{} needs reopening after an I/O error but is still in use",
                    self.path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        slot.db = None;
        slot.generation += 1;
        tracing::warn!("reopening {} after an I/O error", self.path.display());
        slot.db = Some(Arc::new((self.open)().map_err(engine)?));
        Ok(())
    }

    /// Reopens the database to empty its page cache, if no operation holds
    /// the handle right now (`false` otherwise: try again later). Used after
    /// the start-up block check, whose pages would otherwise fill the cache.
    pub fn try_refresh(&self) -> Result<bool, StoreError> {
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if slot.db.as_ref().is_some_and(|db| Arc::strong_count(db) > 1) {
            return Ok(false);
        }
        slot.db = None;
        slot.generation += 1;
        slot.db = Some(Arc::new((self.open)().map_err(engine)?));
        Ok(true)
    }

    /// How many times the database was reopened (after an I/O error, or
    /// to empty its cache).
    #[cfg(test)]
    pub fn reopens(&self) -> u64 {
        self.slot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    /// The handle for exclusive use, when nothing else holds it (shutdown).
    pub fn get_mut(&mut self) -> Option<&mut Database> {
        self.slot
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .db
            .as_mut()
            .and_then(Arc::get_mut)
    }
}

/// redb's answer on a handle whose file I/O failed before.
pub fn is_previous_io(e: &StoreError) -> bool {
    match e {
        StoreError::Engine(text) | StoreError::DiskFull(text) => {
            text.contains(&redb::StorageError::PreviousIo.to_string())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;
    use redb::{StorageBackend, TableDefinition};
    use std::sync::atomic::{AtomicBool, Ordering};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    /// Memory that keeps its bytes across reopens and fails writes on demand,
    /// as a full disk does.
    #[derive(Debug, Clone)]
    struct Flaky {
        mem: Arc<InMemoryBackend>,
        full: Arc<AtomicBool>,
    }

    impl Flaky {
        fn check(&self) -> std::io::Result<()> {
            if self.full.load(Ordering::Acquire) {
                Err(std::io::Error::from_raw_os_error(28))
            } else {
                Ok(())
            }
        }
    }

    impl StorageBackend for Flaky {
        fn len(&self) -> std::io::Result<u64> {
            self.mem.len()
        }
        fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            self.mem.read(offset, len)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.mem.set_len(len)
        }
        fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
            self.check()?;
            self.mem.sync_data(eventual)
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.mem.write(offset, data)
        }
    }

    fn put(db: &Database, k: u64, v: u64) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(engine)?;
        txn.open_table(T)
            .map_err(engine)?
            .insert(k, v)
            .map_err(engine)?;
        txn.commit().map_err(engine)
    }

    fn get(db: &Database, k: u64) -> Result<Option<u64>, StoreError> {
        let txn = db.begin_read().map_err(engine)?;
        let table = txn.open_table(T).map_err(engine)?;
        Ok(table.get(k).map_err(engine)?.map(|v| v.value()))
    }

    #[test]
    fn a_failed_write_breaks_the_handle_and_a_reopen_restores_committed_data() {
        let flaky = Flaky {
            mem: Arc::new(InMemoryBackend::new()),
            full: Arc::new(AtomicBool::new(false)),
        };
        let backend = flaky.clone();
        let db = Db::with_opener(
            Path::new("memory"),
            Box::new(move || {
                // No cache: every read goes to the backend, as with a small cache.
                Builder::new()
                    .set_cache_size(0)
                    .create_with_backend(backend.clone())
            }),
        )
        .unwrap();
        db.with(|d| put(d, 1, 10)).unwrap();
        flaky.full.store(true, Ordering::Release);
        let err = db.with(|d| put(d, 2, 20)).unwrap_err();
        assert!(matches!(err, StoreError::DiskFull(_)), "{err}");
        // The handle is now broken for reads too.
        let broken = db.get().unwrap();
        let err = get(&broken, 1).unwrap_err();
        assert!(is_previous_io(&err), "{err}");
        drop(broken);
        assert_eq!(db.reopens(), 0);
        // Space returns: the next read reopens once and sees the committed data only.
        flaky.full.store(false, Ordering::Release);
        assert_eq!(db.with(|d| get(d, 1)).unwrap(), Some(10));
        assert_eq!(db.reopens(), 1);
        assert_eq!(db.with(|d| get(d, 2)).unwrap(), None);
        db.with(|d| put(d, 2, 20)).unwrap();
        assert_eq!(db.with(|d| get(d, 2)).unwrap(), Some(20));
        assert_eq!(db.reopens(), 1);
    }

    #[test]
    fn a_refresh_happens_only_when_nothing_holds_the_handle() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("x.redb"), 1 << 20).unwrap();
        db.with(|d| put(d, 1, 10)).unwrap();
        let held = db.get().unwrap();
        assert!(!db.try_refresh().unwrap());
        assert_eq!(get(&held, 1).unwrap(), Some(10));
        drop(held);
        assert!(db.try_refresh().unwrap());
        assert_eq!(db.reopens(), 1);
        assert_eq!(db.with(|d| get(d, 1)).unwrap(), Some(10));
        db.with(|d| put(d, 2, 20)).unwrap();
        assert_eq!(db.with(|d| get(d, 2)).unwrap(), Some(20));
    }

    #[test]
    fn a_reopen_waits_for_holders_of_the_old_handle() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("x.redb"), 1 << 20).unwrap());
        db.with(|d| put(d, 1, 10)).unwrap();
        let (generation, held) = db.current().unwrap();
        let reader = {
            let db = db.clone();
            std::thread::spawn(move || {
                // A transaction in flight on the old handle ends after a while.
                let value = get(&held, 1).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                drop(held);
                let _ = db;
                value
            })
        };
        db.reopen(generation).unwrap();
        assert_eq!(reader.join().unwrap(), Some(10));
        assert_eq!(db.reopens(), 1);
        assert_eq!(db.with(|d| get(d, 1)).unwrap(), Some(10));
        // A second thread that met the same broken handle does not reopen again.
        db.reopen(generation).unwrap();
        assert_eq!(db.reopens(), 1);
    }
}
