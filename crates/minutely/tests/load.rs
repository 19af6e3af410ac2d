//! Sustained load with flat memory: two clients push at a steady rate into
//! a fixed set of series for a while, and the server's resident memory
//! (VmRSS from /proc) must not grow after warm-up; no good point may be
//! refused.
//!
//! Short by default (CI); `MINUTELY_LOAD_SECS=600` runs the full 10 minutes
//! (docs/operations/reliability.md gives the figures of such a run).

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Pushes per second, from each of the two clients.
const PUSHES_PER_SEC: u64 = 10;
/// Points per push (a third each of counters, gauges and distributions).
const POINTS_PER_PUSH: usize = 150;
/// Series the points rotate over: a fixed set, so memory has a ceiling.
const SERIES: usize = 600;
/// Growth of VmRSS allowed from the end of warm-up to the end of the run.
/// The steady state holds a few minutes of open aggregates and the
/// allocator's free lists; a leak of even 1 KiB per push would pass this
/// in the full run (2 x 10 x 600 s x 1 KiB = 12 MiB), and the figures of
/// runs so far stay below a quarter of it.
const MAX_GROWTH_KIB: u64 = 16 * 1024;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn sustained_push_keeps_memory_flat_and_refuses_no_good_point() {
    let secs: u64 = std::env::var("MINUTELY_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // Warm-up: a third of the run, at least 15 s (several checkpoints).
    let warmup = Duration::from_secs((secs / 3).max(15));
    let total = Duration::from_secs(secs).max(warmup + Duration::from_secs(15));
    let s = Server::start_with(&["--checkpoint-secs", "5", "--statsd", "off"]);
    let pid = s.pid();
    let started = Instant::now();
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let url = s.url.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(10))
                    .build();
                let period = Duration::from_nanos(1_000_000_000 / PUSHES_PER_SEC);
                let (mut pushes, mut accepted, mut worst) = (0u64, 0u64, Duration::ZERO);
                let mut next = Instant::now();
                while started.elapsed() < total {
                    let ts = now();
                    let points: Vec<_> = (0..POINTS_PER_PUSH)
                        .map(|i| {
                            let series = (pushes as usize * POINTS_PER_PUSH + i) % SERIES;
                            let tags = json!({"client": c.to_string(), "n": (series / 3).to_string()});
                            match series % 3 {
                                0 => json!({"kind": "counter", "name": "load_count", "value": 1, "ts": ts, "tags": tags}),
                                1 => json!({"kind": "gauge", "name": "load_gauge", "value": i, "ts": ts, "tags": tags}),
                                _ => json!({"kind": "distribution", "name": "load_dist", "value": i as f64 * 1.5, "ts": ts, "tags": tags}),
                            }
                        })
                        .collect();
                    let t = Instant::now();
                    let r = agent
                        .post(&format!("{url}/api/v1/push"))
                        .set("Authorization", &format!("Bearer {PUSH_KEY}"))
                        .send_json(json!({"env": "load", "points": points}))
                        .expect("push answered");
                    worst = worst.max(t.elapsed());
                    let ans: serde_json::Value = r.into_json().unwrap();
                    assert_eq!(
                        ans["rejected"].as_array().map(Vec::len),
                        Some(0),
                        "good points refused: {ans}"
                    );
                    accepted += ans["accepted"].as_u64().unwrap();
                    pushes += 1;
                    next += period;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                (pushes, accepted, worst)
            })
        })
        .collect();

    // One sample a second; the baseline is the highest of the last 5 s of warm-up.
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while started.elapsed() < total {
        samples.push((started.elapsed().as_secs_f64(), vm_rss_kib(pid)));
        std::thread::sleep(Duration::from_secs(1));
    }
    let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let w = warmup.as_secs_f64();
    let baseline = samples
        .iter()
        .filter(|(t, _)| *t <= w && *t > w - 5.0)
        .map(|s| s.1)
        .max()
        .unwrap();
    let after: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t > w)
        .map(|s| s.1)
        .collect();
    let peak = *after.iter().max().unwrap();
    let last = *after.last().unwrap();
    let pushes: u64 = results.iter().map(|r| r.0).sum();
    let accepted: u64 = results.iter().map(|r| r.1).sum();
    let worst = results.iter().map(|r| r.2).max().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "load: {secs} s, {pushes} pushes, {accepted} points ({:.0}/s), slowest push {worst:?}; \
         VmRSS at warm-up end {baseline} KiB, peak after {peak} KiB, last {last} KiB, growth {} KiB",
        accepted as f64 / elapsed,
        peak.saturating_sub(baseline)
    );
    assert_eq!(accepted, pushes * POINTS_PER_PUSH as u64);
    // The steady rate was held (within 10%).
    let want = 2.0 * PUSHES_PER_SEC as f64 * total.as_secs_f64();
    assert!(pushes as f64 >= 0.9 * want, "{pushes} pushes of {want}");
    assert!(
        peak.saturating_sub(baseline) <= MAX_GROWTH_KIB,
        "VmRSS grew {} KiB after warm-up (bound {MAX_GROWTH_KIB} KiB): {samples:?}",
        peak.saturating_sub(baseline)
    );
    // Every accepted counter point is there.
    let (_, q) = s.query(&[
        ("metric", "load_count"),
        ("env", "load"),
        ("from", "-2h"),
        ("step", "7200"),
    ]);
    let sum: f64 = q["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(points)
        .filter_map(|p| p.1)
        .sum();
    let counters: u64 = results
        .iter()
        .map(|r| {
            // Points of each push with series % 3 == 0.
            (0..r.0)
                .map(|p| {
                    (0..POINTS_PER_PUSH)
                        .filter(|i| ((p as usize * POINTS_PER_PUSH + i) % SERIES).is_multiple_of(3))
                        .count() as u64
                })
                .sum::<u64>()
        })
        .sum();
    assert_eq!(sum, counters as f64);
}
