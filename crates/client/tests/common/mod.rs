//! Runs the real `minutely` server binary for the client's end-to-end tests:
//! a temporary data directory, a free port (kept across a restart), known
//! keys, and a query helper that reads one value over the last minutes.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

pub const PUSH_KEY: &str = "client-test-push-key-0123456789";
pub const ADMIN_KEY: &str = "client-test-admin-key-0123456789";
pub const ENV: &str = "test";

/// `MINUTELY_BIN`, or the workspace's `target/debug/minutely`, built with
/// `cargo build -p minutely` when it is missing.
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(b) = std::env::var("MINUTELY_BIN") {
            return PathBuf::from(b);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        let bin = target.join("debug/minutely");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "minutely"])
                .current_dir(&root)
                .status()
                .expect("run cargo build -p minutely");
            assert!(status.success(), "cargo build -p minutely failed");
        }
        bin
    })
    .clone()
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    listen: String,
    tmp: tempfile::TempDir,
    extra: Vec<String>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with extra `serve` flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, url) = spawn(&tmp, "127.0.0.1:0", &extra);
        let listen = url.trim_start_matches("http://").to_string();
        Server {
            child: Some(child),
            url,
            listen,
            tmp,
            extra,
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            assert!(c.wait().unwrap().success());
        }
    }

    /// Starts again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // The port may linger for a moment after the stop.
            match std::panic::catch_unwind(|| spawn(&self.tmp, &self.listen, &self.extra)) {
                Ok((child, url)) => {
                    assert_eq!(url, self.url);
                    self.child = Some(child);
                    return;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }

    /// A client config pushing to this server every 50 ms.
    pub fn config(&self) -> minutely_client::Builder {
        minutely_client::Config::builder()
            .endpoint(&self.url)
            .push_key(PUSH_KEY)
            .env(ENV)
            .push_interval(Duration::from_millis(50))
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(400))
            .timeout(Duration::from_secs(5))
    }

    /// `field` of `metric` over the last 20 minutes (and the next two), as
    /// one value; `tags` filter the series, which must be exactly one.
    pub fn value(&self, metric: &str, field: &str, tags: &[(&str, &str)]) -> Option<f64> {
        let minute = (now() / 60.0).floor() as i64 * 60;
        let (from, to) = (minute - 1200, minute + 120);
        let mut req = ureq::get(&format!("{}/api/v1/query", self.url))
            .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
            .query("metric", metric)
            .query("field", field)
            .query("env", ENV)
            .query("from", &from.to_string())
            .query("to", &to.to_string())
            .query("step", &(to - from).to_string());
        for (k, v) in tags {
            req = req.query("tag", &format!("{k}:{v}"));
        }
        let answer: Value = match req.call() {
            Ok(r) => r.into_json().unwrap(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "query {metric} {field}: HTTP {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("query {metric} {field}: {e}"),
        };
        let series = answer["series"].as_array().unwrap();
        assert!(
            series.len() <= 1,
            "{metric}: expected one series, got {answer}"
        );
        series.first().and_then(|s| s["points"][0][1].as_f64())
    }
}

fn spawn(tmp: &tempfile::TempDir, listen: &str, extra: &[String]) -> (Child, String) {
    let dir = tmp.path().join("data");
    let mut child = Command::new(bin())
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(&dir)
        .args(extra)
        .env("MINUTELY_PUSH_KEY", PUSH_KEY)
        .env("MINUTELY_ADMIN_KEY", ADMIN_KEY)
        .env("MINUTELY_LOG", "warn")
        .env_remove("MINUTELY_CONFIG")
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start minutely");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(u) = line.strip_prefix("minutely listening on ") {
                    return (child, u.trim().to_string());
                }
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("server did not start on {listen}: {status:?}");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The value at rank floor(q * (n - 1)) of the sorted values: what the
/// server's percentiles estimate within 1%.
pub fn exact_quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[(q * (v.len() - 1) as f64).floor() as usize]
}

pub fn assert_within_1pct(metric: &str, field: &str, got: Option<f64>, exact: f64) {
    let got = got.unwrap_or_else(|| panic!("{metric} {field}: no value"));
    assert!(
        (got - exact).abs() <= 0.01 * exact.abs() + 1e-9,
        "{metric} {field}: {got} is not within 1% of {exact}"
    );
}

/// Pseudo-random values, log-uniform over 0.1..1000.
pub fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 1.0)
        })
        .collect()
}
