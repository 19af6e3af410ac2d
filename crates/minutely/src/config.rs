//! Server configuration in two stages: the raw file/flag values, then a
//! validated config with every default filled in and contradictions refused.

use crate::cli::ServeArgs;
use crate::memory;
use anyhow::{bail, Context, Result};
use minutely_server::alerts::{AlertsClock, AlertsConfig, SmtpConfig, SmtpTls};
use minutely_server::ingest::statsd::aggregate::Routing;
use minutely_server::ingest::statsd::listener::StatsdConfig;
use minutely_server::ServerConfig;
use minutely_store::embedded::EmbeddedConfig;
use minutely_store::Retention;
use minutely_store_clickhouse::{ClickHouseConfig, Target};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `minutely.toml`: the same settings as the flags, with `_` in names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub statsd: Option<String>,
    pub statsd_socket: Option<PathBuf>,
    pub statsd_app: Option<String>,
    pub statsd_env: Option<String>,
    pub statsd_tag_routing: Option<bool>,
    pub demo: Option<bool>,
    pub retention_minutely_days: Option<u32>,
    pub retention_hourly_days: Option<u32>,
    pub retention_daily_days: Option<u32>,
    pub max_series_per_app: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub max_points_per_batch: Option<usize>,
    pub checkpoint_secs: Option<u64>,
    pub wal_sync_ms: Option<u64>,
    pub page_cache_mb: Option<usize>,
    pub block_cache_mb: Option<usize>,
    pub late_window_secs: Option<u64>,
    pub alerts: Option<String>,
    pub alerts_grace_secs: Option<u64>,
    pub alerts_clock: Option<String>,
    pub public_url: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_tls: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub smtp_from: Option<String>,
}

pub struct Config {
    pub listen: SocketAddr,
    /// `None` when StatsD is off.
    pub statsd: Option<StatsdConfig>,
    /// The UDP address was the default, not asked for: if it is taken,
    /// warn and go on without it (several servers on one machine).
    pub statsd_default_addr: bool,
    pub demo: bool,
    pub store: EmbeddedConfig,
    /// Size of the embedded store's cache of inflated blocks.
    pub block_cache_bytes: usize,
    /// Set when `--store` names a ClickHouse database: it replaces the
    /// embedded store (and takes its retention and limits).
    pub clickhouse: Option<ClickHouseConfig>,
    pub server: ServerConfig,
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new("minutely.toml").exists() => PathBuf::from("minutely.toml"),
        None => return Ok(FileConfig::default()),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is invalid", path.display()))
}

/// 0 days means "keep forever".
fn days(v: Option<u32>, default: Option<u32>) -> Option<u32> {
    match v {
        Some(0) => None,
        Some(d) => Some(d),
        None => default,
    }
}

pub fn resolve(args: ServeArgs) -> Result<Config> {
    let file = load_file(args.config.as_deref())?;
    let (statsd, statsd_default_addr) = statsd_config(&args, &file)?;
    let alerts = alerts_config(&args, &file)?;
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: SocketAddr = listen.parse().with_context(|| {
        format!("--listen {listen:?} must be an address such as 127.0.0.1:8080")
    })?;
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./minutely-data"));
    let defaults = Retention::default();
    let retention = Retention {
        minute_days: days(
            args.retention_minutely_days
                .or(file.retention_minutely_days),
            defaults.minute_days,
        ),
        hour_days: days(
            args.retention_hourly_days.or(file.retention_hourly_days),
            defaults.hour_days,
        ),
        day_days: days(
            args.retention_daily_days.or(file.retention_daily_days),
            defaults.day_days,
        ),
    };
    let late = args
        .late_window_secs
        .or(file.late_window_secs)
        .unwrap_or(86_400);
    if late < 60 {
        bail!("late_window_secs must be at least 60");
    }
    // Late points must still find their minutes to rebuild rollups exactly.
    if let Some(d) = retention.minute_days {
        if (d as u64) * 86_400 < late + 86_400 {
            bail!("minutely retention ({d} days) must exceed the late-point window ({late} s) by a day, so late points merge into kept minutes");
        }
    }
    if let (Some(m), Some(h)) = (retention.minute_days, retention.hour_days) {
        if h < m {
            bail!("hourly retention ({h} days) must not be shorter than minutely retention ({m} days)");
        }
    }
    let mut store = EmbeddedConfig::new(data_dir);
    store.retention = retention;
    // Read once: both defaults below are sized by it.
    let available = memory::available();
    store.max_open_minutes = memory::default_open_minutes(available);
    if let Some(n) = args.max_series_per_app.or(file.max_series_per_app) {
        if n == 0 {
            bail!("max_series_per_app must be at least 1");
        }
        store.max_series_per_app = n;
    }
    if let Some(s) = args.checkpoint_secs.or(file.checkpoint_secs) {
        if !(1..=3_600).contains(&s) {
            bail!("checkpoint_secs must be between 1 and 3600");
        }
        store.checkpoint_interval = Duration::from_secs(s);
    }
    if let Some(ms) = args.wal_sync_ms.or(file.wal_sync_ms) {
        if ms > 60_000 {
            bail!("wal_sync_ms must be between 0 and 60000");
        }
        store.wal_sync_interval = Duration::from_millis(ms);
    }
    if let Some(mb) = args.page_cache_mb.or(file.page_cache_mb) {
        if !(1..=65_536).contains(&mb) {
            bail!("page_cache_mb must be between 1 and 65536");
        }
        store.page_cache_bytes = mb << 20;
    }
    let block_cache_bytes = match args.block_cache_mb.or(file.block_cache_mb) {
        None => memory::default_block_cache_bytes(available),
        Some(mb) if mb <= 65_536 => mb << 20,
        Some(_) => bail!("block_cache_mb must be at most 65536 (64 GiB)"),
    };
    let mut server = ServerConfig {
        late_secs: late as f64,
        ..ServerConfig::default()
    };
    store.batch_window_secs = late as i64 + 3_600;
    if let Some(n) = args.max_body_bytes.or(file.max_body_bytes) {
        if n < 1_024 {
            bail!("max_body_bytes must be at least 1024");
        }
        server.max_body_bytes = n;
    }
    if let Some(n) = args.max_points_per_batch.or(file.max_points_per_batch) {
        if n == 0 {
            bail!("max_points_per_batch must be at least 1");
        }
        server.max_points_per_batch = n;
    }
    let clickhouse = match args.store.or(file.store).as_deref().map(str::trim) {
        None | Some("" | "embedded") => None,
        Some(url) => {
            let target: Target = url.parse().map_err(|e| anyhow::anyhow!("--store: {e}"))?;
            let mut ch = ClickHouseConfig::new(target);
            ch.retention = store.retention;
            ch.max_series_per_app = store.max_series_per_app;
            ch.late_window_secs = late as i64;
            ch.batch_window_secs = store.batch_window_secs;
            Some(ch)
        }
    };
    server.alerts = alerts;
    // Over a shared store only the evaluating server sends notifications.
    server.alerts.send = server.alerts.evaluate || clickhouse.is_none();
    Ok(Config {
        listen,
        statsd,
        statsd_default_addr,
        demo: args.demo || file.demo.unwrap_or(false),
        store,
        block_cache_bytes,
        clickhouse,
        server,
    })
}

/// Alert evaluation, its clock, links and SMTP.
#[allow(clippy::field_reassign_with_default)]
fn alerts_config(args: &ServeArgs, file: &FileConfig) -> Result<AlertsConfig> {
    let pick = |a: &Option<String>, f: &Option<String>| a.clone().or(f.clone());
    let mut cfg = AlertsConfig::default();
    cfg.evaluate = match pick(&args.alerts, &file.alerts).as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(o) => bail!("--alerts {o:?}: use on or off"),
    };
    if let Some(g) = args.alerts_grace_secs.or(file.alerts_grace_secs) {
        if g > 300 {
            bail!("alerts_grace_secs must be at most 300");
        }
        cfg.grace_secs = g as i64;
    }
    cfg.clock = match pick(&args.alerts_clock, &file.alerts_clock).as_deref() {
        None | Some("system") => AlertsClock::System,
        Some("manual") => AlertsClock::Manual,
        Some(o) => bail!("--alerts-clock {o:?}: use system or manual"),
    };
    cfg.public_url = pick(&args.public_url, &file.public_url);
    if let Some(host) = pick(&args.smtp_host, &file.smtp_host) {
        let tls: SmtpTls = pick(&args.smtp_tls, &file.smtp_tls)
            .as_deref()
            .unwrap_or("starttls")
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--smtp-tls: {e}"))?;
        let port = args.smtp_port.or(file.smtp_port).unwrap_or(match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        let username = pick(&args.smtp_username, &file.smtp_username);
        let password = pick(&args.smtp_password, &file.smtp_password);
        if username.is_some() != password.is_some() {
            bail!("give both --smtp-username and --smtp-password, or neither");
        }
        let from =
            pick(&args.smtp_from, &file.smtp_from).unwrap_or_else(|| format!("minutely@{host}"));
        cfg.smtp = Some(SmtpConfig {
            host,
            port,
            tls,
            username,
            password,
            from,
        });
    }
    Ok(cfg)
}

/// The StatsD address used when none is given (the StatsD convention).
pub const DEFAULT_STATSD: &str = "127.0.0.1:8125";

fn statsd_config(args: &ServeArgs, file: &FileConfig) -> Result<(Option<StatsdConfig>, bool)> {
    let given = args.statsd.clone().or(file.statsd.clone());
    let default_addr = given.is_none();
    let text = given.unwrap_or_else(|| DEFAULT_STATSD.into());
    let udp: Option<SocketAddr> = match text.trim() {
        "off" | "" => None,
        a => Some(a.parse().with_context(|| {
            format!("--statsd {a:?} must be an address such as 127.0.0.1:8125, or off")
        })?),
    };
    let unix = args.statsd_socket.clone().or(file.statsd_socket.clone());
    if udp.is_none() && unix.is_none() {
        return Ok((None, false));
    }
    let app = args
        .statsd_app
        .clone()
        .or(file.statsd_app.clone())
        .unwrap_or_else(|| "default".into());
    let env = args
        .statsd_env
        .clone()
        .or(file.statsd_env.clone())
        .unwrap_or_else(|| "default".into());
    minutely_server::ingest::statsd::aggregate::check_route(&app, &env)
        .map_err(|e| anyhow::anyhow!("--statsd-app/--statsd-env: {e}"))?;
    Ok((
        Some(StatsdConfig {
            udp,
            unix,
            routing: Routing {
                app,
                env,
                tags_choose: args.statsd_tag_routing || file.statsd_tag_routing.unwrap_or(false),
            },
            flush_interval: Duration::from_secs(1),
        }),
        default_addr && udp.is_some(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_contradictions() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("minutely.toml");
        std::fs::write(
            &cfg_path,
            "listen = \"127.0.0.1:9999\"\nretention_daily_days = 0\nmax_series_per_app = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(cfg_path.clone()),
            ..Default::default()
        };
        let cfg = resolve(args).unwrap();
        assert_eq!(cfg.listen.port(), 9999);
        assert_eq!(cfg.store.max_series_per_app, 5);
        assert_eq!(cfg.store.retention.day_days, None);
        assert_eq!(cfg.store.retention.minute_days, Some(30));

        let flag_wins = ServeArgs {
            config: Some(cfg_path.clone()),
            listen: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        assert_eq!(resolve(flag_wins).unwrap().listen.port(), 1);

        let short = ServeArgs {
            config: Some(cfg_path.clone()),
            retention_minutely_days: Some(1),
            ..Default::default()
        };
        assert!(resolve(short).is_err());
        std::fs::write(&cfg_path, "listen_addr = \"x\"\n").unwrap();
        let unknown = ServeArgs {
            config: Some(cfg_path),
            ..Default::default()
        };
        assert!(format!("{:#}", resolve(unknown).err().unwrap()).contains("listen_addr"));
    }

    #[test]
    fn wal_sync_interval_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("minutely.toml");
        let with = |wal_sync_ms: Option<u64>| {
            resolve(ServeArgs {
                config: Some(cfg_path.clone()),
                wal_sync_ms,
                ..Default::default()
            })
        };
        std::fs::write(&cfg_path, "").unwrap();
        assert_eq!(
            with(None).unwrap().store.wal_sync_interval,
            Duration::from_secs(1)
        );
        std::fs::write(&cfg_path, "wal_sync_ms = 250\n").unwrap();
        assert_eq!(
            with(None).unwrap().store.wal_sync_interval,
            Duration::from_millis(250)
        );
        assert!(with(Some(0)).unwrap().store.wal_sync_interval.is_zero());
        let err = format!("{:#}", with(Some(60_001)).err().unwrap());
        assert!(err.contains("wal_sync_ms"), "{err}");
    }

    #[test]
    fn cache_size_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("minutely.toml");
        std::fs::write(&cfg_path, "page_cache_mb = 32\n").unwrap();
        let with = |page_cache_mb: Option<usize>| {
            resolve(ServeArgs {
                config: Some(cfg_path.clone()),
                page_cache_mb,
                ..Default::default()
            })
        };
        assert_eq!(with(None).unwrap().store.page_cache_bytes, 32 << 20);
        assert_eq!(with(Some(4)).unwrap().store.page_cache_bytes, 4 << 20);
        assert!(format!("{:#}", with(Some(0)).err().unwrap()).contains("page_cache_mb"));
        std::fs::write(&cfg_path, "").unwrap();
        assert_eq!(
            with(None).unwrap().store.page_cache_bytes,
            minutely_store::embedded::DEFAULT_PAGE_CACHE_BYTES
        );
    }

    #[test]
    fn block_cache_size_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("minutely.toml");
        std::fs::write(&cfg_path, "block_cache_mb = 16\n").unwrap();
        let with = |block_cache_mb: Option<usize>| {
            resolve(ServeArgs {
                config: Some(cfg_path.clone()),
                block_cache_mb,
                ..Default::default()
            })
        };
        assert_eq!(with(None).unwrap().block_cache_bytes, 16 << 20);
        assert_eq!(with(Some(128)).unwrap().block_cache_bytes, 128 << 20);
        // 0 turns the cache off.
        assert_eq!(with(Some(0)).unwrap().block_cache_bytes, 0);
        let err = format!("{:#}", with(Some(65_537)).err().unwrap());
        assert!(err.contains("block_cache_mb"), "{err}");
        std::fs::write(&cfg_path, "").unwrap();
        assert_eq!(
            with(None).unwrap().block_cache_bytes,
            memory::default_block_cache_bytes(memory::available())
        );
    }

    #[test]
    fn store_url_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("minutely.toml");
        std::fs::write(
            &cfg_path,
            "store = \"clickhouse://a:8123,b:8123/metrics?cluster=main\"\nalerts = \"off\"\n",
        )
        .unwrap();
        let from_file = resolve(ServeArgs {
            config: Some(cfg_path.clone()),
            ..Default::default()
        })
        .unwrap();
        let ch = from_file.clickhouse.unwrap();
        assert_eq!(ch.target.hosts, ["a:8123", "b:8123"]);
        assert_eq!(ch.target.cluster.as_deref(), Some("main"));
        assert!(!from_file.server.alerts.send, "only the evaluator sends");
        let embedded = resolve(ServeArgs {
            config: Some(cfg_path.clone()),
            store: Some("embedded".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(embedded.clickhouse.is_none() && embedded.server.alerts.send);
        let bad = resolve(ServeArgs {
            config: Some(cfg_path),
            store: Some("clickhouse://a:8123/x;y".into()),
            ..Default::default()
        });
        assert!(format!("{:#}", bad.err().unwrap()).contains("--store"));
    }
}
