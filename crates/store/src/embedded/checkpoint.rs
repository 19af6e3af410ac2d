//! Checkpoints (frozen head -> redb blocks and rollups) and retention.

use super::block_files::{BlockWrites, Collect, Prepared};
use super::blocks::{self, locate, slot_start, slots_per_block};
use super::head::{Generation, Minutes};
use super::tables::*;
use super::wal::Wal;
use super::writer::WalMsg;
use super::Inner;
use crate::{Resolution, SeriesId, StoreError};
use minutely_core::Agg;
use redb::{Database, ReadableTable, WriteTransaction};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;

impl Inner {
    /// Moves the head's minutes into blocks. One runs at a time; a failed one
    /// is retried by the next with the same frozen generation.
    pub(super) fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpoint_collecting(Collect::RUNNING)
    }

    /// [`checkpoint`](Self::checkpoint), copying live blocks out of the
    /// block files that `collect` picks.
    pub(super) fn checkpoint_collecting(&self, collect: Collect) -> Result<(), StoreError> {
        let result = self.checkpoint_once(collect);
        let (tried, cv) = &self.checkpoints_tried;
        {
            let mut tried = tried.lock().unwrap_or_else(|p| p.into_inner());
            tried.count += 1;
            tried.last_failed = result.is_err();
        }
        cv.notify_all();
        result
    }

    fn checkpoint_once(&self, collect: Collect) -> Result<(), StoreError> {
        let mut pending = self.writer_lock();
        let started = Instant::now();
        let (sealed, gen) = match pending.take() {
            Some(p) => p,
            None => {
                let (reply, rx) = sync_channel(1);
                self.sender()?
                    .send(WalMsg::Rotate { reply })
                    .map_err(|_| StoreError::Closed)?;
                rx.recv().map_err(|_| StoreError::Closed)??
            }
        };
        if let Err(e) = self.write_generation(&gen, sealed, collect) {
            *pending = Some((sealed, gen));
            return Err(e);
        }
        Wal::remove_through(&self.wal_dir, sealed)?;
        let mut batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        for b in &gen.batches {
            // Now answered from redb; in-flight entries are not in `gen`.
            batches.remove(&b.key);
        }
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.last_checkpoint_micros
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Commits the generation; on a handle broken by an earlier I/O error
    /// (a full disk met by the failed try before), reopens and tries once more.
    fn write_generation(
        &self,
        gen: &Arc<Generation>,
        sealed: u64,
        collect: Collect,
    ) -> Result<(), StoreError> {
        self.db
            .with(|db| self.commit_generation(db, gen, sealed, collect))
    }

    fn commit_generation(
        &self,
        db: &Database,
        gen: &Arc<Generation>,
        sealed: u64,
        collect: Collect,
    ) -> Result<(), StoreError> {
        let mut txn = db.begin_write().map_err(engine)?;
        txn.set_durability(redb::Durability::Immediate);
        let prepared = self.fill_txn(&txn, gen, collect)?;
        // In the same transaction: these segments must never be replayed.
        txn.open_table(META)
            .map_err(engine)?
            .insert(WAL_APPLIED_THROUGH, sealed)
            .map_err(engine)?;
        let committed = {
            let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
            txn.commit().map_err(engine)?;
            self.head.write().unwrap_or_else(|p| p.into_inner()).frozen = None;
            self.block_files.committed(prepared)
        };
        committed.delete_files();
        Ok(())
    }

    /// Everything of the checkpoint but its commit; the blocks' file is
    /// synced when this returns.
    fn fill_txn(
        &self,
        txn: &WriteTransaction,
        gen: &Generation,
        collect: Collect,
    ) -> Result<Prepared<'_>, StoreError> {
        let mut writes = self.block_files.writes();
        // Synced before the commit; a retry appends them again (read once).
        self.series_file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&gen.series)?;
        for (&sid, minutes) in &gen.minutes {
            self.write_series(&mut writes, sid, minutes)?;
            if let Some(newest) = minutes.newest() {
                writes.note_seen(sid, newest);
            }
        }
        {
            // Before the head lets go of these minutes, the index knows them.
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            for (&sid, minutes) in &gen.minutes {
                if let (Some(meta), Some(newest)) = (index.get(sid), minutes.newest()) {
                    meta.last_seen.fetch_max(newest, Ordering::Relaxed);
                }
            }
        }
        writes.collect(txn, collect)?;
        {
            let mut batches = txn.open_table(BATCHES).map_err(engine)?;
            let mut expiry = txn.open_table(BATCH_EXPIRY).map_err(engine)?;
            for b in &gen.batches {
                let ts = b.ts as i64;
                batches.insert(b.key, (ts, b.accepted)).map_err(engine)?;
                expiry.insert((ts, b.key), ()).map_err(engine)?;
            }
        }
        let next = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .next_id();
        txn.open_table(META)
            .map_err(engine)?
            .insert(NEXT_SERIES_ID, next)
            .map_err(engine)?;
        writes.prepare(txn)
    }

    /// Merges one series' minutes into its day blocks, then rewrites the
    /// hourly and daily rollups of every hour and day those minutes touch,
    /// from the merged minutes: rollups stay exact merges of the minutes.
    fn write_series(
        &self,
        writes: &mut BlockWrites<'_>,
        sid: SeriesId,
        minutes: &Minutes,
    ) -> Result<(), StoreError> {
        let mut by_block: BTreeMap<u32, Vec<(u16, Agg)>> = BTreeMap::new();
        for (ts, agg) in minutes.iter() {
            let (block, slot) = locate(Resolution::Minute, ts);
            by_block
                .entry(block)
                .or_default()
                .push((slot, agg.into_owned()));
        }
        let mut hours: BTreeMap<u32, Vec<(u16, Agg)>> = BTreeMap::new();
        let mut days: BTreeMap<u32, Vec<(u16, Agg)>> = BTreeMap::new();
        for (block, updates) in by_block {
            let touched: BTreeSet<u16> = updates.iter().map(|(slot, _)| slot / 60).collect();
            let merged = blocks::upsert(writes, sid, Resolution::Minute, block, updates, false)?;
            for hour in touched {
                let aggs = merged
                    .iter()
                    .filter(|(slot, _)| slot / 60 == hour)
                    .map(|(_, a)| a);
                if let Some(agg) = Agg::merge_all(aggs) {
                    let (hb, hs) = locate(
                        Resolution::Hour,
                        slot_start(Resolution::Minute, block, hour * 60),
                    );
                    hours.entry(hb).or_default().push((hs, agg));
                }
            }
            if let Some(agg) = Agg::merge_all(merged.iter().map(|(_, a)| a)) {
                let (db, ds) = locate(Resolution::Day, slot_start(Resolution::Minute, block, 0));
                days.entry(db).or_default().push((ds, agg));
            }
        }
        debug_assert_eq!(slots_per_block(Resolution::Minute) % 60, 0);
        for (res, updates) in [(Resolution::Hour, hours), (Resolution::Day, days)] {
            for (block, mut slots) in updates {
                slots.sort_by_key(|(s, _)| *s);
                blocks::upsert(writes, sid, res, block, slots, true)?;
            }
        }
        Ok(())
    }

    /// Drops blocks past each resolution's retention and expired batch keys.
    pub(super) fn apply_retention(&self, now: i64) -> Result<(), StoreError> {
        tracing::debug!("retention pass started");
        let started = std::time::Instant::now();
        let ids: Vec<SeriesId> = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .all()
            .map(|m| m.def.id)
            .collect();
        let _writer = self.writer_lock();
        self.db.with(|db| self.retention_txn(db, &ids, now))?;
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            "retention pass committed"
        );
        Ok(())
    }

    fn retention_txn(&self, db: &Database, ids: &[SeriesId], now: i64) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(engine)?;
        let mut writes = self.block_files.writes();
        for res in Resolution::ALL {
            if let Some(cutoff) = self.cfg.retention.cutoff(res, now) {
                for &sid in ids {
                    blocks::drop_before(&mut writes, sid, res, cutoff);
                }
            }
        }
        {
            let cutoff = now - self.cfg.batch_window_secs;
            let mut expiry = txn.open_table(BATCH_EXPIRY).map_err(engine)?;
            let mut batches = txn.open_table(BATCHES).map_err(engine)?;
            let mut expired = Vec::new();
            for entry in expiry.range(..(cutoff, 0u128)).map_err(engine)? {
                expired.push(entry.map_err(engine)?.0.value());
            }
            for (ts, key) in expired {
                expiry.remove((ts, key)).map_err(engine)?;
                batches.remove(key).map_err(engine)?;
            }
        }
        let prepared = writes.prepare(&txn)?;
        let committed = {
            // Files that die here leave the readers' set with the commit.
            let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
            txn.commit().map_err(engine)?;
            self.block_files.committed(prepared)
        };
        committed.delete_files();
        Ok(())
    }
}
