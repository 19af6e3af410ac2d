//! Crash safety: several clients push while the server is killed with
//! SIGKILL at random moments, again and again, on the same data directory
//! (checkpoints every second, so kills also land inside checkpoints). Every
//! client retries an unanswered batch with the same batch key after the
//! restart, as real clients do; at the end every batch counts exactly once.

mod common;
use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENTS: usize = 3;
const KILLS: usize = 20;

/// One client's batches: (batch key, value) of those not yet acknowledged,
/// and the total of all it made.
#[derive(Default)]
struct Client {
    pending: Vec<(String, i64)>,
    made: i64,
    next: i64,
}

fn push_batch(url: &str, key: &str, value: i64, t0: i64, client: usize) -> bool {
    let body = json!({"batch": key, "points": [
        {"kind": "counter", "name": "crash_count", "value": value, "ts": t0 + (value % 3_000), "tags": {"client": client.to_string()}},
        {"kind": "distribution", "name": "crash_dist", "value": value, "ts": t0 + (value % 3_000)}
    ]});
    let result = ureq::post(&format!("{url}/api/v1/push"))
        .set("Authorization", &format!("Bearer {PUSH_KEY}"))
        .timeout(Duration::from_secs(5))
        .send_json(body);
    matches!(result, Ok(r) if r.status() == 200)
}

#[test]
fn repeated_sigkill_loses_no_acknowledged_point_and_counts_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let t0 = past_hour() - 3_600;
    let clients: Vec<Arc<Mutex<Client>>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let mut rng: u64 = 0x5DEE_CE66_D1CE_5EED;
    let retried = std::sync::atomic::AtomicUsize::new(0);
    for round in 0..KILLS {
        let mut server = Server::start_in(&dir, &["--checkpoint-secs", "1"]);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (c, stop, url) = (c.clone(), stop.clone(), server.url.clone());
                std::thread::spawn(move || {
                    // First retry what the last server never answered, then go on.
                    loop {
                        let next = {
                            let mut c = c.lock().unwrap();
                            if let Some(p) = c.pending.first().cloned() {
                                p
                            } else {
                                if stop.load(Ordering::Relaxed) {
                                    return;
                                }
                                c.next += 1;
                                let v = c.next;
                                let key = format!("client-{i}-{v}");
                                c.made += v;
                                c.pending.push((key.clone(), v));
                                (key, v)
                            }
                        };
                        if !push_batch(&url, &next.0, next.1, t0, i) {
                            return; // the server is gone; retry after the restart
                        }
                        c.lock().unwrap().pending.retain(|p| p.0 != next.0);
                    }
                })
            })
            .collect();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(100 + rng % 900));
        stop.store(true, Ordering::Relaxed);
        server.kill9();
        for t in threads {
            t.join().unwrap();
        }
        let unanswered: usize = clients
            .iter()
            .map(|c| c.lock().unwrap().pending.len())
            .sum();
        retried.fetch_add(unanswered, Ordering::Relaxed);
        let _ = round;
    }
    // A last start: retry what is still pending, then check.
    let s = Server::start_in(&dir, &[]);
    for (i, c) in clients.iter().enumerate() {
        let pending = std::mem::take(&mut c.lock().unwrap().pending);
        for (key, v) in pending {
            assert!(push_batch(&s.url, &key, v, t0, i));
        }
    }
    let (code, ans) = s.query(&[
        ("metric", "crash_count"),
        ("from", &t0.to_string()),
        ("to", &(t0 + 3_600).to_string()),
        ("step", "3600"),
        ("group_by", "client"),
    ]);
    assert_eq!(code, 200, "{ans}");
    let series = ans["series"].as_array().unwrap();
    assert_eq!(series.len(), CLIENTS);
    for (i, c) in clients.iter().enumerate() {
        let made = c.lock().unwrap().made;
        assert!(made > 0);
        let got = points(&series[i])[0].1;
        assert_eq!(got, Some(made as f64), "client {i}");
    }
    // The distribution's count over the hour is the number of batches: each once.
    let batches: i64 = clients.iter().map(|c| c.lock().unwrap().next).sum();
    let (_, ans) = s.request(
        "POST",
        "/api/v1/query",
        ADMIN_KEY,
        Some(&json!({"queries": [
        {"metric": "crash_dist", "field": "count", "from": t0, "to": t0 + 3_600, "step": 3_600}]})),
    );
    assert_eq!(
        ans["results"][0]["series"][0]["points"][0][1].as_f64(),
        Some(batches as f64),
        "{ans}"
    );
    // The kills did land while batches were unanswered, so retries were exercised.
    assert!(retried.load(Ordering::Relaxed) > 0);
    let metrics = s.get_text("/metrics");
    assert!(metrics.contains("minutely_series 4"), "{metrics}");
}
