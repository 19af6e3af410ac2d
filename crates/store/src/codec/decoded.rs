//! One part of a block's slots, decoded once and kept compact, so that a
//! block cache can hand it out again without reading a column: a warm
//! wide query then spends nothing on varints and floats.
//!
//! A day of single gauge points keeps 12 bytes a slot: the slot numbers
//! are a run (no bytes), the values eight bytes and the times four (as an
//! offset from the first; they span hours, not decades).

use super::layout::{decode_part, Columns};
use super::CodecError;
use minutely_core::{Kind, Part, Slim};

/// A block's slots of one part, as [`super::PartReader::decode`] hands
/// them over, bit for bit and in the same order.
#[derive(Debug)]
pub struct DecodedPart {
    slots: Slots,
    v: Box<[f64]>,
    w: Weights,
}

#[derive(Debug)]
enum Slots {
    /// `first, first + 1, ...`: a block without gaps.
    Run(u16),
    List(Box<[u16]>),
}

#[derive(Debug)]
enum Weights {
    /// Every `w` is 0 (sums, mins, maxes).
    Zero,
    /// `w[i] = base + off[i]`.
    Narrow(i64, Box<[i32]>),
    Wide(Box<[i64]>),
}

impl DecodedPart {
    /// Decodes `part` of a payload of `kind` with `cols` as scratch.
    pub fn decode(
        kind: Kind,
        payload: &[u8],
        part: Part,
        cols: &mut Columns,
    ) -> Result<DecodedPart, CodecError> {
        let (mut slots, mut v, mut w) = (Vec::new(), Vec::new(), Vec::new());
        decode_part(kind, payload, part, cols, &mut |slot, s: Slim| {
            slots.push(slot);
            v.push(s.v);
            w.push(s.w);
        })?;
        Ok(DecodedPart::new(&slots, v, &w))
    }

    fn new(slots: &[u16], v: Vec<f64>, w: &[i64]) -> DecodedPart {
        let run = slots
            .iter()
            .enumerate()
            .all(|(i, &s)| usize::from(s) == usize::from(slots[0]) + i);
        let slots = match slots.first() {
            Some(&first) if run => Slots::Run(first),
            None => Slots::Run(0),
            _ => Slots::List(slots.into()),
        };
        let base = w.first().copied().unwrap_or(0);
        let narrow: Option<Vec<i32>> = w
            .iter()
            .map(|&x| i32::try_from(x.wrapping_sub(base)).ok())
            .collect();
        let w = match narrow {
            _ if w.iter().all(|&x| x == 0) => Weights::Zero,
            Some(off) => Weights::Narrow(base, off.into()),
            None => Weights::Wide(w.into()),
        };
        DecodedPart {
            slots,
            v: v.into(),
            w,
        }
    }

    /// Bytes it holds, for a cache's budget.
    pub fn heap_bytes(&self) -> usize {
        let slots = match &self.slots {
            Slots::Run(_) => 0,
            Slots::List(s) => s.len() * 2,
        };
        let w = match &self.w {
            Weights::Zero => 0,
            Weights::Narrow(_, off) => off.len() * 4,
            Weights::Wide(w) => w.len() * 8,
        };
        slots + self.v.len() * 8 + w
    }

    /// The first slot and every slot's `v`, when the slots are a run
    /// without gaps (a day of minutes is): the values as stored, to copy.
    pub fn as_run(&self) -> Option<(u16, &[f64])> {
        match self.slots {
            Slots::Run(first) => Some((first, &self.v)),
            Slots::List(_) => None,
        }
    }

    /// Hands each slot's part to `out` in slot order.
    #[inline]
    pub fn for_each(&self, out: &mut impl FnMut(u16, Slim)) {
        self.for_each_within(0, usize::MAX, out);
    }

    /// [`DecodedPart::for_each`], leaving out some slots outside
    /// `lo..hi` (a query's range cuts a block): `out` must still check.
    #[inline]
    pub fn for_each_within(&self, lo: usize, hi: usize, out: &mut impl FnMut(u16, Slim)) {
        let n = self.v.len();
        match &self.slots {
            Slots::Run(first) => {
                let first = usize::from(*first);
                let range = lo.saturating_sub(first).min(n)..hi.saturating_sub(first).min(n);
                self.with_weights(range, out, |i| (first + i) as u16)
            }
            Slots::List(s) => self.with_weights(0..n, out, |i| s[i]),
        }
    }

    #[inline(always)]
    fn with_weights(
        &self,
        range: std::ops::Range<usize>,
        out: &mut impl FnMut(u16, Slim),
        slot: impl Fn(usize) -> u16,
    ) {
        let v = &self.v[range.clone()];
        let start = range.start;
        match &self.w {
            Weights::Zero => {
                for (i, &v) in v.iter().enumerate() {
                    out(slot(start + i), Slim { v, w: 0 });
                }
            }
            Weights::Narrow(base, off) => {
                for (i, (&v, &o)) in v.iter().zip(&off[range]).enumerate() {
                    let w = base.wrapping_add(i64::from(o));
                    out(slot(start + i), Slim { v, w });
                }
            }
            Weights::Wide(w) => {
                for (i, (&v, &w)) in v.iter().zip(&w[range]).enumerate() {
                    out(slot(start + i), Slim { v, w });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn back(d: &DecodedPart) -> Vec<(u16, u64, i64)> {
        let mut got = Vec::new();
        d.for_each(&mut |slot, s| got.push((slot, s.v.to_bits(), s.w)));
        got
    }

    #[test]
    fn slot_numbers_that_wrap_are_not_a_run() {
        let d = DecodedPart::new(&[65_534, 65_535, 0], vec![1.0, 2.0, 3.0], &[0, 0, 0]);
        assert!(d.as_run().is_none());
        let slots: Vec<u16> = back(&d).iter().map(|r| r.0).collect();
        assert_eq!(slots, [65_534, 65_535, 0]);
        let d = DecodedPart::new(&[65_534, 65_535], vec![1.0, 2.0], &[0, 0]);
        assert_eq!(d.as_run(), Some((65_534, &[1.0, 2.0][..])));
    }

    proptest! {
        /// Whatever the slots and weights, they come back as given.
        #[test]
        fn keeps_slots_and_weights_exactly(
            rows in prop::collection::vec((0u16..3, any::<u64>(), prop_oneof![Just(0i64), -5i64..5, any::<i64>()]), 0..50),
            first in prop_oneof![Just(0u16), any::<u16>()],
            base in any::<i64>(),
            gaps in any::<bool>(),
        ) {
            let mut slot = first;
            let mut want = Vec::new();
            for (gap, v, w) in &rows {
                let w = if *w == 0 { 0 } else { base.wrapping_add(*w) };
                want.push((slot, *v, w));
                slot = slot.wrapping_add(1 + if gaps { *gap } else { 0 });
            }
            let slots: Vec<u16> = want.iter().map(|r| r.0).collect();
            let v: Vec<f64> = want.iter().map(|r| f64::from_bits(r.1)).collect();
            let w: Vec<i64> = want.iter().map(|r| r.2).collect();
            let d = DecodedPart::new(&slots, v, &w);
            prop_assert_eq!(back(&d), want.clone());
            if let Some((first, vs)) = d.as_run() {
                let run: Vec<(u16, u64)> = vs.iter().enumerate().map(|(i, v)| (first.wrapping_add(i as u16), v.to_bits())).collect();
                let all: Vec<(u16, u64)> = want.iter().map(|r| (r.0, r.1)).collect();
                prop_assert_eq!(run, all);
            } else {
                // Not a run: a gap, or slot numbers that wrap past 65535.
                let consecutive = want.windows(2).all(|w| usize::from(w[1].0) == usize::from(w[0].0) + 1);
                prop_assert!(!consecutive);
            }
            // Within a range of slots: at least those in it, in order.
            let (lo, hi) = (usize::from(first) + 3, usize::from(first) + 20);
            let mut within = Vec::new();
            d.for_each_within(lo, hi, &mut |slot, s| within.push((slot, s.v.to_bits(), s.w)));
            let inside = |r: &&(u16, u64, i64)| (lo..hi).contains(&usize::from(r.0));
            let got: Vec<_> = within.iter().filter(inside).copied().collect();
            let all: Vec<_> = want.iter().filter(inside).copied().collect();
            prop_assert_eq!(got, all);
            prop_assert!(within.iter().all(|r| want.contains(r)));
        }
    }
}
