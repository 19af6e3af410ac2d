//! A full disk: pushes get 503 with a clear error (never a 2xx for data not
//! kept), the server stays up and reads still work, and when space returns
//! it goes on with every acknowledged point intact. Needs root to mount a
//! small tmpfs (CI runs as root).

mod common;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn total(s: &Server, t0: i64) -> f64 {
    let (code, ans) = s.query(&[
        ("metric", "filled"),
        ("from", &t0.to_string()),
        ("to", &(t0 + 3_600).to_string()),
        ("step", "3600"),
    ]);
    assert_eq!(code, 200, "{ans}");
    ans["series"]
        .as_array()
        .unwrap()
        .first()
        .and_then(|se| points(se)[0].1)
        .unwrap_or(0.0)
}

#[test]
fn full_disk_refuses_pushes_keeps_reading_and_recovers() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8M", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs failed");
    let _mount = Mount(mnt.clone());
    let dir = mnt.join("data");
    let mut s = Server::start_in(&dir, &["--checkpoint-secs", "1"]);
    let t0 = past_hour();
    let mut acked = 0.0;
    let mut refused = None;
    // Wide tags make big log records, so the disk fills within a few hundred pushes.
    for i in 0..2_000 {
        let pts: Vec<_> = (0..200)
            .map(|j| {
                json!({"kind": "counter", "name": "filled", "value": 1, "ts": t0 + (i % 60) * 60,
                            "tags": {"k": format!("{}-{i}-{j}", "x".repeat(200))}})
            })
            .collect();
        let (code, ans) = s.push(&json!({"points": pts}));
        match code {
            200 => acked += ans["accepted"].as_f64().unwrap(),
            503 => {
                refused = Some(ans);
                break;
            }
            other => panic!("unexpected {other}: {ans}"),
        }
    }
    let refused = refused.expect("the disk never filled");
    assert!(
        refused["error"].as_str().unwrap().contains("disk is full"),
        "{refused}"
    );
    // Still up, reads still work and show exactly what was acknowledged.
    assert!(s.get_text("/healthz").contains("ok"));
    assert_eq!(total(&s, t0), acked);
    let metrics = s.get_text("/metrics");
    assert!(
        metrics.contains("minutely_push_requests_total{status=\"503\"}"),
        "{metrics}"
    );

    // Space comes back.
    let ok = Command::new("mount")
        .args(["-o", "remount,size=256M"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success());
    let mut resumed = false;
    for _ in 0..50 {
        let (code, ans) = s.push(
            &json!({"points": [{"kind": "counter", "name": "filled", "value": 1, "ts": t0}]}),
        );
        if code == 200 {
            acked += ans["accepted"].as_f64().unwrap();
            resumed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(resumed, "pushes did not resume after space returned");
    assert_eq!(total(&s, t0), acked);
    // Checkpoints succeed again and a clean restart reads the same numbers.
    std::thread::sleep(Duration::from_millis(2_500));
    s.stop();
    let s = Server::start_in(&dir, &[]);
    assert_eq!(total(&s, t0), acked);
}
