//! Pushes waiting to be sent: each a gzipped push body with its own batch
//! key, made once so a retry sends the same bytes and the server counts it
//! once. The buffer is bounded in bytes; the oldest pushes go first.

use flate2::write::GzEncoder;
use minutely_core::validate::RawPoint;
use serde::Serialize;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::Arc;

/// Points per push: a tenth of the server's default limit of 50,000.
const MAX_POINTS_PER_PUSH: usize = 5_000;
/// JSON bytes per push before gzip: well under the server's default body
/// limit of 10 MiB, which also applies after gunzip.
const MAX_JSON_PER_PUSH: usize = 4 << 20;

pub struct Batch {
    pub key: String,
    pub body: Vec<u8>,
    pub points: usize,
    /// Latest point time in the batch: past the server's late window the
    /// whole batch would be rejected, so it is dropped instead.
    pub newest_ts: f64,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a str>,
    batch: &'a str,
    points: &'a [Box<serde_json::value::RawValue>],
}

/// Makes batch keys unique across processes and restarts:
/// `host:pid:random:seq`.
pub struct KeyMaker {
    prefix: String,
    seq: u64,
}

impl KeyMaker {
    pub fn new() -> KeyMaker {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().chars().take(64).collect::<String>())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        let mut r = [0u8; 8];
        let random = match getrandom::getrandom(&mut r) {
            Ok(()) => u64::from_le_bytes(r),
            Err(_) => crate::series::now_ms() as u64 ^ ((std::process::id() as u64) << 32),
        };
        KeyMaker {
            prefix: format!("{host}:{}:{random:016x}", std::process::id()),
            seq: 0,
        }
    }

    pub fn next(&mut self) -> String {
        self.seq += 1;
        format!("{}:{}", self.prefix, self.seq)
    }
}

/// Splits points into gzipped push bodies.
pub fn encode(points: &[RawPoint], env: Option<&str>, keys: &mut KeyMaker) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut chunk: Vec<Box<serde_json::value::RawValue>> = Vec::new();
    let mut json_bytes = 0;
    let mut newest = f64::MIN;
    for p in points {
        let Ok(raw) = serde_json::value::to_raw_value(p) else {
            continue;
        };
        if !chunk.is_empty()
            && (chunk.len() >= MAX_POINTS_PER_PUSH
                || json_bytes + raw.get().len() > MAX_JSON_PER_PUSH)
        {
            out.extend(finish(&chunk, env, keys, newest));
            chunk.clear();
            json_bytes = 0;
            newest = f64::MIN;
        }
        json_bytes += raw.get().len() + 1;
        newest = newest.max(p.ts.unwrap_or(0.0));
        chunk.push(raw);
    }
    if !chunk.is_empty() {
        out.extend(finish(&chunk, env, keys, newest));
    }
    out
}

fn finish(
    points: &[Box<serde_json::value::RawValue>],
    env: Option<&str>,
    keys: &mut KeyMaker,
    newest_ts: f64,
) -> Option<Batch> {
    finish_keyed(points, env, keys.next(), newest_ts)
}

/// Splits a push that the server refused as too large (`413`, a limit set
/// lower than this client's) into two halves. The server stored nothing of
/// it, so the halves get keys of their own, derived from its key (`KEY.1`,
/// `KEY.2`), and a retry of either still counts once. `None` for a single
/// point or a body that does not read back.
pub fn split(batch: &Batch) -> Option<[Batch; 2]> {
    #[derive(serde::Deserialize)]
    struct Owned {
        env: Option<String>,
        points: Vec<Box<serde_json::value::RawValue>>,
    }
    if batch.points < 2 {
        return None;
    }
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&batch.body[..])
        .read_to_end(&mut json)
        .ok()?;
    let owned: Owned = serde_json::from_slice(&json).ok()?;
    let (a, b) = owned.points.split_at(owned.points.len() / 2);
    let env = owned.env.as_deref();
    let half = |pts, n| finish_keyed(pts, env, format!("{}.{n}", batch.key), batch.newest_ts);
    Some([half(a, 1)?, half(b, 2)?])
}

fn finish_keyed(
    points: &[Box<serde_json::value::RawValue>],
    env: Option<&str>,
    key: String,
    newest_ts: f64,
) -> Option<Batch> {
    let body = Body {
        env,
        batch: &key,
        points,
    };
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    serde_json::to_writer(&mut gz, &body).ok()?;
    gz.flush().ok()?;
    let body = gz.finish().ok()?;
    Some(Batch {
        key,
        body,
        points: points.len(),
        newest_ts,
    })
}

/// Pushes in the order they were made, at most `max_bytes` of them.
pub struct Buffer {
    batches: VecDeque<Arc<Batch>>,
    bytes: usize,
    max_bytes: usize,
}

impl Buffer {
    pub fn new(max_bytes: usize) -> Buffer {
        Buffer {
            batches: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Appends a push; returns the points of the oldest pushes dropped to
    /// stay within the bound (the new push itself when it alone is too big).
    pub fn push(&mut self, batch: Batch) -> usize {
        let mut dropped = 0;
        if batch.body.len() > self.max_bytes {
            return batch.points;
        }
        self.bytes += batch.body.len();
        self.batches.push_back(Arc::new(batch));
        while self.bytes > self.max_bytes {
            match self.batches.pop_front() {
                Some(old) => {
                    self.bytes -= old.body.len();
                    dropped += old.points;
                }
                None => break,
            }
        }
        dropped
    }

    pub fn front(&self) -> Option<Arc<Batch>> {
        self.batches.front().cloned()
    }

    /// Removes `batch` if it is still the oldest (it may have been dropped
    /// for room while it was being sent).
    pub fn remove_front(&mut self, batch: &Arc<Batch>) {
        if self.batches.front().is_some_and(|b| Arc::ptr_eq(b, batch)) {
            self.batches.pop_front();
            self.bytes -= batch.body.len();
        }
    }

    /// Puts `halves` in place of `batch` if it is still the oldest.
    pub fn replace_front(&mut self, batch: &Arc<Batch>, halves: [Batch; 2]) {
        if self.batches.front().is_some_and(|b| Arc::ptr_eq(b, batch)) {
            self.batches.pop_front();
            self.bytes -= batch.body.len();
            for half in halves.into_iter().rev() {
                self.bytes += half.body.len();
                self.batches.push_front(Arc::new(half));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn points(&self) -> usize {
        self.batches.iter().map(|b| b.points).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    fn point(i: usize) -> RawPoint {
        RawPoint {
            kind: "counter".into(),
            name: format!("metric_{i}"),
            value: Some(i as f64),
            tags: BTreeMap::new(),
            ts: Some(1_764_100_000.0 + i as f64),
            summary: None,
        }
    }

    #[test]
    fn batches_are_gzipped_push_bodies_with_unique_keys() {
        let points: Vec<RawPoint> = (0..12_000).map(point).collect();
        let mut keys = KeyMaker::new();
        let batches = encode(&points, Some("prod"), &mut keys);
        assert_eq!(
            batches.iter().map(|b| b.points).collect::<Vec<_>>(),
            [5_000, 5_000, 2_000]
        );
        let mut seen = std::collections::HashSet::new();
        for b in &batches {
            let mut json = String::new();
            flate2::read::GzDecoder::new(&b.body[..])
                .read_to_string(&mut json)
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["env"], "prod");
            assert_eq!(v["batch"], b.key.as_str());
            assert!(b.key.len() <= 256);
            assert!(seen.insert(b.key.clone()));
        }
        assert_eq!(batches[2].newest_ts, 1_764_100_000.0 + 11_999.0);
    }

    #[test]
    fn oldest_pushes_are_dropped_first_and_counted() {
        let mut keys = KeyMaker::new();
        let mut make =
            |n: usize| encode(&(0..n).map(point).collect::<Vec<_>>(), None, &mut keys).remove(0);
        let first = make(10);
        let size = first.body.len();
        let mut buf = Buffer::new(size * 2 + size / 2);
        assert_eq!(buf.push(first), 0);
        assert_eq!(buf.push(make(10)), 0);
        assert_eq!(buf.push(make(10)), 10, "the oldest push makes room");
        assert_eq!(buf.points(), 20);
        let front = buf.front().unwrap();
        buf.remove_front(&front);
        assert_eq!(buf.points(), 10);
        let mut tiny = Buffer::new(4);
        assert_eq!(
            tiny.push(make(3)),
            3,
            "a push larger than the bound is dropped"
        );
        assert!(tiny.is_empty());
    }
}
