//! A flipped byte inside a stored block (in a block file) is caught by the
//! block's checksum: `minutely check` names it and exits non-zero, the
//! server reports it at start, a query over it answers an error instead of
//! wrong numbers, and the undamaged series still answer.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The encoded minute blocks and the files that hold them, found through
/// the places file (docs/format.md).
fn minute_blocks(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    minutely_store::embedded::stored_blocks(dir)
        .unwrap()
        .into_iter()
        .filter(|((_, res, _), _, _)| *res == 0)
        .map(|(_, path, place)| {
            let bytes = minutely_store::embedded::read_block(&path, place).unwrap();
            (path, bytes)
        })
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

    let blocks = minute_blocks(&dir);
    assert_eq!(blocks.len(), 2, "one minute block per series");
    // Which block is whose is not visible from outside: damage the first
    // and learn from the answers which metric it held.
    let (block_file, block) = &blocks[0];
    assert!(
        flip_inside(block_file, block) >= 1,
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
    assert!(err.contains(&*block_file.to_string_lossy()), "{err}");
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
    // A clean stop (copying blocks between files at a stop keeps their
    // bytes, damage included: the next check still sees it).
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
            .any(|l| l.contains(".blk") && l.contains("Restore the data directory")),
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

    // After a crash the damage is still named at start, never served as
    // numbers (the block file is outside redb's repair pass, so the
    // server starts and its block check reports it).
    s.kill9();
    let (mut child, rx) = serve_logging(&dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    while !seen(&log, "failed their checksum") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "damage not reported after a crash; log:\n{}",
                    log.join("\n")
                );
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!seen(&log, "panicked"), "{}", log.join("\n"));
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
