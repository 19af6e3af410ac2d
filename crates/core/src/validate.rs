//! Validation of incoming points: names, tags, values, timestamps and
//! summaries. Every rejection names the problem so a client can fix it.

use crate::agg::{DistAgg, GaugeAgg};
use crate::kind::Kind;
use crate::point::{Point, PointValue};
use crate::sketch::{Sketch, SketchError, SketchJson};
use crate::tags::Tags;
use crate::time::millis_of;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_TAGS: usize = 16;
pub const MAX_TAG_KEY_LEN: usize = 64;
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Clock skew a client may have before its points count as "in the future".
pub const MAX_FUTURE_SECS: f64 = 300.0;
/// Default window for late points: a day covers a client that was cut off
/// overnight and sends its buffer in the morning.
pub const DEFAULT_LATE_SECS: f64 = 86_400.0;

/// A point as it arrives over the push API (DESIGN section 3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoint {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<RawSummary>,
}

/// A client's pre-aggregated minute: gauges use last/min/max/sum/count,
/// distributions count/sum/min/max/sketch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sketch: Option<SketchJson>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PointError {
    #[error("{0}")]
    Kind(String),
    #[error("metric name {0:?} is invalid: use 1-200 characters of A-Z a-z 0-9 _ . : - starting with a letter or _")]
    Name(String),
    #[error("point has {0} tags; at most 16 are allowed")]
    TooManyTags(usize),
    #[error("tag key {0:?} is invalid: use 1-64 characters of A-Z a-z 0-9 _ . : / -")]
    TagKey(String),
    #[error("tag {key:?} has an invalid value: use 1-256 characters without control characters")]
    TagValue { key: String },
    #[error("{0} must be a finite number (NaN and infinities are rejected)")]
    NotFinite(&'static str),
    #[error("point has neither value nor summary")]
    NoValue,
    #[error("point has both value and summary; send one")]
    ValueAndSummary,
    #[error("a counter's minute is its value; counters take no summary")]
    CounterSummary,
    #[error("summary is missing {0}")]
    SummaryMissing(&'static str),
    #[error("summary is inconsistent: {0}")]
    SummaryInconsistent(&'static str),
    #[error(transparent)]
    Sketch(#[from] SketchError),
    #[error("timestamp {ts} is more than 5 minutes in the future (server time {now})")]
    Future { ts: f64, now: f64 },
    #[error(
        "timestamp {ts} is older than the late-point window of {window} s (server time {now})"
    )]
    TooOld { ts: f64, now: f64, window: f64 },
}

/// `[A-Za-z_][A-Za-z0-9_.:-]{0,199}`.
pub fn validate_name(name: &str) -> Result<(), PointError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(PointError::Name(truncate(name)))
    }
}

/// Keys: 1-64 chars of `[A-Za-z0-9_.:/-]`; values: 1-256 chars, no control characters.
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), PointError> {
    if tags.len() > MAX_TAGS {
        return Err(PointError::TooManyTags(tags.len()));
    }
    for (k, v) in tags {
        validate_tag(k, v)?;
    }
    Ok(())
}

/// One tag pair by the rules of [`validate_tags`].
pub fn validate_tag(k: &str, v: &str) -> Result<(), PointError> {
    let key_ok = !k.is_empty()
        && k.len() <= MAX_TAG_KEY_LEN
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'));
    if !key_ok {
        return Err(PointError::TagKey(truncate(k)));
    }
    // ASCII, the usual case, counts characters as bytes.
    let ok = if v.is_ascii() {
        !v.is_empty() && v.len() <= MAX_TAG_VALUE_LEN && !v.bytes().any(|b| b.is_ascii_control())
    } else {
        let chars = v.chars().count();
        chars != 0 && chars <= MAX_TAG_VALUE_LEN && !v.chars().any(char::is_control)
    };
    if ok {
        Ok(())
    } else {
        Err(PointError::TagValue { key: k.into() })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// At most 80 characters of `s`, for error messages that quote what a
/// client sent: an error never sends back a megabyte it was given.
pub fn clip(s: &str) -> String {
    truncate(s)
}

fn finite(v: f64, what: &'static str) -> Result<f64, PointError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(PointError::NotFinite(what))
    }
}

fn need(v: Option<f64>, what: &'static str) -> Result<f64, PointError> {
    finite(v.ok_or(PointError::SummaryMissing(what))?, what)
}

/// Turns a raw point into a valid one, or says what is wrong with it.
/// `now` is the server's clock in unix seconds; `late_secs` the late window.
pub fn validate_point(raw: RawPoint, now: f64, late_secs: f64) -> Result<Point, PointError> {
    let kind: Kind = raw.kind.parse().map_err(PointError::Kind)?;
    validate_name(&raw.name)?;
    validate_tags(&raw.tags)?;
    let ts = finite(raw.ts.unwrap_or(now), "ts")?;
    if ts > now + MAX_FUTURE_SECS {
        return Err(PointError::Future { ts, now });
    }
    if ts < now - late_secs {
        return Err(PointError::TooOld {
            ts,
            now,
            window: late_secs,
        });
    }
    let value = match (raw.value, raw.summary) {
        (Some(_), Some(_)) => return Err(PointError::ValueAndSummary),
        (None, None) => return Err(PointError::NoValue),
        (Some(v), None) => PointValue::Single(finite(v, "value")?),
        (None, Some(s)) => summary_value(kind, s, ts)?,
    };
    Ok(Point {
        kind,
        name: raw.name.into(),
        tags: Tags::from(raw.tags),
        ts,
        value,
    })
}

fn summary_value(kind: Kind, s: RawSummary, ts: f64) -> Result<PointValue, PointError> {
    match kind {
        Kind::Counter => Err(PointError::CounterSummary),
        Kind::Gauge => {
            let count = need(s.count, "count")?;
            if count < 1.0 || count.fract() != 0.0 {
                return Err(PointError::SummaryInconsistent(
                    "a gauge's count must be a whole number >= 1",
                ));
            }
            let g = GaugeAgg {
                last: need(s.last, "last")?,
                last_ms: millis_of(ts),
                min: need(s.min, "min")?,
                max: need(s.max, "max")?,
                sum: need(s.sum, "sum")?,
                count: count as u64,
            };
            if !(g.min <= g.last && g.last <= g.max) {
                return Err(PointError::SummaryInconsistent("need min <= last <= max"));
            }
            Ok(PointValue::GaugeSummary(Box::new(g)))
        }
        Kind::Distribution => {
            let count = need(s.count, "count")?;
            let sketch_json = s.sketch.ok_or(PointError::SummaryMissing("sketch"))?;
            let sketch = Sketch::from_json(&sketch_json)?;
            let d = DistAgg {
                count,
                sum: need(s.sum, "sum")?,
                min: need(s.min, "min")?,
                max: need(s.max, "max")?,
                sketch,
            };
            if count <= 0.0 {
                return Err(PointError::SummaryInconsistent("count must be > 0"));
            }
            if d.min > d.max {
                return Err(PointError::SummaryInconsistent("need min <= max"));
            }
            let total = d.sketch.count();
            if (total - count).abs() > 1e-9 * count.max(1.0) {
                return Err(PointError::SummaryInconsistent(
                    "the sketch's bucket counts must add up to count",
                ));
            }
            Ok(PointValue::DistSummary(Box::new(d)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_764_100_000.0;

    fn raw(kind: &str, name: &str, value: f64) -> RawPoint {
        RawPoint {
            kind: kind.into(),
            name: name.into(),
            value: Some(value),
            tags: BTreeMap::new(),
            ts: None,
            summary: None,
        }
    }

    fn check(r: RawPoint) -> Result<Point, PointError> {
        validate_point(r, NOW, DEFAULT_LATE_SECS)
    }

    #[test]
    fn names() {
        for ok in ["a", "_x", "invoice_count", "a.b:c-d", &"x".repeat(200)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "-a", "a b", "a/b", "é", &"x".repeat(201)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_rules() {
        let many: BTreeMap<_, _> = (0..17)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(validate_tags(&many), Err(PointError::TooManyTags(17)));
        let ok: BTreeMap<_, _> = (0..16)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(validate_tags(&ok).is_ok());
        let t = |k: &str, v: &str| validate_tags(&BTreeMap::from([(k.to_string(), v.to_string())]));
        assert!(t("region", "eu west/ü").is_ok());
        assert!(t("", "x").is_err());
        assert!(t(&"k".repeat(65), "x").is_err());
        assert!(t("k", "").is_err());
        assert!(t("k", &"v".repeat(257)).is_err());
        assert!(t("k", &"ü".repeat(256)).is_ok());
        assert!(t("k", "a\nb").is_err());
        assert!(t("k y", "x").is_err());
    }

    #[test]
    fn values_and_times() {
        assert!(check(raw("gauge", "g", 1.0)).is_ok());
        assert!(matches!(
            check(raw("gauge", "g", f64::NAN)),
            Err(PointError::NotFinite("value"))
        ));
        assert!(matches!(
            check(raw("gauge", "g", f64::INFINITY)),
            Err(PointError::NotFinite(_))
        ));
        assert!(matches!(
            check(raw("meter", "g", 1.0)),
            Err(PointError::Kind(_))
        ));
        let mut future = raw("counter", "c", 1.0);
        future.ts = Some(NOW + 301.0);
        assert!(matches!(check(future), Err(PointError::Future { .. })));
        let mut old = raw("counter", "c", 1.0);
        old.ts = Some(NOW - 86_401.0);
        assert!(matches!(check(old), Err(PointError::TooOld { .. })));
        let mut late = raw("counter", "c", -2.0);
        late.ts = Some(NOW - 86_000.0);
        assert!(check(late).is_ok());
    }

    #[test]
    fn summaries() {
        let mut g = raw("gauge", "g", 0.0);
        g.value = None;
        g.summary = Some(RawSummary {
            last: Some(12.0),
            min: Some(3.0),
            max: Some(15.0),
            sum: Some(60.0),
            count: Some(6.0),
            ..Default::default()
        });
        let p = check(g.clone()).unwrap();
        assert!(
            matches!(p.value, PointValue::GaugeSummary(ref s) if s.count == 6 && s.last == 12.0)
        );
        g.summary.as_mut().unwrap().last = Some(20.0);
        assert!(matches!(check(g), Err(PointError::SummaryInconsistent(_))));

        let mut d = raw("distribution", "d", 0.0);
        d.value = None;
        d.summary = Some(RawSummary {
            count: Some(2.0),
            sum: Some(3.0),
            min: Some(1.0),
            max: Some(2.0),
            sketch: Some(SketchJson {
                alpha: 0.01,
                pos: vec![(0, 1.0), (35, 1.0)],
                neg: vec![],
                zero: 0.0,
            }),
            ..Default::default()
        });
        assert!(check(d.clone()).is_ok());
        d.summary.as_mut().unwrap().count = Some(3.0);
        assert!(matches!(
            check(d.clone()),
            Err(PointError::SummaryInconsistent(_))
        ));
        d.summary.as_mut().unwrap().sketch = None;
        assert!(matches!(
            check(d),
            Err(PointError::SummaryMissing("sketch"))
        ));

        let mut c = raw("counter", "c", 1.0);
        c.summary = Some(RawSummary::default());
        assert_eq!(check(c.clone()), Err(PointError::ValueAndSummary));
        c.value = None;
        assert_eq!(check(c), Err(PointError::CounterSummary));
    }
}
