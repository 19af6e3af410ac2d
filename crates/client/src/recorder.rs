//! A recorder for the `metrics` facade: `counter!` lands as a counter,
//! `gauge!` as a gauge (set, increment and decrement keep a current value,
//! repeated once a minute while unchanged, as Prometheus gauges hold theirs;
//! exact last, min and max per minute, mean and count of the 10-second
//! samples),
//! `histogram!` as a distribution, labels as tags.
//!
//! Registering a key looks it up by the hash the key computed when it was
//! made; the handle it returns points straight at the series' cell, so a
//! kept handle records with a few atomic operations and no lookup. Names and
//! labels that break minutely's rules are made to fit (other characters
//! become `_`, lengths are cut) rather than dropped.

use crate::client::{Client, Kind, Slot};
use crate::registry::hash_key;
use crate::series::{CounterCell, DistCell, GaugeCell, Series};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use minutely_core::validate::{MAX_NAME_LEN, MAX_TAGS, MAX_TAG_KEY_LEN, MAX_TAG_VALUE_LEN};

/// Records the `metrics` facade's calls into a [`Client`].
///
/// ```no_run
/// // Start the global client from MINUTELY_* and install its recorder:
/// minutely_client::Builder::from_env().install()?;
/// metrics::counter!("invoice_count", "region" => "eu").increment(1);
/// metrics::histogram!("order_item_count").record(3.0);
/// # Ok::<(), minutely_client::StartError>(())
/// ```
#[derive(Clone)]
pub struct Recorder {
    client: Client,
}

impl Recorder {
    pub(crate) fn new(client: Client) -> Recorder {
        Recorder { client }
    }

    fn slot<C: Default>(&self, kind: &Kind<C>, key: &Key, init: impl Fn(&Series<C>)) -> Slot<C> {
        let h = hash_key(key);
        if let Some(series) = kind.keys.with(h, |k| k == key, Clone::clone) {
            return Some(series);
        }
        let name = fit_name(key.name());
        let tags: Vec<(String, String)> = key
            .labels()
            .take(MAX_TAGS)
            .filter_map(|l| Some((fit_tag_key(l.key())?, fit_tag_value(l.value())?)))
            .collect();
        let tags = tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        // Not remembered when there is no series (over the series limit),
        // so the map cannot grow past the limit.
        let series = self.client.series_for(kind, &name, tags)?;
        init(&series);
        let make = || (key.clone(), series.clone());
        Some(kind.keys.insert_with(h, |k| k == key, make, Clone::clone))
    }
}

fn fit(s: &str, max: usize, ok: impl Fn(char) -> bool) -> String {
    s.chars()
        .map(|c| if ok(c) { c } else { '_' })
        .take(max)
        .collect()
}

fn fit_name(name: &str) -> String {
    let mut n = fit(name, MAX_NAME_LEN, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
    });
    if !n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        n.insert(0, '_');
        n.truncate(MAX_NAME_LEN);
    }
    n
}

fn fit_tag_key(k: &str) -> Option<String> {
    let k = fit(k, MAX_TAG_KEY_LEN, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-')
    });
    (!k.is_empty()).then_some(k)
}

fn fit_tag_value(v: &str) -> Option<String> {
    let v = fit(v, MAX_TAG_VALUE_LEN, |c| !c.is_control());
    (!v.is_empty()).then_some(v)
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.slot(&self.client.inner.counters, key, |_| ()) {
            Some(s) => Counter::from_arc(s),
            None => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.slot(&self.client.inner.gauges, key, |s| s.cell.make_sticky()) {
            Some(s) => Gauge::from_arc(s),
            None => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.slot(&self.client.inner.dists, key, |_| ()) {
            Some(s) => Histogram::from_arc(s),
            None => Histogram::noop(),
        }
    }
}

impl metrics::CounterFn for Series<CounterCell> {
    #[inline]
    fn increment(&self, value: u64) {
        self.cell.add_int(value);
    }

    fn absolute(&self, value: u64) {
        self.cell.absolute(value);
    }
}

impl metrics::GaugeFn for Series<GaugeCell> {
    fn increment(&self, value: f64) {
        if value.is_finite() {
            self.cell.facade_add(value);
        }
    }

    fn decrement(&self, value: f64) {
        if value.is_finite() {
            self.cell.facade_add(-value);
        }
    }

    #[inline]
    fn set(&self, value: f64) {
        if value.is_finite() {
            self.cell.facade_set(value);
        }
    }
}

impl metrics::HistogramFn for Series<DistCell> {
    #[inline]
    fn record(&self, value: f64) {
        if value.is_finite() {
            self.cell.record(value);
        }
    }

    fn record_many(&self, value: f64, count: usize) {
        if value.is_finite() {
            self.cell.record_many(value, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_made_to_fit() {
        assert_eq!(fit_name("http.requests/total"), "http.requests_total");
        assert_eq!(fit_name("9lives"), "_9lives");
        assert_eq!(fit_name(&"x".repeat(300)).len(), MAX_NAME_LEN);
        assert_eq!(fit_tag_key("status code").as_deref(), Some("status_code"));
        assert_eq!(fit_tag_key(""), None);
        assert_eq!(fit_tag_value("a\nb").as_deref(), Some("a_b"));
    }

    #[test]
    fn every_way_of_naming_a_series_reaches_one_cell() {
        let client = Client::new();
        let recorder = client.recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("hits", "b" => "2", "a" => "1").increment(2);
            metrics::counter!("hits", "a" => "1", "b" => "2").increment(3);
        });
        client.increment_counter("hits", 4.0, &[("a", "1"), ("b", "2")]);
        client.increment_counter("hits", 0.5, &[("b", "2"), ("a", "1")]);
        let points = client.drain(0.0, 0.0);
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].value, Some(9.5));
        assert_eq!(client.stats().series, 1);
    }
}
