//! The storage trait and the types that cross it.

use minutely_core::fold::DistRows;
use minutely_core::query::{Grid, SeriesValues};
use minutely_core::{Agg, Field, Kind, Part, Point, Slim, Tags};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub type SeriesId = u64;

/// One series' or group's buckets: (bucket start, aggregate), by time.
pub type Buckets = Vec<(i64, Agg)>;

/// Resolution of stored buckets. Rollups are exact merges of minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    pub fn secs(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Resolution::Minute => 0,
            Resolution::Hour => 1,
            Resolution::Day => 2,
        }
    }
}

/// How long each resolution is kept. `None` keeps forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub minute_days: Option<u32>,
    pub hour_days: Option<u32>,
    pub day_days: Option<u32>,
}

impl Default for Retention {
    /// DESIGN section 1: minutely 30 days, hourly 400 days, daily forever.
    fn default() -> Self {
        Retention {
            minute_days: Some(30),
            hour_days: Some(400),
            day_days: None,
        }
    }
}

impl Retention {
    pub fn days(&self, res: Resolution) -> Option<u32> {
        match res {
            Resolution::Minute => self.minute_days,
            Resolution::Hour => self.hour_days,
            Resolution::Day => self.day_days,
        }
    }

    /// Oldest timestamp a resolution still holds at `now`, if bounded.
    pub fn cutoff(&self, res: Resolution, now: i64) -> Option<i64> {
        self.days(res).map(|d| now - d as i64 * 86_400)
    }
}

/// One series of a metric, as queries see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub id: SeriesId,
    pub env: String,
    pub tags: Tags,
}

/// A metric in the catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct MetricInfo {
    pub name: String,
    pub kind: Kind,
    pub env: String,
    /// Tag keys with the values seen.
    pub tags: BTreeMap<String, BTreeSet<String>>,
    pub series: usize,
    /// Unix seconds of the newest minute with data.
    pub last_seen: Option<i64>,
}

/// A batch of validated points for one app and env. `index` is each point's
/// position in the client's batch, for error reports.
#[derive(Debug, Clone)]
pub struct PushRequest {
    pub app: String,
    pub env: String,
    pub batch: Option<String>,
    pub points: Vec<(usize, Point)>,
}

/// A point the store refused, with a short machine reason (for counters)
/// and a message for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub index: usize,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushOutcome {
    pub accepted: usize,
    pub rejected: Vec<Rejected>,
    /// The batch key was seen before: nothing was stored this time, and
    /// `accepted` is what the first push stored.
    pub duplicate: bool,
}

/// A stored API key. The secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Short public id used to list and revoke the key.
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub app: String,
    pub scope: Scope,
    #[serde(default)]
    pub name: String,
    pub created: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Push,
    Read,
    Admin,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "push" => Ok(Scope::Push),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!("unknown key scope {s:?}: use push, read or admin")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: String,
    pub created: i64,
}

/// A stored dashboard of one app. The store keeps the definition as opaque
/// JSON; the server owns its shape and validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardRecord {
    pub app: String,
    /// Unique within the app; safe in URLs.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub updated: i64,
    /// The definition as JSON.
    pub body: String,
}

/// A stored alert definition of one app (opaque JSON, like dashboards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub app: String,
    /// Unique within the app; safe in URLs.
    pub id: String,
    pub created: i64,
    pub updated: i64,
    /// The definition as JSON.
    pub body: String,
}

/// One incident of an alert's series. The store reads only `app`, `id` and
/// `closed_at` (for pruning); `body` is the server's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub app: String,
    /// Unique within the app (`{alert id}-{n}`).
    pub id: String,
    pub alert_id: String,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub body: String,
}

/// A notification waiting to be delivered (the server's JSON in `body`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    /// Unix seconds of the next attempt.
    pub due: i64,
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    pub body: String,
}

/// What one evaluation pass of an alert changes, committed atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPass {
    pub app: String,
    pub alert_id: String,
    /// The evaluator's new state of the alert (JSON).
    pub state: String,
    /// Incidents opened, updated or closed (inserted or replaced).
    pub incidents: Vec<IncidentRecord>,
    /// Notification bodies to queue, due at `now`.
    pub notifications: Vec<String>,
    pub now: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    pub series: usize,
    pub apps: usize,
    pub disk_bytes: u64,
    pub wal_bytes: u64,
    pub open_minutes: usize,
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// Background syncs of the write-ahead log that failed (the points were
    /// answered already; a power cut before a later sync can take them).
    pub wal_sync_failures: u64,
    pub last_checkpoint_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the disk holding the data directory is full: {0}")]
    DiskFull(String),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt data in {file} at {offset}: {detail}. {remedy}")]
    Corrupt {
        file: PathBuf,
        offset: u64,
        detail: String,
        remedy: String,
    },
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("the data directory was written by a newer minutely (format {found}, this binary reads up to {supported})")]
    NewerFormat { found: u64, supported: u64 },
    #[error("batch {0:?} is being stored by another request; retry it")]
    BatchInFlight(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the store is shut down")]
    Closed,
}

impl StoreError {
    /// Maps an I/O error, singling out a full disk so the API can say 503.
    pub fn from_io(e: std::io::Error) -> StoreError {
        if e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull {
            StoreError::DiskFull(e.to_string())
        } else {
            StoreError::Io(e)
        }
    }
}

/// Everything the server needs from storage. Implementations are shared
/// between threads; calls may block (the server runs them off the async
/// reactor).
pub trait Store: Send + Sync + 'static {
    /// Stores the points. Returns only once they are durable.
    fn push(&self, req: PushRequest) -> Result<PushOutcome, StoreError>;

    /// The kind a metric name has in an app, if it exists.
    fn metric_kind(&self, app: &str, name: &str) -> Option<Kind>;

    /// Every series of one metric in an app, in one env or (`None`) all.
    fn series_of(&self, app: &str, env: Option<&str>, name: &str) -> Vec<SeriesInfo>;

    /// [`series_of`](Store::series_of), only the series whose tags `keep`
    /// accepts (a query's tag filters). The default filters the whole
    /// list; a store can skip copying the others.
    fn series_where(
        &self,
        app: &str,
        env: Option<&str>,
        name: &str,
        keep: &dyn Fn(&Tags) -> bool,
    ) -> Vec<SeriesInfo> {
        self.series_of(app, env, name)
            .into_iter()
            .filter(|s| keep(&s.tags))
            .collect()
    }

    /// [`series_where`](Store::series_where) of the series that also have
    /// each tag of `pairs` with exactly that value (a query's filters
    /// without `*`), in the same order. A store with an index of tag values
    /// reads the shortest list of series of one pair instead of all the
    /// metric's series.
    fn series_with(
        &self,
        app: &str,
        env: Option<&str>,
        name: &str,
        pairs: &[(&str, &str)],
        keep: &dyn Fn(&Tags) -> bool,
    ) -> Vec<SeriesInfo> {
        self.series_where(app, env, name, &|tags| has_pairs(tags, pairs) && keep(tags))
    }

    /// Aggregates of each series, per bucket of `res`, for buckets starting
    /// in `[from, to)`, sorted by time. Missing buckets are absent.
    fn read(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<(i64, Agg)>>, StoreError>;

    /// As [`read`](Store::read), but each bucket reduced to the `part` a
    /// query's field reads (a counter's sum, a gauge's last and its time,
    /// ...): what wide queries use. Buckets of another kind are left out.
    /// The default reads whole aggregates; a store can decode less.
    fn read_part(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
        part: Part,
    ) -> Result<Vec<Vec<(i64, Slim)>>, StoreError> {
        Ok(self
            .read(series, res, from, to)?
            .into_iter()
            .map(|buckets| {
                buckets
                    .iter()
                    .filter_map(|(ts, agg)| part.of(agg).map(|s| (*ts, s)))
                    .collect()
            })
            .collect())
    }

    /// Each series' value of `field` per bucket of `grid`, from its
    /// buckets of `res` starting in `[grid.from, to)` reduced to `part`
    /// ([`SeriesValues::of_parts`]): what a query combines across series
    /// (a gauge's field; a counter's sum where `grid` is the buckets' own).
    /// The default reads parts and folds them here; a store can fold
    /// where it reads, and hand over 8 bytes a bucket.
    #[allow(clippy::too_many_arguments)]
    fn read_values(
        &self,
        series: &[SeriesId],
        res: Resolution,
        grid: &Grid,
        to: i64,
        part: Part,
        field: Field,
    ) -> Result<Vec<SeriesValues>, StoreError> {
        Ok(self
            .read_part(series, res, grid.from, to, part)?
            .iter()
            .map(|buckets| SeriesValues::of_parts(grid, part, field, buckets))
            .collect())
    }

    /// As [`read`](Store::read), only distribution buckets, each series'
    /// as flat rows: the very numbers, without an aggregate per bucket
    /// (what a quantile over many series reads). Buckets of another kind
    /// are left out. Without `sketches`, sketches are left empty, as
    /// [`DistRows::from_buckets`] leaves them (fields other than quantiles
    /// do not read them). The default converts whole aggregates.
    fn read_dists(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
        sketches: bool,
    ) -> Result<Vec<DistRows>, StoreError> {
        Ok(self
            .read(series, res, from, to)?
            .iter()
            .map(|buckets| DistRows::from_buckets(buckets, sketches))
            .collect())
    }

    /// The merge of each group's series per output bucket: `step` seconds
    /// from `from` (a multiple of `res`), each stored bucket counting in the
    /// output bucket where it starts, as a query's grid merges them. Each
    /// group's buckets are `(bucket start, merged aggregate)`, sorted,
    /// empty ones absent. Merging across series is what a query does for
    /// counters and distributions only, so callers ask only for those. A
    /// series belongs to one group at most.
    /// `None`: this store has nothing faster than [`read`](Store::read)
    /// and the caller merges (the default).
    fn read_grouped(
        &self,
        groups: &[Vec<SeriesId>],
        res: Resolution,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Option<Vec<Buckets>>, StoreError> {
        let _ = (groups, res, from, to, step);
        Ok(None)
    }

    /// The metrics of an app (all envs when `env` is `None`).
    fn catalogue(&self, app: &str, env: Option<&str>) -> Vec<MetricInfo>;

    fn retention(&self) -> Retention;

    fn apps(&self) -> Result<Vec<AppRecord>, StoreError>;
    fn create_app(&self, app: AppRecord) -> Result<(), StoreError>;
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    fn put_key(&self, key: KeyRecord) -> Result<(), StoreError>;
    /// Removes a key by its public id; `false` when there was none.
    fn revoke_key(&self, id: &str) -> Result<bool, StoreError>;

    /// The dashboards of an app, sorted by id.
    fn dashboards(&self, app: &str) -> Result<Vec<DashboardRecord>, StoreError>;
    /// Creates or replaces the dashboard (app, id).
    fn put_dashboard(&self, dashboard: DashboardRecord) -> Result<(), StoreError>;
    /// Deletes a dashboard; `false` when there was none.
    fn delete_dashboard(&self, app: &str, id: &str) -> Result<bool, StoreError>;

    /// Alert definitions of an app sorted by id, or of every app (`None`).
    fn alerts(&self, app: Option<&str>) -> Result<Vec<AlertRecord>, StoreError>;
    /// Creates or replaces the alert (app, id); its state and incidents stay.
    fn put_alert(&self, alert: AlertRecord) -> Result<(), StoreError>;
    /// Deletes an alert and its evaluator state (its incidents stay);
    /// `false` when there was none.
    fn delete_alert(&self, app: &str, id: &str) -> Result<bool, StoreError>;
    /// The evaluator's saved state of an alert (JSON).
    fn alert_state(&self, app: &str, id: &str) -> Result<Option<String>, StoreError>;
    /// Commits one evaluation pass: state, incidents and queued
    /// notifications in one transaction. Returns the notifications' ids.
    fn commit_alert_pass(&self, pass: AlertPass) -> Result<Vec<u64>, StoreError>;
    /// The incidents of an app.
    fn incidents(&self, app: &str) -> Result<Vec<IncidentRecord>, StoreError>;
    /// Deletes incidents that closed before `before`; returns how many.
    fn prune_incidents(&self, before: i64) -> Result<usize, StoreError>;
    /// Notifications not yet delivered, by id.
    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Saves a failed attempt (new `attempts`, `due`, `last_error`); an
    /// entry already removed stays removed.
    fn update_outbox(&self, entry: OutboxEntry) -> Result<(), StoreError>;
    /// Forgets a delivered notification.
    fn remove_outbox(&self, id: u64) -> Result<(), StoreError>;

    fn stats(&self) -> StoreStats;

    /// Writes open minutes to long-term storage now (also done periodically).
    fn checkpoint(&self) -> Result<(), StoreError>;

    /// Writes a consistent copy of the data to `dest` (a new or empty
    /// directory) while the store keeps running.
    fn backup(&self, dest: &std::path::Path) -> Result<(), StoreError>;

    /// Flushes and stops background work; later calls fail with `Closed`.
    fn close(&self) -> Result<(), StoreError>;
}

/// Whether `tags` has each of `pairs`, with exactly that value.
pub fn has_pairs(tags: &Tags, pairs: &[(&str, &str)]) -> bool {
    pairs.iter().all(|(k, v)| tags.get(k) == Some(*v))
}
