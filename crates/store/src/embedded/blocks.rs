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

use super::tables::{engine, BLOCKS, CHUNKS};
use crate::codec::{
    decode_block, decode_block_keeping, decode_payload, encode_block, CodecError, DistSlot,
    PartReader,
};
use crate::{Resolution, SeriesId, StoreError};
use minutely_core::fold::DistRows;
use minutely_core::{Agg, Part, Slim};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

/// Key of a block: series, resolution code, block number.
pub type BlockKey = (u64, u8, u32);
/// Key of a chunk: series, minute block number, sequence.
pub type ChunkKey = (u64, u32, u8);
pub type BlocksMut<'t> = Table<'t, BlockKey, &'static [u8]>;
pub type ChunksMut<'t> = Table<'t, ChunkKey, &'static [u8]>;

/// Chunks a minute block may have before a checkpoint folds them into it:
/// each one spares a rewrite of the day so far and costs a little
/// compression.
pub const MAX_CHUNKS: u8 = 16;

/// The resolution code that stands for chunk 0 in a [`BlockKey`] given to
/// readers (the cache and damage reports): past every resolution's code,
/// so a chunk is never taken for a block.
const CHUNK_CODE: u8 = 16;

/// The tables a read of stored buckets needs, from one snapshot.
pub struct ReadTables {
    blocks: ReadOnlyTable<BlockKey, &'static [u8]>,
    chunks: ReadOnlyTable<ChunkKey, &'static [u8]>,
}

impl ReadTables {
    pub fn open(txn: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(ReadTables {
            blocks: txn.open_table(BLOCKS).map_err(engine)?,
            chunks: txn.open_table(CHUNKS).map_err(engine)?,
        })
    }
}

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
    db_path: &Path,
    key: (u64, u8, u32),
    bytes: &[u8],
) -> Result<Vec<(u16, Agg)>, StoreError> {
    decode_block(bytes)
        .map(|(_, slots)| slots)
        .map_err(|e| damaged(db_path, key, e))
}

/// [`decode`] through the process's cache of inflated payloads.
fn decode_cached(
    db_path: &Path,
    key: (u64, u8, u32),
    bytes: &[u8],
) -> Result<Vec<(u16, Agg)>, StoreError> {
    let cache = cache::global();
    match cache.and_then(|c| c.get(key, bytes)) {
        Some((kind, payload)) => decode_payload(kind, &payload),
        None => decode_block_keeping(bytes, |kind, payload| {
            cache
                .into_iter()
                .for_each(|c| c.insert(key, bytes, kind, payload))
        }),
    }
    .map_err(|e| damaged(db_path, key, e))
}

fn damaged(db_path: &Path, key: (u64, u8, u32), e: CodecError) -> StoreError {
    let detail = match key.1.checked_sub(CHUNK_CODE) {
        Some(seq) => format!(
            "chunk {seq} of the minute block of series {} number {}: {e}",
            key.0, key.2
        ),
        None => format!(
            "block of series {} resolution {} number {}: {e}",
            key.0, key.1, key.2
        ),
    };
    StoreError::Corrupt {
        file: db_path.to_path_buf(),
        offset: 0,
        detail,
        remedy: "Restore the data directory from a backup (minutely backup); this block's numbers cannot be trusted".into(),
    }
}

/// Merges (`replace == false`) or overwrites (`replace == true`) slots of
/// one block and returns the block's slots after. `updates` must be sorted.
pub fn upsert(
    table: &mut BlocksMut,
    db_path: &Path,
    sid: SeriesId,
    res: Resolution,
    block: u32,
    updates: Vec<(u16, Agg)>,
    replace: bool,
) -> Result<Vec<(u16, Agg)>, StoreError> {
    let key = (sid, res.code(), block);
    let existing = match table.get(key).map_err(engine)? {
        Some(v) => decode(db_path, key, v.value())?,
        None => Vec::new(),
    };
    let merged = merge_slots(existing, updates, replace);
    if let Some(kind) = merged.first().map(|(_, a)| a.kind()) {
        let bytes = encode_block(kind, &merged);
        table.insert(key, bytes.as_slice()).map_err(engine)?;
    }
    Ok(merged)
}

pub fn merge_slots(old: Vec<(u16, Agg)>, new: Vec<(u16, Agg)>, replace: bool) -> Vec<(u16, Agg)> {
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

/// Calls `f` with the key and stored bytes of each block of `sid` at `res`
/// that holds a bucket starting in `[from, to)`, in block order. A minute
/// block's chunks follow it, each under the key [`chunk_key`] gives, so
/// `f` sees every minute in time order.
fn for_each_block(
    tables: &ReadTables,
    sid: SeriesId,
    (res, from, to): (Resolution, i64, i64),
    mut f: impl FnMut((u64, u8, u32), &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if to <= from {
        return Ok(());
    }
    let (first, _) = locate(res, from.max(0));
    let (last, _) = locate(res, (to - 1).max(0));
    let chunks = if res == Resolution::Minute {
        tables
            .chunks
            .range((sid, first, 0)..=(sid, last, u8::MAX))
            .map_err(engine)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(engine)?
    } else {
        Vec::new()
    };
    let mut chunks = chunks.iter().peekable();
    type Visit<'f> = dyn FnMut(BlockKey, &[u8]) -> Result<(), StoreError> + 'f;
    let mut chunks_until = |end: u64, f: &mut Visit| {
        while let Some((k, v)) = chunks.next_if(|(k, _)| u64::from(k.value().1) < end) {
            f(chunk_key(k.value()), v.value())?;
        }
        Ok::<_, StoreError>(())
    };
    let range = (sid, res.code(), first)..=(sid, res.code(), last);
    for entry in tables.blocks.range(range).map_err(engine)? {
        let (k, v) = entry.map_err(engine)?;
        let key = k.value();
        chunks_until(u64::from(key.2), &mut f)?;
        f(key, v.value())?;
        chunks_until(u64::from(key.2) + 1, &mut f)?;
    }
    chunks_until(u64::MAX, &mut f)
}

/// The key readers (and damage reports) see for a chunk.
pub fn chunk_key((sid, block, seq): ChunkKey) -> BlockKey {
    (sid, CHUNK_CODE.saturating_add(seq), block)
}

/// Room for every bucket of `[from, to)` (most series have most), within
/// reason for a long range.
fn buckets_in(res: Resolution, from: i64, to: i64) -> usize {
    ((to - from) / res.secs() + 1).clamp(0, 1 << 16) as usize
}

/// Stored buckets of one series in `[from, to)`, sorted by time.
pub fn read_range(
    table: &ReadTables,
    db_path: &Path,
    sid: SeriesId,
    res: Resolution,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Agg)>, StoreError> {
    let mut out = Vec::new();
    for_each_block(table, sid, (res, from, to), |key, bytes| {
        let slots = decode_cached(db_path, key, bytes)?;
        out.reserve(slots.len());
        for (slot, agg) in slots {
            let ts = slot_start(res, key.2, slot);
            if ts >= from && ts < to {
                out.push((ts, agg));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// [`read_range`] of one part of each bucket, decoding only its columns.
#[allow(clippy::too_many_arguments)]
pub fn read_range_part(
    table: &ReadTables,
    db_path: &Path,
    sid: SeriesId,
    res: Resolution,
    from: i64,
    to: i64,
    part: Part,
    reader: &mut PartReader,
) -> Result<Vec<(i64, Slim)>, StoreError> {
    let mut out = Vec::with_capacity(buckets_in(res, from, to));
    for_each_block(table, sid, (res, from, to), |key, bytes| {
        let start = slot_start(res, key.2, 0);
        let secs = res.secs();
        let mut push = |slot, slim| {
            let ts = start + i64::from(slot) * secs;
            if ts >= from && ts < to {
                out.push((ts, slim));
            }
        };
        let Some(cache) = cache::global() else {
            return reader
                .decode(bytes, part, &mut push)
                .map_err(|e| damaged(db_path, key, e));
        };
        let decoded = match cache.get_part(key, bytes, part) {
            Some(d) => d,
            None => {
                let d = match cache.get(key, bytes) {
                    Some((kind, payload)) => reader.decoded_payload(kind, &payload, part),
                    None => reader.decoded(bytes, part),
                }
                .map_err(|e| damaged(db_path, key, e))?;
                let d = Arc::new(d);
                cache.insert_part(key, bytes, part, d.clone());
                d
            }
        };
        // Only the slots that can fall in range (a query's day cuts two
        // blocks); `push` checks each still.
        let lo = ((from - start).div_euclid(secs)).clamp(0, 1 << 16) as usize;
        let hi = ((to - start).div_euclid(secs) + 1).clamp(0, 1 << 16) as usize;
        decoded.for_each_within(lo, hi, &mut push);
        Ok(())
    })?;
    Ok(out)
}

/// [`read_range`] of a series' distribution buckets, as rows: no
/// aggregate is built per bucket; without `sketches`, sketches are not
/// read (see [`PartReader::decode_dists_keeping`]). Blocks of another
/// kind give nothing.
pub fn read_range_dists(
    table: &ReadTables,
    db_path: &Path,
    sid: SeriesId,
    (res, from, to): (Resolution, i64, i64),
    sketches: bool,
    reader: &mut PartReader,
) -> Result<DistRows, StoreError> {
    let mut out = DistRows::default();
    out.reserve(buckets_in(res, from, to), 0);
    for_each_block(table, sid, (res, from, to), |key, bytes| {
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
        match cache.and_then(|c| c.get(key, bytes)) {
            Some((kind, payload)) => {
                room.set(payload.len() / 2);
                reader.decode_dists_payload(kind, &payload, sketches, &mut push)
            }
            None => reader.decode_dists_keeping(
                bytes,
                sketches,
                |kind, payload| {
                    room.set(payload.len() / 2);
                    cache
                        .into_iter()
                        .for_each(|c| c.insert(key, bytes, kind, payload))
                },
                &mut push,
            ),
        }
        .map_err(|e| damaged(db_path, key, e))
    })?;
    Ok(out)
}

/// Removes blocks of every resolution that lie wholly before its cutoff,
/// with their chunks.
pub fn drop_before(
    table: &mut BlocksMut,
    chunks: &mut ChunksMut,
    sid: SeriesId,
    res: Resolution,
    cutoff: i64,
) -> Result<(), StoreError> {
    let (block, _) = locate(res, cutoff.max(0));
    // Blocks before `block` end at or before the cutoff's block start.
    table
        .retain_in((sid, res.code(), 0)..(sid, res.code(), block), |_, _| false)
        .map_err(engine)?;
    if res == Resolution::Minute {
        chunks
            .retain_in((sid, 0, 0)..(sid, block, 0), |_, _| false)
            .map_err(engine)?;
    }
    Ok(())
}

/// The slots of minute block `block` of `sid` with its chunks merged in,
/// and whether it had chunks.
pub fn minute_slots(
    blocks: &BlocksMut,
    chunks: &ChunksMut,
    db_path: &Path,
    sid: SeriesId,
    block: u32,
) -> Result<(Vec<(u16, Agg)>, bool), StoreError> {
    let key = (sid, Resolution::Minute.code(), block);
    let mut slots = match blocks.get(key).map_err(engine)? {
        Some(v) => decode(db_path, key, v.value())?,
        None => Vec::new(),
    };
    let mut had_chunks = false;
    for entry in chunks
        .range((sid, block, 0)..=(sid, block, u8::MAX))
        .map_err(engine)?
    {
        let (k, v) = entry.map_err(engine)?;
        let more = decode(db_path, chunk_key(k.value()), v.value())?;
        // Chunks are newer than what precedes them, so this appends; a
        // merge keeps the slots sorted and unique whatever they hold.
        slots = merge_slots(slots, more, false);
        had_chunks = true;
    }
    Ok((slots, had_chunks))
}

/// Writes `slots` as the whole of minute block `block` of `sid`, dropping
/// its chunks (their minutes are in `slots`).
pub fn put_minute_block(
    blocks: &mut BlocksMut,
    chunks: &mut ChunksMut,
    sid: SeriesId,
    block: u32,
    slots: &[(u16, Agg)],
    had_chunks: bool,
) -> Result<(), StoreError> {
    if let Some(kind) = slots.first().map(|(_, a)| a.kind()) {
        let bytes = encode_block(kind, slots);
        blocks
            .insert((sid, Resolution::Minute.code(), block), bytes.as_slice())
            .map_err(engine)?;
    }
    if had_chunks {
        chunks
            .retain_in((sid, block, 0)..=(sid, block, u8::MAX), |_, _| false)
            .map_err(engine)?;
    }
    Ok(())
}

/// Adds minutes newer than every minute stored in block `block` of `sid`
/// without rewriting the block: as the block when there is none, as its
/// next chunk while it has fewer than [`MAX_CHUNKS`], else by folding the
/// chunks and these minutes into the block.
pub fn append_minutes(
    blocks: &mut BlocksMut,
    chunks: &mut ChunksMut,
    db_path: &Path,
    sid: SeriesId,
    block: u32,
    new: Vec<(u16, Agg)>,
) -> Result<(), StoreError> {
    let Some(kind) = new.first().map(|(_, a)| a.kind()) else {
        return Ok(());
    };
    let last_chunk = chunks
        .range((sid, block, 0)..=(sid, block, u8::MAX))
        .map_err(engine)?
        .next_back()
        .transpose()
        .map_err(engine)?
        .map(|(k, _)| k.value().2);
    let next = last_chunk.map_or(0, |seq| u16::from(seq) + 1);
    let key = (sid, Resolution::Minute.code(), block);
    if next == 0 && blocks.get(key).map_err(engine)?.is_none() {
        let bytes = encode_block(kind, &new);
        blocks.insert(key, bytes.as_slice()).map_err(engine)?;
    } else if next < u16::from(MAX_CHUNKS) {
        let bytes = encode_block(kind, &new);
        chunks
            .insert((sid, block, next as u8), bytes.as_slice())
            .map_err(engine)?;
    } else {
        let (slots, had_chunks) = minute_slots(blocks, chunks, db_path, sid, block)?;
        let slots = merge_slots(slots, new, false);
        put_minute_block(blocks, chunks, sid, block, &slots, had_chunks)?;
    }
    Ok(())
}

/// Folds the chunks of every minute block of `sid` before `block` into
/// their blocks: once a day is over its chunks only cost space.
pub fn fold_chunks_before(
    blocks: &mut BlocksMut,
    chunks: &mut ChunksMut,
    db_path: &Path,
    sid: SeriesId,
    block: u32,
) -> Result<(), StoreError> {
    let mut days = Vec::new();
    for entry in chunks.range((sid, 0, 0)..(sid, block, 0)).map_err(engine)? {
        let day = entry.map_err(engine)?.0.value().1;
        if days.last() != Some(&day) {
            days.push(day);
        }
    }
    for day in days {
        let (slots, had_chunks) = minute_slots(blocks, chunks, db_path, sid, day)?;
        put_minute_block(blocks, chunks, sid, day, &slots, had_chunks)?;
    }
    Ok(())
}

/// Folds `minutes` (sorted, each newer than every minute already in the
/// rollups) into the buckets of `res` that hold them: a bucket becomes
/// itself merged with each of its new minutes in order, which is, bit for
/// bit, the merge of all its minutes in order that a rewrite computes.
pub fn fold_into_rollups(
    blocks: &mut BlocksMut,
    db_path: &Path,
    sid: SeriesId,
    res: Resolution,
    minutes: &[(i64, &Agg)],
) -> Result<(), StoreError> {
    let mut rest = minutes;
    while let Some(&(ts, _)) = rest.first() {
        let (block, _) = locate(res, ts);
        let n = rest
            .iter()
            .take_while(|(t, _)| locate(res, *t).0 == block)
            .count();
        let (these, after) = rest.split_at(n);
        rest = after;
        let key = (sid, res.code(), block);
        let mut slots = match blocks.get(key).map_err(engine)? {
            Some(v) => decode(db_path, key, v.value())?,
            None => Vec::new(),
        };
        for &(t, agg) in these {
            let (_, slot) = locate(res, t);
            match slots.binary_search_by_key(&slot, |(s, _)| *s) {
                Ok(i) => slots[i].1.merge(agg),
                Err(i) => slots.insert(i, (slot, agg.clone())),
            }
        }
        if let Some(kind) = slots.first().map(|(_, a)| a.kind()) {
            let bytes = encode_block(kind, &slots);
            blocks.insert(key, bytes.as_slice()).map_err(engine)?;
        }
    }
    Ok(())
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
