//! The read path: one commit's blocks and the head's minutes, taken under
//! the gate, each series' stored buckets decoded (spread over threads) and
//! the head's minutes merged in.

use super::*;
use minutely_core::query::ValuesFold;

impl Inner {
    /// Buckets of each series in `[from, to)`: stored blocks (decoded by
    /// `read_stored`, which keeps a `State` per thread) with the head's
    /// minutes (as `from_head` sees them) merged in.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn read_buckets<T, State>(
        &self,
        series: &[SeriesId],
        res: Resolution,
        from: i64,
        to: i64,
        from_head: impl Fn(&Agg) -> Option<T>,
        merge: impl Fn(&mut T, &T) + Sync,
        new_state: impl Fn() -> State + Sync,
        read_stored: impl Fn(&FileSet, &mut State, SeriesId) -> Result<Vec<(i64, T)>, StoreError> + Sync,
    ) -> Result<Vec<Vec<(i64, T)>>, StoreError>
    where
        T: Clone + Send + Sync,
    {
        let per_series = |files: &FileSet, state: &mut State, sid, minutes: &[(i64, T)]| {
            let stored = read_stored(files, state, sid)?;
            Ok(overlay(stored, minutes, res, from, &merge))
        };
        self.read_snapshot(series, (res, from, to), &from_head, &new_state, per_series)
    }

    /// One snapshot's read of each series: `per_series` is given the
    /// series' head minutes in `[from, to)` (as `from_head` sees them) and
    /// reads its blocks; series are spread over threads.
    pub(super) fn read_snapshot<T, State, S>(
        &self,
        series: &[SeriesId],
        (res, from, to): (Resolution, i64, i64),
        from_head: impl Fn(&Agg) -> Option<T>,
        new_state: impl Fn() -> State + Sync,
        per_series: impl Fn(&FileSet, &mut State, SeriesId, &[(i64, T)]) -> Result<S, StoreError> + Sync,
    ) -> Result<Vec<S>, StoreError>
    where
        T: Clone + Send + Sync,
        S: Send,
    {
        let (files, head_minutes) = {
            let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
            let files = self.block_files.snapshot();
            let head = self.head.read().unwrap_or_else(|p| p.into_inner());
            // Head minutes of the buckets in range: from the start of `from`'s bucket.
            let lo = minutely_core::time::floor_to(from, res.secs());
            let minutes: Vec<Vec<(i64, T)>> = series
                .iter()
                .map(|&sid| head.collect(sid, lo, to, &from_head))
                .collect();
            (files, minutes)
        };
        // Decoding blocks is the cost of a wide query: spread the series
        // over the cores.
        let threads = read_threads();
        let chunk = series.len().div_ceil(threads).max(MIN_SERIES_PER_THREAD);
        let jobs: Vec<_> = series
            .chunks(chunk)
            .zip(head_minutes.chunks(chunk))
            .collect();
        type Job<'a, T> = (&'a [SeriesId], &'a [Vec<(i64, T)>]);
        let read_chunk = |(ids, heads): Job<'_, T>| -> Result<Vec<S>, StoreError> {
            let mut state = new_state();
            ids.iter()
                .zip(heads)
                .map(|(&sid, minutes)| per_series(&files, &mut state, sid, minutes))
                .collect()
        };
        let parts: Vec<Result<Vec<S>, StoreError>> = if jobs.len() <= 1 {
            jobs.into_iter().map(read_chunk).collect()
        } else {
            let read_chunk = &read_chunk;
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs
                    .into_iter()
                    .map(|job| scope.spawn(move || read_chunk(job)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(StoreError::Engine("a read thread panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        let mut out = Vec::with_capacity(series.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// [`Store::read_values`]: each series folded to its values on the
    /// read threads, so the request's thread only adds arrays, and a
    /// third as many bytes cross between cores.
    pub(super) fn read_values(
        &self,
        series: &[SeriesId],
        (res, grid, to): (Resolution, &Grid, i64),
        part: Part,
        field: Field,
    ) -> Result<Vec<SeriesValues>, StoreError> {
        let merge = |a: &mut Slim, o: &Slim| part.merge(a, *o);
        // A grid of the stored buckets' own step and alignment: every
        // stored bucket falls in a grid bucket alone (blocks hold each slot
        // once), so nothing merges and a bucket's value is its part's.
        // (And every grid bucket starts before `to`, as a grid up to `to` does.)
        let one_bucket_a_cell =
            grid.is_one_to_one(res.secs()) && grid.start(grid.n.saturating_sub(1)) < to;
        let copy = part.value_is_v(field);
        let window = (res, grid.from, to);
        let per_series = |files: &FileSet,
                          (reader, scratch): &mut (PartReader, Vec<Option<Slim>>),
                          sid,
                          minutes: &[(i64, Slim)]| {
            let mut values = SeriesValues::default();
            if minutes.is_empty() && one_bucket_a_cell {
                // Each stored bucket is a grid bucket of its own: the
                // decoded values are the answer, copied a block at a time.
                values.reset(grid.n);
                blocks::for_each_decoded(files, sid, window, part, reader, &mut |start, d| {
                    // Exact: `start` and `grid.from` are both on the step.
                    let first = start.saturating_sub(grid.from) / grid.step;
                    match d.as_run() {
                        Some((slot, vs)) if copy => {
                            values.set_run(first.saturating_add(i64::from(slot)), vs)
                        }
                        _ => d.for_each(&mut |slot, slim| {
                            let i = first.saturating_add(i64::from(slot));
                            if (0..grid.n as i64).contains(&i) {
                                values.set(i as usize, part.value(field, slim, grid.step));
                            }
                        }),
                    }
                })?;
                return Ok(values);
            }
            // Without head minutes, straight from the decoded blocks
            // (which come in time order) to values.
            if minutes.is_empty() {
                let mut fold = ValuesFold::new(&mut values, grid, part, field);
                blocks::for_each_part(files, sid, window, part, reader, &mut |ts, slim| {
                    fold.push(ts, slim)
                })?;
                if fold.finish() {
                    return Ok(values);
                }
            }
            let stored = blocks::read_range_part(files, sid, res, grid.from, to, part, reader)?;
            let buckets = overlay(stored, minutes, res, grid.from, &merge);
            values.fill(grid, part, field, &buckets, scratch);
            Ok(values)
        };
        self.read_snapshot(
            series,
            window,
            |agg| part.of(agg),
            Default::default,
            per_series,
        )
    }
}

/// Threads a wide read spreads over: the cores, up to 8. Asked once:
/// the standard library reads the cgroup's CPU quota files at every call.
fn read_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    })
}

/// Below this many series per thread, a thread costs more than it saves.
const MIN_SERIES_PER_THREAD: usize = 16;

/// Adds the head's minutes (not yet in redb) to one series' stored buckets
/// (sorted, unique). Minutes merge into the bucket of `res` that holds
/// them, in the head's order.
pub(super) fn overlay<T: Clone>(
    stored: Vec<(i64, T)>,
    minutes: &[(i64, T)],
    res: Resolution,
    from: i64,
    merge: &impl Fn(&mut T, &T),
) -> Vec<(i64, T)> {
    if minutes.is_empty() {
        return stored;
    }
    let mut head: Vec<(i64, &T)> = minutes
        .iter()
        .map(|(minute, v)| (minutely_core::time::floor_to(*minute, res.secs()), v))
        .filter(|(ts, _)| *ts >= from)
        .collect();
    // Stable: a minute in both generations merges frozen first.
    head.sort_by_key(|(ts, _)| *ts);
    let mut head = head.into_iter().peekable();
    let mut out = Vec::with_capacity(stored.len() + minutes.len());
    for (ts, mut v) in stored {
        while let Some(h) = head_bucket(&mut head, Some(ts), merge) {
            out.push(h);
        }
        while let Some((_, more)) = head.next_if(|(t, _)| *t == ts) {
            merge(&mut v, more);
        }
        out.push((ts, v));
    }
    while let Some(h) = head_bucket(&mut head, None, merge) {
        out.push(h);
    }
    out
}

/// The next bucket of head minutes that starts before `before` (any, when
/// `None`), its minutes merged in order.
fn head_bucket<'a, T: Clone + 'a>(
    head: &mut std::iter::Peekable<impl Iterator<Item = (i64, &'a T)>>,
    before: Option<i64>,
    merge: &impl Fn(&mut T, &T),
) -> Option<(i64, T)> {
    let (ts, first) = head.next_if(|(t, _)| before.is_none_or(|b| *t < b))?;
    let mut acc = first.clone();
    while let Some((_, more)) = head.next_if(|(t, _)| *t == ts) {
        merge(&mut acc, more);
    }
    Some((ts, acc))
}
