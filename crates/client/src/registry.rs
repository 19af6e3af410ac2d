//! Sharded maps from what a call names (a helper's name and tags, or a
//! `metrics::Key`) to its series, hashed once: the hash picks the shard and
//! is the map key, so a lookup is one read lock, one probe and one compare.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{PoisonError, RwLock};

/// Shards of the registry: a power of two; 16 keeps two to a few dozen
/// threads recording different series off each other's read-lock cache line.
const SHARDS: usize = 16;

/// Passes a precomputed `u64` hash through.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than panic.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(K);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard<K, V> = RwLock<HashMap<u64, Vec<(K, V)>, BuildHasherDefault<IdHasher>>>;

/// Entries `(K, V)` grouped by hash; equal hashes are told apart by `eq`.
pub struct Registry<K, V> {
    shards: Box<[Shard<K, V>]>,
}

fn shard_of(hash: u64) -> usize {
    // Middle bits: the map itself uses the low bits and the top seven.
    (hash >> 32) as usize & (SHARDS - 1)
}

impl<K, V> Default for Registry<K, V> {
    fn default() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl<K, V> Registry<K, V> {
    /// Runs `f` on the value whose key has `hash` and satisfies `eq`, under
    /// the shard's read lock; `None` when there is no such entry.
    #[inline]
    pub fn with<R>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        f: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        let shard = self.shards[shard_of(hash)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let entries = shard.get(&hash)?;
        entries.iter().find(|(k, _)| eq(k)).map(|(_, v)| f(v))
    }

    /// Number of entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }

    /// Inserts `make()` unless an entry matching `eq` appeared meanwhile;
    /// runs `f` on whichever value is in the map.
    pub fn insert_with<R>(
        &self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, V),
        f: impl FnOnce(&V) -> R,
    ) -> R {
        let mut shard = self.shards[shard_of(hash)]
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let entries = shard.entry(hash).or_default();
        if let Some((_, v)) = entries.iter().find(|(k, _)| eq(k)) {
            return f(v);
        }
        entries.push(make());
        let (_, v) = entries.last().expect("just pushed");
        f(v)
    }
}

const K: u64 = 0x517c_c1b7_2722_0a95;

/// FxHash-style word hasher with a final mix, for names and tags: a few
/// nanoseconds for short strings, unlike SipHash.
struct Fx(u64);

impl Fx {
    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        // The length keeps "ab" + "c" apart from "a" + "bc".
        self.word(u64::from_le_bytes(last) ^ ((b.len() as u64) << 56));
    }

    /// murmur3's finaliser: spreads entropy to the low and middle bits.
    fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Hash of a helper call's name and tags, in the order given.
#[inline]
pub fn hash_call(name: &str, tags: &[(&str, &str)]) -> u64 {
    let mut h = Fx(0);
    h.bytes(name.as_bytes());
    for (k, v) in tags {
        h.bytes(k.as_bytes());
        h.bytes(v.as_bytes());
    }
    h.finish()
}

/// Hash of a `metrics::Key`: the one it computed when it was made.
#[inline]
pub fn hash_key(key: &metrics::Key) -> u64 {
    use std::hash::Hash;
    let mut h = IdHasher::default();
    key.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_separates_boundaries() {
        assert_ne!(
            hash_call("ab", &[("c", "d")]),
            hash_call("a", &[("bc", "d")])
        );
        assert_ne!(hash_call("a", &[("b", "c")]), hash_call("a", &[("bc", "")]));
        assert_eq!(hash_call("x", &[("k", "v")]), hash_call("x", &[("k", "v")]));
    }

    #[test]
    fn collisions_are_told_apart_by_key() {
        let r: Registry<&str, u32> = Registry::default();
        r.insert_with(7, |k| *k == "a", || ("a", 1), |_| ());
        r.insert_with(7, |k| *k == "b", || ("b", 2), |_| ());
        assert_eq!(r.with(7, |k| *k == "a", |v| *v), Some(1));
        assert_eq!(r.with(7, |k| *k == "b", |v| *v), Some(2));
        assert_eq!(r.with(7, |k| *k == "c", |v| *v), None);
        assert_eq!(r.insert_with(7, |k| *k == "a", || ("a", 9), |v| *v), 1);
    }
}
