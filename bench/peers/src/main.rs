//! Side-by-side benchmark of minutely, VictoriaMetrics and Prometheus: one
//! deterministic workload (S gauge/counter series x one day of minutes, a
//! month of history for a few series, S/10 distribution series), fed to
//! each over HTTP with the same batches and client threads; then ingest
//! rate, bytes on disk per point, resident memory per active series and the
//! latency of four queries, with ratios minutely / peer against the goals.
//!
//! `bench/peers/run.sh` installs the peers, builds and runs this with the
//! defaults; see docs/BENCHMARKS.md.

mod encode;
mod queries;
mod report;
mod systems;

use anyhow::{bail, Context, Result};
use encode::{prom_write_bodies, vm_import_bodies, CounterTotals, Dists};
use minutely_bench::process::{dir_size, now};
use minutely_bench::workload::{minutely_bodies, samples, Generator, Sample, METRICS};
use queries::{Frame, Timing};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use systems::{Bins, Running, Which};

pub const SYSTEMS: [Which; 3] = [Which::Minutely, Which::Victoria, Which::Prometheus];
/// Series with a month of history (series 0-9: host-0000/eu-west of each metric).
const HISTORY_SERIES: usize = METRICS;
const HISTORY_DAYS: i64 = 30;
const LIVE_MINUTES: usize = 5;
/// Points per pre-built chunk of the timed ingest.
const CHUNK_POINTS: usize = 2_000_000;
/// Chunks of the timed ingest at least, so that each system goes first
/// (right after the others' pushes, beside their background work) as often
/// as the others even when the whole day would fit in one chunk.
const MIN_ROUNDS: usize = 6;

pub struct Args {
    pub series: Vec<usize>,
    pub minutes: usize,
    pub batch: usize,
    pub clients: usize,
    pub bins: Bins,
    pub doc: Option<PathBuf>,
    pub command: String,
    pub query_budget: Duration,
}

fn args() -> Result<Args> {
    let mut a = Args {
        series: vec![10_000],
        minutes: 1_440,
        batch: 1_000,
        clients: 4,
        bins: Bins {
            minutely: PathBuf::from("target/release/minutely"),
            victoria: PathBuf::from("/usr/bin/victoria-metrics"),
            prometheus: PathBuf::from("/usr/bin/prometheus"),
        },
        doc: None,
        command: String::new(),
        query_budget: Duration::from_secs(30),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().context("flag needs a value");
        match flag.as_str() {
            "--series" => {
                a.series = val()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--growth" => a.series = vec![1_000, 10_000, 100_000],
            "--minutes" => a.minutes = val()?.parse()?,
            "--batch" => a.batch = val()?.parse()?,
            "--clients" => a.clients = val()?.parse()?,
            "--minutely-bin" => a.bins.minutely = val()?.into(),
            "--victoria-bin" => a.bins.victoria = val()?.into(),
            "--prometheus-bin" => a.bins.prometheus = val()?.into(),
            "--doc" => a.doc = Some(val()?.into()),
            "--command" => a.command = val()?,
            "--query-budget-secs" => a.query_budget = Duration::from_secs(val()?.parse()?),
            other => bail!("unknown flag {other}"),
        }
    }
    if a.series
        .iter()
        .any(|s| !s.is_multiple_of(METRICS) || *s < 10 * METRICS)
    {
        bail!(
            "--series must be a multiple of {METRICS}, at least {}",
            10 * METRICS
        );
    }
    if a.minutes == 0 || a.minutes > 1_440 {
        bail!("--minutes must be 1-1440");
    }
    Ok(a)
}

/// What one system did in one run.
#[derive(Default)]
pub struct Figures {
    pub ingest_points: usize,
    pub ingest_secs: f64,
    /// CPU seconds the system used from the first timed round to after the
    /// flush that follows the last one, its background work included.
    pub ingest_cpu_secs: f64,
    pub stored_points: usize,
    pub disk_running: u64,
    pub disk_stopped: u64,
    pub rss_idle: u64,
    pub rss_live: u64,
    /// Distribution points (minutely: minute summaries; VictoriaMetrics:
    /// bucket samples) and the seconds they took.
    pub dist: Option<(usize, f64)>,
    pub queries: Vec<Option<Timing>>,
}

pub struct Run {
    pub series: usize,
    pub minutes: usize,
    pub batch: usize,
    pub clients: usize,
    pub dist_series: usize,
    pub exact_p95: f64,
    pub figures: Vec<Figures>,
}

/// Sends `bodies` with `clients` threads, each with one keep-alive
/// connection, taking the next body in order; returns the wall time.
fn push_all(sys: &Running, bodies: &[Vec<u8>], clients: usize) -> Result<Duration> {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(120))
                        .build();
                    while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                        sys.send(&agent, body)
                            .with_context(|| format!("pushing to {}", sys.which.name()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| anyhow::anyhow!("push thread panicked"))?
        })
    })?;
    Ok(started.elapsed())
}

/// Busy and total jiffies of all processors since boot.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Waits (up to a minute) until the machine is quiet: under a tenth of
/// its processors busy over 50 ms. A system's work left over from its own
/// round (compactions, flushes, checkpoints) then does not slow the next
/// one down; it counts in that system's CPU per point instead. Returns how
/// long it waited.
fn wait_quiet() -> Duration {
    let started = Instant::now();
    let mut last = cpu_jiffies();
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
        let now = cpu_jiffies();
        let (busy, total) = (now.0 - last.0, now.1 - last.1);
        if total > 0 && busy * 10 < total {
            break;
        }
        last = now;
    }
    started.elapsed()
}

fn bodies(
    which: Which,
    samples: &[Sample],
    batch: usize,
    totals: &mut CounterTotals,
) -> Vec<Vec<u8>> {
    match which {
        Which::Minutely => minutely_bodies(samples, batch),
        Which::Victoria => vm_import_bodies(samples, batch, totals),
        Which::Prometheus => prom_write_bodies(samples, batch, totals),
    }
}

fn run(a: &Args, series: usize, tmp: &Path) -> Result<Run> {
    let day_start = (now() / 60 - a.minutes as i64 - 1) * 60;
    let day_end = day_start + a.minutes as i64 * 60;
    let frame = Frame { day_start, day_end };
    let history_start = day_end - HISTORY_DAYS * 86_400;
    let late_window = (now() - history_start + 2 * 86_400) as u64;

    eprintln!("[{series} series] generating the workload ...");
    let mut history = Vec::new();
    let mut g = Generator::new(HISTORY_SERIES);
    for m in 0..((day_start - history_start) / 60) {
        g.minute(history_start + m * 60 + 17, HISTORY_SERIES, &mut history);
    }
    let dists = Dists {
        series: series / 10,
        minutes: a.minutes,
        start: day_start,
    };
    let exact_p95 = dists.exact_quantile(0.95);
    let mut totals: Vec<CounterTotals> =
        SYSTEMS.iter().map(|_| CounterTotals::new(series)).collect();
    let mut figures: Vec<Figures> = SYSTEMS.iter().map(|_| Figures::default()).collect();

    // All three up, each with its month of history (untimed; one client, so
    // a series' history stays in time order for Prometheus).
    let mut running = Vec::new();
    for (k, &which) in SYSTEMS.iter().enumerate() {
        let sys = Running::start(which, &a.bins, &tmp.join(which.name()), late_window)?;
        figures[k].rss_idle = sys.rss();
        eprintln!("[{series} series] {}: history ...", which.name());
        let hist = bodies(which, &history, a.batch, &mut totals[k]);
        push_all(&sys, &hist, 1)?;
        drop(hist);
        running.push(sys);
    }
    for sys in &running {
        sys.settle()?;
    }

    // The timed day, in chunks of about CHUNK_POINTS built before the clock
    // starts (memory stays bounded at any series count); each chunk goes to
    // every system in turn, the order rotating, so the shared machine's
    // noise falls on all alike.
    eprintln!(
        "[{series} series] ingest: {} points, {} per request, {} clients, alternating ...",
        series * a.minutes,
        a.batch,
        a.clients
    );
    let chunk_minutes = (CHUNK_POINTS / series).clamp(1, a.minutes.div_ceil(MIN_ROUNDS).max(1));
    let mut generator = Generator::new(series);
    let mut took = vec![Duration::ZERO; SYSTEMS.len()];
    // Before each system's turns, for the log.
    let mut waited = vec![Duration::ZERO; SYSTEMS.len()];
    let cpu_before: Vec<f64> = running.iter().map(|s| s.cpu()).collect();
    let mut pushed = 0;
    for (round, first) in (0..a.minutes).step_by(chunk_minutes).enumerate() {
        let mut chunk = Vec::with_capacity(series * chunk_minutes);
        for m in first..(first + chunk_minutes).min(a.minutes) {
            generator.minute(day_start + m as i64 * 60 + 17, series, &mut chunk);
        }
        for j in 0..SYSTEMS.len() {
            let k = (round + j) % SYSTEMS.len();
            let b = bodies(SYSTEMS[k], &chunk, a.batch, &mut totals[k]);
            waited[k] += wait_quiet();
            took[k] += push_all(&running[k], &b, a.clients)?;
        }
        pushed += chunk.len();
    }

    // Disk while running (after a flush where the system has one), and
    // after a clean stop.
    for sys in &running {
        sys.flush()?;
    }
    std::thread::sleep(Duration::from_secs(2));
    for (k, sys) in running.into_iter().enumerate() {
        let f = &mut figures[k];
        let data = tmp.join(sys.which.name()).join("data");
        f.ingest_points = pushed;
        f.ingest_secs = took[k].as_secs_f64();
        f.ingest_cpu_secs = sys.cpu() - cpu_before[k];
        f.stored_points = pushed + history.len();
        f.disk_running = dir_size(&data);
        sys.stop()?;
        f.disk_stopped = dir_size(&data);
        if std::env::var_os("MINUTELY_BENCH_KEEP").is_some() {
            // The store as the disk figure saw it, before the distributions
            // and live minutes that come next, for inspection.
            copy_dir(&data, &data.with_file_name("data-after-day"))?;
        }
        eprintln!(
            "[{series} series] {}: {:.0} points/s, {:.2} B/point (waited {:.1} s for a quiet machine before its turns)",
            SYSTEMS[k].name(),
            f.ingest_points as f64 / f.ingest_secs,
            f.disk_stopped as f64 / f.stored_points as f64,
            waited[k].as_secs_f64()
        );
    }

    // Distributions (untimed beside the others: different units), then a
    // clean stop, so the queries find the data as a restart does.
    // Built and pushed in chunks of minutes like the day, so memory stays
    // bounded.
    let dist_chunk_minutes = (CHUNK_POINTS / (5 * dists.series)).max(1);
    for (k, &which) in SYSTEMS.iter().enumerate() {
        if which == Which::Prometheus {
            continue;
        }
        let sys = Running::start(which, &a.bins, &tmp.join(which.name()), late_window)?;
        eprintln!("[{series} series] {}: distributions ...", which.name());
        let (mut points, mut took) = (0, Duration::ZERO);
        for first in (0..dists.minutes).step_by(dist_chunk_minutes) {
            let part = Dists {
                series: dists.series,
                minutes: dist_chunk_minutes.min(dists.minutes - first),
                start: dists.start + first as i64 * 60,
            };
            let (b, n) = match which {
                Which::Victoria => part.vm_bodies(a.batch),
                _ => part.minutely_bodies(a.batch),
            };
            took += push_all(&sys, &b, a.clients)?;
            points += n;
        }
        figures[k].dist = Some((points, took.as_secs_f64()));
        sys.flush()?;
        sys.stop()?;
    }

    // All systems up together: live minutes for every series (steady
    // state), memory, then the queries alternating between the systems.
    // After the day (in a short run, up to a few minutes ahead of the clock).
    let live_start = ((now() / 60 - LIVE_MINUTES as i64) * 60).max(day_end);
    let live = samples(series, LIVE_MINUTES, live_start);
    let mut running = Vec::new();
    for (k, &which) in SYSTEMS.iter().enumerate() {
        let sys = Running::start(which, &a.bins, &tmp.join(which.name()), late_window)?;
        let b = bodies(which, &live, a.batch, &mut totals[k]);
        push_all(&sys, &b, a.clients)?;
        running.push(sys);
    }
    std::thread::sleep(Duration::from_secs(5));
    for (k, sys) in running.iter().enumerate() {
        figures[k].rss_live = sys.rss();
    }
    for q in queries::ALL {
        eprintln!("[{series} series] query: {} ...", q.label(series / METRICS));
        // A query that fails is reported and left out of the table
        // ("not measured"), rather than losing the run's other figures.
        let timings = queries::time_all(&running, q, frame, a.query_budget).unwrap_or_else(|e| {
            eprintln!("[{series} series] query failed, not measured: {e:#}");
            running.iter().map(|_| None).collect()
        });
        for (k, t) in timings.into_iter().enumerate() {
            figures[k].queries.push(t);
        }
    }
    for sys in running {
        sys.stop()?;
    }
    Ok(Run {
        series,
        minutes: a.minutes,
        batch: a.batch,
        clients: a.clients,
        dist_series: dists.series,
        exact_p95,
        figures,
    })
}

/// Copies the files of `from` (and its subdirectories) into `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let a = args()?;
    for bin in [&a.bins.minutely, &a.bins.victoria, &a.bins.prometheus] {
        if !bin.exists() {
            bail!(
                "{} not found (bench/peers/run.sh installs and builds what is missing)",
                bin.display()
            );
        }
    }
    let tmp = std::env::temp_dir().join(format!("minutely-peers-{}", std::process::id()));
    let mut runs = Vec::new();
    for &series in &a.series {
        let _ = std::fs::remove_dir_all(&tmp);
        let result = run(&a, series, &tmp);
        if std::env::var_os("MINUTELY_BENCH_KEEP").is_some() {
            eprintln!("data kept in {}", tmp.display());
        } else {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        let r = result?;
        println!("{}", report::run_table(&r));
        runs.push(r);
    }
    let text = report::document(&a, &runs);
    if runs.len() > 1 {
        println!("{}", report::growth_table(&runs));
    }
    if let Some(doc) = &a.doc {
        report::write_section(doc, &runs, &text)?;
        eprintln!("written to {}", doc.display());
    }
    Ok(())
}
