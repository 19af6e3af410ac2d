//! The payload inside a block's deflate stream: the slot numbers, then one
//! column per field of the kind's aggregate. Columns keep like numbers
//! together, which is what makes deltas small and deflate effective.

use super::floats::{get_floats, get_floats_into, put_floats};
use super::varint::{put_ivarint, put_uvarint, Reader};
use super::CodecError;
use minutely_core::{Agg, DistAgg, GaugeAgg, Kind, Part, Sketch, Slim};

/// Sketch flag: every count of the sketch is a whole number below 2^53,
/// stored as a varint rather than as eight bytes of f64.
const INTEGRAL_COUNTS: u8 = 1;

pub fn encode(kind: Kind, slots: &[(u16, Agg)]) -> Vec<u8> {
    let mut out = Vec::new();
    match kind {
        Kind::Counter => {
            let (nums, sums) = pick(slots, |a| match a {
                Agg::Counter(s) => Some(*s),
                _ => None,
            });
            put_slots(&mut out, &nums);
            put_floats(&mut out, &sums);
        }
        Kind::Gauge => {
            let (nums, gauges) = pick(slots, |a| match a {
                Agg::Gauge(g) => Some(g),
                _ => None,
            });
            put_slots(&mut out, &nums);
            put_gauges(&mut out, &gauges);
        }
        Kind::Distribution => {
            let (nums, dists) = pick(slots, |a| match a {
                Agg::Distribution(d) => Some(&**d),
                _ => None,
            });
            put_slots(&mut out, &nums);
            put_dists(&mut out, &dists);
        }
    }
    out
}

pub fn decode(kind: Kind, payload: &[u8]) -> Result<Vec<(u16, Agg)>, CodecError> {
    let mut r = Reader::new(payload);
    let nums = get_slots(&mut r)?;
    let n = nums.len();
    let aggs: Vec<Agg> = match kind {
        Kind::Counter => get_floats(&mut r, n, "counter sums")?
            .into_iter()
            .map(Agg::Counter)
            .collect(),
        Kind::Gauge => get_gauges(&mut r, n)?.into_iter().map(Agg::Gauge).collect(),
        Kind::Distribution => get_dists(&mut r, n)?
            .into_iter()
            .map(|d| Agg::Distribution(Box::new(d)))
            .collect(),
    };
    if r.remaining() != 0 {
        return Err(CodecError::Malformed(format!(
            "{} bytes after the last column",
            r.remaining()
        )));
    }
    Ok(nums.into_iter().zip(aggs).collect())
}

/// Splits slots into slot numbers and the kind's aggregates. A block holds
/// one kind (a metric name has one): an aggregate of another kind has no
/// column to go in and is left out, which only a bug upstream can cause.
fn pick<'a, T>(slots: &'a [(u16, Agg)], f: impl Fn(&'a Agg) -> Option<T>) -> (Vec<u16>, Vec<T>) {
    let picked: (Vec<u16>, Vec<T>) = slots
        .iter()
        .filter_map(|(s, a)| f(a).map(|t| (*s, t)))
        .unzip();
    debug_assert_eq!(picked.0.len(), slots.len(), "block of mixed kinds");
    picked
}

/// Slot numbers as `slot - previous - 1` (previous starts at -1), zigzag:
/// a run of consecutive slots is a run of zeros. Zigzag rather than
/// unsigned so that even unsorted input comes back as it was given.
fn put_slots(out: &mut Vec<u8>, nums: &[u16]) {
    put_uvarint(out, nums.len() as u64);
    let mut prev = -1i64;
    for &s in nums {
        put_ivarint(out, i64::from(s) - prev - 1);
        prev = i64::from(s);
    }
}

fn get_slots(r: &mut Reader) -> Result<Vec<u16>, CodecError> {
    let mut nums = Vec::new();
    get_slots_into(r, &mut nums)?;
    Ok(nums)
}

fn get_slots_into(r: &mut Reader, nums: &mut Vec<u16>) -> Result<(), CodecError> {
    nums.clear();
    let n = r.item_count("slot count")?;
    nums.reserve(n);
    let mut prev = -1i64;
    for _ in 0..n {
        let d = r.ivarint("slot numbers")?;
        let s = prev.wrapping_add(1).wrapping_add(d);
        let s = u16::try_from(s)
            .map_err(|_| CodecError::Malformed(format!("slot number {s} out of range")))?;
        nums.push(s);
        prev = i64::from(s);
    }
    Ok(())
}

/// Buffers a reader of parts reuses from block to block.
#[derive(Default)]
pub struct Columns {
    slots: Vec<u16>,
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    d: Vec<f64>,
    ms: Vec<i64>,
    /// A sketch's positive and negative bins.
    bins: [Vec<(i32, f64)>; 2],
}

/// A distribution bucket as [`decode_dists`] hands it over: count, sum,
/// min, max and zero count, then the sketch's positive and negative bins.
pub type DistSlot<'a> = ([f64; 5], &'a [(i32, f64)], &'a [(i32, f64)]);

/// Reads a block's distributions as [`decode`] does (the same checks),
/// handing each slot to `out` in slot order from buffers reused from slot
/// to slot, rather than building an aggregate for each. A block of
/// another kind gives nothing. Without `sketches`, each slot comes with an
/// empty sketch and the sketches are not read (their bytes, last in the
/// payload, are vouched for by the frame's checksum).
pub fn decode_dists(
    kind: Kind,
    payload: &[u8],
    sketches: bool,
    cols: &mut Columns,
    out: &mut impl FnMut(u16, DistSlot<'_>),
) -> Result<(), CodecError> {
    if kind != Kind::Distribution {
        return Ok(());
    }
    let mut r = Reader::new(payload);
    get_slots_into(&mut r, &mut cols.slots)?;
    let n = cols.slots.len();
    let [(count, _), (sum, _), (min, _), (max, _)] = DIST_FIELDS;
    get_floats_into(&mut r, n, count, &mut cols.a)?;
    get_floats_into(&mut r, n, sum, &mut cols.b)?;
    get_floats_into(&mut r, n, min, &mut cols.c)?;
    get_floats_into(&mut r, n, max, &mut cols.d)?;
    if !sketches {
        for i in 0..n {
            let scalars = [cols.a[i], cols.b[i], cols.c[i], cols.d[i], 0.0];
            out(cols.slots[i], (scalars, &[], &[]));
        }
        return Ok(());
    }
    let mut first_keys = [0i64; 2];
    for i in 0..n {
        let zero = get_sketch_into(&mut r, &mut first_keys, &mut cols.bins)?;
        let scalars = [cols.a[i], cols.b[i], cols.c[i], cols.d[i], zero];
        out(cols.slots[i], (scalars, &cols.bins[0], &cols.bins[1]));
    }
    if r.remaining() != 0 {
        return Err(CodecError::Malformed(format!(
            "{} bytes after the last column",
            r.remaining()
        )));
    }
    Ok(())
}

/// Reads only the slot numbers and the columns `part` needs, and hands
/// each slot's part to `out` in slot order. A block of a kind the part does
/// not apply to gives nothing. Columns after the last one needed are not
/// read (the frame's checksum already vouched for them).
pub fn decode_part(
    kind: Kind,
    payload: &[u8],
    part: Part,
    cols: &mut Columns,
    out: &mut impl FnMut(u16, Slim),
) -> Result<(), CodecError> {
    let mut r = Reader::new(payload);
    match (kind, part) {
        (Kind::Counter, Part::Sum) => {
            get_slots_into(&mut r, &mut cols.slots)?;
            get_floats_into(&mut r, cols.slots.len(), "counter sums", &mut cols.a)?;
            for (&slot, &v) in cols.slots.iter().zip(&cols.a) {
                out(slot, Slim { v, w: 0 });
            }
        }
        (Kind::Gauge, Part::Sum) | (Kind::Counter | Kind::Distribution, _) => {}
        (Kind::Gauge, part) => {
            get_slots_into(&mut r, &mut cols.slots)?;
            let n = cols.slots.len();
            get_floats_into(&mut r, n, "gauge last", &mut cols.a)?;
            cols.ms.clear();
            let mut prev = 0i64;
            for _ in 0..n {
                prev = prev.wrapping_add(r.ivarint("gauge last_ms")?);
                cols.ms.push(prev);
            }
            if part == Part::Last {
                for ((&slot, &v), &w) in cols.slots.iter().zip(&cols.a).zip(&cols.ms) {
                    out(slot, Slim { v, w });
                }
                return Ok(());
            }
            gauge_part(&mut r, part, cols, out)?;
        }
    }
    Ok(())
}

/// The min, max or (sum, count) of each gauge slot: a single-point slot's
/// are its last value (and 1); the others come from the full columns.
fn gauge_part(
    r: &mut Reader,
    part: Part,
    cols: &mut Columns,
    out: &mut impl FnMut(u16, Slim),
) -> Result<(), CodecError> {
    let n = cols.slots.len();
    let bitmap = r.bytes(n.div_ceil(8), "gauge single-point bitmap")?;
    let single = |i: usize| bitmap[i / 8] & (1 << (i % 8)) != 0;
    let k = (0..n).filter(|&i| !single(i)).count();
    // Columns in payload order: min, max, sum, then the counts.
    get_floats_into(r, k, "gauge min", &mut cols.b)?;
    get_floats_into(r, k, "gauge max", &mut cols.c)?;
    let mean = part == Part::Mean;
    let full: &[f64] = match part {
        Part::Min => &cols.b,
        Part::Max => &cols.c,
        _ => {
            get_floats_into(r, k, "gauge sum", &mut cols.b)?;
            &cols.b
        }
    };
    let mut j = 0;
    for i in 0..n {
        let slim = if single(i) {
            Slim {
                v: cols.a[i],
                w: i64::from(mean),
            }
        } else {
            let v = full[j];
            j += 1;
            // Counts above i64::MAX cannot come from real points.
            let w = if mean {
                r.uvarint("gauge count")? as i64
            } else {
                0
            };
            Slim { v, w }
        };
        out(cols.slots[i], slim);
    }
    Ok(())
}

/// A gauge slot that saw one point: min, max and sum equal last (checked
/// bit for bit, as a client's summary need not obey it), so they are not
/// stored.
fn is_single(g: &GaugeAgg) -> bool {
    g.count == 1
        && [g.min, g.max, g.sum]
            .iter()
            .all(|v| v.to_bits() == g.last.to_bits())
}

fn put_gauges(out: &mut Vec<u8>, gauges: &[&GaugeAgg]) {
    put_floats(out, &column(gauges, |g| g.last));
    // Points arrive at a steady rhythm, so deltas repeat and deflate
    // reduces them to almost nothing.
    let mut prev = 0i64;
    for g in gauges {
        put_ivarint(out, g.last_ms.wrapping_sub(prev));
        prev = g.last_ms;
    }
    // Most gauge minutes hold one point; a bit per slot says so and the
    // other columns skip those slots, so a day of single points adds 180
    // bytes of 0xFF that deflate shrinks to a few.
    let single: Vec<bool> = gauges.iter().map(|g| is_single(g)).collect();
    let mut bitmap = vec![0u8; single.len().div_ceil(8)];
    for (i, _) in single.iter().enumerate().filter(|(_, s)| **s) {
        bitmap[i / 8] |= 1 << (i % 8);
    }
    out.extend_from_slice(&bitmap);
    let full: Vec<&GaugeAgg> = gauges
        .iter()
        .zip(&single)
        .filter(|(_, s)| !**s)
        .map(|(g, _)| *g)
        .collect();
    put_floats(out, &column(&full, |g| g.min));
    put_floats(out, &column(&full, |g| g.max));
    put_floats(out, &column(&full, |g| g.sum));
    full.iter().for_each(|g| put_uvarint(out, g.count));
}

fn get_gauges(r: &mut Reader, n: usize) -> Result<Vec<GaugeAgg>, CodecError> {
    let last = get_floats(r, n, "gauge last")?;
    let mut last_ms = Vec::with_capacity(n.min(r.remaining()));
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(r.ivarint("gauge last_ms")?);
        last_ms.push(prev);
    }
    let bitmap = r.bytes(n.div_ceil(8), "gauge single-point bitmap")?;
    let single: Vec<bool> = (0..n)
        .map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
        .collect();
    let k = single.iter().filter(|s| !**s).count();
    let mut min = get_floats(r, k, "gauge min")?.into_iter();
    let mut max = get_floats(r, k, "gauge max")?.into_iter();
    let mut sum = get_floats(r, k, "gauge sum")?.into_iter();
    let mut out = Vec::with_capacity(n);
    for ((last, last_ms), single) in last.into_iter().zip(last_ms).zip(single) {
        if single {
            out.push(GaugeAgg::single(last, last_ms));
            continue;
        }
        // Each full column was read with exactly one value per such slot.
        let (Some(min), Some(max), Some(sum)) = (min.next(), max.next(), sum.next()) else {
            return Err(CodecError::Malformed("gauge columns disagree".into()));
        };
        let count = r.uvarint("gauge count")?;
        out.push(GaugeAgg {
            last,
            last_ms,
            min,
            max,
            sum,
            count,
        });
    }
    Ok(out)
}

fn column<T>(items: &[&T], f: impl Fn(&T) -> f64) -> Vec<f64> {
    items.iter().map(|t| f(t)).collect()
}

/// A distribution's float columns in payload order, with their error names.
type DistField = (&'static str, fn(&DistAgg) -> f64);

const DIST_FIELDS: [DistField; 4] = [
    ("distribution count", |d| d.count),
    ("distribution sum", |d| d.sum),
    ("distribution min", |d| d.min),
    ("distribution max", |d| d.max),
];

fn put_dists(out: &mut Vec<u8>, dists: &[&DistAgg]) {
    for (_, field) in DIST_FIELDS {
        put_floats(out, &column(dists, field));
    }
    let mut first_keys = [0i64; 2];
    for d in dists {
        put_sketch(out, &d.sketch, &mut first_keys);
    }
}

fn get_dists(r: &mut Reader, n: usize) -> Result<Vec<DistAgg>, CodecError> {
    let mut cols: [Vec<f64>; 4] = Default::default();
    for (col, (what, _)) in cols.iter_mut().zip(DIST_FIELDS) {
        *col = get_floats(r, n, what)?;
    }
    let [count, sum, min, max] = cols;
    let mut first_keys = [0i64; 2];
    let mut out = Vec::with_capacity(n);
    for (((count, sum), min), max) in count.into_iter().zip(sum).zip(min).zip(max) {
        let sketch = get_sketch(r, &mut first_keys)?;
        out.push(DistAgg {
            count,
            sum,
            min,
            max,
            sketch,
        });
    }
    Ok(out)
}

fn is_integral(c: f64) -> bool {
    // Excludes -0.0, NaN, fractions and counts past exact integers.
    (0.0..9007199254740992.0).contains(&c) && ((c as u64) as f64).to_bits() == c.to_bits()
}

fn put_count(out: &mut Vec<u8>, c: f64, integral: bool) {
    if integral {
        put_uvarint(out, c as u64);
    } else {
        out.extend_from_slice(&c.to_bits().to_le_bytes());
    }
}

fn get_count(r: &mut Reader, integral: bool) -> Result<f64, CodecError> {
    if integral {
        Ok(r.uvarint("sketch count")? as f64)
    } else {
        r.f64_bits("sketch count")
    }
}

/// One sketch: flags, zero count, then the positive and the negative
/// store as a bin count and (key delta, count) pairs. A store's first key
/// is a delta from the same store's first key in the previous slot:
/// neighbouring minutes see similar values.
fn put_sketch(out: &mut Vec<u8>, s: &Sketch, first_keys: &mut [i64; 2]) {
    let mut counts = s.pos_bins().iter().chain(s.neg_bins()).map(|b| b.1);
    let integral = is_integral(s.zero_count()) && counts.all(is_integral);
    out.push(if integral { INTEGRAL_COUNTS } else { 0 });
    put_count(out, s.zero_count(), integral);
    for (bins, first) in [s.pos_bins(), s.neg_bins()].into_iter().zip(first_keys) {
        put_uvarint(out, bins.len() as u64);
        let mut prev = *first;
        if let Some(b) = bins.first() {
            *first = i64::from(b.0);
        }
        for &(key, c) in bins {
            put_ivarint(out, i64::from(key) - prev);
            prev = i64::from(key);
            put_count(out, c, integral);
        }
    }
}

fn get_sketch(r: &mut Reader, first_keys: &mut [i64; 2]) -> Result<Sketch, CodecError> {
    let mut stores = [Vec::new(), Vec::new()];
    let zero = get_sketch_into(r, first_keys, &mut stores)?;
    let [pos, neg] = stores;
    Ok(Sketch::from_parts(pos, neg, zero))
}

/// Reads a sketch's positive and negative bins into `stores` (cleared
/// first) and returns its zero count.
fn get_sketch_into(
    r: &mut Reader,
    first_keys: &mut [i64; 2],
    stores: &mut [Vec<(i32, f64)>; 2],
) -> Result<f64, CodecError> {
    let flags = r.u8("sketch flags")?;
    if flags & !INTEGRAL_COUNTS != 0 {
        return Err(CodecError::Malformed(format!(
            "unknown sketch flags {flags:#04x}"
        )));
    }
    let integral = flags & INTEGRAL_COUNTS != 0;
    let zero = get_count(r, integral)?;
    for (bins, first) in stores.iter_mut().zip(first_keys) {
        bins.clear();
        let n = r.item_count("sketch bin count")?;
        bins.reserve(n);
        let mut prev = *first;
        for i in 0..n {
            let key = prev.wrapping_add(r.ivarint("sketch key")?);
            let key = i32::try_from(key)
                .map_err(|_| CodecError::Malformed(format!("sketch key {key} out of range")))?;
            prev = i64::from(key);
            if i == 0 {
                *first = prev;
            }
            bins.push((key, get_count(r, integral)?));
        }
    }
    Ok(zero)
}
