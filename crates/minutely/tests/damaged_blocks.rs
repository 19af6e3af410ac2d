//! A flipped byte inside a stored block of `minutely.redb` is caught by the
//! block's checksum: `minutely check` names it and exits non-zero, the
//! server reports it at start, a query over it answers an error instead of
//! wrong numbers, and the undamaged series still answer.

mod common;
use common::*;
use redb::{ReadableTable, TableDefinition};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BLOCKS: TableDefinition<(u64, u8, u32), &[u8]> = TableDefinition::new("blocks");

/// The encoded minute blocks in the file, read with redb itself.
fn minute_blocks(db_file: &std::path::Path) -> Vec<Vec<u8>> {
    let db = redb::Database::open(db_file).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(BLOCKS).unwrap();
    table
        .iter()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|(k, _)| k.value().1 == 0)
        .map(|(_, v)| v.value().to_vec())
        .collect()
}

/// Flips one byte in the middle of every copy of `needle` in the file.
fn flip_inside(file: &std::path::Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(file).unwrap();
    let mut flipped = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + at)
    {
        bytes[pos + needle.len() / 2] ^= 0x40;
        flipped += 1;
        at = pos + needle.len();
    }
    std::fs::write(file, bytes).unwrap();
    flipped
}

fn sum(s: &Server, metric: &str, from: i64) -> (u16, serde_json::Value) {
    let (from, to) = (from.to_string(), (from + 7_200).to_string());
    s.query(&[
        ("metric", metric),
        ("field", "sum"),
        ("from", &from),
        ("to", &to),
        ("step", "60"), // minutes, so the minute blocks are read
    ])
}

#[test]
fn a_flipped_byte_in_a_block_is_reported_never_read_as_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // 100 minutes inside one UTC day, so each series has one minute block.
    let day = |t: i64| t.div_euclid(86_400);
    let mut t0 = past_hour() - 7_200;
    if day(t0) != day(t0 + 99 * 60) {
        t0 = day(t0 + 99 * 60) * 86_400;
    }
    let mut s = Server::start_in(&dir, &[]);
    // Two series: only the block of the first will be damaged.
    let pts: Vec<_> = (0..100)
        .flat_map(|m| {
            [
                json!({"kind": "counter", "name": "damaged_count", "value": m + 1, "ts": t0 + m * 60}),
                json!({"kind": "counter", "name": "intact_count", "value": 2, "ts": t0 + m * 60}),
            ]
        })
        .collect();
    assert_eq!(s.push(&json!({"points": pts})).0, 200);
    s.stop(); // a clean stop writes the minutes into blocks

    let db_file = dir.join("minutely.redb");
    let blocks = minute_blocks(&db_file);
    assert_eq!(blocks.len(), 2, "one minute block per series");
    // Which block is whose is not visible from outside: damage the first
    // and learn from the answers which metric it held.
    assert!(
        flip_inside(&db_file, &blocks[0]) >= 1,
        "block bytes not found in the file"
    );

    // A directory without data is not "all good".
    let empty = tmp.path().join("empty");
    let out = Command::new(bin())
        .args(["check", "--data-dir", empty.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("holds no minutely data"), "{err}");
    assert!(!empty.exists(), "check created the directory it was given");

    let out = Command::new(bin())
        .args(["check", "--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check passed a damaged file: {err}");
    assert!(err.contains("minutely.redb"), "{err}");
    assert!(
        err.contains("1 of ") && err.contains("stored blocks are damaged"),
        "{err}"
    );
    assert!(err.contains("backup"), "{err}");

    // The server starts (the other series are fine) and says so in its log.
    let (mut child, rx) = serve_logging(&dir);
    // Until it listens (so SIGTERM stops it cleanly) and has reported.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    while !(seen(&log, "failed their checksum") && seen(&log, "minutely listening on")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => panic!("no damage reported at start; log:\n{}", log.join("\n")),
        }
    }
    // A clean stop: after a crash redb's own repair pass meets the damage
    // first (see the end of this test).
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    log.extend(rx.try_iter());
    assert!(status.success(), "{status}: {}", log.join("\n"));
    assert!(
        log.iter()
            .any(|l| l.contains("minutely.redb") && l.contains("Restore the data directory")),
        "{}",
        log.join("\n")
    );

    // Queries: the damaged series answers an error, never other numbers;
    // the intact one answers its exact sum.
    let mut s = Server::start_in(&dir, &[]);
    let answers: Vec<_> = ["damaged_count", "intact_count"]
        .iter()
        .map(|m| sum(&s, m, t0))
        .collect();
    let failed: Vec<_> = answers.iter().filter(|(c, _)| *c >= 500).collect();
    assert_eq!(failed.len(), 1, "{answers:?}");
    let msg = failed[0].1["error"].as_str().unwrap();
    assert!(
        msg.contains("damaged") && msg.contains("checksum") && msg.contains("backup"),
        "{msg}"
    );
    let good: Vec<_> = answers.iter().filter(|(c, _)| *c == 200).collect();
    let value: f64 = points(&good[0].1["series"][0])
        .iter()
        .filter_map(|p| p.1)
        .sum();
    // 5050 is the damaged metric's sum, 200 the intact one's.
    assert!(value == 5050.0 || value == 200.0, "{value}");

    // After a crash, redb checks its page checksums while repairing: the
    // damage stops the start with the file and what to do, never a panic.
    // When a later write copied the damaged block into a fresh page (whose
    // page checksum is then good), redb cannot see it: the server starts
    // and its block check reports the damage instead. Either way it is
    // named, never served as numbers.
    s.kill9();
    let (mut child, rx) = serve_logging(&dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    loop {
        log.extend(rx.try_iter());
        if let Some(status) = child.try_wait().unwrap() {
            // Give the pipe readers a moment to pass on the last lines.
            std::thread::sleep(Duration::from_millis(200));
            log.extend(rx.try_iter());
            let err = log.join("\n");
            assert_eq!(status.code(), Some(1), "{err}");
            assert!(
                err.contains("minutely.redb") && err.contains("minutely backup"),
                "{err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            break;
        }
        if seen(&log, "failed their checksum") {
            let _ = child.kill();
            let _ = child.wait();
            assert!(!seen(&log, "panicked"), "{}", log.join("\n"));
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "damage neither refused nor reported; log:\n{}",
                log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn seen(log: &[String], what: &str) -> bool {
    log.iter().any(|l| l.contains(what))
}

/// `minutely serve` on `dir` at info level, its stdout and stderr lines
/// arriving on the receiver.
fn serve_logging(
    dir: &std::path::Path,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--statsd",
            "off",
            "--data-dir",
        ])
        .arg(dir)
        .env("MINUTELY_LOG", "info")
        .env_remove("MINUTELY_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
    let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
    for pipe in [out, err] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}
