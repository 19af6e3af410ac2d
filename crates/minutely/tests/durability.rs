//! Acknowledged pushes survive kill -9; batch keys count once, also across
//! restarts; a clean stop and restart keeps every number.

mod common;
use common::*;
use serde_json::json;

fn sum(s: &Server, from: i64, to: i64) -> Option<f64> {
    let (code, ans) = s.query(&[
        ("metric", "invoice_count"),
        ("from", &from.to_string()),
        ("to", &to.to_string()),
        ("step", &(to - from).to_string()),
    ]);
    assert_eq!(code, 200, "{ans}");
    ans["series"]
        .as_array()
        .unwrap()
        .first()
        .and_then(|se| points(se)[0].1)
}

#[test]
fn kill_9_right_after_an_acknowledged_push_loses_nothing() {
    // The default: the log is synced every second, an answered push is in
    // the file (the kernel's page cache) already.
    kill_9_loses_nothing(&[]);
}

#[test]
fn kill_9_right_after_an_acknowledged_push_loses_nothing_when_synced_per_push() {
    kill_9_loses_nothing(&["--wal-sync-ms", "0"]);
}

fn kill_9_loses_nothing(flags: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let t0 = past_hour();
    let mut expected = 0.0;
    for round in 0..3 {
        let mut s = Server::start_in(&dir, flags);
        for i in 0..20 {
            let v = (round * 100 + i) as f64 + 0.25;
            let (code, ans) = s.push(&json!({"points": [
                {"kind": "counter", "name": "invoice_count", "value": v, "ts": t0 + i * 7, "tags": {"round": round.to_string()}},
                {"kind": "gauge", "name": "active_shoppers", "value": v, "ts": t0 + i * 7}
            ]}));
            assert_eq!((code, ans["accepted"].clone()), (200, json!(2)));
            expected += v;
        }
        s.kill9();
    }
    let s = Server::start_in(&dir, flags);
    assert_eq!(sum(&s, t0, t0 + 3_600), Some(expected));
    let (_, ans) = s.query(&[
        ("metric", "invoice_count"),
        ("from", &t0.to_string()),
        ("to", &(t0 + 3_600).to_string()),
        ("step", "3600"),
        ("group_by", "round"),
    ]);
    assert_eq!(ans["series"].as_array().unwrap().len(), 3);
}

#[test]
fn a_batch_pushed_twice_counts_once_also_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let t0 = past_hour();
    let body = json!({"batch": "host-a:4711:17", "points": [
        {"kind": "counter", "name": "invoice_count", "value": 5, "ts": t0},
        {"kind": "counter", "name": "invoice_count", "value": "bad", "ts": t0}
    ]});
    let mut s = Server::start_in(&dir, &[]);
    let (code, first) = s.push(&body);
    assert_eq!((code, first["accepted"].clone()), (200, json!(1)));
    let (code, second) = s.push(&body);
    assert_eq!(code, 200);
    assert_eq!(second["duplicate"], true);
    assert_eq!(sum(&s, t0, t0 + 60), Some(5.0));
    s.kill9();
    let mut s = Server::start_in(&dir, &[]);
    assert_eq!(s.push(&body).1["duplicate"], true);
    // The same key in another env is another batch.
    let mut other = body.clone();
    other["env"] = "staging".into();
    assert!(s.push(&other).1.get("duplicate").is_none());
    s.stop();
    let s = Server::start_in(&dir, &[]);
    assert_eq!(s.push(&body).1["duplicate"], true);
    let (_, ans) = s.query(&[
        ("metric", "invoice_count"),
        ("env", "default"),
        ("from", &t0.to_string()),
        ("to", &(t0 + 60).to_string()),
        ("step", "60"),
    ]);
    assert_eq!(points(&ans["series"][0])[0].1, Some(5.0));
}

#[test]
fn clean_stop_flushes_and_restart_reads_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let t0 = past_hour();
    let mut s = Server::start_in(&dir, &["--checkpoint-secs", "1"]);
    let mut pts = Vec::new();
    for m in 0..120 {
        pts.push(
            json!({"kind": "counter", "name": "invoice_count", "value": m, "ts": t0 + m * 60}),
        );
        pts.push(json!({"kind": "distribution", "name": "order_item_count", "value": m % 7 + 1, "ts": t0 + m * 60}));
    }
    assert_eq!(s.push(&json!({"points": pts})).1["accepted"], 240);
    std::thread::sleep(std::time::Duration::from_millis(2_500)); // at least one checkpoint ran
    let q = |s: &Server| {
        let mut out = Vec::new();
        for (metric, field, step) in [
            ("invoice_count", "sum", "60"),
            ("invoice_count", "sum", "3600"),
            ("order_item_count", "p90", "3600"),
            ("order_item_count", "count", "600"),
        ] {
            let (_, ans) = s.query(&[
                ("metric", metric),
                ("field", field),
                ("from", &t0.to_string()),
                ("to", &(t0 + 7_200).to_string()),
                ("step", step),
            ]);
            out.push(ans);
        }
        out
    };
    let before = q(&s);
    assert_eq!(
        points(&before[1]["series"][0]),
        vec![
            (t0, Some((0..60).sum::<i64>() as f64)),
            (t0 + 3_600, Some((60..120).sum::<i64>() as f64))
        ]
    );
    s.stop();
    let s = Server::start_in(&dir, &[]);
    assert_eq!(q(&s), before);
}

#[test]
fn backups_online_and_offline_restore_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = past_hour();
    let mut s = Server::start_in(&tmp.path().join("data"), &[]);
    let pts: Vec<_> = (0..90)
        .map(|m| json!({"kind": "counter", "name": "invoice_count", "value": m, "ts": t0 + m * 60}))
        .collect();
    s.push(&json!({"batch": "b1", "points": pts}));
    let want = sum(&s, t0, t0 + 7_200);
    // Online, through the CLI and the running server.
    let online = tmp.path().join("online");
    let out = std::process::Command::new(bin())
        .args([
            "backup",
            online.to_str().unwrap(),
            "--key",
            ADMIN_KEY,
            "--endpoint",
            &s.url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second backup into the same directory is refused.
    let (code, ans) = s.request(
        "POST",
        "/api/v1/backup",
        ADMIN_KEY,
        Some(&json!({"dest": online.to_str().unwrap()})),
    );
    assert_eq!(code, 409, "{ans}");
    assert_eq!(
        s.request(
            "POST",
            "/api/v1/backup",
            PUSH_KEY,
            Some(&json!({"dest": "/tmp/x"}))
        )
        .0,
        403
    );
    // More data after the backup is not in it.
    s.push(
        &json!({"points": [{"kind": "counter", "name": "invoice_count", "value": 1000, "ts": t0}]}),
    );
    s.stop();
    // Offline, from the stopped server's directory.
    let offline = tmp.path().join("offline");
    let out = std::process::Command::new(bin())
        .args([
            "backup",
            offline.to_str().unwrap(),
            "--data-dir",
            s.data_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = Server::start_in(&online, &[]);
    assert_eq!(sum(&restored, t0, t0 + 7_200), want);
    assert_eq!(
        restored.push(&json!({"batch": "b1", "points": []})).1["duplicate"],
        true
    );
    drop(restored);
    let restored = Server::start_in(&offline, &[]);
    assert_eq!(sum(&restored, t0, t0 + 7_200), want.map(|w| w + 1000.0));
}

#[test]
fn a_damaged_log_frame_stops_the_start_with_file_offset_and_remedy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let t0 = past_hour();
    let mut s = Server::start_in(&dir, &[]);
    for i in 0..2 {
        s.push(&json!({"points": [{"kind": "counter", "name": "invoice_count", "value": 1, "ts": t0 + i}]}));
    }
    s.kill9();
    let segment = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a log segment with the two pushes");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[12] ^= 0x55; // inside the first frame's payload, not a torn tail
    std::fs::write(&segment, bytes).unwrap();
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(segment.to_str().unwrap()) && err.contains("at 0") && err.contains("checksum"),
        "{err}"
    );
    assert!(err.contains("backup"), "{err}");
}
