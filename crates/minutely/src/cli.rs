//! Command-line arguments. Every serve setting also reads a `MINUTELY_*`
//! variable and the config file; flags win over variables, variables over
//! the file, the file over defaults.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "minutely",
    version,
    about = "Self-hosted custom metrics: per-minute gauges, counters and distributions"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the serve variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Push one value (for shell scripts and cron jobs).
    Push(PushArgs),
    /// Query a metric and print a table (or JSON).
    Query(QueryArgs),
    /// Create, list and revoke API keys in a data directory.
    Keys(KeysArgs),
    /// Copy a consistent snapshot of a data directory.
    Backup(BackupArgs),
    /// Check every stored block of a stopped server's data directory
    /// against its checksum; exits non-zero when any is damaged.
    Check(CheckArgs),
    /// Export, import and list dashboards (YAML or JSON) on a running server.
    Dashboards(DashboardsArgs),
    /// Export, import and list alerts (YAML or JSON) on a running server.
    Alerts(AlertsArgs),
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Config file (TOML); `minutely.toml` in the working directory is read when present.
    #[arg(long, env = "MINUTELY_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP address [default: 127.0.0.1:8080].
    #[arg(long, env = "MINUTELY_LISTEN")]
    pub listen: Option<String>,
    /// Data directory [default: ./minutely-data].
    #[arg(long, env = "MINUTELY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `embedded` (the data directory), or a ClickHouse database shared by
    /// several servers: `clickhouse://[user[:password]@]host:port[,host:port...]/db[?cluster=NAME&tls=true]`
    /// [default: embedded].
    #[arg(long, env = "MINUTELY_STORE")]
    pub store: Option<String>,
    /// StatsD/DogStatsD UDP address, or `off` [default: 127.0.0.1:8125].
    #[arg(long, env = "MINUTELY_STATSD")]
    pub statsd: Option<String>,
    /// Unix datagram socket path for StatsD as well [default: none].
    #[arg(long, env = "MINUTELY_STATSD_SOCKET")]
    pub statsd_socket: Option<std::path::PathBuf>,
    /// App that StatsD points go to [default: default].
    #[arg(long, env = "MINUTELY_STATSD_APP")]
    pub statsd_app: Option<String>,
    /// Env that StatsD points go to [default: default].
    #[arg(long, env = "MINUTELY_STATSD_ENV")]
    pub statsd_env: Option<String>,
    /// Let the StatsD tags `app:` and `env:` choose a point's app and env.
    #[arg(long, env = "MINUTELY_STATSD_TAG_ROUTING")]
    pub statsd_tag_routing: bool,
    /// Fill the `webshop` demo app with a day of history and live data.
    #[arg(long, env = "MINUTELY_DEMO")]
    pub demo: bool,
    /// Days of minute data to keep [default: 30].
    #[arg(long, env = "MINUTELY_RETENTION_MINUTELY_DAYS")]
    pub retention_minutely_days: Option<u32>,
    /// Days of hourly rollups to keep [default: 400].
    #[arg(long, env = "MINUTELY_RETENTION_HOURLY_DAYS")]
    pub retention_hourly_days: Option<u32>,
    /// Days of daily rollups to keep; 0 keeps them forever [default: 0].
    #[arg(long, env = "MINUTELY_RETENTION_DAILY_DAYS")]
    pub retention_daily_days: Option<u32>,
    /// Series an app may have [default: 200000].
    #[arg(long, env = "MINUTELY_MAX_SERIES_PER_APP")]
    pub max_series_per_app: Option<usize>,
    /// Largest push body in bytes, also after gunzip [default: 10485760].
    #[arg(long, env = "MINUTELY_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Points one push may carry [default: 50000].
    #[arg(long, env = "MINUTELY_MAX_POINTS_PER_BATCH")]
    pub max_points_per_batch: Option<usize>,
    /// How old a point may be and still merge into its minute, in seconds [default: 86400].
    #[arg(long, env = "MINUTELY_LATE_WINDOW_SECS")]
    pub late_window_secs: Option<u64>,
    /// Seconds between checkpoints of open minutes to the database [default: 300].
    #[arg(long, env = "MINUTELY_CHECKPOINT_SECS")]
    pub checkpoint_secs: Option<u64>,
    /// Milliseconds between syncs of the write-ahead log to the disk. An
    /// answered push survives the server being killed either way; a power
    /// loss can take what was answered since the last sync. 0 syncs before
    /// every answer [default: 1000].
    #[arg(long, env = "MINUTELY_WAL_SYNC_MS")]
    pub wal_sync_ms: Option<u64>,
    /// Memory for the database's page cache, in MiB; reads beyond it come
    /// from the operating system's file cache [default: 8].
    #[arg(long, env = "MINUTELY_PAGE_CACHE_MB")]
    pub page_cache_mb: Option<usize>,
    /// MiB of recently read data blocks (inflated or decoded) kept in memory
    /// for queries that ask again for the same days; 0 turns the cache off
    /// [default: an eighth of the memory (the cgroup's limit if lower),
    /// 64 to 2048].
    #[arg(long, env = "MINUTELY_BLOCK_CACHE_MB")]
    pub block_cache_mb: Option<usize>,
    /// Evaluate alerts on this server: on or off (with several servers over
    /// one store, exactly one should) [default: on].
    #[arg(long, env = "MINUTELY_ALERTS")]
    pub alerts: Option<String>,
    /// Seconds after a minute closes before alerts evaluate it [default: 15].
    #[arg(long, env = "MINUTELY_ALERTS_GRACE_SECS")]
    pub alerts_grace_secs: Option<u64>,
    /// `system`, or `manual`: only `POST /api/v1/alerts/evaluate?to=` moves
    /// evaluation on (for tests) [default: system].
    #[arg(long, env = "MINUTELY_ALERTS_CLOCK")]
    pub alerts_clock: Option<String>,
    /// The server's address as users reach it, for links in notifications.
    #[arg(long, env = "MINUTELY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// SMTP server for email notifications [default: none, email off].
    #[arg(long, env = "MINUTELY_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port [default: 587, or 465 with --smtp-tls tls, 25 with none].
    #[arg(long, env = "MINUTELY_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// starttls, tls or none [default: starttls].
    #[arg(long, env = "MINUTELY_SMTP_TLS")]
    pub smtp_tls: Option<String>,
    #[arg(long, env = "MINUTELY_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long, env = "MINUTELY_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// From address of alert emails [default: minutely@<smtp host>].
    #[arg(long, env = "MINUTELY_SMTP_FROM")]
    pub smtp_from: Option<String>,
}

#[derive(Args, Debug)]
pub struct Endpoint {
    /// Server URL.
    #[arg(
        long,
        env = "MINUTELY_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    pub endpoint: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Metric name.
    pub name: String,
    /// The value (for a counter: the amount to add).
    #[arg(allow_hyphen_values = true)]
    pub value: f64,
    /// gauge, counter or distribution.
    #[arg(long, default_value = "gauge")]
    pub kind: String,
    /// A tag as key=value (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    #[arg(long, env = "MINUTELY_ENV")]
    pub env: Option<String>,
    /// Unix seconds of the value [default: now].
    #[arg(long)]
    pub ts: Option<f64>,
    /// Push key.
    #[arg(long, env = "MINUTELY_PUSH_KEY", hide_env_values = true)]
    pub key: String,
    #[command(flatten)]
    pub endpoint: Endpoint,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    pub metric: String,
    /// Field: sum, rate, last, mean, min, max, count, p50, p95, ... [default: by kind].
    #[arg(long)]
    pub field: Option<String>,
    /// Start: unix seconds, RFC 3339 or relative (-24h).
    #[arg(long, default_value = "-1h", allow_hyphen_values = true)]
    pub from: String,
    /// End (exclusive): unix seconds, RFC 3339, relative or now.
    #[arg(long, default_value = "now", allow_hyphen_values = true)]
    pub to: String,
    /// Seconds (a multiple of 60) or auto.
    #[arg(long, default_value = "auto")]
    pub step: String,
    /// A tag filter key:value, `*` allowed (repeatable).
    #[arg(long = "tag", value_name = "KEY:VALUE")]
    pub tags: Vec<String>,
    /// Tag keys to group by, comma separated.
    #[arg(long)]
    pub group_by: Option<String>,
    /// How gauges combine across series: sum, mean, min, max.
    #[arg(long)]
    pub across: Option<String>,
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long, env = "MINUTELY_ENV")]
    pub env: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read or admin key.
    #[arg(long, env = "MINUTELY_READ_KEY", hide_env_values = true)]
    pub key: String,
    #[command(flatten)]
    pub endpoint: Endpoint,
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
    /// Data directory (the server must not be running on it).
    #[arg(
        long,
        env = "MINUTELY_DATA_DIR",
        default_value = "./minutely-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// Create a key and print it (shown only this once).
    Create {
        /// push, read or admin.
        #[arg(long)]
        scope: String,
        /// The app the key belongs to (`*` for an admin key of every app).
        #[arg(long, default_value = "default")]
        app: String,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (ids, never secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Args, Debug)]
pub struct DashboardsArgs {
    #[command(subcommand)]
    pub action: DashboardsAction,
    /// The app the dashboards belong to [default: the key's app].
    #[arg(long, global = true)]
    pub app: Option<String>,
    /// Read key for export and list, admin key for import [default:
    /// MINUTELY_ADMIN_KEY, else MINUTELY_READ_KEY].
    #[arg(long, global = true)]
    pub key: Option<String>,
    /// Server URL.
    #[arg(
        long,
        env = "MINUTELY_ENDPOINT",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub endpoint: String,
}

#[derive(Subcommand, Debug)]
pub enum DashboardsAction {
    /// Print a dashboard as YAML (or write it to --output).
    Export {
        /// The dashboard's id (see `minutely dashboards list`).
        id: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Create a dashboard from a YAML or JSON file (ours or AppSignal's);
    /// `-` reads standard input.
    Import {
        file: PathBuf,
        /// Create or replace the dashboard with this id instead of making a new one.
        #[arg(long)]
        id: Option<String>,
    },
    /// List the dashboards of the app.
    List,
}

#[derive(Args, Debug)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: AlertsAction,
    /// The app the alerts belong to [default: the key's app].
    #[arg(long, global = true)]
    pub app: Option<String>,
    /// Read key for export and list, admin key for import [default:
    /// MINUTELY_ADMIN_KEY, else MINUTELY_READ_KEY].
    #[arg(long, global = true)]
    pub key: Option<String>,
    /// Server URL.
    #[arg(
        long,
        env = "MINUTELY_ENDPOINT",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub endpoint: String,
}

#[derive(Subcommand, Debug)]
pub enum AlertsAction {
    /// Print an alert as YAML (or JSON), or all of them as a YAML list.
    Export {
        /// The alert's id (see `minutely alerts list`); all when absent.
        id: Option<String>,
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Create or replace alerts from a YAML or JSON file (one alert or a
    /// list); `-` reads standard input.
    Import {
        file: PathBuf,
        /// Create or replace the alert with this id (one alert only).
        #[arg(long)]
        id: Option<String>,
    },
    /// List the alerts of the app with the state of each series.
    List,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Data directory of a stopped server.
    #[arg(long, env = "MINUTELY_DATA_DIR", default_value = "./minutely-data")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Directory to write the snapshot to (must not exist or be empty). With
    /// `--key`, a path on the server's machine.
    pub dest: PathBuf,
    /// Data directory of a stopped server.
    #[arg(long, env = "MINUTELY_DATA_DIR", default_value = "./minutely-data")]
    pub data_dir: PathBuf,
    /// Admin key: ask the running server at `--endpoint` to write the
    /// backup (given explicitly, so a key in the environment never changes
    /// which directory is backed up).
    #[arg(long)]
    pub key: Option<String>,
    #[command(flatten)]
    pub endpoint: Endpoint,
}
