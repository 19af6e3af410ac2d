//! Server benchmark: starts the release `minutely` binary on a temporary
//! data directory, pushes S series x M minutes (gauges and counters with
//! realistic tags, batches of 1,000 points over keep-alive HTTP), then
//! reports push throughput, bytes on disk per point, resident memory per
//! series and query latency. Payloads are built before the clock starts.
//!
//! `cargo build --release -p minutely -p minutely-bench && target/release/minutely-bench [--series N] [--minutes M] [--metrics K] [--reuse DIR]`
//!
//! `--push-only` stops after the push and prints its throughput and the
//! server's CPU time per point (user and system, all threads), the steadier
//! figure for comparing two builds.
//!
//! `--metrics K` spreads the series over K metrics (half gauges, half
//! counters; default 10), so `--series 20000 --metrics 2` gives one counter
//! with 10,000 series. `--reuse DIR` keeps the pushed data in DIR; a later
//! run with the same DIR skips the push and only times the queries (to
//! compare two builds of the server on the same data).
//!
//! With `--store clickhouse://host:8123/db`, the server runs on that
//! ClickHouse store (use a fresh database) and disk is what ClickHouse
//! reports for the database's parts.

use anyhow::{bail, Context, Result};
use minutely_bench::process::{dir_size, now, Minutely as Server, ADMIN_KEY, PUSH_KEY};
use minutely_bench::workload::{minutely_bodies_in, Generator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 1_000;
const CLIENTS: usize = 4;
/// Covers the pushed day, sent after the fact.
const LATE_WINDOW_SECS: u64 = 172_800;

struct Args {
    series: usize,
    minutes: usize,
    metrics: usize,
    bin: PathBuf,
    reuse: Option<PathBuf>,
    store: Option<String>,
    /// Stop after the push: its throughput and CPU only (to compare builds).
    push_only: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        series: 10_000,
        minutes: 1_440,
        metrics: 10,
        bin: PathBuf::from("target/release/minutely"),
        reuse: None,
        store: None,
        push_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().context("flag needs a value");
        match flag.as_str() {
            "--series" => a.series = val()?.parse()?,
            "--minutes" => a.minutes = val()?.parse()?,
            "--metrics" => a.metrics = val()?.parse()?,
            "--bin" => a.bin = PathBuf::from(val()?),
            "--reuse" => a.reuse = Some(PathBuf::from(val()?)),
            "--store" => a.store = Some(val()?),
            "--push-only" => a.push_only = true,
            other => bail!("unknown flag {other}"),
        }
    }
    if a.metrics < 2 || !a.metrics.is_multiple_of(2) || !a.series.is_multiple_of(a.metrics) {
        bail!("--metrics must be even and divide --series");
    }
    Ok(a)
}

/// The shared workload's push bodies, built minute by minute so only the
/// bodies are held: batches of [`BATCH`] points, the last one shorter.
fn build_payloads(series: usize, metrics: usize, minutes: usize, start: i64) -> Vec<Vec<u8>> {
    let mut generator = Generator::with_metrics(series, metrics);
    let mut out = Vec::new();
    let mut pending = Vec::with_capacity(series + BATCH);
    for m in 0..minutes {
        generator.minute(start + m as i64 * 60 + 17, series, &mut pending);
        let full = pending.len() - pending.len() % BATCH;
        out.extend(minutely_bodies_in(&pending[..full], BATCH, metrics));
        pending.drain(..full);
    }
    out.extend(minutely_bodies_in(&pending, BATCH, metrics));
    out
}

fn push_all(url: &str, payloads: Arc<Vec<Vec<u8>>>) -> Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (payloads, next, url) =
                (payloads.clone(), next.clone(), format!("{url}/api/v1/push"));
            std::thread::spawn(move || -> Result<()> {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(60))
                    .build();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = payloads.get(i) else {
                        return Ok(());
                    };
                    let resp: Value = agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {PUSH_KEY}"))
                        .set("Content-Type", "application/json")
                        .send_bytes(body)?
                        .into_json()?;
                    if resp["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
                        bail!("points rejected: {}", resp["rejected"][0]);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok(started.elapsed())
}

/// Bytes of the database's active parts on every host of a store URL
/// `clickhouse://[user[:password]@]host:port[,...]/db[?...]`.
fn clickhouse_bytes(url: &str) -> Result<u64> {
    let rest = url
        .strip_prefix("clickhouse://")
        .context("--store must be clickhouse://...")?;
    let rest = rest.split('?').next().unwrap_or(rest);
    let (authority, db) = rest
        .split_once('/')
        .context("the store URL needs a database")?;
    let hosts = authority.rsplit('@').next().unwrap_or(authority);
    let mut total = 0;
    for host in hosts.split(',') {
        let text = ureq::post(&format!("http://{host}/"))
            .send_string(&format!(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '{}' AND active",
                db.replace(['\\', '\''], "")
            ))?
            .into_string()?;
        total += text.trim().parse::<u64>().unwrap_or(0);
    }
    Ok(total)
}

/// Median and p99 of `reps` runs of a query, in milliseconds.
fn time_query(url: &str, params: &[(&str, String)], reps: usize) -> Result<(f64, f64, usize)> {
    let agent = ureq::AgentBuilder::new().build();
    let mut times = Vec::with_capacity(reps);
    let mut series = 0;
    for _ in 0..reps {
        let mut req = agent
            .get(&format!("{url}/api/v1/query"))
            .set("Authorization", &format!("Bearer {ADMIN_KEY}"));
        for (k, v) in params {
            req = req.query(k, v);
        }
        let t = Instant::now();
        let ans: Value = req.call()?.into_json()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        series = ans["series"].as_array().map_or(0, Vec::len);
    }
    times.sort_by(f64::total_cmp);
    Ok((
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)],
        series,
    ))
}

/// What the push phase measured (absent when `--reuse` skipped it).
struct PushFigures {
    took: Duration,
    /// The server's CPU time (user and system) while the push ran.
    cpu_secs: f64,
    json_bytes: usize,
    disk: u64,
    rss_idle: u64,
    rss_loaded: u64,
}

fn push_phase(a: &Args, dir: &Path, start: i64) -> Result<PushFigures> {
    let points = a.series * a.minutes;
    eprintln!(
        "building {points} points ({} series x {} minutes) ...",
        a.series, a.minutes
    );
    let payloads = Arc::new(build_payloads(a.series, a.metrics, a.minutes, start));
    let json_bytes: usize = payloads.iter().map(Vec::len).sum();
    let server = Server::start_on(&a.bin, dir, LATE_WINDOW_SECS, a.store.as_deref())?;
    let rss_idle = server.rss_bytes();
    eprintln!(
        "pushing {} requests of {BATCH} points with {CLIENTS} clients ...",
        payloads.len()
    );
    let cpu_before = server.cpu_secs();
    let took = push_all(&server.url, payloads)?;
    let cpu_secs = server.cpu_secs() - cpu_before;
    let rss_loaded = server.rss_bytes();
    server.stop()?;
    Ok(PushFigures {
        took,
        cpu_secs,
        json_bytes,
        disk: match &a.store {
            Some(url) => clickhouse_bytes(url)?,
            None => dir_size(dir),
        },
        rss_idle,
        rss_loaded,
    })
}

fn main() -> Result<()> {
    let a = args()?;
    let tmp = a.reuse.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("minutely-bench-{}", std::process::id()))
    });
    // The start of the pushed day, kept beside a reused data directory.
    let start_file = tmp.with_extension("start");
    let reused = a
        .reuse
        .as_ref()
        .and_then(|_| std::fs::read_to_string(&start_file).ok())
        .and_then(|s| s.trim().parse::<i64>().ok());
    let start = reused.unwrap_or((now() / 60 - a.minutes as i64 - 1) * 60);
    let points = a.series * a.minutes;
    let pushed = match reused {
        Some(_) => {
            eprintln!("reusing the data in {}", tmp.display());
            None
        }
        None => {
            let _ = std::fs::remove_dir_all(&tmp);
            let figures = push_phase(&a, &tmp, start)?;
            if a.reuse.is_some() {
                std::fs::write(&start_file, start.to_string())?;
            }
            Some(figures)
        }
    };

    if a.push_only {
        let _ = std::fs::remove_dir_all(&tmp);
        let p = pushed.context("--push-only needs a push: do not reuse pushed data")?;
        println!(
            "push: {:.0} points/s, server CPU {:.0} ns a point",
            points as f64 / p.took.as_secs_f64(),
            p.cpu_secs * 1e9 / points as f64
        );
        return Ok(());
    }
    let server = Server::start_on(&a.bin, &tmp, LATE_WINDOW_SECS, a.store.as_deref())?;
    let rss_restart = server.rss_bytes();
    // Steady state: every series sends its current minutes, as live clients do.
    let live_minutes = 5;
    let live = Arc::new(build_payloads(
        a.series,
        a.metrics,
        live_minutes,
        (now() / 60 - live_minutes as i64 + 1) * 60,
    ));
    push_all(&server.url, live)?;
    let rss_live = server.rss_bytes();
    let from = start.to_string();
    let to = (start + a.minutes as i64 * 60).to_string();
    let per_metric = a.series / a.metrics;
    let counter = format!("bench_counter_{}", a.metrics / 2);
    let base = |metric: &str, field: &str, step: &str| {
        vec![
            ("app", "default".to_string()),
            ("env", "bench".into()),
            ("metric", metric.to_string()),
            ("field", field.to_string()),
            ("from", from.clone()),
            ("to", to.clone()),
            ("step", step.to_string()),
        ]
    };
    let mut one = base("bench_gauge_0", "last", "60");
    one.push(("tag", "host:host-0000".into()));
    one.push(("tag", "region:eu-west".into()));
    let mut one_month = one.clone();
    one_month[4].1 = (start + a.minutes as i64 * 60 - 30 * 86_400).to_string();
    one_month[6].1 = "3600".into();
    let mut grouped = base(&counter, "sum", "60");
    grouped.push(("group_by", "region".into()));
    let mut grouped_hours = base(&counter, "sum", "3600");
    grouped_hours.push(("group_by", "region".into()));
    let mut gauges = base("bench_gauge_0", "last", "60");
    gauges.push(("group_by", "region".into()));
    /// What it is, its parameters, how many runs.
    type Timed<'a> = (String, &'a [(&'a str, String)], usize);
    let queries: [Timed; 5] = [
        ("one series, 24 h at 1 min".into(), &one, 200),
        ("one series, 30 days at 1 h".into(), &one_month, 200),
        (
            format!("sum of {per_metric} counter series by region, 24 h at 1 min"),
            &grouped,
            30,
        ),
        (
            format!("sum of {per_metric} counter series by region, 24 h at 1 h"),
            &grouped_hours,
            30,
        ),
        (
            format!("last of {per_metric} gauge series summed by region, 24 h at 1 min"),
            &gauges,
            30,
        ),
    ];
    let mut timed = Vec::new();
    for (what, params, reps) in queries {
        timed.push((what, time_query(&server.url, params, reps)?));
    }
    server.stop()?;
    if a.reuse.is_none() && std::env::var_os("MINUTELY_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        eprintln!("data kept in {}", tmp.display());
    }

    println!(
        "minutely server benchmark: {} series x {} minutes = {points} points, {} metrics, store {}",
        a.series,
        a.minutes,
        a.metrics,
        a.store.as_deref().map_or("embedded", |_| "clickhouse")
    );
    println!("| figure | value |");
    println!("|---|---|");
    if let Some(p) = pushed {
        println!("| push throughput (HTTP, {BATCH} points/request, {CLIENTS} clients) | {:.0} points/s ({:.1} s, {:.0} MB JSON) |", points as f64 / p.took.as_secs_f64(), p.took.as_secs_f64(), p.json_bytes as f64 / 1e6);
        println!(
            "| server CPU per pushed point (user + system, all threads) | {:.0} ns ({:.1} CPU s) |",
            p.cpu_secs * 1e9 / points as f64,
            p.cpu_secs
        );
        println!(
            "| bytes on disk per stored point (after clean stop) | {:.2} B ({:.1} MB total) |",
            p.disk as f64 / points as f64,
            p.disk as f64 / 1e6
        );
        println!("| resident memory after ingest, per active series | {:.0} B ({:.0} MB total, {:.0} MB idle) |", (p.rss_loaded.saturating_sub(p.rss_idle)) as f64 / a.series as f64, p.rss_loaded as f64 / 1e6, p.rss_idle as f64 / 1e6);
        println!(
            "| resident memory after restart, per series | {:.0} B ({:.0} MB total) |",
            (rss_restart.saturating_sub(p.rss_idle)) as f64 / a.series as f64,
            rss_restart as f64 / 1e6
        );
        println!(
            "| resident memory at steady state ({live_minutes} live minutes after restart), per active series | {:.0} B ({:.0} MB total) |",
            (rss_live.saturating_sub(p.rss_idle)) as f64 / a.series as f64,
            rss_live as f64 / 1e6
        );
    }
    for (what, (med, p99, n)) in timed {
        println!("| query: {what} (median / p99) | {med:.2} ms / {p99:.2} ms ({n} series) |");
    }
    Ok(())
}
