//! The embedded engine: one data directory with a write-ahead log (`wal/`)
//! and a redb database (`minutely.redb`).
//!
//! Write path: a push resolves its series in the in-memory index, queues a
//! log record and waits; the writer thread writes a group of records and
//! applies them to the head (open minutes in memory) before answering, so a
//! 2xx means the points are in the log file and survive the process being
//! killed. The log is synced to the disk every `wal_sync_interval` (zero:
//! before every answer), which bounds what a power loss can take. A checkpoint, every
//! `checkpoint_interval` and at shutdown, seals the log segment, merges the
//! frozen head into redb's day blocks, recomputes the hourly and daily
//! rollups of the hours it touched, commits, and deletes the sealed log.
//!
//! Read path: redb blocks (a read snapshot) plus the head's minutes, taken
//! together under a gate that checkpoints hold while they commit, so a read
//! never sees a minute twice or not at all.

mod alerts;
mod block_files;
mod blocks;
mod checkpoint;
mod db;
mod head;
mod index;
mod lifecycle;
mod meta;
mod places;
mod push;
mod read;
mod record;
mod series_file;
mod tables;
mod verify;
mod wal;
mod writer;

use block_files::FileSet;
use read::overlay;

pub use block_files::{read_block, stored_blocks};
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
use minutely_core::query::{Grid, SeriesValues};
use minutely_core::{Agg, Field, Kind, Part, Slim};
use record::{BatchEntry, Record, SeriesDef};
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
    /// ~50 bytes a minute (both generations), the default is about 50 MB.
    pub max_open_minutes: usize,
    /// redb's page cache. Reads miss it to the operating system's file
    /// cache, so a small one costs little; a large one keeps every page
    /// the start-up block check read.
    pub page_cache_bytes: usize,
    /// How often the log is synced to the disk. An answered push is in the
    /// log file, so it survives the process being killed at any interval;
    /// a power loss or kernel crash can take the pushes answered since the
    /// last sync. Zero syncs before every answer (a group of concurrent
    /// pushes shares one sync), at the cost of the time the disk takes.
    pub wal_sync_interval: Duration,
}

/// The default log sync interval: one second.
pub const DEFAULT_WAL_SYNC_INTERVAL: Duration = Duration::from_secs(1);

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
            wal_sync_interval: DEFAULT_WAL_SYNC_INTERVAL,
        }
    }
}

/// Checkpoints tried so far, and whether the last of them failed.
#[derive(Default)]
struct CheckpointsTried {
    count: u64,
    last_failed: bool,
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
    /// Serialises series resolution and log queueing; holds what resolving
    /// carries between points.
    ingest: Mutex<index::Scratch>,
    head: Arc<RwLock<Head>>,
    /// Held shared by reads while they snapshot, exclusively by a commit.
    gate: RwLock<()>,
    /// The block files and where each block is.
    block_files: block_files::BlockFiles,
    /// Definitions of the series made durable by checkpoints.
    series_file: Mutex<series_file::SeriesFile>,
    batches: Mutex<HashMap<u128, BatchState>>,
    tx: Mutex<Option<SyncSender<WalMsg>>>,
    /// A frozen generation whose checkpoint failed, with its sealed segment.
    pending: Mutex<Option<(u64, Arc<Generation>)>>,
    signal: Arc<(Mutex<Signal>, Condvar)>,
    /// Checkpoints tried, and whether the last one failed, for pushes
    /// waiting on one.
    checkpoints_tried: (Mutex<CheckpointsTried>, Condvar),
    checkpoints: AtomicU64,
    checkpoint_failures: AtomicU64,
    /// Shared with the writer thread, which counts its failed syncs here.
    wal_sync_failures: Arc<AtomicU64>,
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

impl Inner {
    /// Held by everything that writes to redb: checkpoints, retention, keys
    /// and apps, and a backup while it copies.
    fn writer_lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<Generation>)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn head_read(&self) -> std::sync::RwLockReadGuard<'_, Head> {
        self.head.read().unwrap_or_else(|p| p.into_inner())
    }

    fn sender(&self) -> Result<SyncSender<WalMsg>, StoreError> {
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)
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
        self.series_with(app, env, name, &[], keep)
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
            |files, (), sid| blocks::read_range(files, sid, res, from, to),
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
            |files, reader, sid| blocks::read_range_part(files, sid, res, from, to, part, reader),
        )
    }

    fn read_values(
        &self,
        series: &[SeriesId],
        res: Resolution,
        grid: &Grid,
        to: i64,
        part: Part,
        field: Field,
    ) -> Result<Vec<SeriesValues>, StoreError> {
        self.inner.read_values(series, (res, grid, to), part, field)
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
        let per_series = |files: &FileSet, reader: &mut PartReader, sid, minutes: &[(i64, Agg)]| {
            if minutes.is_empty() {
                return blocks::read_range_dists(files, sid, window, sketches, reader);
            }
            // Head minutes merge into stored buckets before they are
            // folded: this series is read as whole aggregates.
            let stored = blocks::read_range(files, sid, res, from, to)?;
            let buckets = overlay(stored, minutes, res, from, &Agg::merge);
            Ok(DistRows::from_buckets(&buckets, sketches))
        };
        inner.read_snapshot(
            series,
            window,
            |agg| Some(agg.clone()),
            PartReader::default,
            per_series,
        )
    }

    fn catalogue(&self, app: &str, env: Option<&str>) -> Vec<MetricInfo> {
        let index = self.inner.index.read().unwrap_or_else(|p| p.into_inner());
        let head = self.inner.head.read().unwrap_or_else(|p| p.into_inner());
        index.catalogue(app, env, &|sid| head.newest(sid))
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
        // Appended only by checkpoints, which the writer lock holds off.
        let series_dest = dest.join(series_file::FILE);
        std::fs::copy(inner.cfg.data_dir.join(series_file::FILE), &series_dest)
            .map_err(StoreError::from_io)?;
        // Block files are never changed once written, and none is deleted
        // while the writer lock is held: each copy is whole.
        let files_dest = dest.join(block_files::DIR);
        std::fs::create_dir_all(&files_dest).map_err(StoreError::from_io)?;
        for entry in std::fs::read_dir(inner.block_files.dir())? {
            let entry = entry?;
            std::fs::copy(entry.path(), files_dest.join(entry.file_name()))
                .map_err(StoreError::from_io)?;
        }
        for entry in std::fs::read_dir(&inner.wal_dir)? {
            let entry = entry?;
            std::fs::copy(entry.path(), dest.join("wal").join(entry.file_name()))
                .map_err(StoreError::from_io)?;
        }
        // The copy is only a backup once it is on disk.
        for file in [dest.join("minutely.redb"), series_dest] {
            File::open(file)?.sync_all().map_err(StoreError::from_io)?;
        }
        for dir in [dest.join("wal"), files_dest] {
            for entry in std::fs::read_dir(&dir)? {
                File::open(entry?.path())?
                    .sync_all()
                    .map_err(StoreError::from_io)?;
            }
            File::open(dir)?.sync_all()?;
        }
        File::open(dest)?.sync_all()?;
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        let inner = &self.inner;
        let index = inner.index.read().unwrap_or_else(|p| p.into_inner());
        let db_bytes = std::fs::metadata(&inner.db_path).map_or(0, |m| m.len());
        let wal_bytes = dir_bytes(&inner.wal_dir);
        let block_bytes = dir_bytes(inner.block_files.dir())
            + std::fs::metadata(inner.cfg.data_dir.join(series_file::FILE)).map_or(0, |m| m.len());
        StoreStats {
            series: index.len(),
            apps: index.apps(),
            disk_bytes: db_bytes + wal_bytes + block_bytes,
            wal_bytes,
            open_minutes: inner
                .head
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .open_minutes(),
            checkpoints: inner.checkpoints.load(Ordering::Relaxed),
            checkpoint_failures: inner.checkpoint_failures.load(Ordering::Relaxed),
            wal_sync_failures: inner.wal_sync_failures.load(Ordering::Relaxed),
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
        let result = self
            .inner
            .checkpoint_collecting(block_files::Collect::STOPPING);
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
mod block_files_tests;
#[cfg(test)]
mod dist_tests;
#[cfg(test)]
mod test_points;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod values_tests;
