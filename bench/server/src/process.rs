//! Starting and stopping the processes under test, and what the benchmark
//! reads from outside them (resident memory, bytes on disk).

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const PUSH_KEY: &str = "bench-push-key";
pub const ADMIN_KEY: &str = "bench-admin-key";

/// A release `minutely` serving on an ephemeral loopback port.
pub struct Minutely {
    pub child: Child,
    pub url: String,
}

impl Minutely {
    /// `late_window_secs` must cover the oldest point the benchmark pushes.
    pub fn start(bin: &Path, dir: &Path, late_window_secs: u64) -> Result<Minutely> {
        Minutely::start_on(bin, dir, late_window_secs, None)
    }

    /// As [`Minutely::start`], on the store at `store` (`--store`) when given.
    pub fn start_on(
        bin: &Path,
        dir: &Path,
        late_window_secs: u64,
        store: Option<&str>,
    ) -> Result<Minutely> {
        let retention_days = (late_window_secs / 86_400 + 2).max(30);
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--statsd", "off"])
            .args(["--checkpoint-secs", "300"])
            .arg("--late-window-secs")
            .arg(late_window_secs.to_string())
            .arg("--retention-minutely-days")
            .arg(retention_days.to_string())
            .arg("--retention-hourly-days")
            .arg(retention_days.max(400).to_string())
            .arg("--data-dir")
            .arg(dir)
            .args(store.map(|s| ["--store", s]).into_iter().flatten())
            .env("MINUTELY_PUSH_KEY", PUSH_KEY)
            .env("MINUTELY_ADMIN_KEY", ADMIN_KEY)
            .env("MINUTELY_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let out = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(out).lines();
        loop {
            let line = lines.next().context("server exited")??;
            if let Some(url) = line.strip_prefix("minutely listening on ") {
                let url = url.trim().to_string();
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(Minutely { child, url });
            }
        }
    }

    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.child.id())
    }

    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(self.child.id())
    }

    /// SIGTERM: the server checkpoints and compacts before it exits.
    pub fn stop(mut self) -> Result<()> {
        terminate(&mut self.child)
    }
}

/// Resident memory of a process, from /proc.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// User and system CPU time a process has used so far, from /proc
/// (in clock ticks of 1/100 s, Linux's fixed `USER_HZ` on x86 and ARM).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after its ')' do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// SIGTERM and wait for a clean exit.
pub fn terminate(child: &mut Child) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    if !status.success() {
        bail!("process {} exited with {status}", child.id());
    }
    Ok(())
}

/// Bytes of all files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            };
        }
    }
    total
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
