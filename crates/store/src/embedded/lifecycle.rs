//! Opening a data directory (log replay, the threads), the background
//! thread's checkpoints and retention passes, and the block check.

use super::*;

impl EmbeddedStore {
    /// Opens (or creates) the data directory, replays the log and starts the
    /// writer and checkpoint threads.
    pub fn open(cfg: EmbeddedConfig) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(StoreError::from_io)?;
        let db_path = cfg.data_dir.join("minutely.redb");
        let wal_dir = cfg.data_dir.join("wal");
        // redb has no page checksums and panics on some damaged pages:
        // turn that into a clear error naming the file instead of a crash.
        let opened =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<_, StoreError> {
                // A full disk met while writing leaves the handle refusing
                // every operation: `Db` reopens it then.
                let db = db::Db::open(&db_path, cfg.page_cache_bytes)
                    .map_err(|e| open_error(&db_path, e))?;
                meta::init_tables(&*db.get()?)?;
                let mut index = SeriesIndex::default();
                // The definitions first (beside those an older format kept
                // in redb, which `load_index` adds), then what redb knows
                // of them.
                let (series, defs) = series_file::SeriesFile::open(&cfg.data_dir)?;
                for def in defs {
                    index.insert(def, true);
                }
                meta::load_index(&*db.get()?, &mut index)?;
                let files = block_files::BlockFiles::open(&cfg.data_dir, &*db.get()?)?;
                for (sid, s) in files.snapshot().places().iter() {
                    if let (Some(m), Some(seen)) = (index.get(sid), s.last_seen) {
                        m.last_seen.fetch_max(seen, Ordering::Relaxed);
                    }
                }
                Ok((db, index, files, series))
            }));
        let (db, mut index, block_files, series_file) = match opened {
            Ok(result) => result?,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                return Err(StoreError::Corrupt {
                    file: db_path.clone(),
                    offset: 0,
                    detail: format!("the database file is damaged and cannot be read ({what})"),
                    remedy: "Stop here and restore the data directory from a backup (minutely backup); keep the damaged copy for diagnosis".into(),
                });
            }
        };
        let applied = meta::meta_u64(&*db.get()?, tables::WAL_APPLIED_THROUGH)?;
        let (wal, records) = wal::Wal::open(&wal_dir, applied)?;
        let mut head = Head::default();
        let mut batches = HashMap::new();
        let replayed = records.len();
        for record in records {
            for def in &record.series {
                index.insert(def.clone(), true);
            }
            for (sid, minute, _) in &record.points {
                if let Some(m) = index.get(*sid) {
                    m.last_seen.fetch_max(*minute, Ordering::Relaxed);
                }
            }
            if let Some(b) = &record.batch {
                batches.insert(b.key, BatchState::Done(b.accepted));
            }
            head.apply(record);
        }
        let head = Arc::new(RwLock::new(head));
        let (tx, rx) = sync_channel(1024);
        let inner = Arc::new(Inner {
            cfg,
            db,
            db_path,
            wal_dir,
            index: RwLock::new(index),
            ingest: Mutex::new(index::Scratch::default()),
            head: head.clone(),
            gate: RwLock::new(()),
            block_files,
            series_file: Mutex::new(series_file),
            batches: Mutex::new(batches),
            tx: Mutex::new(Some(tx)),
            pending: Mutex::new(None),
            signal: Arc::new((Mutex::new(Signal::default()), Condvar::new())),
            checkpoints_tried: (Mutex::default(), Condvar::new()),
            checkpoints: AtomicU64::new(0),
            checkpoint_failures: AtomicU64::new(0),
            wal_sync_failures: Arc::new(AtomicU64::new(0)),
            last_checkpoint_micros: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let sync = writer::SyncPolicy {
            every: inner.cfg.wal_sync_interval,
            failures: inner.wal_sync_failures.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("minutely-wal".into())
            .spawn(move || writer::run(wal, rx, head, sync))?;
        if replayed > 0 {
            tracing::info!(records = replayed, "replayed the write-ahead log");
            inner.checkpoint()?;
        }
        let background = {
            let (inner, signal) = (inner.clone(), inner.signal.clone());
            std::thread::Builder::new()
                .name("minutely-checkpoint".into())
                .spawn(move || background(inner, signal))?
        };
        Ok(EmbeddedStore {
            inner,
            threads: Mutex::new(vec![writer, background]),
        })
    }

    /// Deletes data older than the retention now (also done hourly).
    pub fn apply_retention(&self) -> Result<(), StoreError> {
        self.inner.apply_retention(now_secs() as i64)
    }

    /// Reads and checks every stored block (CRC and encoding) while the
    /// store keeps serving; run at start in the background and by
    /// `minutely check`.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        verify::verify(&self.inner.block_files)
    }

    /// Runs [`verify`](Self::verify) on a thread of its own and logs what
    /// it finds: damage is reported at start, not only when a query meets it.
    pub fn verify_in_background(&self) {
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("minutely-verify".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let checked = verify::verify(&inner.block_files);
                match checked {
                    Ok(r) if r.is_clean() => {
                        tracing::info!(
                            blocks = r.blocks,
                            bytes = r.bytes,
                            secs = started.elapsed().as_secs_f64(),
                            "verified every stored block"
                        );
                        release_cache(&inner);
                    }
                    Ok(r) => {
                        for damage in &r.damaged {
                            tracing::error!("{damage}");
                        }
                        tracing::error!(
                            damaged = r.damaged.len(),
                            blocks = r.blocks,
                            "stored blocks failed their checksum: queries over them answer an error; restore from a backup"
                        );
                    }
                    Err(e) => tracing::error!("{e}"),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("could not start the block check: {e}");
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.cfg.data_dir
    }
}

/// The check read every page through redb's cache, which keeps what it
/// read (up to its bound) although serving rarely needs those pages again:
/// reopen the database to let them go, when no operation holds it (tried
/// for a while; a busy store just keeps its cache).
fn release_cache(inner: &Inner) {
    for _ in 0..100 {
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        match inner.db.try_refresh() {
            Ok(true) => return,
            Ok(false) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                tracing::warn!("reopening the database after the block check: {e}");
                return;
            }
        }
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Corrupt {
                file: path.to_path_buf(),
                offset: 0,
                detail,
                remedy: "Restore the data directory from a backup (minutely backup)".into(),
            }
        }
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Engine(format!(
            "{} is already open: is another minutely running on this data directory?",
            path.display()
        )),
        other => engine(other),
    }
}

/// Checkpoints every interval (or when asked) and applies retention every
/// hour, until stopped.
fn background(inner: Arc<Inner>, signal: Arc<(Mutex<Signal>, Condvar)>) {
    // The first retention pass runs after the first checkpoint.
    let mut last_retention: Option<Instant> = None;
    // After a failure, wait this long (doubling, up to the interval) even
    // when pushes ask for a checkpoint, so a full disk is not hammered.
    let mut backoff: Option<Duration> = None;
    loop {
        {
            let (lock, cv) = &*signal;
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (mut guard, _) = match backoff {
                None => cv.wait_timeout_while(guard, inner.cfg.checkpoint_interval, |s| {
                    !s.stop && !s.checkpoint_now
                }),
                Some(wait) => cv.wait_timeout_while(guard, wait, |s| !s.stop),
            }
            .unwrap_or_else(|p| p.into_inner());
            if guard.stop {
                return;
            }
            guard.checkpoint_now = false;
        }
        match inner.checkpoint() {
            Ok(()) => backoff = None,
            Err(e) => {
                inner.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
                let next = backoff.map_or(Duration::from_secs(1), |b| {
                    (b * 2).min(inner.cfg.checkpoint_interval)
                });
                tracing::error!("checkpoint failed, retrying in {next:?}: {e}");
                backoff = Some(next);
            }
        }
        if last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(3_600)) {
            last_retention = Some(Instant::now());
            if let Err(e) = inner.apply_retention(now_secs() as i64) {
                tracing::error!("retention failed, will retry: {e}");
            }
        }
    }
}
