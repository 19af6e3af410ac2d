//! One write-ahead-log record: what a push adds, in a binary form. The
//! log is short-lived, so it is kept simple (no compression but of a
//! point's ids and times, which every push writes for every point).
//!
//! ```text
//! record  := flags batch? series* points*
//! flags   := u8: bit 0 a batch follows, bit 4 the points are compact
//! batch   := u128 key hash, f64 ts, u64 accepted
//! series  := u32 n, n x (u64 id, str app, str env, str name, u8 kind, u16 ntags, ntags x (str, str))
//! points  := u32 n, n x (u64 series, i64 minute, agg)                 (flags bit 4 clear)
//!          | u32 n, n x (iv series delta, iv minute delta, agg)       (flags bit 4 set)
//! agg     := u8 kind, counter: f64 | gauge: f64 last, i64 last_ms, f64 min, max, sum, u64 count
//!          | distribution: f64 count, sum, min, max, f64 zero, bins pos, bins neg
//!          | single gauge value (kind byte 4): f64 value, then i64 ms
//!            or, compact, iv (ms - minute x 1000)
//!          | whole counter (kind byte 5, compact only): iv value
//! bins    := u32 n, n x (i32 key, f64 count);  str := u32 len, utf-8 bytes
//! ```
//! All fixed-width integers little-endian; `iv` is a zigzag LEB128 varint,
//! and a delta is from the point before (the first from zero), wrapping.
//! Records are written compact; the fixed-width points are still read,
//! from logs an earlier version wrote. A record may also be stored
//! deflated (`series.defs` does): the byte 2, the record's length as u32,
//! then the record as a raw deflate stream.

use crate::codec::varint::{self, put_ivarint};
use minutely_core::{Agg, DistAgg, GaugeAgg, Kind, Sketch, Tags};

/// A series as first defined; replayed into the index.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesDef {
    pub id: u64,
    pub app: String,
    pub env: String,
    pub name: String,
    pub kind: Kind,
    pub tags: Tags,
}

/// A batch key (hashed with its app and env) with what its first push stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEntry {
    pub key: u128,
    pub ts: f64,
    pub accepted: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub batch: Option<BatchEntry>,
    pub series: Vec<SeriesDef>,
    pub points: Vec<(u64, i64, Agg)>,
}

/// First byte of a deflated record (a plain one starts with its flags,
/// which never equal it).
const DEFLATED: u8 = 2;
/// Flag: a batch entry follows.
const HAS_BATCH: u8 = 1;
/// Flag: points are delta- and varint-coded. A push logs every point, and
/// the log's bytes cost it their copy into the kernel: a single-value
/// point takes 11-14 bytes instead of 25-33.
const COMPACT_POINTS: u8 = 0x10;

#[derive(Debug, thiserror::Error)]
#[error("log record is malformed: {0}")]
pub struct RecordError(pub &'static str);

impl Record {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.batch {
            Some(b) => {
                out.push(COMPACT_POINTS | HAS_BATCH);
                out.extend_from_slice(&b.key.to_le_bytes());
                out.extend_from_slice(&b.ts.to_le_bytes());
                out.extend_from_slice(&b.accepted.to_le_bytes());
            }
            None => out.push(COMPACT_POINTS),
        }
        out.extend_from_slice(&(self.series.len() as u32).to_le_bytes());
        for s in &self.series {
            out.extend_from_slice(&s.id.to_le_bytes());
            put_str(out, &s.app);
            put_str(out, &s.env);
            put_str(out, &s.name);
            out.push(s.kind.code());
            out.extend_from_slice(&(s.tags.len() as u16).to_le_bytes());
            for (k, v) in s.tags.iter() {
                put_str(out, k);
                put_str(out, v);
            }
        }
        out.extend_from_slice(&(self.points.len() as u32).to_le_bytes());
        let (mut last_sid, mut last_minute) = (0u64, 0i64);
        for &(sid, minute, ref agg) in &self.points {
            put_ivarint(out, sid.wrapping_sub(last_sid) as i64);
            put_ivarint(out, minute.wrapping_sub(last_minute));
            put_compact_agg(out, minute, agg);
            (last_sid, last_minute) = (sid, minute);
        }
    }

    /// [`encode`](Self::encode), deflated: for records kept for long.
    pub fn encode_deflated(&self, out: &mut Vec<u8>) {
        let mut raw = Vec::new();
        self.encode(&mut raw);
        out.push(DEFLATED);
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        out.extend(crate::codec::deflate_dense(&raw));
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.first() == Some(&DEFLATED) {
            let mut r = Reader { buf: &bytes[1..] };
            let len = r.u32()? as usize;
            let raw = crate::codec::inflate_exact(r.buf, len, u32::MAX as usize)
                .map_err(|_| RecordError("deflated record does not inflate to its length"))?;
            if raw.first() == Some(&DEFLATED) {
                return Err(RecordError("deflated record inside a deflated record"));
            }
            return Record::decode(&raw);
        }
        let mut r = Reader { buf: bytes };
        let flags = r.u8()?;
        if flags & !(HAS_BATCH | COMPACT_POINTS) != 0 {
            return Err(RecordError("bad flags"));
        }
        let batch = match flags & HAS_BATCH {
            0 => None,
            _ => Some(BatchEntry {
                key: u128::from_le_bytes(r.take()?),
                ts: r.f64()?,
                accepted: r.u64()?,
            }),
        };
        let n = r.u32()? as usize;
        let mut series = Vec::with_capacity(n.min(bytes.len()));
        for _ in 0..n {
            let id = r.u64()?;
            let (app, env, name) = (r.str()?, r.str()?, r.str()?);
            let kind = Kind::from_code(r.u8()?).ok_or(RecordError("bad kind"))?;
            let ntags = r.u16()? as usize;
            let mut pairs = Vec::with_capacity(ntags);
            for _ in 0..ntags {
                pairs.push((r.str()?, r.str()?));
            }
            series.push(SeriesDef {
                id,
                app,
                env,
                name,
                kind,
                tags: Tags::from_pairs(pairs),
            });
        }
        let n = r.u32()? as usize;
        let mut points = Vec::with_capacity(n.min(bytes.len() / 3));
        if flags & COMPACT_POINTS == 0 {
            for _ in 0..n {
                points.push((r.u64()?, r.i64()?, get_agg(&mut r)?));
            }
        } else {
            let (mut sid, mut minute) = (0u64, 0i64);
            for _ in 0..n {
                sid = sid.wrapping_add(r.ivarint()? as u64);
                minute = minute.wrapping_add(r.ivarint()?);
                points.push((sid, minute, get_compact_agg(&mut r, minute)?));
            }
        }
        if !r.buf.is_empty() {
            return Err(RecordError("trailing bytes"));
        }
        Ok(Record {
            batch,
            series,
            points,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_f64s(out: &mut Vec<u8>, vals: &[f64]) {
    for v in vals {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_bins(out: &mut Vec<u8>, bins: &[(i32, f64)]) {
    out.extend_from_slice(&(bins.len() as u32).to_le_bytes());
    for (k, c) in bins {
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&c.to_le_bytes());
    }
}

/// The kind byte of a gauge's minute that is one value: most pushed gauge
/// points, written in 17 bytes instead of 49 (the log is written for every
/// point, and its bytes cost the push its copy into the kernel).
const SINGLE_GAUGE: u8 = 4;
/// The kind byte of a counter's minute that is a whole number (most are),
/// as a varint.
const WHOLE_COUNTER: u8 = 5;

/// The milliseconds of a gauge's value from its minute's start (0-59,999
/// for a valid point, three bytes), wrapping so that any value round-trips.
fn ms_in_minute(ms: i64, minute: i64) -> i64 {
    ms.wrapping_sub(minute.wrapping_mul(1000))
}

/// `v` as an integer if that gives back the same bits (not -0.0, not past 2^53).
fn whole(v: f64) -> Option<i64> {
    let i = v as i64;
    (v.abs() < 9.007_199_254_740_992e15 && (i as f64).to_bits() == v.to_bits()).then_some(i)
}

fn put_compact_agg(out: &mut Vec<u8>, minute: i64, agg: &Agg) {
    match agg {
        Agg::Counter(v) => {
            if let Some(i) = whole(*v) {
                out.push(WHOLE_COUNTER);
                put_ivarint(out, i);
                return;
            }
        }
        Agg::Gauge(g) => {
            if let Some((value, ms)) = g.as_single() {
                out.push(SINGLE_GAUGE);
                put_f64s(out, &[value]);
                put_ivarint(out, ms_in_minute(ms, minute));
                return;
            }
        }
        Agg::Distribution(_) => {}
    }
    put_agg(out, agg);
}

fn get_compact_agg(r: &mut Reader, minute: i64) -> Result<Agg, RecordError> {
    match r.buf.first() {
        Some(&WHOLE_COUNTER) => {
            r.u8()?;
            Ok(Agg::Counter(r.ivarint()? as f64))
        }
        Some(&SINGLE_GAUGE) => {
            r.u8()?;
            let value = r.f64()?;
            let ms = r.ivarint()?.wrapping_add(minute.wrapping_mul(1000));
            Ok(Agg::Gauge(GaugeAgg::single(value, ms)))
        }
        _ => get_agg(r),
    }
}

fn put_agg(out: &mut Vec<u8>, agg: &Agg) {
    if let Some((value, ms)) = match agg {
        Agg::Gauge(g) => g.as_single(),
        _ => None,
    } {
        // Bit for bit, so replay rebuilds it exactly.
        out.push(SINGLE_GAUGE);
        put_f64s(out, &[value]);
        out.extend_from_slice(&ms.to_le_bytes());
        return;
    }
    out.push(agg.kind().code());
    match agg {
        Agg::Counter(v) => put_f64s(out, &[*v]),
        Agg::Gauge(g) => {
            put_f64s(out, &[g.last]);
            out.extend_from_slice(&g.last_ms.to_le_bytes());
            put_f64s(out, &[g.min, g.max, g.sum]);
            out.extend_from_slice(&g.count.to_le_bytes());
        }
        Agg::Distribution(d) => {
            put_f64s(out, &[d.count, d.sum, d.min, d.max, d.sketch.zero_count()]);
            put_bins(out, d.sketch.pos_bins());
            put_bins(out, d.sketch.neg_bins());
        }
    }
}

fn get_agg(r: &mut Reader) -> Result<Agg, RecordError> {
    let code = r.u8()?;
    if code == SINGLE_GAUGE {
        return Ok(Agg::Gauge(GaugeAgg::single(r.f64()?, r.i64()?)));
    }
    Ok(
        match Kind::from_code(code).ok_or(RecordError("bad kind"))? {
            Kind::Counter => Agg::Counter(r.f64()?),
            Kind::Gauge => Agg::Gauge(GaugeAgg {
                last: r.f64()?,
                last_ms: r.i64()?,
                min: r.f64()?,
                max: r.f64()?,
                sum: r.f64()?,
                count: r.u64()?,
            }),
            Kind::Distribution => {
                let (count, sum, min, max, zero) =
                    (r.f64()?, r.f64()?, r.f64()?, r.f64()?, r.f64()?);
                let pos = get_bins(r)?;
                let neg = get_bins(r)?;
                Agg::Distribution(Box::new(DistAgg {
                    count,
                    sum,
                    min,
                    max,
                    sketch: Sketch::from_parts(pos, neg, zero),
                }))
            }
        },
    )
}

fn get_bins(r: &mut Reader) -> Result<Vec<(i32, f64)>, RecordError> {
    let n = r.u32()? as usize;
    if n > r.buf.len() / 12 {
        return Err(RecordError("bin count past end"));
    }
    (0..n).map(|_| Ok((r.i32()?, r.f64()?))).collect()
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        if self.buf.len() < N {
            return Err(RecordError("truncated"));
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn f64(&mut self) -> Result<f64, RecordError> {
        Ok(f64::from_le_bytes(self.take()?))
    }
    /// A zigzag LEB128 varint, read as the block codec reads them.
    fn ivarint(&mut self) -> Result<i64, RecordError> {
        let mut r = varint::Reader::new(self.buf);
        let v = r
            .ivarint("log varint")
            .map_err(|_| RecordError("bad varint"))?;
        self.buf = &self.buf[self.buf.len() - r.remaining()..];
        Ok(v)
    }
    fn str(&mut self) -> Result<String, RecordError> {
        let n = self.u32()? as usize;
        if n > self.buf.len() {
            return Err(RecordError("string past end"));
        }
        let (s, rest) = self.buf.split_at(n);
        self.buf = rest;
        String::from_utf8(s.to_vec()).map_err(|_| RecordError("string is not utf-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gauge_bits(a: &Agg) -> Option<([u64; 4], i64, u64)> {
        match a {
            Agg::Gauge(g) => Some((
                [g.last, g.min, g.max, g.sum].map(f64::to_bits),
                g.last_ms,
                g.count,
            )),
            _ => None,
        }
    }

    proptest! {
        /// Gauge minutes come back bit for bit, whether one value (the short
        /// form) or anything near it (the long one).
        #[test]
        fn gauge_minutes_round_trip(last in prop_oneof![Just(0.0), Just(-0.0), -1e9f64..1e9],
                                    other in prop_oneof![Just(0.0), Just(-0.0), -1e9f64..1e9],
                                    which in 0usize..6, ms in any::<i64>(), count in 0u64..4) {
            let mut g = GaugeAgg::single(last, ms);
            match which {
                0 => {}
                1 => g.min = other,
                2 => g.max = other,
                3 => g.sum = other,
                4 => g.count = count,
                _ => g.last = other,
            }
            let rec = Record { points: vec![(3, 60, Agg::Gauge(g))], ..Record::default() };
            let mut buf = Vec::new();
            rec.encode(&mut buf);
            let back = Record::decode(&buf).unwrap();
            prop_assert_eq!(gauge_bits(&back.points[0].2), gauge_bits(&rec.points[0].2));
            if which == 0 {
                // flags, two counts, id and minute deltas (3 and 60: a byte
                // each), kind byte, value, ms from the minute's start
                let mut ms_bytes = Vec::new();
                put_ivarint(&mut ms_bytes, ms.wrapping_sub(60_000));
                prop_assert_eq!(buf.len(), 1 + 4 + 4 + 1 + 1 + 1 + 8 + ms_bytes.len());
            }
        }
    }

    fn counter_bits(a: &Agg) -> Option<u64> {
        match a {
            Agg::Counter(v) => Some(v.to_bits()),
            _ => None,
        }
    }

    proptest! {
        /// Any ids, minutes and counter values come back bit for bit
        /// through the deltas and the whole-number form, in any order.
        #[test]
        fn compact_points_round_trip(points in prop::collection::vec(
            (any::<u64>(), any::<i64>(), prop_oneof![
                any::<f64>(),
                (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
                Just(-0.0), Just(9_007_199_254_740_992.0), Just(-9_007_199_254_740_991.0),
            ], any::<i64>(), any::<bool>()), 0..40)) {
            let rec = Record {
                points: points.iter().map(|&(sid, minute, v, ms, gauge)| {
                    let agg = if gauge { Agg::Gauge(GaugeAgg::single(v, ms)) } else { Agg::Counter(v) };
                    (sid, minute, agg)
                }).collect(),
                ..Record::default()
            };
            let mut buf = Vec::new();
            rec.encode(&mut buf);
            let back = Record::decode(&buf).unwrap();
            prop_assert_eq!(back.points.len(), rec.points.len());
            for (a, b) in back.points.iter().zip(&rec.points) {
                prop_assert_eq!((a.0, a.1), (b.0, b.1));
                prop_assert_eq!(counter_bits(&a.2), counter_bits(&b.2));
                prop_assert_eq!(gauge_bits(&a.2), gauge_bits(&b.2));
            }
        }
    }

    /// What a push of single values logs: a few bytes besides the value.
    #[test]
    fn single_value_points_are_short() {
        let minute = 1_764_100_020 / 60 * 60;
        let points = (0..1_000u64)
            .map(|i| {
                let agg = if i % 2 == 0 {
                    Agg::Counter(i as f64)
                } else {
                    Agg::Gauge(GaugeAgg::single(i as f64 * 0.37, minute * 1000 + 17_250))
                };
                (1_000 + i, minute, agg)
            })
            .collect();
        let rec = Record {
            points,
            ..Record::default()
        };
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        // Counters: id delta, minute delta, kind, value (< 2^10: 2 bytes);
        // gauges: id delta, minute delta, kind, f64, 3 bytes of ms.
        let (counter, gauge) = (1 + 1 + 1 + 2, 1 + 1 + 1 + 8 + 3);
        assert!(
            buf.len() <= 9 + 5 + 500 * (counter + gauge),
            "{}",
            buf.len()
        );
        assert_eq!(Record::decode(&buf).unwrap(), rec);
    }

    /// A log an earlier version wrote (fixed-width points) still replays.
    #[test]
    fn fixed_width_records_still_decode() {
        let mut old = vec![HAS_BATCH];
        old.extend_from_slice(&7u128.to_le_bytes());
        old.extend_from_slice(&1.5f64.to_le_bytes());
        old.extend_from_slice(&2u64.to_le_bytes());
        old.extend_from_slice(&0u32.to_le_bytes());
        old.extend_from_slice(&2u32.to_le_bytes());
        old.extend_from_slice(&9u64.to_le_bytes());
        old.extend_from_slice(&120i64.to_le_bytes());
        old.push(SINGLE_GAUGE);
        old.extend_from_slice(&2.5f64.to_le_bytes());
        old.extend_from_slice(&120_500i64.to_le_bytes());
        old.extend_from_slice(&3u64.to_le_bytes());
        old.extend_from_slice(&(-60i64).to_le_bytes());
        old.push(Kind::Counter.code());
        old.extend_from_slice(&4.25f64.to_le_bytes());
        let rec = Record::decode(&old).unwrap();
        assert_eq!(
            rec,
            Record {
                batch: Some(BatchEntry {
                    key: 7,
                    ts: 1.5,
                    accepted: 2
                }),
                series: Vec::new(),
                points: vec![
                    (9, 120, Agg::Gauge(GaugeAgg::single(2.5, 120_500))),
                    (3, -60, Agg::Counter(4.25)),
                ],
            }
        );
        // A whole-counter kind byte is only for compact records.
        let last = old.len() - 9;
        old[last] = WHOLE_COUNTER;
        assert!(Record::decode(&old).is_err());
    }

    #[test]
    fn round_trip() {
        let mut sk = Sketch::new();
        for v in [1.0, -2.0, 0.0, 3.5] {
            sk.add(v);
        }
        let rec = Record {
            batch: Some(BatchEntry {
                key: u128::MAX - 5,
                ts: 1.5,
                accepted: 3,
            }),
            series: vec![SeriesDef {
                id: 7,
                app: "a".into(),
                env: "e".into(),
                name: "n".into(),
                kind: Kind::Gauge,
                tags: Tags::from_pairs([("k", "v"), ("r", "é")]),
            }],
            points: vec![
                (7, 60, Agg::Gauge(GaugeAgg::single(1.5, 60_500))),
                (8, -120, Agg::Counter(-0.0)),
                (
                    9,
                    0,
                    Agg::Distribution(Box::new(DistAgg {
                        count: 4.0,
                        sum: 2.5,
                        min: -2.0,
                        max: 3.5,
                        sketch: sk,
                    })),
                ),
            ],
        };
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        assert_eq!(Record::decode(&buf).unwrap(), rec);
        for cut in 0..buf.len() {
            assert!(Record::decode(&buf[..cut]).is_err());
        }
        // Deflated, as series.defs keeps records: the same record back,
        // and any cut or flipped byte an error rather than a panic.
        let mut deflated = Vec::new();
        rec.encode_deflated(&mut deflated);
        assert_eq!(deflated[0], DEFLATED);
        assert_eq!(Record::decode(&deflated).unwrap(), rec);
        for cut in 0..deflated.len() {
            assert!(Record::decode(&deflated[..cut]).is_err());
        }
        for i in 1..deflated.len() {
            let mut bad = deflated.clone();
            bad[i] ^= 0x5A;
            let _ = Record::decode(&bad);
        }
    }

    #[test]
    fn definitions_deflate_to_a_fraction() {
        let series: Vec<SeriesDef> = (0..1_000)
            .map(|i| SeriesDef {
                id: i,
                app: "webshop".into(),
                env: "production".into(),
                name: format!("metric_{}", i % 10),
                kind: Kind::Counter,
                tags: Tags::from_pairs([
                    ("host", format!("host-{:04}", i / 10)),
                    ("region", "eu-west".to_string()),
                ]),
            })
            .collect();
        let rec = Record {
            series,
            ..Record::default()
        };
        let (mut plain, mut deflated) = (Vec::new(), Vec::new());
        rec.encode(&mut plain);
        rec.encode_deflated(&mut deflated);
        assert!(
            deflated.len() * 4 < plain.len(),
            "{} vs {}",
            deflated.len(),
            plain.len()
        );
        assert_eq!(Record::decode(&deflated).unwrap(), rec);
    }
}
