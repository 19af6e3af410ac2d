//! Byte-level primitives of the block payload: LEB128 varints, zigzag for
//! signed numbers, and a bounds-checked reader that reports, rather than
//! panics on, a payload that ends early or holds an impossible number.

use super::CodecError;

/// Appends `v` as an unsigned LEB128 varint (7 bits a byte, low first).
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-mapped, so small negative numbers stay short too.
pub fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn too_long(what: &str) -> CodecError {
    CodecError::Malformed(format!("{what}: varint longer than 64 bits"))
}

/// Reads a payload front to back. Every read names what it was reading so
/// that an error says where the payload went wrong.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    /// Eight little-endian bytes holding an f64's bits.
    pub fn f64_bits(&mut self, what: &'static str) -> Result<f64, CodecError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_bits(u64::from_le_bytes(a)))
    }

    #[inline]
    pub fn uvarint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        // Most numbers of a block fit in one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.uvarint_long(what)
    }

    fn uvarint_long(&mut self, what: &'static str) -> Result<u64, CodecError> {
        // With ten bytes at hand (all but a payload's last numbers), one
        // bounds check for the whole varint.
        if let Some(bytes) = self.buf.get(self.pos..self.pos + 10) {
            let mut v = 0u64;
            for (i, &b) in bytes.iter().enumerate() {
                if i == 9 && b > 1 {
                    break;
                }
                v |= u64::from(b & 0x7F) << (7 * i);
                if b & 0x80 == 0 {
                    self.pos += i + 1;
                    return Ok(v);
                }
            }
            return Err(too_long(what));
        }
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8(what)?;
            // The tenth byte may only carry the 64th bit.
            if i == 9 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(too_long(what))
    }

    #[inline]
    pub fn ivarint(&mut self, what: &'static str) -> Result<i64, CodecError> {
        self.uvarint(what).map(unzigzag)
    }

    /// A count of items that each take at least one byte further on: a
    /// count beyond the bytes left is damage, and refusing it here keeps a
    /// hostile count from reserving memory.
    pub fn item_count(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let n = self.uvarint(what)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(CodecError::Malformed(format!(
                "{what}: {n} items but only {} bytes left",
                self.remaining()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        let us = [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX];
        let is = [0, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN];
        let mut out = Vec::new();
        us.iter().for_each(|&u| put_uvarint(&mut out, u));
        is.iter().for_each(|&i| put_ivarint(&mut out, i));
        let mut r = Reader::new(&out);
        for &u in &us {
            assert_eq!(r.uvarint("u").unwrap(), u);
        }
        for &i in &is {
            assert_eq!(r.ivarint("i").unwrap(), i);
        }
        assert_eq!(r.remaining(), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    /// The varint as read a byte at a time, each byte bounds-checked.
    fn reference(buf: &[u8]) -> Option<(u64, usize)> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *buf.get(i)?;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Some((v, i + 1));
            }
        }
        None
    }

    proptest::proptest! {
        /// Whatever the bytes and however many follow, a varint reads as
        /// it does a byte at a time.
        #[test]
        fn varints_read_as_byte_by_byte(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![proptest::prelude::any::<u8>(), 0x80u8..=0xFF, proptest::prelude::Just(0xFFu8)],
                0..24,
            ),
        ) {
            let mut r = Reader::new(&bytes);
            let got = r.uvarint("x").ok().map(|v| (v, r.pos));
            proptest::prop_assert_eq!(got, reference(&bytes));
        }
    }

    #[test]
    fn bad_varints_are_errors() {
        let eleven = [0xFFu8; 11];
        assert!(matches!(
            Reader::new(&eleven).uvarint("x"),
            Err(CodecError::Malformed(_))
        ));
        let mut too_big = vec![0xFFu8; 9];
        too_big.push(0x02);
        assert!(Reader::new(&too_big).uvarint("x").is_err());
        assert!(matches!(
            Reader::new(&[0x80]).uvarint("x"),
            Err(CodecError::Truncated("x"))
        ));
        assert!(Reader::new(&[5, 0, 0]).item_count("n").is_err());
        assert_eq!(Reader::new(&[2, 0, 0]).item_count("n").unwrap(), 2);
    }
}
