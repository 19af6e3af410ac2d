//! Inflated payloads of recently read blocks, so that a dashboard asking
//! again for the same day skips the checksum and the inflate (most of a
//! wide query's time).
//!
//! An entry keeps the stored bytes it was inflated from, and a lookup
//! hands out the payload only when the block's current bytes equal them:
//! a block rewritten by a checkpoint (or read through an older snapshot)
//! simply misses, so the cache needs no invalidation to stay exact and may
//! be shared by every store of the process. Eviction is CLOCK (FIFO with
//! a second chance for entries used since they were last looked at).
//!
//! A block read for one part of its slots (a gauge's last, a counter's
//! sum: what wide queries read) keeps that part decoded instead of its
//! payload: a warm query then reads no column at all (the decoded part
//! of a day of gauge minutes, 12 bytes a slot, is larger than its
//! payload but costs nothing to read). A read of another part or of
//! whole slots misses and keeps the payload again.

use crate::codec::DecodedPart;
use minutely_core::{Kind, Part};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A block's key in the blocks table: series, resolution code, number.
pub type Key = (u64, u8, u32);

/// Size of the process's cache unless [`set_capacity`] says otherwise.
/// A wide query's blocks must fit, or each run evicts what the next needs:
/// a day of one field is about 17 KB decoded, so 256 MiB holds a day of
/// about 7,000 series (two day blocks each for "the last 24 hours").
/// At 5,000 series a metric, 64 MiB made the sum by region 3-4x slower.
pub const DEFAULT_BYTES: usize = 256 << 20;

/// Shards, each with its own lock: read threads rarely wait on each other.
const SHARDS: usize = 16;

/// Bookkeeping per entry beside its bytes (map slot, queue slot, headers).
const ENTRY_OVERHEAD: usize = 96;

static CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_BYTES);
static CACHE: OnceLock<PayloadCache> = OnceLock::new();

/// Sets the size of the process's cache (0 turns it off). Takes effect only
/// before the first block is read.
pub fn set_capacity(bytes: usize) {
    CAPACITY.store(bytes, Ordering::Relaxed);
}

/// The process's cache; `None` when its size is 0.
pub fn global() -> Option<&'static PayloadCache> {
    let cache = CACHE.get_or_init(|| PayloadCache::new(CAPACITY.load(Ordering::Relaxed)));
    (cache.shard_bytes > 0).then_some(cache)
}

pub struct PayloadCache {
    shards: Box<[Mutex<Shard>]>,
    shard_bytes: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Key, Entry>,
    /// Every key of `map` once, oldest first.
    queue: VecDeque<Key>,
    bytes: usize,
}

struct Entry {
    stored: Box<[u8]>,
    held: Held,
    used: bool,
}

enum Held {
    Payload(Kind, Arc<[u8]>),
    Part(Part, Arc<DecodedPart>),
}

impl Entry {
    fn weight(&self) -> usize {
        let held = match &self.held {
            Held::Payload(_, p) => p.len(),
            Held::Part(_, d) => d.heap_bytes(),
        };
        self.stored.len() + held + ENTRY_OVERHEAD
    }
}

impl PayloadCache {
    pub fn new(bytes: usize) -> PayloadCache {
        PayloadCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_bytes: bytes / SHARDS,
        }
    }

    fn shard(&self, key: Key) -> std::sync::MutexGuard<'_, Shard> {
        let h = key.0 ^ u64::from(key.2).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(key.1);
        let h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD) >> 32;
        self.shards[h as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The kind and payload of block `key` if it was cached from exactly
    /// `stored`.
    pub fn get(&self, key: Key, stored: &[u8]) -> Option<(Kind, Arc<[u8]>)> {
        let mut shard = self.shard(key);
        let entry = shard.map.get_mut(&key)?;
        let Held::Payload(kind, payload) = &entry.held else {
            return None;
        };
        if *entry.stored != *stored {
            return None;
        }
        entry.used = true;
        Some((*kind, payload.clone()))
    }

    /// The decoded `part` of block `key` if it was decoded from exactly
    /// `stored`.
    pub fn get_part(&self, key: Key, stored: &[u8], part: Part) -> Option<Arc<DecodedPart>> {
        let mut shard = self.shard(key);
        let entry = shard.map.get_mut(&key)?;
        let Held::Part(p, decoded) = &entry.held else {
            return None;
        };
        if *p != part || *entry.stored != *stored {
            return None;
        }
        entry.used = true;
        Some(decoded.clone())
    }

    /// Keeps `payload`, inflated from `stored` (whose frame was checked),
    /// in place of whatever block `key` had.
    pub fn insert(&self, key: Key, stored: &[u8], kind: Kind, payload: &[u8]) {
        self.keep(key, stored, Held::Payload(kind, payload.into()));
    }

    /// Keeps `part` of the block decoded from `stored` (whose frame was
    /// checked), in place of whatever block `key` had.
    pub fn insert_part(&self, key: Key, stored: &[u8], part: Part, decoded: Arc<DecodedPart>) {
        self.keep(key, stored, Held::Part(part, decoded));
    }

    fn keep(&self, key: Key, stored: &[u8], held: Held) {
        let entry = Entry {
            stored: stored.into(),
            held,
            used: false,
        };
        let weight = entry.weight();
        if weight > self.shard_bytes {
            return;
        }
        let mut shard = self.shard(key);
        match shard.map.insert(key, entry) {
            Some(old) => shard.bytes -= old.weight(),
            None => shard.queue.push_back(key),
        }
        shard.bytes += weight;
        shard.evict(self.shard_bytes);
    }
}

impl Shard {
    /// Drops entries, oldest unused first, until the shard fits `cap`.
    fn evict(&mut self, cap: usize) {
        while self.bytes > cap {
            let Some(key) = self.queue.pop_front() else {
                return;
            };
            let Some(entry) = self.map.get_mut(&key) else {
                continue;
            };
            if entry.used {
                entry.used = false;
                self.queue.push_back(key);
            } else if let Some(gone) = self.map.remove(&key) {
                self.bytes -= gone.weight();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_only_what_was_inflated_from_the_same_bytes() {
        let cache = PayloadCache::new(1 << 20);
        let key = (7, 0, 20_000);
        assert!(cache.get(key, b"old").is_none());
        cache.insert(key, b"old", Kind::Counter, b"payload of old");
        let (kind, payload) = cache.get(key, b"old").unwrap();
        assert_eq!((kind, &*payload), (Kind::Counter, &b"payload of old"[..]));
        // Rewritten by a checkpoint: the new bytes miss until cached.
        assert!(cache.get(key, b"new").is_none());
        cache.insert(key, b"new", Kind::Counter, b"payload of new");
        assert_eq!(&*cache.get(key, b"new").unwrap().1, b"payload of new");
        assert!(cache.get(key, b"old").is_none());
        assert!(cache.get((7, 0, 20_001), b"new").is_none());
    }

    #[test]
    fn stays_within_its_size_keeping_used_entries() {
        let cache = PayloadCache::new(SHARDS * 4_096);
        let payload = vec![1u8; 1_000];
        for block in 0..200u32 {
            cache.insert((1, 0, block), &block.to_le_bytes(), Kind::Gauge, &payload);
            // Block 0 is read again and again: the second chance keeps it.
            assert!(cache.get((1, 0, 0), &0u32.to_le_bytes()).is_some());
        }
        for shard in cache.shards.iter() {
            let shard = shard.lock().unwrap();
            assert!(shard.bytes <= 4_096);
            assert_eq!(shard.map.len(), shard.queue.len());
            let total: usize = shard.map.values().map(Entry::weight).sum();
            assert_eq!(total, shard.bytes);
        }
        // Too large for a shard: not kept at all.
        cache.insert((2, 0, 0), b"x", Kind::Gauge, &[0u8; 8_192]);
        assert!(cache.get((2, 0, 0), b"x").is_none());
    }
}
