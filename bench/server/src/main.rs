//! Server benchmark: starts the release `minutely` binary on a temporary
//! data directory, pushes S series x M minutes (gauges and counters with
//! realistic tags, batches of 1,000 points over keep-alive HTTP), then
//! reports push throughput, bytes on disk per point, resident memory per
//! series and query latency. Payloads are built before the clock starts.
//!
//! `cargo build --release -p minutely -p minutely-bench && target/release/minutely-bench [--series N] [--minutes M]`

use anyhow::{bail, Context, Result};
use minutely_bench::process::{dir_size, now, Minutely as Server, ADMIN_KEY, PUSH_KEY};
use minutely_bench::workload::{minutely_bodies, samples, METRICS};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 1_000;
const CLIENTS: usize = 4;
const LATE_WINDOW_SECS: u64 = 172_800;

struct Args {
    series: usize,
    minutes: usize,
    bin: PathBuf,
}

fn args() -> Result<Args> {
    let mut a = Args {
        series: 10_000,
        minutes: 1_440,
        bin: PathBuf::from("target/release/minutely"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().context("flag needs a value");
        match flag.as_str() {
            "--series" => a.series = val()?.parse()?,
            "--minutes" => a.minutes = val()?.parse()?,
            "--bin" => a.bin = PathBuf::from(val()?),
            other => bail!("unknown flag {other}"),
        }
    }
    if !a.series.is_multiple_of(METRICS) {
        bail!("--series must be a multiple of {METRICS}");
    }
    Ok(a)
}

fn build_payloads(series: usize, minutes: usize, start: i64) -> Vec<Vec<u8>> {
    minutely_bodies(&samples(series, minutes, start), BATCH)
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

fn main() -> Result<()> {
    let a = args()?;
    let tmp = std::env::temp_dir().join(format!("minutely-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let start = (now() / 60 - a.minutes as i64 - 1) * 60;
    let points = a.series * a.minutes;
    eprintln!(
        "building {points} points ({} series x {} minutes) ...",
        a.series, a.minutes
    );
    let payloads = Arc::new(build_payloads(a.series, a.minutes, start));
    let json_bytes: usize = payloads.iter().map(Vec::len).sum();

    let server = Server::start(&a.bin, &tmp, LATE_WINDOW_SECS)?;
    let rss_idle = server.rss_bytes();
    eprintln!(
        "pushing {} requests of {BATCH} points with {CLIENTS} clients ...",
        payloads.len()
    );
    let took = push_all(&server.url, payloads.clone())?;
    let rss_loaded = server.rss_bytes();
    server.stop()?;
    let disk = dir_size(&tmp);

    let server = Server::start(&a.bin, &tmp, LATE_WINDOW_SECS)?;
    let rss_restart = server.rss_bytes();
    // Steady state: every series sends its current minutes, as live clients do.
    let live_minutes = 5;
    let live = Arc::new(build_payloads(
        a.series,
        live_minutes,
        (now() / 60 - live_minutes as i64 + 1) * 60,
    ));
    push_all(&server.url, live)?;
    let rss_live = server.rss_bytes();
    let from = start.to_string();
    let to = (start + a.minutes as i64 * 60).to_string();
    let one = [
        ("app", "default".to_string()),
        ("env", "bench".into()),
        ("metric", "bench_gauge_0".into()),
        ("field", "last".into()),
        ("tag", "host:host-0000".into()),
        ("tag", "region:eu-west".into()),
        ("from", from.clone()),
        ("to", to.clone()),
        ("step", "60".into()),
    ];
    let grouped = [
        ("app", "default".to_string()),
        ("env", "bench".into()),
        ("metric", "bench_counter_5".into()),
        ("field", "sum".into()),
        ("group_by", "region".into()),
        ("from", from.clone()),
        ("to", to.clone()),
        ("step", "60".into()),
    ];
    let (one_med, one_p99, one_n) = time_query(&server.url, &one, 200)?;
    let (grp_med, grp_p99, grp_n) = time_query(&server.url, &grouped, 30)?;
    server.stop()?;
    if std::env::var_os("MINUTELY_BENCH_KEEP").is_some() {
        eprintln!("data kept in {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }

    let per_series = a.series / METRICS;
    println!(
        "minutely server benchmark: {} series x {} minutes = {points} points",
        a.series, a.minutes
    );
    println!("| figure | value |");
    println!("|---|---|");
    println!("| push throughput (HTTP, {BATCH} points/request, {CLIENTS} clients) | {:.0} points/s ({:.1} s, {:.0} MB JSON) |", points as f64 / took.as_secs_f64(), took.as_secs_f64(), json_bytes as f64 / 1e6);
    println!(
        "| bytes on disk per stored point (after clean stop) | {:.2} B ({:.1} MB total) |",
        disk as f64 / points as f64,
        disk as f64 / 1e6
    );
    println!("| resident memory after ingest, per active series | {:.0} B ({:.0} MB total, {:.0} MB idle) |", (rss_loaded.saturating_sub(rss_idle)) as f64 / a.series as f64, rss_loaded as f64 / 1e6, rss_idle as f64 / 1e6);
    println!(
        "| resident memory after restart, per series | {:.0} B ({:.0} MB total) |",
        (rss_restart.saturating_sub(rss_idle)) as f64 / a.series as f64,
        rss_restart as f64 / 1e6
    );
    println!(
        "| resident memory at steady state ({live_minutes} live minutes after restart), per active series | {:.0} B ({:.0} MB total) |",
        (rss_live.saturating_sub(rss_idle)) as f64 / a.series as f64,
        rss_live as f64 / 1e6
    );
    println!("| query: one series, 24 h at 1 min (median / p99) | {one_med:.2} ms / {one_p99:.2} ms ({one_n} series) |");
    println!("| query: sum of {per_series} series by region, 24 h at 1 min (median / p99) | {grp_med:.2} ms / {grp_p99:.2} ms ({grp_n} groups) |");
    Ok(())
}
