//! Block geometry and block I/O: a block holds one series' buckets of one
//! resolution for a fixed run of slots (a day of minutes, 32 days of hours,
//! 512 days of days), so a query reads few blocks and a checkpoint rewrites
//! few.

mod cache;
#[cfg(test)]
mod part_tests;

pub use cache::{
    set_capacity as set_block_cache_capacity, DEFAULT_BYTES as DEFAULT_BLOCK_CACHE_BYTES,
};

use super::block_files::{BlockWrites, FileSet, Stored};
use crate::codec::{
    decode_block, decode_block_keeping, decode_payload, encode_block, CodecError, DecodedPart,
    DistSlot, PartReader,
};
use crate::{Resolution, SeriesId, StoreError};
use minutely_core::fold::DistRows;
use minutely_core::{Agg, Part, Slim};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn slots_per_block(res: Resolution) -> i64 {
    match res {
        Resolution::Minute => 1_440,
        Resolution::Hour => 768,
        Resolution::Day => 512,
    }
}

/// Block number and slot within it of the bucket starting at `ts`.
pub fn locate(res: Resolution, ts: i64) -> (u32, u16) {
    let slot = ts.div_euclid(res.secs());
    let per = slots_per_block(res);
    (slot.div_euclid(per) as u32, slot.rem_euclid(per) as u16)
}

/// Start of slot `slot` of block `block`.
pub fn slot_start(res: Resolution, block: u32, slot: u16) -> i64 {
    (block as i64 * slots_per_block(res) + slot as i64) * res.secs()
}

/// Decodes a block, reporting damage with where it is and what to do.
pub fn decode(
    file: &Path,
    key: (u64, u8, u32),
    bytes: &[u8],
) -> Result<Vec<(u16, Agg)>, StoreError> {
    decode_block(bytes)
        .map(|(_, slots)| slots)
        .map_err(|e| damaged(file, key, e))
}

/// One stored block as a read meets it: where it is, and its bytes when
/// asked for (a block in a file is read only on a cache miss).
struct Block<'a> {
    key: (u64, u8, u32),
    stored: Stored,
    files: &'a FileSet,
}

impl Block<'_> {
    fn identity(&self) -> &[u8] {
        self.stored.identity()
    }

    fn bytes(&self) -> Result<Vec<u8>, StoreError> {
        self.stored.bytes(self.files)
    }

    /// The file that holds the block, for error messages.
    fn file(&self) -> PathBuf {
        self.files.path(self.stored.place.file)
    }

    fn damaged(&self, e: CodecError) -> StoreError {
        damaged(&self.file(), self.key, e)
    }
}

/// [`decode`] through the process's cache of inflated payloads.
fn decode_cached(block: &Block<'_>) -> Result<Vec<(u16, Agg)>, StoreError> {
    let (key, identity) = (block.key, block.identity());
    let cache = cache::global();
    match cache.and_then(|c| c.get(key, identity)) {
        Some((kind, payload)) => decode_payload(kind, &payload),
        None => decode_block_keeping(&block.bytes()?, |kind, payload| {
            cache
                .into_iter()
                .for_each(|c| c.insert(key, identity, kind, payload))
        }),
    }
    .map_err(|e| block.damaged(e))
}

fn damaged(file: &Path, key: (u64, u8, u32), e: CodecError) -> StoreError {
    StoreError::Corrupt {
        file: file.to_path_buf(),
        offset: 0,
        detail: format!("block of series {} resolution {} number {}: {e}", key.0, key.1, key.2),
        remedy: "Restore the data directory from a backup (minutely backup); this block's numbers cannot be trusted".into(),
    }
}

/// Merges (`replace == false`) or overwrites (`replace == true`) slots of
/// one block and returns the block's slots after. `updates` must be sorted.
/// The new block goes to the transaction's block file.
pub fn upsert(
    writes: &mut BlockWrites<'_>,
    sid: SeriesId,
    res: Resolution,
    block: u32,
    updates: Vec<(u16, Agg)>,
    replace: bool,
) -> Result<Vec<(u16, Agg)>, StoreError> {
    let key = (sid, res.code(), block);
    let existing = match writes.place(sid, res.code(), block) {
        Some(place) => decode(&writes.path(place.file), key, &writes.block(place)?)?,
        None => Vec::new(),
    };
    let merged = merge_slots(existing, updates, replace);
    if let Some(kind) = merged.first().map(|(_, a)| a.kind()) {
        let bytes = encode_block(kind, &merged);
        let place = writes.put(&bytes)?;
        writes.set_place(sid, res.code(), block, place);
    }
    Ok(merged)
}

fn merge_slots(old: Vec<(u16, Agg)>, new: Vec<(u16, Agg)>, replace: bool) -> Vec<(u16, Agg)> {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let mut new = new.into_iter().peekable();
    for (slot, mut agg) in old {
        while let Some((s, _)) = new.peek() {
            if *s >= slot {
                break;
            }
            out.extend(new.next());
        }
        if let Some((_, a)) = new.next_if(|(s, _)| *s == slot) {
            if replace {
                agg = a;
            } else {
                agg.merge(&a);
            }
        }
        out.push((slot, agg));
    }
    out.extend(new);
    out
}

/// Calls `f` with each block of `sid` at `res` that holds a bucket
/// starting in `[from, to)`, in block order.
fn for_each_block(
    src: &FileSet,
    sid: SeriesId,
    (res, from, to): (Resolution, i64, i64),
    mut f: impl FnMut(&Block<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if to <= from {
        return Ok(());
    }
    let Some(series) = src.places().get(sid) else {
        return Ok(());
    };
    let (first, _) = locate(res, from.max(0));
    let (last, _) = locate(res, (to - 1).max(0));
    for &(code, block, place) in series.range(res.code(), first, last) {
        f(&Block {
            key: (sid, code, block),
            stored: src.stored(place),
            files: src,
        })?;
    }
    Ok(())
}

/// Room for every bucket of `[from, to)` (most series have most), within
/// reason for a long range.
fn buckets_in(res: Resolution, from: i64, to: i64) -> usize {
    ((to - from) / res.secs() + 1).clamp(0, 1 << 16) as usize
}

/// Stored buckets of one series in `[from, to)`, sorted by time.
pub fn read_range(
    src: &FileSet,
    sid: SeriesId,
    res: Resolution,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Agg)>, StoreError> {
    let mut out = Vec::new();
    for_each_block(src, sid, (res, from, to), |block| {
        let slots = decode_cached(block)?;
        out.reserve(slots.len());
        for (slot, agg) in slots {
            let ts = slot_start(res, block.key.2, slot);
            if ts >= from && ts < to {
                out.push((ts, agg));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub fn read_range_part(
    src: &FileSet,
    sid: SeriesId,
    res: Resolution,
    from: i64,
    to: i64,
    part: Part,
    reader: &mut PartReader,
) -> Result<Vec<(i64, Slim)>, StoreError> {
    let mut out = Vec::with_capacity(buckets_in(res, from, to));
    let window = (res, from, to);
    for_each_part(src, sid, window, part, reader, &mut |ts, slim| {
        out.push((ts, slim))
    })?;
    Ok(out)
}

/// [`read_range_part`], handing each bucket to `out` (in time order)
/// rather than collecting them.
pub fn for_each_part(
    src: &FileSet,
    sid: SeriesId,
    (res, from, to): (Resolution, i64, i64),
    part: Part,
    reader: &mut PartReader,
    out: &mut impl FnMut(i64, Slim),
) -> Result<(), StoreError> {
    for_each_block(src, sid, (res, from, to), |block| {
        let start = slot_start(res, block.key.2, 0);
        let secs = res.secs();
        let mut push = |slot, slim| {
            let ts = start + i64::from(slot) * secs;
            if ts >= from && ts < to {
                out(ts, slim);
            }
        };
        let Some(cache) = cache::global() else {
            return reader
                .decode(&block.bytes()?, part, &mut push)
                .map_err(|e| block.damaged(e));
        };
        let decoded = cached_part(cache, block, part, reader)?;
        // Only the slots that can fall in range (a query's day cuts two
        // blocks); `push` checks each still.
        let lo = ((from - start).div_euclid(secs)).clamp(0, 1 << 16) as usize;
        let hi = ((to - start).div_euclid(secs) + 1).clamp(0, 1 << 16) as usize;
        decoded.for_each_within(lo, hi, &mut push);
        Ok(())
    })
}

/// The decoded `part` of each block of `sid` at `res` that holds a bucket
/// starting in `[from, to)`, in block order, with the start of the
/// block's first slot (its slots may fall outside the range).
pub fn for_each_decoded(
    src: &FileSet,
    sid: SeriesId,
    (res, from, to): (Resolution, i64, i64),
    part: Part,
    reader: &mut PartReader,
    out: &mut impl FnMut(i64, &DecodedPart),
) -> Result<(), StoreError> {
    for_each_block(src, sid, (res, from, to), |block| {
        let start = slot_start(res, block.key.2, 0);
        match cache::global() {
            Some(cache) => out(start, &*cached_part(cache, block, part, reader)?),
            None => out(
                start,
                &reader
                    .decoded(&block.bytes()?, part)
                    .map_err(|e| block.damaged(e))?,
            ),
        }
        Ok(())
    })
}

/// A block's decoded `part` from the cache, or decoded (from the cached
/// payload if there is one) and cached.
fn cached_part(
    cache: &cache::PayloadCache,
    block: &Block<'_>,
    part: Part,
    reader: &mut PartReader,
) -> Result<Arc<DecodedPart>, StoreError> {
    let (key, identity) = (block.key, block.identity());
    if let Some(d) = cache.get_part(key, identity, part) {
        return Ok(d);
    }
    let d = match cache.get(key, identity) {
        Some((kind, payload)) => reader.decoded_payload(kind, &payload, part),
        None => reader.decoded(&block.bytes()?, part),
    }
    .map_err(|e| block.damaged(e))?;
    let d = Arc::new(d);
    cache.insert_part(key, identity, part, d.clone());
    Ok(d)
}

/// [`read_range`] of a series' distribution buckets, as rows: no
/// aggregate is built per bucket; without `sketches`, sketches are not
/// read (see [`PartReader::decode_dists_keeping`]). Blocks of another
/// kind give nothing.
pub fn read_range_dists(
    src: &FileSet,
    sid: SeriesId,
    (res, from, to): (Resolution, i64, i64),
    sketches: bool,
    reader: &mut PartReader,
) -> Result<DistRows, StoreError> {
    let mut out = DistRows::default();
    out.reserve(buckets_in(res, from, to), 0);
    for_each_block(src, sid, (res, from, to), |block| {
        let (key, identity) = (block.key, block.identity());
        let start = slot_start(res, key.2, 0);
        let secs = res.secs();
        // A sketch bin takes two payload bytes at least: room for the
        // block's bins is made once, not by doubling (which copies
        // megabytes for a day of wide sketches).
        let room = Cell::new(0);
        let mut push = |slot, (scalars, pos, neg): DistSlot<'_>| {
            out.reserve(0, room.take());
            let ts = start + i64::from(slot) * secs;
            if ts >= from && ts < to {
                out.push(ts, scalars, pos, neg);
            }
        };
        let cache = cache::global();
        match cache.and_then(|c| c.get(key, identity)) {
            Some((kind, payload)) => {
                room.set(payload.len() / 2);
                reader.decode_dists_payload(kind, &payload, sketches, &mut push)
            }
            None => reader.decode_dists_keeping(
                &block.bytes()?,
                sketches,
                |kind, payload| {
                    room.set(payload.len() / 2);
                    cache
                        .into_iter()
                        .for_each(|c| c.insert(key, identity, kind, payload))
                },
                &mut push,
            ),
        }
        .map_err(|e| block.damaged(e))
    })?;
    Ok(out)
}

/// Removes the series' blocks of `res` that lie wholly before `cutoff`;
/// they are counted dead in their files.
pub fn drop_before(writes: &mut BlockWrites<'_>, sid: SeriesId, res: Resolution, cutoff: i64) {
    let (block, _) = locate(res, cutoff.max(0));
    // Blocks before `block` end at or before the cutoff's block start.
    writes.drop_before(sid, res.code(), block);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        let ts = 1_764_100_020;
        let (b, s) = locate(Resolution::Minute, ts);
        assert_eq!(slot_start(Resolution::Minute, b, s), ts);
        assert_eq!(b as i64, ts / 86_400);
        let (b, s) = locate(Resolution::Hour, 1_764_097_200);
        assert_eq!(slot_start(Resolution::Hour, b, s), 1_764_097_200);
    }

    #[test]
    fn merge_and_replace_slots() {
        let old = vec![(1, Agg::Counter(1.0)), (3, Agg::Counter(3.0))];
        let new = vec![
            (0, Agg::Counter(10.0)),
            (3, Agg::Counter(30.0)),
            (5, Agg::Counter(50.0)),
        ];
        let merged = merge_slots(old.clone(), new.clone(), false);
        assert_eq!(
            merged,
            vec![
                (0, Agg::Counter(10.0)),
                (1, Agg::Counter(1.0)),
                (3, Agg::Counter(33.0)),
                (5, Agg::Counter(50.0))
            ]
        );
        let replaced = merge_slots(old, new, true);
        assert_eq!(replaced[2], (3, Agg::Counter(30.0)));
    }
}
