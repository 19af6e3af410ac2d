//! The three systems under test: how each is started on loopback with its
//! own temporary data directory, fed, flushed and stopped.

use anyhow::{bail, Context, Result};
use minutely_bench::process::{cpu_secs, rss_bytes, terminate, Minutely, PUSH_KEY};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Minutely,
    Victoria,
    Prometheus,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Minutely => "minutely",
            Which::Victoria => "VictoriaMetrics",
            Which::Prometheus => "Prometheus",
        }
    }
}

/// Where each system's program is.
pub struct Bins {
    pub minutely: PathBuf,
    pub victoria: PathBuf,
    pub prometheus: PathBuf,
}

pub struct Running {
    pub which: Which,
    pub child: Child,
    pub url: String,
}

impl Running {
    pub fn start(which: Which, bins: &Bins, dir: &Path, late_window_secs: u64) -> Result<Running> {
        std::fs::create_dir_all(dir)?;
        match which {
            Which::Minutely => {
                let m = Minutely::start(&bins.minutely, &dir.join("data"), late_window_secs)?;
                Ok(Running {
                    which,
                    child: m.child,
                    url: m.url,
                })
            }
            Which::Victoria => {
                let port = free_port()?;
                let child = Command::new(&bins.victoria)
                    .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                    .arg(format!("-storageDataPath={}", dir.join("data").display()))
                    // A long retention, so a month of history is accepted.
                    .arg("-retentionPeriod=100y")
                    // Queries see the newest samples at once, and no
                    // response cache: minutely has none either.
                    .arg("-search.latencyOffset=0s")
                    .arg("-search.disableCache")
                    // 100,000 series hold 10,000 distributions: about
                    // 340,000 `vmrange` bucket series for the p95, past
                    // the default limit of 300,000 per query.
                    .arg("-search.maxUniqueTimeseries=10000000")
                    .arg("-loggerLevel=WARN")
                    .stdout(log(dir, "victoria-metrics.log")?)
                    .stderr(log(dir, "victoria-metrics.log")?)
                    .spawn()
                    .with_context(|| format!("starting {}", bins.victoria.display()))?;
                Running::ready(which, child, port, "/health")
            }
            Which::Prometheus => {
                let port = free_port()?;
                // No scrape targets; an out-of-order window because parallel
                // clients may deliver a series' minutes out of order (when
                // one request stalls behind a head compaction). A whole day:
                // with 30 minutes, a compaction during a fast backfill left
                // a client's minutes "too old" in some runs.
                let config = dir.join("prometheus.yml");
                std::fs::write(
                    &config,
                    "global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: 25h\n",
                )?;
                let child = Command::new(&bins.prometheus)
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir.join("data").display()
                    ))
                    .arg("--storage.tsdb.retention.time=400d")
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--web.enable-remote-write-receiver")
                    .arg("--log.level=warn")
                    .stdout(log(dir, "prometheus.log")?)
                    .stderr(log(dir, "prometheus.log")?)
                    .spawn()
                    .with_context(|| format!("starting {}", bins.prometheus.display()))?;
                Running::ready(which, child, port, "/-/ready")
            }
        }
    }

    fn ready(which: Which, mut child: Child, port: u16, path: &str) -> Result<Running> {
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if ureq::get(&format!("{url}{path}")).call().is_ok() {
                return Ok(Running { which, child, url });
            }
            if let Some(status) = child.try_wait()? {
                bail!("{} exited at start with {status}", which.name());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        bail!("{} not ready after 180 s", which.name())
    }

    pub fn rss(&self) -> u64 {
        rss_bytes(self.child.id())
    }

    /// CPU time the system's process has used so far (all threads).
    pub fn cpu(&self) -> f64 {
        cpu_secs(self.child.id())
    }

    /// Makes what was ingested durable in the system's data directory where
    /// the system offers that (VictoriaMetrics); the others write as they go.
    pub fn flush(&self) -> Result<()> {
        if self.which == Which::Victoria {
            ureq::get(&format!("{}/internal/force_flush", self.url)).call()?;
        }
        Ok(())
    }

    /// Waits until Prometheus has compacted its head down to the last few
    /// hours (after a backfill), so the next ingest starts from a settled
    /// state; a no-op for the others.
    pub fn settle(&self) -> Result<()> {
        if self.which != Which::Prometheus {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            let v: serde_json::Value = ureq::get(&format!("{}/api/v1/status/tsdb", self.url))
                .call()?
                .into_json()?;
            let head = &v["data"]["headStats"];
            let span =
                head["maxTime"].as_i64().unwrap_or(0) - head["minTime"].as_i64().unwrap_or(0);
            if span <= 3 * 3_600_000 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!("Prometheus did not compact its head within 300 s")
    }

    pub fn stop(mut self) -> Result<()> {
        terminate(&mut self.child)
    }

    /// Sends one pre-built body; an error if the system refused any of it.
    pub fn send(&self, agent: &ureq::Agent, body: &[u8]) -> Result<()> {
        match self.which {
            Which::Minutely => {
                let resp: serde_json::Value = agent
                    .post(&format!("{}/api/v1/push", self.url))
                    .set("Authorization", &format!("Bearer {PUSH_KEY}"))
                    .set("Content-Type", "application/json")
                    .send_bytes(body)?
                    .into_json()?;
                if resp["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
                    bail!("points rejected: {}", resp["rejected"][0]);
                }
            }
            Which::Victoria => {
                agent
                    .post(&format!("{}/api/v1/import", self.url))
                    .send_bytes(body)
                    .map_err(explain)?;
            }
            Which::Prometheus => {
                agent
                    .post(&format!("{}/api/v1/write", self.url))
                    .set("Content-Type", "application/x-protobuf")
                    .set("Content-Encoding", "snappy")
                    .set("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .send_bytes(body)
                    .map_err(explain)?;
            }
        }
        Ok(())
    }
}

/// A system left running by an error is killed.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP error with the body the server gave, which says what was wrong.
pub fn explain(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, resp) => {
            anyhow::anyhow!("HTTP {code}: {}", resp.into_string().unwrap_or_default())
        }
        other => other.into(),
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn log(dir: &Path, name: &str) -> Result<Stdio> {
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))?
        .into())
}
