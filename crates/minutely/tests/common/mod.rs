//! Harness for end-to-end tests: runs the real `minutely` binary on a free
//! port with a temporary data directory and talks HTTP to it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const PUSH_KEY: &str = "test-push-key-0123456789";
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_minutely")
}

pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub stdout: mpsc::Receiver<String>,
}

impl Server {
    /// A fresh server with known first keys.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A fresh server with extra flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut s = Server::start_in(&dir, extra);
        s._tmp = Some(tmp);
        s
    }

    /// A server on `data_dir` (reused across restarts) with extra flags.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("MINUTELY_PUSH_KEY", PUSH_KEY)
            .env("MINUTELY_ADMIN_KEY", ADMIN_KEY)
            .env("MINUTELY_LOG", "warn")
            .env_remove("MINUTELY_CONFIG")
            .current_dir(data_dir.parent().unwrap_or(Path::new("/tmp")))
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
        let mut url = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while url.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).expect("server did not start in time");
            if let Some(u) = line.strip_prefix("minutely listening on ") {
                url = Some(u.trim().to_string());
            }
        }
        Server {
            child,
            url: url.unwrap(),
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
            stdout: rx,
        }
    }

    /// The server's process id (for /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: a clean shutdown that flushes open minutes.
    pub fn stop(&mut self) {
        unsafe_sigterm(self.child.id());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exited with {status}");
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let req = ureq::request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {key}"));
        let result = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        reply(result)
    }

    pub fn push(&self, body: &Value) -> (u16, Value) {
        self.request("POST", "/api/v1/push", PUSH_KEY, Some(body))
    }

    pub fn push_bytes(&self, bytes: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = ureq::post(&format!("{}/api/v1/push", self.url))
            .set("Authorization", &format!("Bearer {PUSH_KEY}"));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        reply(req.send_bytes(bytes))
    }

    pub fn query(&self, params: &[(&str, &str)]) -> (u16, Value) {
        self.query_with(ADMIN_KEY, params)
    }

    pub fn query_with(&self, key: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let mut req = ureq::get(&format!("{}/api/v1/query", self.url))
            .set("Authorization", &format!("Bearer {key}"));
        for (k, v) in params {
            req = req.query(k, v);
        }
        reply(req.call())
    }

    pub fn get_text(&self, path: &str) -> String {
        ureq::get(&format!("{}{path}", self.url))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn unsafe_sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The start of a whole UTC hour at least two hours ago (inside the late window).
pub fn past_hour() -> i64 {
    ((now() as i64 - 3 * 3_600) / 3_600) * 3_600
}

/// Points of a series answer as (ts, value).
pub fn points(series: &Value) -> Vec<(i64, Option<f64>)> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64()))
        .collect()
}

/// The value at rank floor(q * (n - 1)) of the sorted values.
pub fn exact_quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[(q * (v.len() - 1) as f64).floor() as usize]
}
