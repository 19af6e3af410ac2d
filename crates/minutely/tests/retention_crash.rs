//! SIGKILL inside retention passes: a data directory holding six days of
//! data is opened with two days of minute retention, and the server is
//! killed at random moments inside the pass that drops the older minute
//! blocks (one commit). A pass that commits before the kill leaves
//! nothing to drop, so the directory then starts again from a copy made
//! before any pass. Afterwards the store opens cleanly, every
//! block checks out, hourly rollups still hold every point exactly, the
//! minutes within retention are exact, and the older minutes are gone.

mod common;
use common::*;
use minutely_core::{Kind, Point, PointValue, Tags};
use minutely_store::embedded::{EmbeddedConfig, EmbeddedStore};
use minutely_store::{PushRequest, Store};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SERIES: usize = 1_500;
const DAYS: i64 = 6;

/// One counter point of 1 per series per hour for `DAYS` days, written
/// with the store itself (the HTTP API takes only the last day).
fn fill(dir: &Path, start: i64) {
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir)).unwrap();
    for hour in 0..DAYS * 24 {
        let points = (0..SERIES)
            .map(|s| Point {
                kind: Kind::Counter,
                name: "retained_count".into(),
                tags: Tags::from_pairs([("s", format!("{s:04}"))]),
                ts: (start + hour * 3_600) as f64,
                value: PointValue::Single(1.0),
            })
            .enumerate()
            .collect();
        store
            .push(PushRequest {
                app: "default".into(),
                env: "default".into(),
                batch: None,
                points,
            })
            .unwrap();
    }
    store.close().unwrap();
}

fn serve(dir: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--statsd", "off"])
        .args(["--checkpoint-secs", "1", "--retention-minutely-days", "2"])
        .arg("--data-dir")
        .arg(dir)
        .env("MINUTELY_PUSH_KEY", PUSH_KEY)
        .env("MINUTELY_ADMIN_KEY", ADMIN_KEY)
        .env("MINUTELY_LOG", "warn,minutely_store=debug")
        .env_remove("MINUTELY_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a log line containing `what`; returns it.
fn wait_for(rx: &mpsc::Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => {}
            Err(e) => panic!("no {what:?} in the log: {e}"),
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The `secs` field of a log line, with or without colour codes around it
/// (read wrongly, the aim stays at its first guess, which lands inside a
/// pass of a few milliseconds about one time in twelve).
fn pass_secs(line: &str) -> Option<f64> {
    let plain: String = line
        .split('\u{1b}')
        .enumerate()
        .map(|(i, part)| match i {
            0 => part,
            _ => part.split_once('m').map_or("", |(_, rest)| rest),
        })
        .collect();
    plain
        .split("secs=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_pass_duration_is_read_with_or_without_colours() {
    let coloured = "\u{1b}[2m2026-11-27T00:43:55Z\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m retention pass committed \u{1b}[3msecs\u{1b}[0m\u{1b}[2m=\u{1b}[0m0.005567443";
    assert_eq!(pass_secs(coloured), Some(0.005567443));
    assert_eq!(
        pass_secs("retention pass committed secs=0.25 blocks=3"),
        Some(0.25)
    );
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn sigkill_inside_retention_passes_loses_nothing_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let now = now() as i64;
    let start = (now / 3_600 - DAYS * 24) * 3_600;
    let pristine = tmp.path().join("pristine");
    fill(&pristine, start);
    copy_dir(&pristine, &dir);

    // Kill at random moments after a pass starts, within about twice the
    // time the pass takes, until enough kills landed inside one.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let (mut inside, mut runs) = (0, 0);
    let mut span = Duration::from_millis(50);
    while inside < 5 && runs < 40 {
        runs += 1;
        let (mut child, rx) = serve(&dir);
        wait_for(&rx, "retention pass started");
        let delay = span.mul_f64((xorshift(&mut seed) % 1_000) as f64 / 1_000.0);
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        // Every line it wrote is in the channel once the pipe closed.
        let committed: Vec<String> = rx.iter().filter(|l| l.contains("pass committed")).collect();
        match committed.first() {
            None => inside += 1,
            Some(line) => {
                std::fs::remove_dir_all(&dir).unwrap();
                copy_dir(&pristine, &dir);
                // Learn how long a pass takes, to aim inside the next.
                if let Some(secs) = pass_secs(line) {
                    span = Duration::from_secs_f64(secs * 2.0).max(Duration::from_millis(1));
                }
            }
        }
    }
    assert!(
        inside >= 5,
        "only {inside} of {runs} kills landed inside a retention pass"
    );

    // A clean start finishes the pass; then every kept number is exact.
    let (mut child, rx) = serve(&dir);
    wait_for(&rx, "retention pass committed");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut s = Server::start_in(&dir, &["--retention-minutely-days", "2"]);
    let hourly = s.query(&[
        ("metric", "retained_count"),
        ("field", "sum"),
        ("from", &start.to_string()),
        ("to", &(start + DAYS * 86_400).to_string()),
        ("step", &(DAYS * 86_400).to_string()),
        ("group_by", "s"),
    ]);
    assert_eq!(hourly.0, 200, "{}", hourly.1);
    let series = hourly.1["series"].as_array().unwrap();
    assert_eq!(series.len(), SERIES);
    for one in series {
        assert_eq!(points(one)[0].1, Some((DAYS * 24) as f64), "{one}");
    }
    // Minutes: the last day is kept, the first three days are gone.
    let minutes = |from: i64, to: i64| {
        let (code, ans) = s.query(&[
            ("metric", "retained_count"),
            ("field", "sum"),
            ("tag", "s:0007"),
            ("from", &from.to_string()),
            ("to", &to.to_string()),
            ("step", "60"),
        ]);
        assert_eq!(code, 200, "{ans}");
        ans["series"]
            .as_array()
            .unwrap()
            .first()
            .map_or(0.0, |one| {
                points(one).iter().filter_map(|p| p.1).sum::<f64>()
            })
    };
    let last_day = start + (DAYS - 1) * 86_400;
    assert_eq!(minutes(last_day, last_day + 86_400), 24.0);
    assert_eq!(minutes(start, start + 3 * 86_400), 0.0);
    s.stop();

    let out = Command::new(bin())
        .args(["check", "--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
