//! One write-ahead-log record: what a push adds, in a fixed-width binary
//! form (the log is short-lived, so simplicity beats compactness here).
//!
//! ```text
//! record  := batch? series* points*
//! batch   := u8 flag, [u128 key hash, f64 ts, u64 accepted]
//! series  := u32 n, n x (u64 id, str app, str env, str name, u8 kind, u16 ntags, ntags x (str, str))
//! points  := u32 n, n x (u64 series, i64 minute, agg)
//! agg     := u8 kind, counter: f64 | gauge: f64 last, i64 last_ms, f64 min, max, sum, u64 count
//!          | distribution: f64 count, sum, min, max, f64 zero, bins pos, bins neg
//!          | single gauge value (kind byte 4): f64 value, i64 ms
//! bins    := u32 n, n x (i32 key, f64 count);  str := u32 len, utf-8 bytes
//! ```
//! All integers little-endian. A record may also be stored deflated
//! (`series.defs` does): the byte 2, the record's length as u32, then the
//! record as a raw deflate stream.

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

/// First byte of a deflated record (a plain one starts with 0 or 1).
const DEFLATED: u8 = 2;

#[derive(Debug, thiserror::Error)]
#[error("log record is malformed: {0}")]
pub struct RecordError(pub &'static str);

impl Record {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.batch {
            Some(b) => {
                out.push(1);
                out.extend_from_slice(&b.key.to_le_bytes());
                out.extend_from_slice(&b.ts.to_le_bytes());
                out.extend_from_slice(&b.accepted.to_le_bytes());
            }
            None => out.push(0),
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
        for (sid, minute, agg) in &self.points {
            out.extend_from_slice(&sid.to_le_bytes());
            out.extend_from_slice(&minute.to_le_bytes());
            put_agg(out, agg);
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
        let batch = match r.u8()? {
            0 => None,
            1 => Some(BatchEntry {
                key: u128::from_le_bytes(r.take()?),
                ts: r.f64()?,
                accepted: r.u64()?,
            }),
            _ => return Err(RecordError("bad batch flag")),
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
        let mut points = Vec::with_capacity(n.min(bytes.len() / 17));
        for _ in 0..n {
            points.push((r.u64()?, r.i64()?, get_agg(&mut r)?));
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
                // batch flag, two counts, id, minute, kind byte, value, ms
                prop_assert_eq!(buf.len(), 1 + 4 + 4 + 8 + 8 + 1 + 8 + 8);
            }
        }
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
