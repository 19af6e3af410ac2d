//! The ClickHouse store: minutely servers keep no data of their own, so any
//! number of them can ingest and query one ClickHouse database or cluster.
//!
//! A push pre-aggregates its points per (series, minute) and writes one row
//! per (series, minute, batch), the batch being the client's key or a
//! random id. Reads first collapse rows of the same (series, minute, batch)
//! — a retried batch, wherever it landed — and then merge across batches,
//! so a retry counts once without any coordination between servers.
//! Series ids are a hash of the series' identity, so every server computes
//! the same id. See ADR 0005.

mod aggs;
mod http;
mod maintenance;
mod meta;
mod schema;
pub mod sql;
mod target;
mod writer;

pub use target::Target;

use http::Client;
use meta::MetaRow;
use minutely_core::{Agg, Kind, Tags};
use minutely_store::{
    AlertPass, AlertRecord, AppRecord, DashboardRecord, IncidentRecord, KeyRecord, MetricInfo,
    OutboxEntry, PushOutcome, PushRequest, Rejected, Resolution, Retention, SeriesId, SeriesInfo,
    Store, StoreError, StoreStats,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Settings of the ClickHouse store.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub target: Target,
    pub retention: Retention,
    /// Checked against this server's count of the app's series, refreshed
    /// from ClickHouse; servers racing may exceed it slightly.
    pub max_series_per_app: usize,
    /// Points older than this are refused by the API, so periods older
    /// than it (plus a margin) are closed and can be rolled up.
    pub late_window_secs: i64,
    /// How long batch keys are remembered.
    pub batch_window_secs: i64,
    /// How often rollups and retention run.
    pub maintenance_interval: Duration,
}

impl ClickHouseConfig {
    pub fn new(target: Target) -> Self {
        ClickHouseConfig {
            target,
            retention: Retention::default(),
            max_series_per_app: 200_000,
            late_window_secs: 86_400,
            batch_window_secs: 90_000,
            maintenance_interval: Duration::from_secs(300),
        }
    }
}

/// The stable 64-bit id of a series: the same on every server, with no
/// coordination. Length prefixes keep ("ab","c") and ("a","bc") apart.
pub fn series_id(app: &str, env: &str, name: &str, tags: &Tags) -> SeriesId {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    part(app);
    part(env);
    part(name);
    for (k, v) in tags.iter() {
        part(k);
        part(v);
    }
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The id under which a client's batch key is stored, for any server.
fn batch_id(app: &str, env: &str, batch: &str) -> u64 {
    series_id(app, env, batch, &Tags::new()) ^ 0x6261_7463_6800_0000
}

fn random_u64() -> Result<u64, StoreError> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).map_err(|e| StoreError::Engine(format!("no randomness: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) struct Inner {
    cfg: ClickHouseConfig,
    client: Client,
    /// Kind of each (app, metric name) seen by this server.
    kinds: RwLock<HashMap<(String, String), Kind>>,
    /// Series known to be in ClickHouse's series table.
    known: RwLock<HashSet<SeriesId>>,
    /// Kinds of series this server has pushed or listed (reads of counters
    /// and gauges skip the sketch columns).
    sid_kinds: RwLock<HashMap<SeriesId, Kind>>,
    /// Series count per app, loaded on first use, then counted here.
    app_series: Mutex<HashMap<String, usize>>,
    /// Batch keys being stored by this server right now.
    in_flight: Mutex<HashSet<u64>>,
    /// Queue of the group-commit writer; `None` once closed.
    writer: Mutex<Option<SyncSender<writer::Job>>>,
    closed: AtomicBool,
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

pub struct ClickHouseStore {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Deserialize)]
struct SidRow {
    sid: u64,
}

#[derive(Deserialize)]
struct KindRow {
    name: String,
    kind: u8,
}

#[derive(Deserialize)]
struct SeriesRow {
    sid: u64,
    env: String,
    kind: u8,
    tag_keys: Vec<String>,
    tag_values: Vec<String>,
}

#[derive(Deserialize)]
struct CatalogueRow {
    sid: u64,
    env: String,
    name: String,
    kind: u8,
    tag_keys: Vec<String>,
    tag_values: Vec<String>,
}

#[derive(Deserialize)]
struct LastSeenRow {
    sid: u64,
    last: u32,
}

fn tags_of(keys: Vec<String>, values: Vec<String>) -> Tags {
    Tags::from_pairs(keys.into_iter().zip(values))
}

impl ClickHouseStore {
    /// Connects, brings the schema up to date and starts the maintenance
    /// thread (rollups and retention).
    pub fn open(cfg: ClickHouseConfig) -> Result<ClickHouseStore, StoreError> {
        let client = Client::new(cfg.target.clone());
        schema::migrate(&client)?;
        let (tx, rx) = sync_channel(1024);
        let inner = Arc::new(Inner {
            cfg,
            client,
            kinds: RwLock::default(),
            known: RwLock::default(),
            sid_kinds: RwLock::default(),
            app_series: Mutex::default(),
            in_flight: Mutex::default(),
            writer: Mutex::new(Some(tx)),
            closed: AtomicBool::new(false),
            stop: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
        });
        let worker = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("minutely-ch-maintenance".into())
                .spawn(move || maintenance::run(inner))?
        };
        let group_writer = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("minutely-ch-writer".into())
                .spawn(move || writer::run(inner, rx))?
        };
        Ok(ClickHouseStore {
            inner,
            threads: Mutex::new(vec![worker, group_writer]),
        })
    }

    /// Writes rollups of closed periods and drops expired partitions now.
    pub fn maintain(&self) -> Result<(), StoreError> {
        maintenance::pass(&self.inner, now_secs())
    }
}

impl Inner {
    fn db(&self) -> &str {
        &self.client.target().database
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Loads the kinds of metric names this server has not seen yet.
    fn load_kinds(&self, app: &str, names: &BTreeSet<&str>) -> Result<(), StoreError> {
        let rows: Vec<KindRow> = self.client.select(&format!(
            "SELECT name, any(kind) AS kind FROM {}.series WHERE app = {} AND name IN ({}) GROUP BY name",
            self.db(),
            sql::quote(app),
            sql::quote_list(names.iter().copied())
        ))?;
        let mut kinds = self.kinds.write().unwrap_or_else(|p| p.into_inner());
        for r in rows {
            if let Some(k) = Kind::from_code(r.kind) {
                kinds.insert((app.to_string(), r.name), k);
            }
        }
        Ok(())
    }

    /// Marks as known the series of `sids` that ClickHouse already has.
    fn load_known(&self, sids: &BTreeSet<SeriesId>) -> Result<(), StoreError> {
        let list = sids
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let rows: Vec<SidRow> = self.client.select(&format!(
            "SELECT DISTINCT sid FROM {}.series WHERE sid IN ({list})",
            self.db()
        ))?;
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(rows.into_iter().map(|r| r.sid));
        Ok(())
    }

    fn app_series_count(&self, app: &str) -> Result<usize, StoreError> {
        if let Some(n) = self
            .app_series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
        {
            return Ok(*n);
        }
        let text = self.client.execute(&format!(
            "SELECT uniqExact(sid) FROM {}.series WHERE app = {}",
            self.db(),
            sql::quote(app)
        ))?;
        let n = text.trim().parse().unwrap_or(0);
        self.app_series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_string(), n);
        Ok(n)
    }

    /// Stores the points under `batch`; `key` is set when it is the
    /// client's batch key, to be remembered with the points.
    fn push_points(
        &self,
        req: PushRequest,
        batch: u64,
        key: Option<u64>,
    ) -> Result<PushOutcome, StoreError> {
        let (app, env) = (req.app.as_str(), req.env.as_str());
        let sids: Vec<SeriesId> = req
            .points
            .iter()
            .map(|(_, p)| series_id(app, env, &p.name, &p.tags))
            .collect();
        {
            let kinds = self.kinds.read().unwrap_or_else(|p| p.into_inner());
            let unknown: BTreeSet<&str> = req
                .points
                .iter()
                .map(|(_, p)| &*p.name)
                .filter(|n| !kinds.contains_key(&(app.to_string(), n.to_string())))
                .collect();
            drop(kinds);
            if !unknown.is_empty() {
                self.load_kinds(app, &unknown)?;
            }
        }
        let unknown_sids: BTreeSet<SeriesId> = {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            sids.iter()
                .filter(|s| !known.contains(s))
                .copied()
                .collect()
        };
        if !unknown_sids.is_empty() {
            self.load_known(&unknown_sids)?;
        }
        let mut outcome = PushOutcome::default();
        let mut new_kinds: HashMap<&str, Kind> = HashMap::new();
        let mut new_series: BTreeMap<SeriesId, usize> = BTreeMap::new();
        let mut minutes: BTreeMap<(SeriesId, i64), Agg> = BTreeMap::new();
        let mut app_count: Option<usize> = None;
        {
            let kinds = self.kinds.read().unwrap_or_else(|p| p.into_inner());
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            for (n, ((index, p), sid)) in req.points.iter().zip(&sids).enumerate() {
                let has = kinds
                    .get(&(app.to_string(), p.name.to_string()))
                    .or(new_kinds.get(&*p.name))
                    .copied();
                if let Some(has) = has.filter(|h| *h != p.kind) {
                    outcome.rejected.push(Rejected {
                        index: *index,
                        reason: "kind_conflict",
                        message: format!(
                            "metric {:?} is a {has} in this app; a {} point cannot be added to it (use another name)",
                            p.name, p.kind
                        ),
                    });
                    continue;
                }
                if !known.contains(sid) && !new_series.contains_key(sid) {
                    let count = match app_count {
                        Some(c) => c,
                        None => *app_count.insert(self.app_series_count(app)?),
                    };
                    let limit = self.cfg.max_series_per_app;
                    if count + new_series.len() >= limit {
                        outcome.rejected.push(Rejected {
                            index: *index,
                            reason: "series_limit",
                            message: format!(
                                "app {app:?} has reached its limit of {limit} series; this point would start a new one (check for a tag with unbounded values, or raise max_series_per_app)"
                            ),
                        });
                        continue;
                    }
                    new_series.insert(*sid, n);
                }
                new_kinds.entry(&*p.name).or_insert(p.kind);
                let agg = p.to_agg();
                match minutes.entry((*sid, p.minute())) {
                    std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&agg),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(agg);
                    }
                }
                outcome.accepted += 1;
            }
        }
        if outcome.accepted == 0 {
            return Ok(outcome);
        }
        // Series first: a point row is never without its series.
        let mut series_rows = sql::RowBinary::default();
        for &n in new_series.values() {
            let p = &req.points[n].1;
            series_rows
                .str(app)
                .str(env)
                .str(&p.name)
                .u8(p.kind.code())
                .u64(sids[n])
                .strs(&p.tags.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .strs(&p.tags.iter().map(|(_, v)| v).collect::<Vec<_>>());
        }
        let mut rows = sql::RowBinary::default();
        for ((sid, minute), agg) in &minutes {
            rows.u64(*sid).u32(*minute as u32).u64(batch);
            aggs::encode(&mut rows, agg);
        }
        let mut batches = sql::RowBinary::default();
        if let Some(key) = key {
            batches
                .u64(key)
                .u64(outcome.accepted as u64)
                .u32(now_secs() as u32);
        }
        let (reply, answer) = sync_channel(1);
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Closed)?
            .send(writer::Job {
                series: series_rows.buf,
                points: rows.buf,
                batches: batches.buf,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer
            .recv()
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::Engine)?;
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(new_series.keys());
        {
            let mut kinds = self.sid_kinds.write().unwrap_or_else(|p| p.into_inner());
            for ((sid, _), agg) in &minutes {
                kinds.insert(*sid, agg.kind());
            }
        }
        {
            let mut kinds = self.kinds.write().unwrap_or_else(|p| p.into_inner());
            for (name, kind) in new_kinds {
                kinds
                    .entry((app.to_string(), name.to_string()))
                    .or_insert(kind);
            }
        }
        if !new_series.is_empty() {
            *self
                .app_series
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(app.to_string())
                .or_default() += new_series.len();
        }
        Ok(outcome)
    }

    /// `Some(accepted)` if any server stored this batch before.
    fn stored_batch(&self, key: u64) -> Result<Option<u64>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            accepted: u64,
        }
        let rows: Vec<Row> = self.client.select(&format!(
            "SELECT accepted FROM {}.batches WHERE key = {key} LIMIT 1",
            self.db()
        ))?;
        Ok(rows.first().map(|r| r.accepted))
    }
}

impl Store for ClickHouseStore {
    fn push(&self, req: PushRequest) -> Result<PushOutcome, StoreError> {
        let inner = &self.inner;
        inner.check_open()?;
        let Some(key) = req
            .batch
            .as_deref()
            .map(|b| batch_id(&req.app, &req.env, b))
        else {
            return inner.push_points(req, random_u64()?, None);
        };
        if !inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key)
        {
            return Err(StoreError::BatchInFlight(format!("{key:016x}")));
        }
        let result = (|| {
            if let Some(accepted) = inner.stored_batch(key)? {
                return Ok(PushOutcome {
                    accepted: accepted as usize,
                    rejected: Vec::new(),
                    duplicate: true,
                });
            }
            inner.push_points(req, key, Some(key))
        })();
        inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        result
    }

    fn metric_kind(&self, app: &str, name: &str) -> Option<Kind> {
        let inner = &self.inner;
        let key = (app.to_string(), name.to_string());
        if let Some(k) = inner
            .kinds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Some(*k);
        }
        if let Err(e) = inner.load_kinds(app, &BTreeSet::from([name])) {
            tracing::error!("reading metric kinds from ClickHouse: {e}");
        }
        inner
            .kinds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
    }

    fn series_of(&self, app: &str, env: Option<&str>, name: &str) -> Vec<SeriesInfo> {
        let inner = &self.inner;
        let env_filter = env.map_or(String::new(), |e| format!(" AND env = {}", sql::quote(e)));
        let rows: Result<Vec<SeriesRow>, _> = inner.client.select(&format!(
            "SELECT DISTINCT sid, env, kind, tag_keys, tag_values FROM {}.series \
             WHERE app = {} AND name = {}{env_filter} ORDER BY sid",
            inner.db(),
            sql::quote(app),
            sql::quote(name)
        ));
        match rows {
            Ok(rows) => {
                let mut kinds = inner.sid_kinds.write().unwrap_or_else(|p| p.into_inner());
                for r in &rows {
                    if let Some(k) = Kind::from_code(r.kind) {
                        kinds.insert(r.sid, k);
                    }
                }
                drop(kinds);
                rows.into_iter()
                    .map(|r| SeriesInfo {
                        id: r.sid,
                        env: r.env,
                        tags: tags_of(r.tag_keys, r.tag_values),
                    })
                    .collect()
            }
            Err(e) => {
                tracing::error!("reading series from ClickHouse: {e}");
                Vec::new()
            }
        }
    }

    fn read(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<(i64, Agg)>>, StoreError> {
        let inner = &self.inner;
        inner.check_open()?;
        maintenance::read(inner, series, res, from, to)
    }

    fn read_grouped(
        &self,
        groups: &[Vec<SeriesId>],
        res: Resolution,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Option<Vec<Vec<(i64, Agg)>>>, StoreError> {
        let inner = &self.inner;
        inner.check_open()?;
        // The grid must be made of whole stored buckets, and a series can
        // map to one group only.
        let mut seen = HashSet::new();
        if step <= 0
            || step % res.secs() != 0
            || !groups.iter().flatten().all(|id| seen.insert(*id))
        {
            return Ok(None);
        }
        maintenance::read_grouped(inner, groups, res, from, to, step).map(Some)
    }

    fn catalogue(&self, app: &str, env: Option<&str>) -> Vec<MetricInfo> {
        match catalogue(&self.inner, app, env) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reading the catalogue from ClickHouse: {e}");
                Vec::new()
            }
        }
    }

    fn retention(&self) -> Retention {
        self.inner.cfg.retention
    }

    fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        meta::list(&self.inner.client, meta::APP, None, None)
    }

    fn create_app(&self, app: AppRecord) -> Result<(), StoreError> {
        let c = &self.inner.client;
        if meta::get::<AppRecord>(c, meta::APP, "", &app.name)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "app {:?} already exists",
                app.name
            )));
        }
        meta::write(c, &[MetaRow::put(meta::APP, "", &app.name, &app)])
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        meta::list(&self.inner.client, meta::KEY, None, None)
    }

    fn put_key(&self, key: KeyRecord) -> Result<(), StoreError> {
        meta::write(
            &self.inner.client,
            &[MetaRow::put(meta::KEY, "", &key.hash, &key)],
        )
    }

    fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let Some(key) = self.keys()?.into_iter().find(|k| k.id == id) else {
            return Ok(false);
        };
        meta::write(
            &self.inner.client,
            &[MetaRow::delete(meta::KEY, "", &key.hash)],
        )?;
        Ok(true)
    }

    fn dashboards(&self, app: &str) -> Result<Vec<DashboardRecord>, StoreError> {
        meta::list(&self.inner.client, meta::DASHBOARD, Some(app), None)
    }

    fn put_dashboard(&self, d: DashboardRecord) -> Result<(), StoreError> {
        meta::write(
            &self.inner.client,
            &[MetaRow::put(meta::DASHBOARD, &d.app, &d.id, &d)],
        )
    }

    fn delete_dashboard(&self, app: &str, id: &str) -> Result<bool, StoreError> {
        let c = &self.inner.client;
        if meta::get::<DashboardRecord>(c, meta::DASHBOARD, app, id)?.is_none() {
            return Ok(false);
        }
        meta::write(c, &[MetaRow::delete(meta::DASHBOARD, app, id)])?;
        Ok(true)
    }

    fn alerts(&self, app: Option<&str>) -> Result<Vec<AlertRecord>, StoreError> {
        meta::list(&self.inner.client, meta::ALERT, app, None)
    }

    fn put_alert(&self, a: AlertRecord) -> Result<(), StoreError> {
        meta::write(
            &self.inner.client,
            &[MetaRow::put(meta::ALERT, &a.app, &a.id, &a)],
        )
    }

    fn delete_alert(&self, app: &str, id: &str) -> Result<bool, StoreError> {
        let c = &self.inner.client;
        if meta::get::<AlertRecord>(c, meta::ALERT, app, id)?.is_none() {
            return Ok(false);
        }
        meta::write(
            c,
            &[
                MetaRow::delete(meta::ALERT, app, id),
                MetaRow::delete(meta::ALERT_STATE, app, id),
            ],
        )?;
        Ok(true)
    }

    fn alert_state(&self, app: &str, id: &str) -> Result<Option<String>, StoreError> {
        meta::get(&self.inner.client, meta::ALERT_STATE, app, id)
    }

    fn commit_alert_pass(&self, pass: AlertPass) -> Result<Vec<u64>, StoreError> {
        let mut rows = vec![MetaRow::put(
            meta::ALERT_STATE,
            &pass.app,
            &pass.alert_id,
            &pass.state,
        )];
        for i in &pass.incidents {
            rows.push(MetaRow::put(meta::INCIDENT, &i.app, &i.id, i));
        }
        let mut ids = Vec::new();
        for body in pass.notifications {
            // Time-ordered and unique across servers: nanoseconds, then
            // random low bits.
            let id = meta::outbox_id()?;
            let entry = OutboxEntry {
                id,
                due: pass.now,
                attempts: 0,
                last_error: None,
                body,
            };
            rows.push(MetaRow::put(
                meta::OUTBOX,
                "",
                &meta::outbox_key(id),
                &entry,
            ));
            ids.push(id);
        }
        meta::write(&self.inner.client, &rows)?;
        Ok(ids)
    }

    fn incidents(&self, app: &str) -> Result<Vec<IncidentRecord>, StoreError> {
        meta::list(&self.inner.client, meta::INCIDENT, Some(app), None)
    }

    fn prune_incidents(&self, before: i64) -> Result<usize, StoreError> {
        let all: Vec<IncidentRecord> = meta::list(&self.inner.client, meta::INCIDENT, None, None)?;
        let old: Vec<MetaRow> = all
            .iter()
            .filter(|i| i.closed_at.is_some_and(|c| c < before))
            .map(|i| MetaRow::delete(meta::INCIDENT, &i.app, &i.id))
            .collect();
        if !old.is_empty() {
            meta::write(&self.inner.client, &old)?;
        }
        Ok(old.len())
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        meta::list(&self.inner.client, meta::OUTBOX, Some(""), None)
    }

    fn update_outbox(&self, entry: OutboxEntry) -> Result<(), StoreError> {
        let c = &self.inner.client;
        let key = meta::outbox_key(entry.id);
        if meta::get::<OutboxEntry>(c, meta::OUTBOX, "", &key)?.is_none() {
            return Ok(());
        }
        meta::write(c, &[MetaRow::put(meta::OUTBOX, "", &key, &entry)])
    }

    fn remove_outbox(&self, id: u64) -> Result<(), StoreError> {
        meta::write(
            &self.inner.client,
            &[MetaRow::delete(meta::OUTBOX, "", &meta::outbox_key(id))],
        )
    }

    fn stats(&self) -> StoreStats {
        let inner = &self.inner;
        StoreStats {
            series: inner.known.read().unwrap_or_else(|p| p.into_inner()).len(),
            apps: inner
                .app_series
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len(),
            ..StoreStats::default()
        }
    }

    /// Nothing is held open: every acknowledged push is already in ClickHouse.
    fn checkpoint(&self) -> Result<(), StoreError> {
        self.inner.check_open()
    }

    fn backup(&self, _dest: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Conflict(
            "the ClickHouse store is backed up with ClickHouse's own tools (see docs/operations/scale-out.md), not by minutely".into(),
        ))
    }

    fn close(&self) -> Result<(), StoreError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let (lock, cv) = &*self.inner.stop;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        // The writer finishes what is queued, then stops.
        self.inner
            .writer
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
        Ok(())
    }
}

impl Drop for ClickHouseStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn catalogue(inner: &Inner, app: &str, env: Option<&str>) -> Result<Vec<MetricInfo>, StoreError> {
    let db = inner.db();
    let env_filter = env.map_or(String::new(), |e| format!(" AND env = {}", sql::quote(e)));
    let series_filter = format!("app = {}{env_filter}", sql::quote(app));
    let rows: Vec<CatalogueRow> = inner.client.select(&format!(
        "SELECT DISTINCT sid, env, name, kind, tag_keys, tag_values FROM {db}.series WHERE {series_filter}"
    ))?;
    let last: Vec<LastSeenRow> = inner.client.select(&format!(
        "SELECT sid, max(minute) AS last FROM {db}.points \
         WHERE sid GLOBAL IN (SELECT sid FROM {db}.series WHERE {series_filter}) GROUP BY sid"
    ))?;
    let last: HashMap<u64, i64> = last.into_iter().map(|r| (r.sid, r.last as i64)).collect();
    let mut out: BTreeMap<(String, String), MetricInfo> = BTreeMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    for r in rows {
        if !seen.insert(r.sid) {
            continue;
        }
        let Some(kind) = Kind::from_code(r.kind) else {
            continue;
        };
        let info = out
            .entry((r.name.clone(), r.env.clone()))
            .or_insert_with(|| MetricInfo {
                name: r.name.clone(),
                kind,
                env: r.env.clone(),
                tags: BTreeMap::new(),
                series: 0,
                last_seen: None,
            });
        info.series += 1;
        for (k, v) in r.tag_keys.into_iter().zip(r.tag_values) {
            info.tags.entry(k).or_default().insert(v);
        }
        if let Some(&t) = last.get(&r.sid) {
            info.last_seen = Some(info.last_seen.map_or(t, |s| s.max(t)));
        }
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids are stored in ClickHouse: a change of the hash would split every
    /// series in two after an upgrade.
    #[test]
    fn series_ids_are_stable_and_separate_parts() {
        let tags = Tags::from_pairs([("region", "eu")]);
        assert_eq!(
            series_id("shop", "prod", "orders", &tags),
            series_id(
                "shop",
                "prod",
                "orders",
                &Tags::from_pairs([("region", "eu")])
            )
        );
        assert_eq!(
            series_id("shop", "prod", "orders", &tags),
            15_089_806_152_425_258_532
        );
        assert_ne!(
            series_id("ab", "c", "n", &Tags::new()),
            series_id("a", "bc", "n", &Tags::new())
        );
        assert_ne!(
            series_id("shop", "prod", "orders", &tags),
            series_id("shop", "staging", "orders", &tags)
        );
    }
}
