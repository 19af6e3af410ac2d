//! Float columns. Each column picks its own encoding, named by a tag byte:
//!
//! - **decimal** (tags `0x00..=0x1F`): every value is exactly `m / 10^e`
//!   for one `e` in 0..=15 (the low four bits) and integers `|m| < 2^53`,
//!   as most metrics are ("12.34", "7"). The `m` are stored as zigzag
//!   varints, of their deltas (bit `0x10` clear: random walks, gauges) or
//!   as they are (bit `0x10` set: independent values, counters), whichever
//!   looks smaller.
//!   With bit `0x40` set (*split*), the zigzag numbers are written in two
//!   runs: first the low seven bits of each as one byte, then the rest of
//!   each as a varint. Deflate codes each byte with one table; a two-byte
//!   varint mixes a near-uniform low byte with a small high one, and
//!   keeping them apart saves about two bits a number (gauges that move by
//!   more than 63 units a minute).
//! - **xor** (tag `0x20`): anything else (`0.1 + 0.2`, `-0.0`, huge,
//!   subnormal, non-finite): each value's bits XOR the previous value's, as
//!   a varint; close values share sign, exponent and top mantissa bits, so
//!   the XOR is a smaller number.
//!
//! Both decode to the very same bits: decimal is only chosen when
//! `m as f64 / 10^e` reproduces every value bit for bit, and decoding
//! computes that same expression.

use super::varint::{put_uvarint, unzigzag, zigzag, Reader};
use super::CodecError;

const RAW_MANTISSAS: u8 = 0x10;
const TAG_XOR: u8 = 0x20;
const SPLIT: u8 = 0x40;

/// Powers of ten as literals: all are exact in f64 (up to 10^22), so
/// encoder and decoder divide by the same number on every platform.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Mantissas stay below 2^53 so that `m as f64` is exact.
const MANTISSA_LIMIT: i64 = 1 << 53;

pub fn put_floats(out: &mut Vec<u8>, vals: &[f64]) {
    let Some((e, ms)) = decimal(vals) else {
        out.push(TAG_XOR);
        let mut prev = 0u64;
        for v in vals {
            put_uvarint(out, v.to_bits() ^ prev);
            prev = v.to_bits();
        }
        return;
    };
    // Significant bits are a fair proxy for what deflate's Huffman stage
    // will spend on each number.
    let bits = |d: i64| u64::from(64 - zigzag(d).leading_zeros());
    let raw_cost: u64 = ms.iter().map(|&m| bits(m)).sum();
    let delta_cost: u64 = deltas(&ms).map(bits).sum();
    let nums: Vec<u64> = if raw_cost < delta_cost {
        ms.iter().map(|&m| zigzag(m)).collect()
    } else {
        deltas(&ms).map(zigzag).collect()
    };
    let mode = if raw_cost < delta_cost {
        RAW_MANTISSAS
    } else {
        0
    };
    // Split pays when most numbers take two bytes or more.
    if 2 * nums.iter().filter(|&&z| z >= 0x80).count() > nums.len() {
        out.push(SPLIT | mode | e);
        out.extend(nums.iter().map(|&z| (z & 0x7F) as u8));
        nums.iter().for_each(|&z| put_uvarint(out, z >> 7));
    } else {
        out.push(mode | e);
        nums.iter().for_each(|&z| put_uvarint(out, z));
    }
}

pub fn get_floats(r: &mut Reader, n: usize, what: &'static str) -> Result<Vec<f64>, CodecError> {
    let mut out = Vec::with_capacity(n.min(r.remaining()));
    get_floats_into(r, n, what, &mut out)?;
    Ok(out)
}

/// [`get_floats`] into a buffer the caller reuses (cleared first).
pub fn get_floats_into(
    r: &mut Reader,
    n: usize,
    what: &'static str,
    out: &mut Vec<f64>,
) -> Result<(), CodecError> {
    out.clear();
    let tag = r.u8(what)?;
    out.reserve(n.min(r.remaining()));
    match tag {
        TAG_XOR => {
            let mut bits = 0u64;
            for _ in 0..n {
                bits ^= r.uvarint(what)?;
                out.push(f64::from_bits(bits));
            }
        }
        0x00..=0x1F => {
            let pow = POW10[usize::from(tag & 0x0F)];
            let raw = tag & RAW_MANTISSAS != 0;
            let mut m = 0i64;
            for _ in 0..n {
                let d = r.ivarint(what)?;
                // Wrapping: damaged deltas must not panic on overflow.
                m = if raw { d } else { m.wrapping_add(d) };
                out.push(m as f64 / pow);
            }
        }
        0x40..=0x5F => {
            let pow = POW10[usize::from(tag & 0x0F)];
            let raw = tag & RAW_MANTISSAS != 0;
            let low = r.bytes(n, what)?;
            let mut m = 0i64;
            for &lo in low {
                let high = r.uvarint(what)?;
                if high >> 57 != 0 || lo > 0x7F {
                    return Err(CodecError::Malformed(format!(
                        "{what}: split number out of range"
                    )));
                }
                let d = unzigzag(high << 7 | u64::from(lo));
                m = if raw { d } else { m.wrapping_add(d) };
                out.push(m as f64 / pow);
            }
        }
        t => {
            return Err(CodecError::Malformed(format!(
                "{what}: unknown column encoding {t:#04x}"
            )))
        }
    }
    Ok(())
}

fn deltas(ms: &[i64]) -> impl Iterator<Item = i64> + '_ {
    // |m| < 2^53, so deltas cannot overflow.
    ms.iter().scan(0i64, |prev, &m| {
        let d = m - *prev;
        *prev = m;
        Some(d)
    })
}

/// The smallest common exponent and the mantissas, if the whole column is
/// decimal.
fn decimal(vals: &[f64]) -> Option<(u8, Vec<i64>)> {
    let mut e = 0;
    'exponent: loop {
        let mut ms = Vec::with_capacity(vals.len());
        for &v in vals {
            match mantissa(v, e) {
                Some(m) => ms.push(m),
                None => {
                    // Raise e to what this value needs and start over; a
                    // larger e can fail earlier values only near 2^53.
                    e = (e + 1..POW10.len()).find(|&e| mantissa(v, e).is_some())?;
                    continue 'exponent;
                }
            }
        }
        return Some((e as u8, ms));
    }
}

/// The `m` with `m as f64 / 10^e == v` bit for bit, if there is one.
fn mantissa(v: f64, e: usize) -> Option<i64> {
    let pow = POW10[e];
    let guess = (v * pow).round();
    if guess.is_nan() || guess.abs() >= MANTISSA_LIMIT as f64 {
        return None;
    }
    let guess = guess as i64;
    // `v * pow` is rounded once more, so the true m may be a neighbour.
    [guess, guess - 1, guess + 1]
        .into_iter()
        .find(|&m| m.abs() < MANTISSA_LIMIT && (m as f64 / pow).to_bits() == v.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag_of(vals: &[f64]) -> u8 {
        let mut out = Vec::new();
        put_floats(&mut out, vals);
        let back = get_floats(&mut Reader::new(&out), vals.len(), "t").unwrap();
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(vals));
        out[0]
    }

    #[test]
    fn picks_the_encoding_per_column() {
        assert_eq!(tag_of(&[12.34, 12.35, 12.3, 12.0]), 2);
        assert_eq!(tag_of(&[1.0, 2.0, 3.0, 4.0]), 0);
        assert_eq!(tag_of(&[5.0, 0.0, 9.0, 1.0, 8.0, 0.0]), RAW_MANTISSAS);
        assert_eq!(tag_of(&[0.000000000000001, 1.0]), 15);
        assert_eq!(tag_of(&[1.0, 0.1 + 0.2]), TAG_XOR);
        assert_eq!(tag_of(&[-0.0]), TAG_XOR);
        assert_eq!(tag_of(&[1e300]), TAG_XOR);
        assert_eq!(tag_of(&[9007199254740992.0]), TAG_XOR);
        assert_eq!(tag_of(&[f64::NAN, f64::INFINITY]), TAG_XOR);
        assert_eq!(tag_of(&[]), 0);
        // Steps of up to 10.00 in cents: most deltas take two bytes.
        let walk: Vec<f64> = (0..100)
            .map(|i| (10_000 + (i * 7_919) % 2_001) as f64 / 100.0)
            .collect();
        assert_eq!(tag_of(&walk), SPLIT | 2);
        let big: Vec<f64> = (0..10).map(|i| (i * 1_000_003 % 97_001) as f64).collect();
        assert_ne!(tag_of(&big) & SPLIT, 0);
    }

    #[test]
    fn unknown_tag_is_an_error() {
        let r = get_floats(&mut Reader::new(&[0x21, 0]), 1, "t");
        assert!(matches!(r, Err(CodecError::Malformed(_))));
    }
}
