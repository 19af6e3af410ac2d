//! [`Client`]: the series of one process and the helpers that record into
//! them. A call hashes its name and tags once, finds its series in a sharded
//! registry and updates the series' cell; only the first call of a series
//! takes the slow path (validation, a write lock, the canonical series).

use crate::config::{Config, DEFAULT_MAX_SERIES};
use crate::probes::Probes;
use crate::registry::{hash_call, Registry};
use crate::runtime::Runtime;
use crate::series::{CounterCell, DistCell, GaugeCell, Series};
use crate::{warn_limited, StartError, Stats};
use minutely_core::validate::{validate_name, validate_tags, RawPoint};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A helper call's key: name and tags in the order given (a different order
/// is another key for the same series).
pub(crate) struct CallKey {
    name: Box<str>,
    tags: Box<[(Box<str>, Box<str>)]>,
}

impl CallKey {
    #[inline]
    fn matches(&self, name: &str, tags: &[(&str, &str)]) -> bool {
        *self.name == *name
            && self.tags.len() == tags.len()
            && self
                .tags
                .iter()
                .zip(tags)
                .all(|((k, v), (qk, qv))| **k == **qk && **v == **qv)
    }
}

/// A series, or `None` for a call that names no valid one.
pub(crate) type Slot<C> = Option<Arc<Series<C>>>;

/// A series' identity: name and tags (sorted).
type SeriesKey = (String, BTreeMap<String, String>);

/// All series of one kind: by helper call, by `metrics::Key`, and by their
/// canonical (name, sorted tags) so that every way of naming a series
/// reaches the same cell.
pub(crate) struct Kind<C> {
    pub calls: Registry<CallKey, Arc<Series<C>>>,
    pub keys: Registry<metrics::Key, Arc<Series<C>>>,
    canonical: Mutex<HashMap<SeriesKey, Arc<Series<C>>>>,
    kind: &'static str,
}

impl<C: Default> Kind<C> {
    fn new(kind: &'static str) -> Self {
        Kind {
            calls: Registry::default(),
            keys: Registry::default(),
            canonical: Mutex::default(),
            kind,
        }
    }

    fn all(&self) -> Vec<Arc<Series<C>>> {
        self.canonical
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

pub(crate) struct Inner {
    pub counters: Kind<CounterCell>,
    pub gauges: Kind<GaugeCell>,
    pub dists: Kind<DistCell>,
    series: AtomicUsize,
    pub max_series: AtomicUsize,
    pub stats: StatCounters,
    pub probes: Probes,
    pub runtime: Mutex<Option<Runtime>>,
}

#[derive(Default)]
pub(crate) struct StatCounters {
    pub values_dropped: AtomicU64,
    pub points_sent: AtomicU64,
    pub points_rejected: AtomicU64,
    pub points_dropped: AtomicU64,
    pub pushes_ok: AtomicU64,
    pub pushes_failed: AtomicU64,
    pub pushes_split: AtomicU64,
    pub buffered_points: AtomicU64,
    pub buffered_bytes: AtomicU64,
}

impl StatCounters {
    pub fn buffered(&self, buffer: &crate::buffer::Buffer) {
        self.buffered_points.store(buffer.points() as u64, Relaxed);
        self.buffered_bytes.store(buffer.bytes() as u64, Relaxed);
    }
}

/// The series of one process and the thread that pushes them. Cheap to
/// clone (an `Arc`). The crate's free functions use one global `Client`;
/// make your own with [`Client::new`] to push to a second server or to keep
/// tests apart. Dropping the last clone of a started client shuts it down
/// as [`Client::shutdown`] does (waiting at most the push timeout); a
/// [`Recorder`](crate::Recorder) holds a clone too.
///
/// ```no_run
/// use minutely_client::{Client, Config};
/// let client = Client::new();
/// client.start(Config::builder().push_key("key").build()?)?;
/// client.increment_counter("invoice_count", 1.0, &[("region", "eu")]);
/// client.shutdown(std::time::Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    /// Shared by the application's clones only (the push threads hold
    /// clones without it): when the last is dropped, the client shuts down.
    _owner: Option<Arc<Owner>>,
}

/// Shuts a client down when the application drops its last clone, so a
/// dropped client leaves no threads behind and pushes what it recorded.
pub(crate) struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let rt = self
            .inner
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(rt) = rt {
            let timeout = rt.push_timeout();
            rt.stop(timeout);
        }
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client that records but does not push until [`Client::start`].
    pub fn new() -> Client {
        let inner = Arc::new(Inner {
            counters: Kind::new("counter"),
            gauges: Kind::new("gauge"),
            dists: Kind::new("distribution"),
            series: AtomicUsize::new(0),
            max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
            stats: StatCounters::default(),
            probes: Probes::default(),
            runtime: Mutex::new(None),
        });
        Client {
            _owner: Some(Arc::new(Owner {
                inner: inner.clone(),
            })),
            inner,
        }
    }

    /// A clone for the client's own threads: it does not keep the client
    /// running.
    pub(crate) fn internal(inner: Arc<Inner>) -> Client {
        Client {
            inner,
            _owner: None,
        }
    }

    /// Starts the push thread (and the probe schedule). Values recorded
    /// before are pushed with the first push.
    pub fn start(&self, config: Config) -> Result<(), StartError> {
        let mut rt = self
            .inner
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if rt.is_some() {
            return Err(StartError::AlreadyStarted);
        }
        self.inner.max_series.store(config.max_series, Relaxed);
        *rt = Some(Runtime::start(self.inner.clone(), config)?);
        Ok(())
    }

    /// Sets a gauge: each minute keeps the last value (by time), min, max,
    /// sum and count.
    #[inline]
    pub fn set_gauge(&self, name: &str, value: f64, tags: &[(&str, &str)]) {
        if self.finite(value) {
            self.with_call(&self.inner.gauges, name, tags, |s| s.cell.set(value));
        }
    }

    /// Adds `value` (may be negative or fractional) to a counter's minute sum.
    #[inline]
    pub fn increment_counter(&self, name: &str, value: f64, tags: &[(&str, &str)]) {
        if self.finite(value) {
            self.with_call(&self.inner.counters, name, tags, |s| s.cell.add(value));
        }
    }

    /// Adds one observation to a distribution: each minute keeps count,
    /// sum, min, max and a quantile sketch (percentiles within 1%).
    #[inline]
    pub fn add_distribution_value(&self, name: &str, value: f64, tags: &[(&str, &str)]) {
        if self.finite(value) {
            self.with_call(&self.inner.dists, name, tags, |s| s.cell.record(value));
        }
    }

    /// Drains what was recorded, pushes everything buffered and waits up to
    /// `timeout` for it to be delivered. `true` when nothing is left
    /// (`false` also when the client was not started).
    pub fn flush(&self, timeout: Duration) -> bool {
        let shared = {
            let rt = self
                .inner
                .runtime
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match rt.as_ref() {
                Some(r) => r.shared.clone(),
                None => return false,
            }
        };
        shared.flush(timeout)
    }

    /// Pushes what is left (waiting up to `timeout`) and stops the threads.
    /// Recording goes on working; [`Client::start`] may be called again.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let rt = self
            .inner
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match rt {
            Some(r) => r.stop(timeout),
            None => false,
        }
    }

    /// Counters of what happened to the recorded values so far.
    pub fn stats(&self) -> Stats {
        let s = &self.inner.stats;
        Stats {
            values_dropped: s.values_dropped.load(Relaxed),
            points_sent: s.points_sent.load(Relaxed),
            points_rejected: s.points_rejected.load(Relaxed),
            points_dropped: s.points_dropped.load(Relaxed),
            pushes_ok: s.pushes_ok.load(Relaxed),
            pushes_failed: s.pushes_failed.load(Relaxed),
            pushes_split: s.pushes_split.load(Relaxed),
            buffered_points: s.buffered_points.load(Relaxed),
            buffered_bytes: s.buffered_bytes.load(Relaxed),
            series: self.inner.series.load(Relaxed) as u64,
        }
    }

    /// This client's probes.
    pub fn probes(&self) -> &Probes {
        &self.inner.probes
    }

    /// A `metrics` recorder that records into this client.
    pub fn recorder(&self) -> crate::recorder::Recorder {
        crate::recorder::Recorder::new(self.clone())
    }

    #[inline]
    fn finite(&self, v: f64) -> bool {
        if v.is_finite() {
            return true;
        }
        self.inner.stats.values_dropped.fetch_add(1, Relaxed);
        warn_limited!("minutely: dropped a value that is NaN or infinite");
        false
    }

    #[inline]
    fn with_call<C: Default>(
        &self,
        kind: &Kind<C>,
        name: &str,
        tags: &[(&str, &str)],
        f: impl Fn(&Series<C>),
    ) {
        let h = hash_call(name, tags);
        if kind
            .calls
            .with(h, |k| k.matches(name, tags), |s| f(s))
            .is_some()
        {
            return;
        }
        // A call that names no series (bad name or tags, or over the series
        // limit) is not remembered: every distinct bad name would grow the
        // map without bound.
        let recorded = match self.series_for(kind, name, tags.iter().map(|(k, v)| (*k, *v))) {
            Some(series) => {
                let make = || {
                    let key = CallKey {
                        name: name.into(),
                        tags: tags
                            .iter()
                            .map(|(k, v)| ((*k).into(), (*v).into()))
                            .collect(),
                    };
                    (key, series)
                };
                let matches = |k: &CallKey| k.matches(name, tags);
                let s = kind.calls.insert_with(h, matches, make, Clone::clone);
                f(&s);
                true
            }
            None => false,
        };
        if !recorded {
            self.inner.stats.values_dropped.fetch_add(1, Relaxed);
        }
    }

    /// The series for a name and tags: validated, canonical, within the
    /// series limit; `None` (logged) otherwise.
    pub(crate) fn series_for<'a, C: Default>(
        &self,
        kind: &Kind<C>,
        name: &str,
        tags: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Slot<C> {
        let tags: BTreeMap<String, String> =
            tags.map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Err(e) = validate_name(name).and_then(|()| validate_tags(&tags)) {
            warn_limited!("minutely: dropping {} {name:?}: {e}", kind.kind);
            return None;
        }
        let mut canonical = kind
            .canonical
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (name.to_string(), tags);
        if let Some(s) = canonical.get(&key) {
            return Some(s.clone());
        }
        let limit = self.inner.max_series.load(Relaxed);
        if self.inner.series.fetch_add(1, Relaxed) >= limit {
            self.inner.series.fetch_sub(1, Relaxed);
            // Not under the lock: a logger may record metrics itself.
            drop(canonical);
            warn_limited!(
                "minutely: dropping new {} {name:?}: this process has {limit} series (max_series)",
                kind.kind
            );
            return None;
        }
        let series = Arc::new(Series {
            name: key.0.clone(),
            tags: key.1.clone(),
            cell: C::default(),
        });
        canonical.insert(key, series.clone());
        Some(series)
    }

    /// Takes every series' window as points: counters and distributions at
    /// `window_start`, gauges at the time of their last value.
    pub(crate) fn drain(&self, window_start: f64, now: f64) -> Vec<RawPoint> {
        let i = &self.inner;
        let mut out = Vec::new();
        out.extend(
            i.counters
                .all()
                .iter()
                .filter_map(|s| s.drain(window_start)),
        );
        out.extend(i.gauges.all().iter().filter_map(|s| s.drain(now)));
        out.extend(i.dists.all().iter().filter_map(|s| s.drain(window_start)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_past_the_limit_and_bad_calls_are_dropped_and_counted() {
        let client = Client::new();
        client.inner.max_series.store(2, Relaxed);
        for _ in 0..3 {
            client.increment_counter("a", 1.0, &[]);
            client.increment_counter("b", 1.0, &[("k", "v")]);
            client.increment_counter("c", 1.0, &[]);
        }
        client.set_gauge("bad name", 1.0, &[]);
        client.add_distribution_value("d", f64::INFINITY, &[]);
        let stats = client.stats();
        assert_eq!((stats.series, stats.values_dropped), (2, 5));
        let points = client.drain(0.0, 0.0);
        assert_eq!(
            points.iter().map(|p| p.value).collect::<Vec<_>>(),
            [Some(3.0); 2]
        );
        assert_eq!(
            client.inner.counters.calls.len(),
            2,
            "dropped calls are not remembered"
        );
    }
}
