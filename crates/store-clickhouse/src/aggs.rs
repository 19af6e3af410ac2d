//! Aggregates to rows and back, and the SQL that merges partial rows.
//!
//! Rows of one (series, bucket) written by different pushes or servers
//! merge in SQL exactly as `Agg::merge` merges them in memory: sums and
//! counts add, min and max combine, a gauge keeps `last` of the greatest
//! `last_ms`, sketch buckets add per key (`sumMap`).

use crate::sql::RowBinary;
use minutely_core::{Agg, DistAgg, GaugeAgg, Kind, Sketch};
use minutely_store::StoreError;

/// The aggregate columns, in table order (see `schema::AGG_COLUMNS`).
pub const COLUMNS: &str = "kind, sum, count, min, max, last, last_ms, pos_keys, pos_counts, \
     neg_keys, neg_counts, zero";

/// Appends the aggregate columns of one row.
pub fn encode(rb: &mut RowBinary, agg: &Agg) {
    rb.u8(agg.kind().code());
    match agg {
        Agg::Counter(v) => {
            rb.f64(*v).f64(0.0).f64(0.0).f64(0.0).f64(0.0).i64(0);
            rb.i32s(std::iter::empty()).f64s(std::iter::empty());
            rb.i32s(std::iter::empty()).f64s(std::iter::empty());
            rb.f64(0.0);
        }
        Agg::Gauge(g) => {
            rb.f64(g.sum)
                .f64(g.count as f64)
                .f64(g.min)
                .f64(g.max)
                .f64(g.last)
                .i64(g.last_ms);
            rb.i32s(std::iter::empty()).f64s(std::iter::empty());
            rb.i32s(std::iter::empty()).f64s(std::iter::empty());
            rb.f64(0.0);
        }
        Agg::Distribution(d) => {
            rb.f64(d.sum)
                .f64(d.count)
                .f64(d.min)
                .f64(d.max)
                .f64(0.0)
                .i64(0);
            let (pos, neg) = (d.sketch.pos_bins(), d.sketch.neg_bins());
            rb.i32s(pos.iter().map(|b| b.0))
                .f64s(pos.iter().map(|b| b.1));
            rb.i32s(neg.iter().map(|b| b.0))
                .f64s(neg.iter().map(|b| b.1));
            rb.f64(d.sketch.zero_count());
        }
    }
}

/// The merge of many rows into one per group, as SELECT expressions over
/// the aggregate columns of an inner query.
pub const MERGE: &str = "any(c_kind) AS kind, sum(c_sum) AS sum, sum(c_count) AS count, \
     min(c_min) AS min, max(c_max) AS max, argMax(c_last, c_last_ms) AS last, \
     max(c_last_ms) AS last_ms, sumMap(c_pos_keys, c_pos_counts) AS pos, \
     sumMap(c_neg_keys, c_neg_counts) AS neg, sum(c_zero) AS zero";

/// Collapses copies of one row (a batch written twice) to one.
/// The same without the sketch columns, for reads of counters and gauges:
/// array columns are the costly part of both steps.
pub const MERGE_SCALAR: &str = "any(c_kind) AS kind, sum(c_sum) AS sum, sum(c_count) AS count, \
     min(c_min) AS min, max(c_max) AS max, argMax(c_last, c_last_ms) AS last, \
     max(c_last_ms) AS last_ms, sum(c_zero) AS zero";

/// (The inner names differ from the columns': ClickHouse would otherwise
/// read an alias inside the outer aggregate.)
pub const COLLAPSE: &str = "any(kind) AS c_kind, any(sum) AS c_sum, any(count) AS c_count, \
     any(min) AS c_min, any(max) AS c_max, any(last) AS c_last, any(last_ms) AS c_last_ms, \
     any(pos_keys) AS c_pos_keys, any(pos_counts) AS c_pos_counts, \
     any(neg_keys) AS c_neg_keys, any(neg_counts) AS c_neg_counts, any(zero) AS c_zero";

pub const COLLAPSE_SCALAR: &str = "any(kind) AS c_kind, any(sum) AS c_sum, any(count) AS c_count, \
     any(min) AS c_min, any(max) AS c_max, any(last) AS c_last, any(last_ms) AS c_last_ms, \
     any(zero) AS c_zero";

/// One merged bucket as `sid, ts, MERGE` comes back in RowBinary (binary:
/// a wide read returns hundreds of thousands of rows, and formatting and
/// parsing them as JSON text costs more than the query).
#[derive(Debug)]
pub struct MergedRow {
    pub sid: u64,
    pub ts: u32,
    pub kind: u8,
    pub sum: f64,
    pub count: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
    pub last_ms: i64,
    pub pos: (Vec<i32>, Vec<f64>),
    pub neg: (Vec<i32>, Vec<f64>),
    pub zero: f64,
}

/// Reads RowBinary values in order.
struct Reader<'a> {
    buf: &'a [u8],
}

fn short() -> StoreError {
    StoreError::Engine("ClickHouse answer ended inside a row".into())
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let (head, rest) = self.buf.split_first_chunk::<N>().ok_or_else(short)?;
        self.buf = rest;
        Ok(*head)
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let [b] = self.take::<1>()?;
            n |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                // Each element takes at least one byte: a length beyond the
                // rest of the answer is damage, not a reason to allocate.
                return usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= self.buf.len())
                    .ok_or_else(short);
            }
        }
        Err(short())
    }

    fn f64(&mut self) -> Result<f64, StoreError> {
        Ok(f64::from_le_bytes(self.take()?))
    }

    fn map(&mut self) -> Result<(Vec<i32>, Vec<f64>), StoreError> {
        let n = self.len()?;
        let keys = (0..n)
            .map(|_| Ok(i32::from_le_bytes(self.take()?)))
            .collect::<Result<_, StoreError>>()?;
        let m = self.len()?;
        let counts = (0..m).map(|_| self.f64()).collect::<Result<_, _>>()?;
        Ok((keys, counts))
    }
}

/// Decodes the rows of `SELECT sid, ts, MERGE ... FORMAT RowBinary`
/// (`MERGE_SCALAR` when `sketch` is false: no sketch columns).
pub fn decode_merged(buf: &[u8], sketch: bool) -> Result<Vec<MergedRow>, StoreError> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    let empty = || (Vec::new(), Vec::new());
    while !r.buf.is_empty() {
        out.push(MergedRow {
            sid: u64::from_le_bytes(r.take()?),
            ts: u32::from_le_bytes(r.take()?),
            kind: r.take::<1>()?[0],
            sum: r.f64()?,
            count: r.f64()?,
            min: r.f64()?,
            max: r.f64()?,
            last: r.f64()?,
            last_ms: i64::from_le_bytes(r.take()?),
            pos: if sketch { r.map()? } else { empty() },
            neg: if sketch { r.map()? } else { empty() },
            zero: r.f64()?,
        });
    }
    Ok(out)
}

impl MergedRow {
    pub fn to_agg(&self) -> Result<Agg, StoreError> {
        let kind = Kind::from_code(self.kind)
            .ok_or_else(|| StoreError::Engine(format!("unknown kind code {}", self.kind)))?;
        Ok(match kind {
            Kind::Counter => Agg::Counter(self.sum),
            Kind::Gauge => Agg::Gauge(GaugeAgg {
                last: self.last,
                last_ms: self.last_ms,
                min: self.min,
                max: self.max,
                sum: self.sum,
                count: self.count as u64,
            }),
            Kind::Distribution => {
                let bins = |(k, c): &(Vec<i32>, Vec<f64>)| -> Vec<(i32, f64)> {
                    k.iter().copied().zip(c.iter().copied()).collect()
                };
                Agg::Distribution(Box::new(DistAgg {
                    count: self.count,
                    sum: self.sum,
                    min: self.min,
                    max: self.max,
                    sketch: Sketch::from_parts(bins(&self.pos), bins(&self.neg), self.zero),
                }))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_row_binary_and_refuses_a_cut_row() {
        let mut rb = RowBinary::default();
        rb.u64(7).u32(120).u8(Kind::Distribution.code());
        rb.f64(3.0).f64(2.0).f64(1.0).f64(2.0).f64(0.0).i64(0);
        rb.i32s([4, 9].into_iter()).f64s([1.0, 1.0].into_iter());
        rb.i32s(std::iter::empty()).f64s(std::iter::empty());
        rb.f64(0.0);
        let rows = decode_merged(&rb.buf, true).unwrap();
        assert_eq!(
            (rows[0].sid, rows[0].ts, &rows[0].pos.0),
            (7, 120, &vec![4, 9])
        );
        assert!(decode_merged(&rb.buf[..rb.buf.len() - 1], true).is_err());
        let mut scalar = RowBinary::default();
        scalar.u64(8).u32(60).u8(Kind::Counter.code());
        scalar
            .f64(5.0)
            .f64(0.0)
            .f64(0.0)
            .f64(0.0)
            .f64(0.0)
            .i64(0)
            .f64(0.0);
        let rows = decode_merged(&scalar.buf, false).unwrap();
        assert_eq!(rows[0].to_agg().unwrap(), Agg::Counter(5.0));
    }

    #[test]
    fn merged_row_rebuilds_each_kind() {
        let row = |kind: Kind| MergedRow {
            sid: 1,
            ts: 60,
            kind: kind.code(),
            sum: 10.0,
            count: 4.0,
            min: 1.0,
            max: 4.0,
            last: 3.0,
            last_ms: 99,
            pos: (vec![5, 9], vec![1.0, 3.0]),
            neg: (vec![], vec![]),
            zero: 0.0,
        };
        assert_eq!(row(Kind::Counter).to_agg().unwrap(), Agg::Counter(10.0));
        match row(Kind::Gauge).to_agg().unwrap() {
            Agg::Gauge(g) => assert_eq!((g.last, g.last_ms, g.count), (3.0, 99, 4)),
            o => panic!("{o:?}"),
        }
        match row(Kind::Distribution).to_agg().unwrap() {
            Agg::Distribution(d) => assert_eq!(d.sketch.count(), 4.0),
            o => panic!("{o:?}"),
        }
    }
}
