//! The distribution reader gives what the whole decoder gives, bit for
//! bit, and fails where it fails.

use super::tests::{bits, block, frame};
use super::*;
use minutely_core::DistAgg;
use proptest::prelude::*;

/// Every slot a [`PartReader`] hands over, as the bits of the aggregate.
fn dists(
    reader: &mut PartReader,
    bytes: &[u8],
    sketches: bool,
) -> Result<Vec<(u16, Vec<u64>)>, CodecError> {
    let mut out = Vec::new();
    reader.decode_dists_keeping(bytes, sketches, |_, _| {}, &mut |slot, (s, pos, neg)| {
        let d = DistAgg::from_row(s, pos, neg);
        out.push((slot, bits(&Agg::Distribution(Box::new(d)))));
    })?;
    Ok(out)
}

/// The same, through the whole-aggregate decoder (sketches emptied
/// without `sketches`).
fn dists_of_whole(bytes: &[u8], sketches: bool) -> Result<Vec<(u16, Vec<u64>)>, CodecError> {
    let (kind, slots) = decode_block(bytes)?;
    let strip = |a: &Agg| match (a, sketches) {
        (Agg::Distribution(d), false) => {
            let mut d = d.clone();
            d.sketch = minutely_core::Sketch::new();
            Agg::Distribution(d)
        }
        _ => a.clone(),
    };
    Ok(match kind {
        Kind::Distribution => slots.iter().map(|(s, a)| (*s, bits(&strip(a)))).collect(),
        _ => Vec::new(),
    })
}

proptest! {
    /// Blocks of any size, read one after another by one reader; blocks
    /// of other kinds give nothing.
    #[test]
    fn dists_decode_like_whole_blocks(
        a in block(Kind::Distribution),
        b in block(Kind::Distribution),
        counters in block(Kind::Counter),
        gauges in block(Kind::Gauge),
    ) {
        let mut reader = PartReader::default();
        for bytes in [
            encode_block(Kind::Distribution, &a),
            encode_block(Kind::Counter, &counters),
            encode_block(Kind::Distribution, &b),
            encode_block(Kind::Gauge, &gauges),
        ] {
            for sketches in [true, false] {
                prop_assert_eq!(
                    dists(&mut reader, &bytes, sketches).unwrap(),
                    dists_of_whole(&bytes, sketches).unwrap()
                );
            }
        }
    }

    /// Damage to a real payload (re-framed so the checksum passes) is an
    /// error for both decoders or for neither, and then they agree.
    #[test]
    fn damaged_dists_fail_like_whole_blocks(
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
        let mut reader = PartReader::default();
        let bytes = frame(Kind::Distribution.code(), &payload);
        match (dists(&mut reader, &bytes, true), dists_of_whole(&bytes, true)) {
            (Ok(got), Ok(whole)) => prop_assert_eq!(got, whole),
            (Err(_), Err(_)) => {}
            (got, whole) => prop_assert!(false, "{:?} vs {:?}", got, whole),
        }
    }
}
