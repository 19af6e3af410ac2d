//! The embedded engine: one data directory with a write-ahead log (`wal/`)
//! and a redb database (`minutely.redb`).
//!
//! Write path: a push resolves its series in the in-memory index, queues a
//! log record and waits; the writer thread syncs a group of records and
//! applies them to the head (open minutes in memory) before answering, so a
//! 2xx means the points are on disk. A checkpoint, every
//! `checkpoint_interval` and at shutdown, seals the log segment, merges the
//! frozen head into redb's day blocks, recomputes the hourly and daily
//! rollups of the hours it touched, commits, and deletes the sealed log.
//!
//! Read path: redb blocks (a read snapshot) plus the head's minutes, taken
//! together under a gate that checkpoints hold while they commit, so a read
//! never sees a minute twice or not at all.

mod alerts;
mod blocks;
mod checkpoint;
mod db;
mod head;
mod index;
mod meta;
mod record;
mod tables;
mod verify;
mod wal;
mod writer;

pub use blocks::{set_block_cache_capacity, DEFAULT_BLOCK_CACHE_BYTES};
pub use verify::VerifyReport;

use crate::codec::PartReader;
use crate::{AlertPass, AlertRecord, IncidentRecord, OutboxEntry};
use crate::{
    AppRecord, DashboardRecord, KeyRecord, MetricInfo, PushOutcome, PushRequest, Rejected,
    Resolution, Retention, SeriesId, SeriesInfo, Store, StoreError, StoreStats,
};
use head::{Generation, Head};
use index::{SeriesIndex, SeriesRef};
use minutely_core::fold::DistRows;
use minutely_core::{Agg, Kind, Part, Slim};
use record::{BatchEntry, Record, SeriesDef};
use redb::Database;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tables::{engine, BATCHES};
use writer::WalMsg;

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    pub data_dir: PathBuf,
    pub retention: Retention,
    /// A flood of new tag values stops here instead of exhausting memory.
    pub max_series_per_app: usize,
    /// How often open minutes move from the log to redb. Longer means fewer
    /// block rewrites and a longer log to replay after a crash.
    pub checkpoint_interval: Duration,
    /// How long batch keys are remembered; a day matches the late-point window.
    pub batch_window_secs: i64,
    /// A checkpoint starts early when the head holds this many series-minutes
    /// (a backfill or a burst of new series), which bounds its memory: at
    /// ~100 bytes a minute, the default is about 100 MB.
    pub max_open_minutes: usize,
    /// redb's page cache. Reads miss it to the operating system's file
    /// cache, so a small one costs little; a large one keeps every page
    /// the start-up block check read.
    pub page_cache_bytes: usize,
}

/// The default page cache: 8 MiB.
pub const DEFAULT_PAGE_CACHE_BYTES: usize = 8 << 20;

impl EmbeddedConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            data_dir: data_dir.into(),
            retention: Retention::default(),
            max_series_per_app: 200_000,
            checkpoint_interval: Duration::from_secs(300),
            batch_window_secs: 90_000,
            max_open_minutes: 1_000_000,
            page_cache_bytes: DEFAULT_PAGE_CACHE_BYTES,
        }
    }
}

/// What the background thread is asked to do.
#[derive(Default)]
struct Signal {
    stop: bool,
    checkpoint_now: bool,
}

enum BatchState {
    InFlight,
    Done(u64),
}

struct Inner {
    cfg: EmbeddedConfig,
    db: db::Db,
    db_path: PathBuf,
    wal_dir: PathBuf,
    index: RwLock<SeriesIndex>,
    /// Serialises series resolution and log queueing; holds a scratch key.
    ingest: Mutex<String>,
    head: Arc<RwLock<Head>>,
    /// Held shared by reads while they snapshot, exclusively by a commit.
    gate: RwLock<()>,
    batches: Mutex<HashMap<u128, BatchState>>,
    tx: Mutex<Option<SyncSender<WalMsg>>>,
    /// A frozen generation whose checkpoint failed, with its sealed segment.
    pending: Mutex<Option<(u64, Arc<Generation>)>>,
    signal: Arc<(Mutex<Signal>, Condvar)>,
    checkpoints: AtomicU64,
    checkpoint_failures: AtomicU64,
    last_checkpoint_micros: AtomicU64,
    closed: AtomicBool,
}

/// The single-machine store.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn batch_hash(app: &str, env: &str, batch: &str) -> u128 {
    let mut h = Sha256::new();
    for part in [app, env, batch] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(bytes)
}

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
                meta::load_index(&*db.get()?, &mut index)?;
                Ok((db, index))
            }));
        let (db, mut index) = match opened {
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
            head.active.apply(record);
        }
        let head = Arc::new(RwLock::new(head));
        let (tx, rx) = sync_channel(1024);
        let inner = Arc::new(Inner {
            cfg,
            db,
            db_path,
            wal_dir,
            index: RwLock::new(index),
            ingest: Mutex::new(String::new()),
            head: head.clone(),
            gate: RwLock::new(()),
            batches: Mutex::new(batches),
            tx: Mutex::new(Some(tx)),
            pending: Mutex::new(None),
            signal: Arc::new((Mutex::new(Signal::default()), Condvar::new())),
            checkpoints: AtomicU64::new(0),
            checkpoint_failures: AtomicU64::new(0),
            last_checkpoint_micros: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let writer = std::thread::Builder::new()
            .name("minutely-wal".into())
            .spawn(move || writer::run(wal, rx, head))?;
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
        let inner = &self.inner;
        inner.db.with(|db| verify::verify(db, &inner.db_path))
    }

    /// Runs [`verify`](Self::verify) on a low-priority thread and logs what
    /// it finds: damage is reported at start, not only when a query meets it.
    pub fn verify_in_background(&self) {
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("minutely-verify".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                match inner.db.with(|db| verify::verify(db, &inner.db_path)) {
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

impl Inner {
    /// Buckets of each series in `[from, to)`: stored blocks (decoded by
    /// `read_stored`, which keeps a `State` per thread) with the head's
    /// minutes (as `from_head` sees them) merged in.
    #[allow(clippy::too_many_arguments)]
    fn read_buckets<T, State>(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
        from_head: impl Fn(&Agg) -> Option<T>,
        merge: impl Fn(&mut T, &T) + Sync,
        new_state: impl Fn() -> State + Sync,
        read_stored: impl Fn(&BlocksTable, &mut State, SeriesId) -> Result<Vec<(i64, T)>, StoreError>
            + Sync,
    ) -> Result<Vec<Vec<(i64, T)>>, StoreError>
    where
        T: Clone + Send + Sync,
    {
        let per_series = |table: &BlocksTable, state: &mut State, sid, minutes: &[(i64, T)]| {
            let stored = read_stored(table, state, sid)?;
            Ok(overlay(stored, minutes, res, from, &merge))
        };
        // A handle broken by an earlier I/O error is reopened and the read
        // runs once more.
        self.db.with(|db| {
            self.read_snapshot(
                db,
                series,
                (res, from, to),
                &from_head,
                &new_state,
                per_series,
            )
        })
    }

    /// One snapshot's read of each series: `per_series` is given the
    /// series' head minutes in `[from, to)` (as `from_head` sees them) and
    /// reads its blocks; series are spread over threads.
    fn read_snapshot<T, State, S>(
        &self,
        db: &Database,
        series: &[SeriesId],
        (res, from, to): (Resolution, i64, i64),
        from_head: impl Fn(&Agg) -> Option<T>,
        new_state: impl Fn() -> State + Sync,
        per_series: impl Fn(&BlocksTable, &mut State, SeriesId, &[(i64, T)]) -> Result<S, StoreError>
            + Sync,
    ) -> Result<Vec<S>, StoreError>
    where
        T: Clone + Send + Sync,
        S: Send,
    {
        let (txn, head_minutes) = {
            let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
            let txn = db.begin_read().map_err(engine)?;
            let head = self.head.read().unwrap_or_else(|p| p.into_inner());
            // Head minutes of the buckets in range: from the start of `from`'s bucket.
            let lo = minutely_core::time::floor_to(from, res.secs());
            let minutes: Vec<Vec<(i64, T)>> = series
                .iter()
                .map(|&sid| head.collect(sid, lo, to, &from_head))
                .collect();
            (txn, minutes)
        };
        // Decoding blocks is the cost of a wide query: spread the series
        // over the cores (each thread opens its own table in the snapshot).
        let threads = read_threads();
        let chunk = series.len().div_ceil(threads).max(MIN_SERIES_PER_THREAD);
        let jobs: Vec<_> = series
            .chunks(chunk)
            .zip(head_minutes.chunks(chunk))
            .collect();
        type Job<'a, T> = (&'a [SeriesId], &'a [Vec<(i64, T)>]);
        let read_chunk = |(ids, heads): Job<'_, T>| -> Result<Vec<S>, StoreError> {
            let table = txn.open_table(tables::BLOCKS).map_err(engine)?;
            let mut state = new_state();
            ids.iter()
                .zip(heads)
                .map(|(&sid, minutes)| per_series(&table, &mut state, sid, minutes))
                .collect()
        };
        let parts: Vec<Result<Vec<S>, StoreError>> = if jobs.len() <= 1 {
            jobs.into_iter().map(read_chunk).collect()
        } else {
            let read_chunk = &read_chunk;
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs
                    .into_iter()
                    .map(|job| scope.spawn(move || read_chunk(job)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(StoreError::Engine("a read thread panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        let mut out = Vec::with_capacity(series.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// Held by everything that writes to redb: checkpoints, retention, keys
    /// and apps, and a backup while it copies.
    fn writer_lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<Generation>)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sender(&self) -> Result<SyncSender<WalMsg>, StoreError> {
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// `Some(accepted)` if the batch was stored before; marks it in flight otherwise.
    fn claim_batch(&self, key: u128) -> Result<Option<u64>, StoreError> {
        let mut map = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&key) {
            Some(BatchState::Done(n)) => return Ok(Some(*n)),
            Some(BatchState::InFlight) => {
                return Err(StoreError::BatchInFlight(format!("{key:032x}")))
            }
            None => {}
        }
        let stored = self.db.with(|db| {
            let txn = db.begin_read().map_err(engine)?;
            let table = txn.open_table(BATCHES).map_err(engine)?;
            Ok(table.get(key).map_err(engine)?.map(|v| v.value().1))
        })?;
        if let Some(accepted) = stored {
            return Ok(Some(accepted));
        }
        map.insert(key, BatchState::InFlight);
        Ok(None)
    }

    fn settle_batch(&self, key: u128, accepted: Option<u64>) {
        let mut map = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        match accepted {
            Some(n) if n > 0 => map.insert(key, BatchState::Done(n)),
            _ => map.remove(&key),
        };
    }

    fn push_points(
        &self,
        req: PushRequest,
        batch: Option<u128>,
    ) -> Result<PushOutcome, StoreError> {
        let mut outcome = PushOutcome::default();
        let mut points = Vec::with_capacity(req.points.len());
        let mut metas = Vec::with_capacity(req.points.len());
        let mut defs: Vec<SeriesDef> = Vec::new();
        let mut defined: std::collections::HashSet<SeriesId> = std::collections::HashSet::new();
        let reply = {
            let mut key = self.ingest.lock().unwrap_or_else(|p| p.into_inner());
            {
                let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
                for (i, p) in req.points {
                    let series = SeriesRef {
                        app: &req.app,
                        env: &req.env,
                        name: &p.name,
                        kind: p.kind,
                        tags: &p.tags,
                    };
                    match index.resolve(&mut key, series, self.cfg.max_series_per_app) {
                        Ok(meta) => {
                            if !meta.durable.load(Ordering::Acquire) && defined.insert(meta.def.id)
                            {
                                defs.push(meta.def.clone());
                            }
                            let minute = p.minute();
                            points.push((meta.def.id, minute, p.to_agg()));
                            metas.push((meta, minute));
                        }
                        Err(e) => outcome.rejected.push(Rejected {
                            index: i,
                            reason: e.reason(),
                            message: e.to_string(),
                        }),
                    }
                }
            }
            if points.is_empty() {
                return Ok(outcome);
            }
            outcome.accepted = points.len();
            let record = Record {
                batch: batch.map(|key| BatchEntry {
                    key,
                    ts: now_secs(),
                    accepted: outcome.accepted as u64,
                }),
                series: defs,
                points,
            };
            // Room for single-value points and a few definitions: one
            // allocation instead of a dozen regrowths.
            let mut payload =
                Vec::with_capacity(64 + 80 * record.points.len() + 128 * record.series.len());
            record.encode(&mut payload);
            let (reply_tx, reply_rx) = sync_channel(1);
            self.sender()?
                .send(WalMsg::Append {
                    payload,
                    record,
                    reply: reply_tx,
                })
                .map_err(|_| StoreError::Closed)?;
            reply_rx
        };
        reply.recv().map_err(|_| StoreError::Closed)??;
        // Reads first: most series are durable and already seen this late.
        for (meta, minute) in &metas {
            if !meta.durable.load(Ordering::Relaxed) {
                meta.durable.store(true, Ordering::Release);
            }
            if meta.last_seen.load(Ordering::Relaxed) < *minute {
                meta.last_seen.fetch_max(*minute, Ordering::Relaxed);
            }
        }
        let open = self
            .head
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .active
            .open_minutes();
        if open > self.cfg.max_open_minutes {
            let (lock, cv) = &*self.signal;
            lock.lock()
                .unwrap_or_else(|p| p.into_inner())
                .checkpoint_now = true;
            cv.notify_all();
        }
        Ok(outcome)
    }
}

impl Store for EmbeddedStore {
    fn push(&self, req: PushRequest) -> Result<PushOutcome, StoreError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let batch = req
            .batch
            .as_deref()
            .map(|b| batch_hash(&req.app, &req.env, b));
        if let Some(key) = batch {
            if let Some(accepted) = inner.claim_batch(key)? {
                return Ok(PushOutcome {
                    accepted: accepted as usize,
                    rejected: Vec::new(),
                    duplicate: true,
                });
            }
        }
        let result = inner.push_points(req, batch);
        if let Some(key) = batch {
            inner.settle_batch(key, result.as_ref().ok().map(|o| o.accepted as u64));
        }
        result
    }

    fn metric_kind(&self, app: &str, name: &str) -> Option<Kind> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .kind_of(app, name)
    }

    fn series_of(&self, app: &str, env: Option<&str>, name: &str) -> Vec<SeriesInfo> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .series_of(app, env, name)
    }

    fn series_where(
        &self,
        app: &str,
        env: Option<&str>,
        name: &str,
        keep: &dyn Fn(&minutely_core::Tags) -> bool,
    ) -> Vec<SeriesInfo> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .series_where(app, env, name, keep)
    }

    fn series_with(
        &self,
        app: &str,
        env: Option<&str>,
        name: &str,
        pairs: &[(&str, &str)],
        keep: &dyn Fn(&minutely_core::Tags) -> bool,
    ) -> Vec<SeriesInfo> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .series_with(app, env, name, pairs, keep)
    }

    fn read(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<(i64, Agg)>>, StoreError> {
        let inner = &self.inner;
        inner.read_buckets(
            series,
            res,
            from,
            to,
            |agg| Some(agg.clone()),
            Agg::merge,
            || (),
            |table, (), sid| blocks::read_range(table, &inner.db_path, sid, res, from, to),
        )
    }

    fn read_part(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
        part: Part,
    ) -> Result<Vec<Vec<(i64, Slim)>>, StoreError> {
        let inner = &self.inner;
        inner.read_buckets(
            series,
            res,
            from,
            to,
            |agg| part.of(agg),
            |a, o| part.merge(a, *o),
            PartReader::default,
            |table, reader, sid| {
                blocks::read_range_part(table, &inner.db_path, sid, res, from, to, part, reader)
            },
        )
    }

    fn read_dists(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
        sketches: bool,
    ) -> Result<Vec<DistRows>, StoreError> {
        let inner = &self.inner;
        let window = (res, from, to);
        let per_series =
            |table: &BlocksTable, reader: &mut PartReader, sid, minutes: &[(i64, Agg)]| {
                if minutes.is_empty() {
                    return blocks::read_range_dists(
                        table,
                        &inner.db_path,
                        sid,
                        window,
                        sketches,
                        reader,
                    );
                }
                // Head minutes merge into stored buckets before they are
                // folded: this series is read as whole aggregates.
                let stored = blocks::read_range(table, &inner.db_path, sid, res, from, to)?;
                let buckets = overlay(stored, minutes, res, from, &Agg::merge);
                Ok(DistRows::from_buckets(&buckets, sketches))
            };
        inner.db.with(|db| {
            inner.read_snapshot(
                db,
                series,
                window,
                |agg| Some(agg.clone()),
                PartReader::default,
                per_series,
            )
        })
    }

    fn catalogue(&self, app: &str, env: Option<&str>) -> Vec<MetricInfo> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .catalogue(app, env)
    }

    fn retention(&self) -> Retention {
        self.inner.cfg.retention
    }

    fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        self.inner.db.with(meta::apps)
    }

    fn create_app(&self, app: AppRecord) -> Result<(), StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner.db.with(|db| meta::create_app(db, app.clone()))
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.db.with(meta::keys)
    }

    fn put_key(&self, key: KeyRecord) -> Result<(), StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner.db.with(|db| meta::put_key(db, key.clone()))
    }

    fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner.db.with(|db| meta::revoke_key(db, id))
    }

    fn dashboards(&self, app: &str) -> Result<Vec<DashboardRecord>, StoreError> {
        self.inner.db.with(|db| meta::dashboards(db, app))
    }

    fn put_dashboard(&self, dashboard: DashboardRecord) -> Result<(), StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner
            .db
            .with(|db| meta::put_dashboard(db, dashboard.clone()))
    }

    fn delete_dashboard(&self, app: &str, id: &str) -> Result<bool, StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner.db.with(|db| meta::delete_dashboard(db, app, id))
    }

    fn alerts(&self, app: Option<&str>) -> Result<Vec<AlertRecord>, StoreError> {
        self.inner.db.with(|db| alerts::alerts(db, app))
    }

    fn put_alert(&self, alert: AlertRecord) -> Result<(), StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner
            .db
            .with(|db| alerts::put_alert(db, alert.clone()))
    }

    fn delete_alert(&self, app: &str, id: &str) -> Result<bool, StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner.db.with(|db| alerts::delete_alert(db, app, id))
    }

    fn alert_state(&self, app: &str, id: &str) -> Result<Option<String>, StoreError> {
        self.inner.db.with(|db| alerts::alert_state(db, app, id))
    }

    fn commit_alert_pass(&self, pass: AlertPass) -> Result<Vec<u64>, StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner
            .db
            .with(|db| alerts::commit_pass(db, pass.clone()))
    }

    fn incidents(&self, app: &str) -> Result<Vec<IncidentRecord>, StoreError> {
        self.inner.db.with(|db| alerts::incidents(db, app))
    }

    fn prune_incidents(&self, before: i64) -> Result<usize, StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner.db.with(|db| alerts::prune_incidents(db, before))
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.db.with(alerts::outbox)
    }

    fn update_outbox(&self, entry: OutboxEntry) -> Result<(), StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner
            .db
            .with(|db| alerts::update_outbox(db, entry.clone()))
    }

    fn remove_outbox(&self, id: u64) -> Result<(), StoreError> {
        let _writer = self.inner.writer_lock();
        self.inner.db.with(|db| alerts::remove_outbox(db, id))
    }

    fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        let inner = &self.inner;
        if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
            return Err(StoreError::Conflict(format!(
                "backup directory {} is not empty",
                dest.display()
            )));
        }
        std::fs::create_dir_all(dest.join("wal")).map_err(StoreError::from_io)?;
        // A checkpoint first keeps the log to copy short.
        inner.checkpoint()?;
        // No redb write can start while we copy, so the file is a committed
        // state; the log segments then hold everything newer (a torn last
        // frame in the copy is cut on restore, as after a crash).
        let _writer = inner.writer_lock();
        std::fs::copy(&inner.db_path, dest.join("minutely.redb")).map_err(StoreError::from_io)?;
        for entry in std::fs::read_dir(&inner.wal_dir)? {
            let entry = entry?;
            std::fs::copy(entry.path(), dest.join("wal").join(entry.file_name()))
                .map_err(StoreError::from_io)?;
        }
        // The copy is only a backup once it is on disk.
        File::open(dest.join("minutely.redb"))?
            .sync_all()
            .map_err(StoreError::from_io)?;
        for entry in std::fs::read_dir(dest.join("wal"))? {
            File::open(entry?.path())?
                .sync_all()
                .map_err(StoreError::from_io)?;
        }
        File::open(dest.join("wal"))?.sync_all()?;
        File::open(dest)?.sync_all()?;
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let inner = &self.inner;
        let index = inner.index.read().unwrap_or_else(|p| p.into_inner());
        let db_bytes = std::fs::metadata(&inner.db_path).map_or(0, |m| m.len());
        let wal_bytes = dir_bytes(&inner.wal_dir);
        StoreStats {
            series: index.len(),
            apps: index.apps(),
            disk_bytes: db_bytes + wal_bytes,
            wal_bytes,
            open_minutes: inner
                .head
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .open_minutes(),
            checkpoints: inner.checkpoints.load(Ordering::Relaxed),
            checkpoint_failures: inner.checkpoint_failures.load(Ordering::Relaxed),
            last_checkpoint_secs: inner.last_checkpoint_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.inner.checkpoint()
    }

    fn close(&self) -> Result<(), StoreError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let (lock, cv) = &*self.inner.signal;
            lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
            cv.notify_all();
        }
        let result = self.inner.checkpoint();
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
        result
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!("closing the store: {e}");
            return;
        }
        // Checkpoints rewrite blocks copy-on-write, which leaves free pages
        // in the file; with every thread stopped, give them back to the disk.
        if let Some(db) = Arc::get_mut(&mut self.inner).and_then(|i| i.db.get_mut()) {
            let started = Instant::now();
            match db.compact() {
                Ok(_) => tracing::info!("compacted the database in {:?}", started.elapsed()),
                Err(e) => tracing::warn!("compacting the database at shutdown: {e}"),
            }
        }
    }
}

/// The blocks table as a read sees it.
type BlocksTable = redb::ReadOnlyTable<(u64, u8, u32), &'static [u8]>;

/// Threads a wide read spreads over: the cores, up to 8. Asked once:
/// the standard library reads the cgroup's CPU quota files at every call.
fn read_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    })
}

/// Below this many series per thread, a thread costs more than it saves.
const MIN_SERIES_PER_THREAD: usize = 16;

/// Adds the head's minutes (not yet in redb) to one series' stored buckets
/// (sorted, unique). Minutes merge into the bucket of `res` that holds
/// them, in the head's order.
fn overlay<T: Clone>(
    stored: Vec<(i64, T)>,
    minutes: &[(i64, T)],
    res: Resolution,
    from: i64,
    merge: &impl Fn(&mut T, &T),
) -> Vec<(i64, T)> {
    if minutes.is_empty() {
        return stored;
    }
    let mut head: Vec<(i64, &T)> = minutes
        .iter()
        .map(|(minute, v)| (minutely_core::time::floor_to(*minute, res.secs()), v))
        .filter(|(ts, _)| *ts >= from)
        .collect();
    // Stable: a minute in both generations merges frozen first.
    head.sort_by_key(|(ts, _)| *ts);
    let mut head = head.into_iter().peekable();
    let mut out = Vec::with_capacity(stored.len() + minutes.len());
    for (ts, mut v) in stored {
        while let Some(h) = head_bucket(&mut head, Some(ts), merge) {
            out.push(h);
        }
        while let Some((_, more)) = head.next_if(|(t, _)| *t == ts) {
            merge(&mut v, more);
        }
        out.push((ts, v));
    }
    while let Some(h) = head_bucket(&mut head, None, merge) {
        out.push(h);
    }
    out
}

/// The next bucket of head minutes that starts before `before` (any, when
/// `None`), its minutes merged in order.
fn head_bucket<'a, T: Clone + 'a>(
    head: &mut std::iter::Peekable<impl Iterator<Item = (i64, &'a T)>>,
    before: Option<i64>,
    merge: &impl Fn(&mut T, &T),
) -> Option<(i64, T)> {
    let (ts, first) = head.next_if(|(t, _)| before.is_none_or(|b| *t < b))?;
    let mut acc = first.clone();
    while let Some((_, more)) = head.next_if(|(t, _)| *t == ts) {
        merge(&mut acc, more);
    }
    Some((ts, acc))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod dist_tests;
#[cfg(test)]
mod tests;
