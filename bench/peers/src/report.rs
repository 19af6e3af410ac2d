//! The printed tables and the section of docs/BENCHMARKS.md they go to.

use crate::queries::{Query, ALL};
use crate::{Args, Figures, Run, SYSTEMS};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The section of a run is marked by its series counts, so a growth run
/// and a single run each keep their own.
fn markers(key: &str) -> (String, String) {
    (
        format!("<!-- peers-bench:begin {key} (written by bench/peers) -->"),
        format!("<!-- peers-bench:end {key} -->"),
    )
}

pub fn section_key(runs: &[Run]) -> String {
    runs.iter()
        .map(|r| r.series.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn rate(f: &Figures) -> f64 {
    f.ingest_points as f64 / f.ingest_secs
}
fn bpp(f: &Figures, stopped: bool) -> f64 {
    (if stopped {
        f.disk_stopped
    } else {
        f.disk_running
    }) as f64
        / f.stored_points as f64
}
fn mem(f: &Figures, series: usize) -> f64 {
    f.rss_live.saturating_sub(f.rss_idle) as f64 / series as f64
}

/// `minutely / peer` and whether the goal holds.
fn verdict(ratio: f64, goal_ok: bool) -> String {
    format!(
        "{ratio:.2} ({})",
        if goal_ok { "goal met" } else { "goal NOT met" }
    )
}

pub fn run_table(r: &Run) -> String {
    let [m, v, p] = [&r.figures[0], &r.figures[1], &r.figures[2]];
    let per_metric = r.series / crate::METRICS;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "### {} series x {} minutes ({} gauge/counter points; {} distribution series)\n",
        r.series, r.minutes, m.ingest_points, r.dist_series
    );
    let _ = writeln!(t, "| figure | minutely | VictoriaMetrics | Prometheus | minutely / VictoriaMetrics (goal) | minutely / Prometheus |");
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    let _ = writeln!(
        t,
        "| ingest, gauges+counters (HTTP, {} points/request, {} clients), points/s | {:.0} | {:.0} | {:.0} | {} | {:.2} |",
        r.batch,
        r.clients,
        rate(m),
        rate(v),
        rate(p),
        verdict(rate(m) / rate(v), rate(m) >= 1.5 * rate(v)),
        rate(m) / rate(p)
    );
    let cpu = |f: &Figures| f.ingest_cpu_secs * 1e9 / f.ingest_points as f64;
    let _ = writeln!(
        t,
        "| ingest, the system's CPU per point (all threads, background work until the flush after the day), ns | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
        cpu(m),
        cpu(v),
        cpu(p),
        cpu(m) / cpu(v),
        cpu(m) / cpu(p)
    );
    let _ = writeln!(
        t,
        "| bytes on disk per gauge/counter point, after a clean stop | {:.2} | {:.2} | {:.2} | {} | {:.2} |",
        bpp(m, true),
        bpp(v, true),
        bpp(p, true),
        verdict(bpp(m, true) / bpp(v, true), bpp(m, true) <= bpp(v, true)),
        bpp(m, true) / bpp(p, true)
    );
    let _ = writeln!(
        t,
        "| bytes on disk per gauge/counter point, running (after ingest and flush) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        bpp(m, false),
        bpp(v, false),
        bpp(p, false),
        bpp(m, false) / bpp(v, false),
        bpp(m, false) / bpp(p, false)
    );
    let _ = writeln!(
        t,
        "| resident memory per active series, steady state (RSS - idle RSS) / {} | {:.0} B | {:.0} B | {:.0} B | {} | {:.2} |",
        r.series,
        mem(m, r.series),
        mem(v, r.series),
        mem(p, r.series),
        verdict(mem(m, r.series) / mem(v, r.series), mem(m, r.series) <= mem(v, r.series)),
        mem(m, r.series) / mem(p, r.series)
    );
    let _ = writeln!(
        t,
        "| resident memory total, steady state | {:.0} MB | {:.0} MB | {:.0} MB | | |",
        m.rss_live as f64 / 1e6,
        v.rss_live as f64 / 1e6,
        p.rss_live as f64 / 1e6
    );
    for (qi, q) in ALL.iter().enumerate() {
        let cell = |f: &Figures| match &f.queries[qi] {
            Some(t) => format!("{:.2} / {:.2} ms", t.median_ms, t.p99_ms),
            None => "not measured".into(),
        };
        let med = |f: &Figures| f.queries[qi].as_ref().map(|t| t.median_ms);
        let vs_vm = match (med(m), med(v)) {
            (Some(a), Some(b)) => verdict(a / b, a <= 0.5 * b),
            _ => "-".into(),
        };
        let vs_prom = match (med(m), med(p)) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        let _ = writeln!(
            t,
            "| query: {} (median / p99, {} runs) | {} | {} | {} | {vs_vm} | {vs_prom} |",
            q.label(per_metric),
            m.queries[qi].as_ref().map_or(0, |t| t.runs),
            cell(m),
            cell(v),
            cell(p)
        );
    }
    let p95 = ALL.iter().position(|q| *q == Query::P95).unwrap_or(3);
    let acc = |f: &Figures| match f.queries[p95].as_ref().and_then(|t| t.shape.first) {
        Some(x) => format!(
            "{x:.2} ms ({:+.2}%)",
            (x - r.exact_p95) / r.exact_p95 * 100.0
        ),
        None => "-".into(),
    };
    let _ = writeln!(
        t,
        "| p95 answer (error against the exact {:.2} ms from the raw values) | {} | {} | - | | |",
        r.exact_p95,
        acc(m),
        acc(v)
    );
    let dist = |f: &Figures, what: &str| match f.dist {
        Some((n, s)) => format!("{:.0} {what}/s ({n} in {s:.1} s)", n as f64 / s),
        None => "-".into(),
    };
    let _ = writeln!(
        t,
        "| distribution ingest (not compared: different units) | {} | {} | - | | |",
        dist(m, "minute summaries"),
        dist(v, "bucket samples")
    );
    let shapes: Vec<String> = ALL
        .iter()
        .enumerate()
        .map(|(qi, q)| {
            let s: Vec<String> = SYSTEMS
                .iter()
                .zip(&r.figures)
                .filter_map(|(w, f)| {
                    f.queries[qi]
                        .as_ref()
                        .map(|t| format!("{} {}x{}", w.name(), t.shape.series, t.shape.points))
                })
                .collect();
            format!("{}: {}", q.label(per_metric), s.join(", "))
        })
        .collect();
    let _ = writeln!(
        t,
        "\nAnswers (series x non-null points): {}.",
        shapes.join("; ")
    );
    t
}

pub fn growth_table(runs: &[Run]) -> String {
    let mut t =
        String::from("### Growth with series count (minutely / VictoriaMetrics / Prometheus)\n\n");
    let _ = writeln!(t, "| series | ingest points/s | bytes/point | memory/series | one series 24 h | one series 30 days | sum by region | p95 |");
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|");
    for r in runs {
        let three = |g: &dyn Fn(&Figures) -> String| {
            r.figures.iter().map(g).collect::<Vec<_>>().join(" / ")
        };
        let q = |qi: usize| {
            three(&|f: &Figures| {
                f.queries[qi]
                    .as_ref()
                    .map_or("-".into(), |t| format!("{:.1} ms", t.median_ms))
            })
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.series,
            three(&|f| format!("{:.0}k", rate(f) / 1e3)),
            three(&|f| format!("{:.2}", bpp(f, true))),
            three(&|f| format!("{:.0} B", mem(f, r.series))),
            q(0),
            q(1),
            q(2),
            q(3)
        );
    }
    t
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

/// What the program says its version is, or else its Debian package's
/// (Debian's VictoriaMetrics build prints an empty version).
fn version(bin: &str, flag: &str, package: &str) -> String {
    let said = output(bin, &[flag]);
    if !said.is_empty() {
        return said;
    }
    let pkg = output("dpkg-query", &["-W", "-f", "${Version}", package]);
    format!("Debian package {package} {pkg}")
}

pub fn document(a: &Args, runs: &[Run]) -> String {
    let (begin, end) = markers(&section_key(runs));
    let mut t = String::new();
    let _ = writeln!(t, "{begin}");
    let _ = writeln!(
        t,
        "Run {} on {}. VictoriaMetrics: `{}`; Prometheus: `{}`.\n",
        output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine(),
        version(
            &a.bins.victoria.to_string_lossy(),
            "-version",
            "victoria-metrics"
        ),
        version(
            &a.bins.prometheus.to_string_lossy(),
            "--version",
            "prometheus"
        ),
    );
    if !a.command.is_empty() {
        let _ = writeln!(t, "Command: `{}`\n", a.command);
    }
    for r in runs {
        let _ = writeln!(t, "{}", run_table(r));
    }
    if runs.len() > 1 {
        let _ = writeln!(t, "{}", growth_table(runs));
    }
    let _ = writeln!(t, "{end}");
    t
}

/// Replaces the section of `doc` marked for these runs (or appends it).
pub fn write_section(doc: &Path, runs: &[Run], section: &str) -> Result<()> {
    let (begin, end) = markers(&section_key(runs));
    let old = std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!(
            "{}{}{}",
            &old[..b],
            section.trim_end(),
            &old[e + end.len()..]
        ),
        _ => format!("{}\n\n{}", old.trim_end(), section),
    };
    std::fs::write(doc, new)?;
    Ok(())
}
