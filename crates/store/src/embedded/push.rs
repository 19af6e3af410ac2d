//! The push path: batch keys claimed and settled, points resolved to
//! series and logged, the head told, and a checkpoint asked for when the
//! head is large.

use super::*;

impl Inner {
    /// `Some(accepted)` if the batch was stored before; marks it in flight otherwise.
    pub(super) fn claim_batch(&self, key: u128) -> Result<Option<u64>, StoreError> {
        let mut map = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&key) {
            Some(BatchState::Done(n)) => return Ok(Some(*n)),
            Some(BatchState::InFlight) => {
                return Err(StoreError::BatchInFlight(format!("{key:032x}")))
            }
            None => {}
        }
        let stored = self.db.with(|db| {
            let txn = db.begin_read().map_err(engine)?;
            let table = txn.open_table(BATCHES).map_err(engine)?;
            Ok(table.get(key).map_err(engine)?.map(|v| v.value().1))
        })?;
        if let Some(accepted) = stored {
            return Ok(Some(accepted));
        }
        map.insert(key, BatchState::InFlight);
        Ok(None)
    }

    pub(super) fn settle_batch(&self, key: u128, accepted: Option<u64>) {
        let mut map = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        match accepted {
            Some(n) if n > 0 => map.insert(key, BatchState::Done(n)),
            _ => map.remove(&key),
        };
    }

    pub(super) fn push_points(
        &self,
        req: PushRequest,
        batch: Option<u128>,
    ) -> Result<PushOutcome, StoreError> {
        let mut outcome = PushOutcome::default();
        let mut points = Vec::with_capacity(req.points.len());
        // Series whose definitions this record carries: durable once it is written.
        let mut fresh = Vec::new();
        let mut defs: Vec<SeriesDef> = Vec::new();
        let mut defined: std::collections::HashSet<SeriesId> = std::collections::HashSet::new();
        let reply = {
            let mut key = self.ingest.lock().unwrap_or_else(|p| p.into_inner());
            {
                let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
                for (i, p) in req.points {
                    let series = SeriesRef {
                        app: &req.app,
                        env: &req.env,
                        name: &p.name,
                        kind: p.kind,
                        tags: &p.tags,
                    };
                    match index.resolve(&mut key, series, self.cfg.max_series_per_app) {
                        Ok(meta) => {
                            if !meta.durable.load(Ordering::Acquire) && defined.insert(meta.def.id)
                            {
                                defs.push(meta.def.clone());
                                fresh.push(meta.clone());
                            }
                            points.push((meta.def.id, p.minute(), p.into_agg()));
                        }
                        Err(e) => outcome.rejected.push(Rejected {
                            index: i,
                            reason: e.reason(),
                            message: e.to_string(),
                        }),
                    }
                }
            }
            if points.is_empty() {
                return Ok(outcome);
            }
            outcome.accepted = points.len();
            let record = Record {
                batch: batch.map(|key| BatchEntry {
                    key,
                    ts: now_secs(),
                    accepted: outcome.accepted as u64,
                }),
                series: defs,
                points,
            };
            // Room for single-value points and a few definitions: one
            // allocation instead of a dozen regrowths.
            let mut payload =
                Vec::with_capacity(64 + 80 * record.points.len() + 128 * record.series.len());
            record.encode(&mut payload);
            let (reply_tx, reply_rx) = sync_channel(1);
            self.sender()?
                .send(WalMsg::Append {
                    payload,
                    record,
                    reply: reply_tx,
                })
                .map_err(|_| StoreError::Closed)?;
            reply_rx
        };
        reply.recv().map_err(|_| StoreError::Closed)??;
        for meta in &fresh {
            meta.durable.store(true, Ordering::Release);
        }
        let open = self.head_read().active.open_minutes();
        if open > self.cfg.max_open_minutes {
            let (lock, cv) = &*self.signal;
            lock.lock()
                .unwrap_or_else(|p| p.into_inner())
                .checkpoint_now = true;
            cv.notify_all();
        }
        if open > 2 * self.cfg.max_open_minutes {
            self.wait_for_checkpoint();
        }
        Ok(outcome)
    }

    /// Waits (at most a few seconds) while a checkpoint is writing the
    /// frozen head, so that pushes faster than checkpoints cannot grow the
    /// head without bound. A frozen head whose checkpoint failed (a full
    /// disk) waits for a retry that can be minutes away: pushes then go on
    /// as before rather than each waiting out the bound.
    fn wait_for_checkpoint(&self) {
        let (tried, cv) = &self.checkpoints_tried;
        // Read before looking at the head, so a checkpoint that ends in
        // between is seen as a new count, not waited for.
        let guard = tried.lock().unwrap_or_else(|p| p.into_inner());
        let seen = guard.count;
        let writing = self.head_read().frozen.is_some();
        if writing && !guard.last_failed {
            let _ = cv
                .wait_timeout_while(guard, CHECKPOINT_WAIT, |t| t.count == seen)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The longest a push waits for a checkpoint to make room in the head.
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
