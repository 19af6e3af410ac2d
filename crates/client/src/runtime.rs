//! The two background threads of a started client. The ticker drains every
//! series at aligned times (multiples of the push interval and every
//! minute's start, so a window never spans two minutes), encodes the points
//! into pushes and starts due probes. The sender pushes the oldest push
//! first, retrying with exponential backoff and jitter. They share one
//! mutex and condition variable with `flush` and `shutdown`; no application
//! thread ever waits on the network.

use crate::buffer::{encode, Batch, Buffer, KeyMaker};
use crate::client::{Client, Inner};
use crate::config::Config;
use crate::{warn_limited, StartError};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The server's default late window, less a minute of margin: older pushes
/// would be rejected point by point, so they are dropped (and counted).
const MAX_AGE_SECS: f64 = 86_400.0 - 60.0;

pub(crate) struct Runtime {
    pub shared: Arc<Shared>,
    client: Client,
    ticker: JoinHandle<()>,
    sender: JoinHandle<()>,
    timeout: Duration,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

struct State {
    buffer: Buffer,
    drain_requested: u64,
    drained: u64,
    retry_now: bool,
    /// Set by `shutdown`: the time by which the sender gives up.
    stopping: Option<Instant>,
    ticker_done: bool,
    /// Whether the last push got through; while not, the ticker drains once
    /// a minute so the buffer holds one point per series per minute.
    healthy: bool,
}

fn wall() -> f64 {
    crate::series::precise_now_ms() as f64 / 1000.0
}

/// The first multiple of `every` seconds after `now`, and never later than
/// the next minute's start.
fn next_tick(now: f64, every: f64) -> f64 {
    let aligned = ((now / every).floor() + 1.0) * every;
    let minute = ((now / 60.0).floor() + 1.0) * 60.0;
    aligned.min(minute)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
        self.cv
            .wait_timeout(g, d)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        s.drain_requested += 1;
        s.retry_now = true;
        let wanted = s.drain_requested;
        self.cv.notify_all();
        loop {
            if s.drained >= wanted && s.buffer.is_empty() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || s.stopping.is_some() {
                return false;
            }
            s = self.wait(s, left);
        }
    }
}

impl Runtime {
    pub fn start(inner: Arc<Inner>, config: Config) -> Result<Runtime, StartError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buffer: Buffer::new(config.max_buffer_bytes),
                drain_requested: 0,
                drained: 0,
                retry_now: false,
                stopping: None,
                ticker_done: false,
                healthy: true,
            }),
            cv: Condvar::new(),
        });
        let timeout = config.timeout;
        let config = Arc::new(config);
        let client = Client::internal(inner);
        let (sh, c, cfg) = (shared.clone(), client.clone(), config.clone());
        let ticker = std::thread::Builder::new()
            .name("minutely-ticker".into())
            .spawn(move || ticker(&sh, &c, &cfg))
            .map_err(StartError::Thread)?;
        let (sh, c) = (shared.clone(), client.clone());
        let sender = std::thread::Builder::new()
            .name("minutely-sender".into())
            .spawn(move || sender(&sh, &c, &config));
        let sender = match sender {
            Ok(s) => s,
            Err(e) => {
                shared.lock().stopping = Some(Instant::now());
                shared.cv.notify_all();
                let _ = ticker.join();
                return Err(StartError::Thread(e));
            }
        };
        Ok(Runtime {
            shared,
            client,
            ticker,
            sender,
            timeout,
        })
    }

    pub fn push_timeout(&self) -> Duration {
        self.timeout
    }

    /// Final drain, pushes until `timeout`, joins both threads.
    pub fn stop(self, timeout: Duration) -> bool {
        {
            let mut s = self.shared.lock();
            s.stopping = Some(Instant::now() + timeout);
            self.shared.cv.notify_all();
        }
        let _ = self.ticker.join();
        let _ = self.sender.join();
        let stats = &self.client.inner.stats;
        let left = {
            let mut s = self.shared.lock();
            let left = s.buffer.points();
            s.buffer = Buffer::new(1);
            stats.buffered(&s.buffer);
            left
        };
        if left > 0 {
            stats.points_dropped.fetch_add(left as u64, Relaxed);
            warn_limited!("minutely: shut down with {left} points not delivered");
        }
        left == 0
    }
}

fn ticker(shared: &Shared, client: &Client, config: &Config) {
    let every = config.push_interval.as_secs_f64();
    let probe_every = config.probe_interval.as_secs_f64();
    let mut keys = KeyMaker::new();
    let mut window_start = wall();
    let mut next_drain = next_tick(window_start, every);
    let mut next_probe = ((window_start / probe_every).floor() + 1.0) * probe_every;
    let mut drained_seen = 0;
    loop {
        let (stopping, requested, healthy) = {
            let mut s = shared.lock();
            loop {
                let now = wall();
                if s.stopping.is_some()
                    || s.drain_requested > drained_seen
                    || now >= next_drain.min(next_probe)
                {
                    break;
                }
                let wait = next_drain.min(next_probe) - now;
                s = shared.wait(s, Duration::from_secs_f64(wait.clamp(0.001, 60.0)));
            }
            (s.stopping.is_some(), s.drain_requested, s.healthy)
        };
        let now = wall();
        if now >= next_probe && !stopping {
            client.inner.probes.run_all();
            next_probe = ((now / probe_every).floor() + 1.0) * probe_every;
        }
        let asked = stopping || requested > drained_seen;
        if asked || now >= next_drain {
            let new_minute = (now / 60.0).floor() != (window_start / 60.0).floor();
            if asked || healthy || new_minute {
                let points = client.drain(window_start, now);
                window_start = now;
                let batches = encode(&points, config.env.as_deref(), &mut keys);
                let dropped: usize = {
                    let mut s = shared.lock();
                    let dropped = batches.into_iter().map(|b| s.buffer.push(b)).sum();
                    s.drained = requested;
                    client.inner.stats.buffered(&s.buffer);
                    shared.cv.notify_all();
                    dropped
                };
                if dropped > 0 {
                    let stats = &client.inner.stats;
                    stats.points_dropped.fetch_add(dropped as u64, Relaxed);
                    warn_limited!("minutely: buffer full, dropped the oldest {dropped} points");
                }
            }
            drained_seen = requested;
            next_drain = next_tick(now, every);
        }
        if stopping {
            shared.lock().ticker_done = true;
            shared.cv.notify_all();
            return;
        }
    }
}

/// What became of one push.
enum Sent {
    Ok {
        accepted: u64,
        rejected: Vec<String>,
    },
    /// Worth retrying: transport errors, timeouts, 408, 429, 5xx.
    Retry(String),
    /// Not worth retrying: the server refused the push itself (bad key,
    /// bad body); the points are dropped and counted.
    Refused(String),
    /// `413`: more points or bytes than the server takes in one push; the
    /// push is split in two and each half sent.
    TooLarge(String),
}

fn send(agent: &ureq::Agent, config: &Config, batch: &Batch, timeout: Duration) -> Sent {
    let result = agent
        .post(&config.push_url)
        .timeout(timeout)
        .set("Authorization", &format!("Bearer {}", config.push_key))
        .set("Content-Type", "application/json")
        .set("Content-Encoding", "gzip")
        .send_bytes(&batch.body);
    match result {
        Ok(r) => {
            let v: serde_json::Value = r.into_json().unwrap_or_default();
            let rejected = v["rejected"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| r["error"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            Sent::Ok {
                accepted: v["accepted"].as_u64().unwrap_or(0),
                rejected,
            }
        }
        Err(ureq::Error::Status(code, r)) => {
            let body = r.into_string().unwrap_or_default();
            let msg = format!(
                "HTTP {code}: {}",
                body.chars().take(300).collect::<String>()
            );
            if code == 413 {
                Sent::TooLarge(msg)
            } else if code == 408 || code == 429 || code >= 500 {
                Sent::Retry(msg)
            } else {
                Sent::Refused(msg)
            }
        }
        Err(e) => Sent::Retry(e.to_string()),
    }
}

/// xorshift64 for jitter; seeded from the clock and the thread.
struct Jitter(u64);

impl Jitter {
    /// A factor in [0.5, 1.0).
    fn factor(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        0.5 + (self.0 >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }
}

fn backoff(config: &Config, failures: u32, jitter: &mut Jitter) -> Duration {
    let base =
        config.retry_base.as_secs_f64() * 2f64.powi(failures.saturating_sub(1).min(30) as i32);
    Duration::from_secs_f64(base.min(config.retry_max.as_secs_f64()) * jitter.factor())
}

fn sender(shared: &Shared, client: &Client, config: &Config) {
    let stats = &client.inner.stats;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(config.timeout.min(Duration::from_secs(5)))
        .build();
    let mut jitter = Jitter(crate::series::precise_now_ms() as u64 | 1);
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    loop {
        let (batch, deadline) = {
            let mut s = shared.lock();
            loop {
                let now = Instant::now();
                if let Some(deadline) = s.stopping {
                    if (s.ticker_done && s.buffer.is_empty()) || now >= deadline {
                        return;
                    }
                }
                if s.retry_now {
                    s.retry_now = false;
                    retry_at = None;
                }
                if retry_at.is_none_or(|t| now >= t) {
                    if let Some(b) = s.buffer.front() {
                        break (b, s.stopping);
                    }
                }
                let mut wait = retry_at.map_or(Duration::from_secs(60), |t| t - now);
                if let Some(deadline) = s.stopping {
                    wait = wait.min(deadline - now);
                }
                s = shared.wait(s, wait.max(Duration::from_millis(1)));
            }
        };
        let mut timeout = config.timeout;
        if let Some(d) = deadline {
            timeout = timeout.min(
                d.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            );
        }
        let outcome = if batch.newest_ts < wall() - MAX_AGE_SECS {
            Sent::Refused("its points are older than the server's late window".into())
        } else {
            send(&agent, config, &batch, timeout)
        };
        let mut halves = match &outcome {
            Sent::TooLarge(_) => crate::buffer::split(&batch),
            _ => None,
        };
        let was_split = halves.is_some();
        // Book-keeping (buffer and counters) under the lock, so a flush that
        // returns sees the counters of what it waited for; logging after
        // it, so a logger that records metrics or flushes cannot deadlock.
        {
            let mut s = shared.lock();
            match &outcome {
                Sent::Ok { accepted, rejected } => {
                    s.buffer.remove_front(&batch);
                    s.healthy = true;
                    failures = 0;
                    retry_at = None;
                    stats.pushes_ok.fetch_add(1, Relaxed);
                    stats.points_sent.fetch_add(*accepted, Relaxed);
                    stats
                        .points_rejected
                        .fetch_add(rejected.len() as u64, Relaxed);
                }
                Sent::Retry(_) => {
                    failures += 1;
                    let mut wait = backoff(config, failures, &mut jitter);
                    if s.stopping.is_some() {
                        wait = wait.min(Duration::from_millis(100));
                    }
                    retry_at = Some(Instant::now() + wait);
                    s.healthy = false;
                    stats.pushes_failed.fetch_add(1, Relaxed);
                }
                Sent::TooLarge(_) if halves.is_some() => {
                    if let Some(halves) = halves.take() {
                        s.buffer.replace_front(&batch, halves);
                    }
                    stats.pushes_split.fetch_add(1, Relaxed);
                }
                Sent::Refused(_) | Sent::TooLarge(_) => {
                    s.buffer.remove_front(&batch);
                    stats.pushes_failed.fetch_add(1, Relaxed);
                    stats.points_dropped.fetch_add(batch.points as u64, Relaxed);
                }
            }
            stats.buffered(&s.buffer);
            shared.cv.notify_all();
        }
        match outcome {
            Sent::Ok { rejected, .. } => {
                if let Some(first) = rejected.first() {
                    warn_limited!(
                        "minutely: server rejected {} points, e.g.: {first}",
                        rejected.len()
                    );
                }
            }
            Sent::Retry(msg) => {
                let wait = retry_at.map(|t| t.saturating_duration_since(Instant::now()));
                warn_limited!("minutely: push failed, retrying in {wait:.1?}: {msg}");
            }
            Sent::TooLarge(msg) if was_split => {
                warn_limited!(
                    "minutely: push of {} points too large for the server, sending it in two halves: {msg}",
                    batch.points
                );
            }
            Sent::Refused(msg) | Sent::TooLarge(msg) => {
                warn_limited!(
                    "minutely: push {} of {} points refused, dropped: {msg}",
                    batch.key,
                    batch.points
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_aligned_and_stop_at_minutes() {
        assert_eq!(next_tick(1_000.0, 10.0), 1_010.0);
        assert_eq!(next_tick(1_003.5, 10.0), 1_010.0);
        assert_eq!(
            next_tick(1_019.0, 7.0),
            1_020.0,
            "a minute's start comes first"
        );
        assert_eq!(next_tick(1_020.0, 0.25), 1_020.25);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max() {
        let config = Config::builder()
            .push_key("k")
            .retry_backoff(Duration::from_secs(1), Duration::from_secs(8))
            .build()
            .unwrap();
        let mut j = Jitter(42);
        for (failures, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (40, 8.0)] {
            let d = backoff(&config, failures, &mut j).as_secs_f64();
            assert!(d >= full * 0.5 && d < full, "{failures}: {d}");
        }
    }
}
