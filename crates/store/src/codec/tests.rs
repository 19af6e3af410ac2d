//! Round trips (bit for bit), damage handling and the sizes the format is
//! meant to reach. `cargo test -p minutely-store codec -- --nocapture`
//! prints the measured bytes per slot.

use super::*;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use minutely_core::{DistAgg, GaugeAgg, Part, Sketch};
use proptest::prelude::*;
use std::io::Write;

/// An aggregate as the bits of all its numbers, so that -0.0, NaN payloads
/// and the like compare exactly.
pub(super) fn bits(a: &Agg) -> Vec<u64> {
    let store = |bins: &[(i32, f64)]| {
        let mut v = vec![bins.len() as u64];
        bins.iter()
            .for_each(|b| v.extend([b.0 as u64, b.1.to_bits()]));
        v
    };
    match a {
        Agg::Counter(s) => vec![0, s.to_bits()],
        Agg::Gauge(g) => {
            let f = [g.last, g.min, g.max, g.sum].map(f64::to_bits);
            [&[1, g.last_ms as u64, g.count][..], &f].concat()
        }
        Agg::Distribution(d) => {
            let f = [d.count, d.sum, d.min, d.max, d.sketch.zero_count()].map(f64::to_bits);
            [
                vec![2],
                f.to_vec(),
                store(d.sketch.pos_bins()),
                store(d.sketch.neg_bins()),
            ]
            .concat()
        }
    }
}

fn flat(slots: &[(u16, Agg)]) -> Vec<(u16, Vec<u64>)> {
    slots.iter().map(|(s, a)| (*s, bits(a))).collect()
}

fn round_trip(kind: Kind, slots: &[(u16, Agg)]) -> Vec<u8> {
    let bytes = encode_block(kind, slots);
    let (k, back) = decode_block(&bytes).unwrap();
    assert_eq!(k, kind);
    assert_eq!(flat(&back), flat(slots));
    bytes
}

/// A block with a valid frame around any deflate stream, to reach the
/// payload parser with arbitrary content.
pub(super) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![VERSION, kind];
    out.extend_from_slice(&deflate(Kind::Gauge, payload));
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// splitmix64: deterministic data for the size measurements.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const DAY_MS: i64 = 1_764_028_800_000;

fn per_slot(what: &str, bytes: &[u8], slots: usize) -> f64 {
    let b = bytes.len() as f64 / slots as f64;
    eprintln!(
        "codec size: {what}: {} bytes for {slots} slots = {b:.2} bytes/slot",
        bytes.len()
    );
    b
}

#[test]
fn gauge_random_walk_takes_few_bytes_per_slot() {
    let mut rng = Rng(1);
    let mut m = 5_000i64;
    let slots: Vec<(u16, Agg)> = (0..1440u16)
        .map(|s| {
            m += rng.below(101) - 50;
            let ts = DAY_MS + i64::from(s) * 60_000 + 17_000;
            (s, Agg::Gauge(GaugeAgg::single(m as f64 / 100.0, ts)))
        })
        .collect();
    let bytes = round_trip(Kind::Gauge, &slots);
    assert!(per_slot("gauge random walk, 2 decimals, ±0.50 steps", &bytes, 1440) < 2.0);
}

#[test]
fn gauge_with_several_points_per_minute() {
    let mut rng = Rng(2);
    let mut m = 5_000i64;
    let slots: Vec<(u16, Agg)> = (0..1440u16)
        .map(|s| {
            let base = DAY_MS + i64::from(s) * 60_000;
            let mut g = GaugeAgg::single(m as f64 / 100.0, base);
            for i in 1..6 {
                m += rng.below(21) - 10;
                g.merge(&GaugeAgg::single(m as f64 / 100.0, base + i * 10_000));
            }
            (s, Agg::Gauge(g))
        })
        .collect();
    let bytes = round_trip(Kind::Gauge, &slots);
    per_slot(
        "gauge, 6 points a minute (sum often not decimal)",
        &bytes,
        1440,
    );
}

#[test]
fn small_integer_counter_takes_about_a_byte_per_slot() {
    let mut rng = Rng(3);
    let slots: Vec<(u16, Agg)> = (0..1440u16)
        .map(|s| (s, Agg::Counter(rng.below(10) as f64)))
        .collect();
    let bytes = round_trip(Kind::Counter, &slots);
    assert!(per_slot("counter, integers 0..=9", &bytes, 1440) <= 1.0);
    let mut sparse = Vec::new();
    for s in 0..1440u16 {
        if rng.below(3) == 0 {
            sparse.push((s, Agg::Counter(1.0 + rng.below(3) as f64)));
        }
    }
    let bytes = round_trip(Kind::Counter, &sparse);
    assert!(
        per_slot(
            "counter, 1..=3 in a third of the minutes",
            &bytes,
            sparse.len()
        ) <= 1.0
    );
}

#[test]
fn distribution_size() {
    let mut rng = Rng(4);
    let slots: Vec<(u16, Agg)> = (0..1440u16)
        .map(|s| {
            // 20 to 200 latencies a minute, log-normal around 20 ms, in µs.
            let mut d: Option<DistAgg> = None;
            for _ in 0..20 + rng.below(181) {
                let normal = (-2.0 * rng.unit().max(1e-12).ln()).sqrt()
                    * (std::f64::consts::TAU * rng.unit()).cos();
                let v = ((3.0 + 0.6 * normal).exp() * 1000.0).round() / 1000.0;
                match &mut d {
                    Some(d) => d.merge(&DistAgg::single(v)),
                    None => d = Some(DistAgg::single(v)),
                }
            }
            (
                s,
                Agg::Distribution(Box::new(d.unwrap_or_else(|| DistAgg::single(0.0)))),
            )
        })
        .collect();
    let bins: usize = slots
        .iter()
        .map(|(_, a)| match a {
            Agg::Distribution(d) => d.sketch.pos_bins().len(),
            _ => 0,
        })
        .sum();
    let bytes = round_trip(Kind::Distribution, &slots);
    let b = per_slot(
        "distribution, 20..200 log-normal latencies a minute",
        &bytes,
        1440,
    );
    eprintln!(
        "codec size: ... {:.1} sketch bins/slot, {:.2} bytes/bin",
        bins as f64 / 1440.0,
        b * 1440.0 / bins as f64
    );
}

#[test]
fn edge_blocks_round_trip() {
    for kind in [Kind::Counter, Kind::Gauge, Kind::Distribution] {
        round_trip(kind, &[]);
    }
    round_trip(
        Kind::Counter,
        &[(0, Agg::Counter(-0.0)), (u16::MAX, Agg::Counter(f64::NAN))],
    );
    // Out of contract, but still given back as it was rather than garbled.
    let unsorted = [
        (5, Agg::Counter(1.0)),
        (2, Agg::Counter(2.0)),
        (2, Agg::Counter(3.0)),
    ];
    round_trip(Kind::Counter, &unsorted);
    let weird = GaugeAgg {
        count: 1,
        min: -0.0,
        ..GaugeAgg::single(0.0, i64::MIN)
    };
    let many = GaugeAgg {
        count: u64::MAX,
        ..GaugeAgg::single(0.1 + 0.2, i64::MAX)
    };
    round_trip(
        Kind::Gauge,
        &[(7, Agg::Gauge(weird)), (9, Agg::Gauge(many))],
    );
    let sketch = Sketch::from_parts(
        vec![(i32::MIN, 0.5), (i32::MAX, 1.0)],
        vec![(3, -0.0)],
        1e300,
    );
    let d = DistAgg {
        count: 0.25,
        sum: f64::MAX,
        min: f64::MIN,
        max: 5e-324,
        sketch,
    };
    round_trip(Kind::Distribution, &[(1, Agg::Distribution(Box::new(d)))]);
}

/// The compressor is reused from block to block: each stream must stand
/// alone whatever came before it (small, empty, incompressible, large).
#[test]
fn reused_compressor_gives_independent_streams() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let payloads = [
        b"minute".repeat(500),
        Vec::new(),
        noise(300_000),
        vec![7u8; 1],
        noise(10),
        b"abc".repeat(100_000),
    ];
    for _ in 0..2 {
        for p in &payloads {
            for kind in [Kind::Gauge, Kind::Counter, Kind::Distribution] {
                assert_eq!(&inflate(&deflate(kind, p)).unwrap(), p);
            }
        }
    }
}

#[test]
fn stored_fallback_is_valid_deflate() {
    for n in [0usize, 1, 0xFFFF, 0x1_0000, 200_000] {
        let payload: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
        assert_eq!(inflate(&stored_deflate(&payload)).unwrap(), payload);
    }
}

fn sample_block() -> Vec<u8> {
    let slots: Vec<(u16, Agg)> = (0..60u16)
        .map(|s| {
            (
                s,
                Agg::Gauge(GaugeAgg::single(f64::from(s) * 0.5, DAY_MS + i64::from(s))),
            )
        })
        .collect();
    encode_block(Kind::Gauge, &slots)
}

#[test]
fn every_damaged_byte_is_a_checksum_error() {
    let good = sample_block();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            let err = decode_block(&bad).unwrap_err();
            assert!(
                matches!(err, CodecError::Checksum { .. }),
                "byte {i}: {err}"
            );
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let good = sample_block();
    for len in 0..good.len() {
        match decode_block(&good[..len]) {
            Err(CodecError::TooShort(_)) => assert!(len < FRAME_LEN),
            Err(CodecError::Checksum { .. }) => assert!(len >= FRAME_LEN),
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn frame_and_payload_errors_say_what_is_wrong() {
    let payload = layout::encode(Kind::Counter, &[(3, Agg::Counter(1.0))]);
    let reframe = |version: u8, kind: u8, stream: Vec<u8>| {
        let mut out = vec![version, kind];
        out.extend(stream);
        let crc = crc32fast::hash(&out);
        out.extend(crc.to_le_bytes());
        out
    };
    type Case = (&'static str, Vec<u8>, fn(&CodecError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "newer version",
            reframe(2, 2, deflate(Kind::Counter, &payload)),
            |e| matches!(e, CodecError::Version(2)),
        ),
        (
            "unknown kind",
            reframe(1, 9, deflate(Kind::Counter, &payload)),
            |e| matches!(e, CodecError::Kind(9)),
        ),
        ("not deflate", reframe(1, 2, vec![0xFF; 8]), |e| {
            matches!(e, CodecError::Deflate(_))
        }),
        (
            "payload cut",
            frame(2, &payload[..payload.len() - 1]),
            |e| matches!(e, CodecError::Truncated(_)),
        ),
        (
            "trailing bytes",
            frame(2, &[payload.clone(), vec![0]].concat()),
            |e| matches!(e, CodecError::Malformed(_)),
        ),
        ("bad column tag", frame(2, &[1, 2, 0x7F]), |e| {
            matches!(e, CodecError::Malformed(_))
        }),
        (
            "slot past u16",
            frame(2, &[1, 0x80, 0x80, 0x08, 0, 2]),
            |e| matches!(e, CodecError::Malformed(_)),
        ),
        (
            "huge count",
            frame(3, &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            |e| matches!(e, CodecError::Malformed(_)),
        ),
        (
            "bad sketch flags",
            frame(3, &[1, 0, 0, 2, 0, 2, 0, 2, 0, 2, 0x42]),
            |e| matches!(e, CodecError::Malformed(_)),
        ),
        ("wrong kind's payload", frame(3, &payload), |e| {
            matches!(e, CodecError::Truncated(_))
        }),
    ];
    for (what, bytes, ok) in cases {
        let err = decode_block(&bytes).unwrap_err();
        assert!(ok(&err), "{what}: {err}");
        eprintln!("{what}: {err}");
    }
}

#[test]
fn payload_cannot_inflate_past_the_bound() {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..=MAX_PAYLOAD >> 20 {
        enc.write_all(&zeros).unwrap();
    }
    let mut block = vec![VERSION, Kind::Counter.code()];
    block.extend(enc.finish().unwrap());
    let crc = crc32fast::hash(&block);
    block.extend(crc.to_le_bytes());
    assert!(matches!(decode_block(&block), Err(CodecError::TooLarge)));
}

fn float(decimal_only: bool) -> BoxedStrategy<f64> {
    let decimal =
        (-1_000_000_000i64..1_000_000_000, 0i32..7).prop_map(|(m, e)| m as f64 / 10f64.powi(e));
    if decimal_only {
        return decimal.boxed();
    }
    prop_oneof![
        4 => decimal,
        4 => any::<f64>(),
        1 => (1u64..1 << 52).prop_map(f64::from_bits),
        1 => (1u64..1 << 52).prop_map(|b| -f64::from_bits(b)),
        1 => prop::sample::select(vec![
            -0.0, 0.0, 0.1 + 0.2, f64::MAX, f64::MIN, f64::MIN_POSITIVE, f64::EPSILON,
            5e-324, 9007199254740993.0, 1e300, -1e-300, f64::INFINITY, f64::NEG_INFINITY,
        ]),
    ]
    .boxed()
}

fn slot_numbers() -> impl Strategy<Value = Vec<u16>> {
    prop_oneof![
        prop::collection::btree_set(0u16..1440, 0..120),
        prop::collection::btree_set(any::<u16>(), 0..40),
        (0u16..1400, 1u16..40).prop_map(|(a, n)| [a, a + n].into()),
    ]
    .prop_map(|s| s.into_iter().collect())
}

fn counter(decimal: bool) -> impl Strategy<Value = Agg> {
    float(decimal).prop_map(Agg::Counter)
}

fn gauge(decimal: bool) -> impl Strategy<Value = Agg> {
    let ts = prop_oneof![
        any::<i64>(),
        (0i64..1440).prop_map(|s| DAY_MS + s * 60_000 + 5_000)
    ];
    let single = (float(decimal), ts.clone()).prop_map(|(v, t)| GaugeAgg::single(v, t));
    let count = prop_oneof![Just(1u64), 2u64..100, any::<u64>()];
    let full = (
        float(decimal),
        ts,
        float(decimal),
        float(decimal),
        float(decimal),
        count,
    )
        .prop_map(|(last, last_ms, min, max, sum, count)| GaugeAgg {
            last,
            last_ms,
            min,
            max,
            sum,
            count,
        });
    prop_oneof![3 => single, 1 => full].prop_map(Agg::Gauge)
}

fn sketch_count(decimal: bool) -> BoxedStrategy<f64> {
    prop_oneof![3 => (1u64..1000).prop_map(|c| c as f64), 1 => float(decimal)].boxed()
}

fn distribution(decimal: bool) -> impl Strategy<Value = Agg> {
    let key = prop_oneof![-40_000i32..40_000, any::<i32>()];
    let store = || {
        prop::collection::btree_map(key.clone(), sketch_count(decimal), 0..30)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
    };
    let sketch = (store(), store(), sketch_count(decimal))
        .prop_map(|(pos, neg, zero)| Sketch::from_parts(pos, neg, zero));
    (
        float(decimal),
        float(decimal),
        float(decimal),
        float(decimal),
        sketch,
    )
        .prop_map(|(count, sum, min, max, sketch)| {
            Agg::Distribution(Box::new(DistAgg {
                count,
                sum,
                min,
                max,
                sketch,
            }))
        })
}

/// Slot numbers and one aggregate each; half the cases keep every float
/// decimal, so that both column encodings get exercised.
pub(super) fn block(kind: Kind) -> impl Strategy<Value = Vec<(u16, Agg)>> {
    (slot_numbers(), any::<bool>()).prop_flat_map(move |(nums, dec)| {
        let agg = match kind {
            Kind::Counter => counter(dec).boxed(),
            Kind::Gauge => gauge(dec).boxed(),
            Kind::Distribution => distribution(dec).boxed(),
        };
        let n = nums.len();
        prop::collection::vec(agg, n).prop_map(move |aggs| nums.iter().copied().zip(aggs).collect())
    })
}

proptest! {
    #[test]
    fn counters_round_trip(slots in block(Kind::Counter)) {
        let (kind, back) = decode_block(&encode_block(Kind::Counter, &slots)).unwrap();
        prop_assert_eq!(kind, Kind::Counter);
        prop_assert_eq!(flat(&back), flat(&slots));
    }

    #[test]
    fn gauges_round_trip(slots in block(Kind::Gauge)) {
        let (kind, back) = decode_block(&encode_block(Kind::Gauge, &slots)).unwrap();
        prop_assert_eq!(kind, Kind::Gauge);
        prop_assert_eq!(flat(&back), flat(&slots));
    }

    #[test]
    fn distributions_round_trip(slots in block(Kind::Distribution)) {
        let (kind, back) = decode_block(&encode_block(Kind::Distribution, &slots)).unwrap();
        prop_assert_eq!(kind, Kind::Distribution);
        prop_assert_eq!(flat(&back), flat(&slots));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_block(&bytes);
    }

    /// Arbitrary payloads behind a valid frame reach every parser path.
    #[test]
    fn arbitrary_payloads_never_panic(kind in 0u8..5, payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_block(&frame(kind, &payload));
    }

    /// Damage to a real payload, re-framed so the checksum passes.
    #[test]
    fn damaged_payloads_never_panic(
        slots in block(Kind::Distribution),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
        cut in any::<prop::sample::Index>(),
    ) {
        let mut payload = layout::encode(Kind::Distribution, &slots);
        if !payload.is_empty() {
            let i = at.index(payload.len());
            payload[i] ^= xor;
            payload.truncate(cut.index(payload.len() + 1).max(i));
        }
        for kind in 1..=3 {
            let _ = decode_block(&frame(kind, &payload));
        }
    }
}

/// Every part of a block, decoded by a [`PartReader`], as bits.
fn parts(
    reader: &mut PartReader,
    bytes: &[u8],
    part: Part,
) -> Result<Vec<(u16, u64, i64)>, CodecError> {
    let mut out = Vec::new();
    reader.decode(bytes, part, &mut |slot, s| {
        out.push((slot, s.v.to_bits(), s.w))
    })?;
    Ok(out)
}

/// The same, through the whole-aggregate decoder.
fn parts_of_whole(bytes: &[u8], part: Part) -> Vec<(u16, u64, i64)> {
    let (_, slots) = decode_block(bytes).unwrap();
    slots
        .iter()
        .filter_map(|(slot, a)| part.of(a).map(|s| (*slot, s.v.to_bits(), s.w)))
        .collect()
}

const PARTS: [Part; 5] = [Part::Sum, Part::Last, Part::Mean, Part::Min, Part::Max];

#[test]
fn part_reader_reports_damage_and_the_bound() {
    let mut reader = PartReader::default();
    let good = sample_block();
    for len in 0..good.len() {
        assert!(parts(&mut reader, &good[..len], Part::Last).is_err());
    }
    // A cut deflate stream behind a valid checksum.
    let payload = layout::encode(Kind::Counter, &[(3, Agg::Counter(1.0))]);
    let stream = deflate(Kind::Counter, &payload);
    let mut cut = vec![VERSION, Kind::Counter.code()];
    cut.extend_from_slice(&stream[..stream.len() - 2]);
    let crc = crc32fast::hash(&cut);
    cut.extend(crc.to_le_bytes());
    assert!(parts(&mut reader, &cut, Part::Sum).is_err());
    // The reader still reads good blocks after errors.
    assert_eq!(
        parts(&mut reader, &good, Part::Last).unwrap(),
        parts_of_whole(&good, Part::Last)
    );

    let mut enc = DeflateEncoder::new(Vec::new(), Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..=MAX_PAYLOAD >> 20 {
        enc.write_all(&zeros).unwrap();
    }
    let mut block = vec![VERSION, Kind::Counter.code()];
    block.extend(enc.finish().unwrap());
    let crc = crc32fast::hash(&block);
    block.extend(crc.to_le_bytes());
    assert!(matches!(
        parts(&mut reader, &block, Part::Sum),
        Err(CodecError::TooLarge)
    ));
}

proptest! {
    /// A part reader gives what the whole decoder gives reduced to the
    /// part, bit for bit, for blocks of any size read one after another.
    #[test]
    fn parts_decode_like_whole_blocks(
        counters in block(Kind::Counter),
        gauges in block(Kind::Gauge),
        dists in block(Kind::Distribution),
    ) {
        let mut reader = PartReader::default();
        for bytes in [
            encode_block(Kind::Counter, &counters),
            encode_block(Kind::Gauge, &gauges),
            encode_block(Kind::Distribution, &dists),
        ] {
            for part in PARTS {
                prop_assert_eq!(parts(&mut reader, &bytes, part).unwrap(), parts_of_whole(&bytes, part));
            }
        }
    }

    #[test]
    fn damaged_payloads_never_panic_the_part_reader(
        slots in block(Kind::Gauge),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
        cut in any::<prop::sample::Index>(),
    ) {
        let mut payload = layout::encode(Kind::Gauge, &slots);
        if !payload.is_empty() {
            let i = at.index(payload.len());
            payload[i] ^= xor;
            payload.truncate(cut.index(payload.len() + 1).max(i));
        }
        let mut reader = PartReader::default();
        for kind in 1..=3 {
            for part in PARTS {
                let _ = parts(&mut reader, &frame(kind, &payload), part);
            }
        }
    }
}

#[test]
fn inflate_exact_checks_the_length_it_is_told() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let deflated = crate::codec::deflate_dense(&data);
    assert_eq!(
        crate::codec::inflate_exact(&deflated, data.len(), 1 << 20).unwrap(),
        data
    );
    // Shorter or longer than the stream: an error, not a cut or padded copy.
    assert!(crate::codec::inflate_exact(&deflated, data.len() - 1, 1 << 20).is_err());
    assert!(crate::codec::inflate_exact(&deflated, data.len() + 1, 1 << 20).is_err());
    // Over the limit, or more than deflate can reach from these bytes:
    // refused before anything is allocated.
    assert!(matches!(
        crate::codec::inflate_exact(&deflated, data.len(), 100),
        Err(CodecError::TooLarge)
    ));
    assert!(matches!(
        crate::codec::inflate_exact(&[0; 4], usize::MAX / 2, usize::MAX),
        Err(CodecError::TooLarge)
    ));
}
