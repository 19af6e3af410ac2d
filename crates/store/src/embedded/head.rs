//! The head: minutes not yet written to redb, in memory. The log makes them
//! durable; a checkpoint freezes the active generation, writes it to redb
//! and drops it.

use super::record::{BatchEntry, Record, SeriesDef};
use crate::SeriesId;
use minutely_core::Agg;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the log segments since the last checkpoint added.
#[derive(Default)]
pub struct Generation {
    pub minutes: HashMap<SeriesId, BTreeMap<i64, Agg>>,
    pub series: Vec<SeriesDef>,
    pub batches: Vec<BatchEntry>,
    /// Series-minutes held, kept as a count so checking it is cheap.
    pub minute_count: usize,
}

impl Generation {
    pub fn apply(&mut self, record: Record) {
        for (sid, minute, agg) in record.points {
            match self.minutes.entry(sid).or_default().entry(minute) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&agg),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(agg);
                    self.minute_count += 1;
                }
            }
        }
        self.series.extend(record.series);
        self.batches.extend(record.batch);
    }

    pub fn open_minutes(&self) -> usize {
        self.minute_count
    }

    fn collect<T>(
        &self,
        sid: SeriesId,
        from: i64,
        to: i64,
        f: &impl Fn(&Agg) -> Option<T>,
        out: &mut Vec<(i64, T)>,
    ) {
        if let Some(m) = self.minutes.get(&sid) {
            out.extend(m.range(from..to).filter_map(|(t, a)| Some((*t, f(a)?))));
        }
    }
}

#[derive(Default)]
pub struct Head {
    pub active: Generation,
    /// The generation a checkpoint is writing, still read by queries until
    /// redb has it.
    pub frozen: Option<Arc<Generation>>,
}

impl Head {
    /// Minutes of one series in `[from, to)` from both generations, as
    /// `f` sees them (a minute may appear twice; callers merge).
    pub fn collect<T>(
        &self,
        sid: SeriesId,
        from: i64,
        to: i64,
        f: &impl Fn(&Agg) -> Option<T>,
    ) -> Vec<(i64, T)> {
        let mut out = Vec::new();
        if let Some(g) = &self.frozen {
            g.collect(sid, from, to, f, &mut out);
        }
        self.active.collect(sid, from, to, f, &mut out);
        out
    }

    pub fn open_minutes(&self) -> usize {
        self.active.open_minutes() + self.frozen.as_ref().map_or(0, |f| f.open_minutes())
    }
}
