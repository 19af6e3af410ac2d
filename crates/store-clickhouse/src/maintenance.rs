//! Reads at every resolution, the rollup job and retention.
//!
//! Hourly and daily buckets older than a watermark come from the `rollups`
//! table; newer ones are merged from minutes in the query. The job moves
//! the watermark forward over closed periods only (older than the late
//! window plus an hour), so a rollup never misses a late point. Writing a
//! period twice (two servers, or a crash before the watermark moved) only
//! writes identical rows, which reads collapse. Retention drops whole
//! partitions (ClickHouse 18.16 has no table TTL), and drops minutes only
//! once they are rolled up.

use crate::{aggs, meta, now_secs, schema, Inner};
use minutely_core::{Agg, Kind};
use minutely_store::{Resolution, SeriesId, StoreError};
use serde::Deserialize;
use std::collections::HashMap;

fn ceil_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step + if t.rem_euclid(step) == 0 { 0 } else { step }
}

fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

fn res_name(res: Resolution) -> &'static str {
    match res {
        Resolution::Minute => "minute",
        Resolution::Hour => "hour",
        Resolution::Day => "day",
    }
}

/// The rows of the listed series (all: `None`) as `sid, t0, COLLAPSE`, one
/// per (series, minute, batch) for minutes in `minutes` and per (series,
/// bucket) for rollups of `res` in `rolled` (half-open ranges).
fn collapsed_sql(
    db: &str,
    series: Option<&str>,
    res: Resolution,
    minutes: (i64, i64),
    rolled: (i64, i64),
    sketch: bool,
) -> String {
    let collapse = if sketch {
        aggs::COLLAPSE
    } else {
        aggs::COLLAPSE_SCALAR
    };
    let series = series.map_or(String::new(), |s| format!("sid IN ({s}) AND "));
    let mut parts = Vec::new();
    if minutes.0 < minutes.1 {
        parts.push(format!(
            "SELECT sid, minute AS t0, {} FROM {db}.points WHERE {series}minute >= {} AND minute < {} GROUP BY sid, minute, batch",
            collapse,
            minutes.0,
            minutes.1
        ));
    }
    if rolled.0 < rolled.1 && res != Resolution::Minute {
        parts.push(format!(
            "SELECT sid, ts AS t0, {} FROM {db}.rollups WHERE {series}res = {} \
             AND ts >= {} AND ts < {} GROUP BY sid, ts",
            collapse,
            res.code(),
            rolled.0,
            rolled.1
        ));
    }
    parts.join(" UNION ALL ")
}

fn merge_sql(sketch: bool) -> &'static str {
    if sketch {
        aggs::MERGE
    } else {
        aggs::MERGE_SCALAR
    }
}

/// The merged buckets at `res` of the listed series (all: `None`), minutes
/// taken in `minutes` and rollups in `rolled` (half-open ranges), as one
/// SELECT.
fn merged_sql(
    db: &str,
    series: Option<&str>,
    res: Resolution,
    minutes: (i64, i64),
    rolled: (i64, i64),
    sketch: bool,
) -> String {
    let step = res.secs();
    format!(
        "SELECT sid, toUInt32(intDiv(t0, {step}) * {step}) AS ts, {} FROM ({}) GROUP BY sid, ts",
        merge_sql(sketch),
        collapsed_sql(db, series, res, minutes, rolled, sketch)
    )
}

#[derive(Deserialize)]
struct Watermark {
    until: i64,
}

/// Buckets of `res` before this are in the rollups table.
fn watermark(inner: &Inner, res: Resolution) -> Result<Option<i64>, StoreError> {
    Ok(meta::get::<Watermark>(&inner.client, "rollup", "", res_name(res))?.map(|w| w.until))
}

/// What a read of `series` at `res` over `[from, to)` covers: the SQL list
/// of ids, the split between rollups and minutes, minutes `[lo, hi)`, and
/// whether sketch columns are needed.
struct Span {
    list: String,
    split: i64,
    lo: i64,
    hi: i64,
    sketch: bool,
}

/// `None` when the read covers nothing.
fn span(
    inner: &Inner,
    series: &[SeriesId],
    res: Resolution,
    from: i64,
    to: i64,
) -> Result<Option<Span>, StoreError> {
    let step = res.secs();
    // Buckets that start in [from, to) hold the minutes of [lo, hi).
    let (lo, hi) = (ceil_to(from, step), ceil_to(to, step));
    if series.is_empty() || lo >= hi {
        return Ok(None);
    }
    let split = match res {
        Resolution::Minute => lo,
        _ => watermark(inner, res)?.unwrap_or(lo).clamp(lo, hi),
    };
    let list = series
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // Sketch columns only when a series may be a distribution.
    let sketch = {
        let kinds = inner.sid_kinds.read().unwrap_or_else(|p| p.into_inner());
        !series
            .iter()
            .all(|s| kinds.get(s).is_some_and(|k| *k != Kind::Distribution))
    };
    Ok(Some(Span {
        list,
        split,
        lo,
        hi,
        sketch,
    }))
}

pub fn read(
    inner: &Inner,
    series: &[SeriesId],
    res: Resolution,
    from: i64,
    to: i64,
) -> Result<Vec<Vec<(i64, Agg)>>, StoreError> {
    let mut out = vec![Vec::new(); series.len()];
    let Some(Span {
        list,
        split,
        lo,
        hi,
        sketch,
    }) = span(inner, series, res, from, to)?
    else {
        return Ok(out);
    };
    let sql = merged_sql(
        inner.db(),
        Some(&list),
        res,
        (split, hi),
        (lo, split),
        sketch,
    );
    let rows = aggs::decode_merged(&inner.client.select_binary(&sql)?, sketch)?;
    let position: HashMap<SeriesId, usize> =
        series.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    for r in rows {
        if let Some(&i) = position.get(&r.sid) {
            out[i].push((r.ts as i64, r.to_agg()?));
        }
    }
    // Sorted here rather than by ClickHouse: cheaper, and per series.
    for buckets in &mut out {
        buckets.sort_unstable_by_key(|(ts, _)| *ts);
    }
    Ok(out)
}

/// [`Store::read_grouped`](minutely_store::Store::read_grouped): the merge
/// across a group's series and the output bucket's minutes happens in
/// ClickHouse, so one row per (group, bucket) comes back instead of one
/// per (series, bucket). Each series maps to its group's index with
/// `transform` (ids and indexes are numbers written here, nothing else).
pub fn read_grouped(
    inner: &Inner,
    groups: &[Vec<SeriesId>],
    res: Resolution,
    from: i64,
    to: i64,
    step: i64,
) -> Result<Vec<Vec<(i64, Agg)>>, StoreError> {
    let mut out = vec![Vec::new(); groups.len()];
    let (ids, members): (Vec<SeriesId>, Vec<usize>) = groups
        .iter()
        .enumerate()
        .flat_map(|(g, ids)| ids.iter().map(move |id| (*id, g)))
        .unzip();
    let Some(Span {
        list,
        split,
        lo,
        hi,
        sketch,
    }) = span(inner, &ids, res, from, to)?
    else {
        return Ok(out);
    };
    let indexes = members
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rs = res.secs();
    // The stored bucket a row falls in starts at intDiv(t0, rs) * rs; the
    // output bucket is where that start falls on the grid.
    let sql = format!(
        "SELECT toUInt64(transform(sid, [{list}], [{indexes}], 0)) AS g, \
         toUInt32(intDiv(intDiv(toInt64(t0), {rs}) * {rs} - {from}, {step})) AS b, {} \
         FROM ({}) GROUP BY g, b",
        merge_sql(sketch),
        collapsed_sql(
            inner.db(),
            Some(&list),
            res,
            (split, hi),
            (lo, split),
            sketch
        ),
    );
    for r in aggs::decode_merged(&inner.client.select_binary(&sql)?, sketch)? {
        if let Some(group) = out.get_mut(r.sid as usize) {
            group.push((from + r.ts as i64 * step, r.to_agg()?));
        }
    }
    for buckets in &mut out {
        buckets.sort_unstable_by_key(|(ts, _)| *ts);
    }
    Ok(out)
}

/// Runs `pass` every interval until the store closes.
pub fn run(inner: std::sync::Arc<Inner>) {
    let interval = inner.cfg.maintenance_interval;
    loop {
        {
            let (lock, cv) = &*inner.stop;
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) = cv
                .wait_timeout_while(guard, interval, |stop| !*stop)
                .unwrap_or_else(|p| p.into_inner());
            if *guard {
                return;
            }
        }
        if let Err(e) = pass(&inner, now_secs()) {
            tracing::error!("ClickHouse rollups or retention failed, will retry: {e}");
        }
    }
}

/// Rolls up closed periods, then applies retention.
pub fn pass(inner: &Inner, now: i64) -> Result<(), StoreError> {
    let closed = now - inner.cfg.late_window_secs - 3_600;
    for res in [Resolution::Hour, Resolution::Day] {
        roll_up(inner, res, closed)?;
    }
    retention(inner, now)
}

/// At most this many days of minutes are rolled up per resolution per pass.
const DAYS_PER_PASS: i64 = 7;

fn roll_up(inner: &Inner, res: Resolution, closed: i64) -> Result<(), StoreError> {
    let step = res.secs();
    let until = floor_to(closed, step);
    let db = inner.db();
    let start = match watermark(inner, res)? {
        Some(w) => w,
        None => {
            // First run: from the oldest minute there is (none: nothing to do).
            let text = inner
                .client
                .execute(&format!("SELECT count(), min(minute) FROM {db}.points"))?;
            let mut it = text
                .split_whitespace()
                .map(|s| s.parse::<i64>().unwrap_or(0));
            match (it.next(), it.next()) {
                (Some(n), Some(m)) if n > 0 => floor_to(m, step),
                _ => until,
            }
        }
    };
    let mut a = start;
    let end = until.min(start + DAYS_PER_PASS * 86_400);
    while a < end {
        let b = (a + 86_400).min(end);
        let merged = merged_sql(db, None, res, (a, b), (0, 0), true);
        inner.client.execute(&format!(
            "INSERT INTO {db}.rollups (res, sid, ts, {cols}) \
             SELECT {code}, sid, ts, kind, sum, count, min, max, last, last_ms, \
             pos.1, pos.2, neg.1, neg.2, zero FROM ({merged})",
            cols = aggs::COLUMNS,
            code = res.code(),
        ))?;
        a = b;
    }
    if end > start || watermark(inner, res)?.is_none() {
        meta::write(
            &inner.client,
            &[meta::MetaRow::put(
                "rollup",
                "",
                res_name(res),
                &serde_json::json!({ "until": end.max(start) }),
            )],
        )?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct PartitionRow {
    partition: String,
}

/// Drops the partitions of `table` (on every host) whose partition value,
/// read as a number, is below `below`, optionally only those of a rollup
/// resolution.
fn drop_partitions(
    inner: &Inner,
    table: &str,
    res: Option<Resolution>,
    below: i64,
) -> Result<(), StoreError> {
    let target = inner.client.target();
    let (db, cluster) = (&target.database, target.cluster.as_deref());
    let local = schema::local_name(cluster, table);
    for host in &target.hosts {
        let Some(text) = inner.client.execute_on(
            host,
            &format!(
                "SELECT DISTINCT partition FROM system.parts WHERE database = {} AND table = {} \
                 AND active FORMAT JSONEachRow",
                crate::sql::quote(db),
                crate::sql::quote(&local)
            ),
        )?
        else {
            continue;
        };
        for line in text.lines().filter(|l| !l.is_empty()) {
            let Ok(row) = serde_json::from_str::<PartitionRow>(line) else {
                continue;
            };
            // Values are `20261125` or, for rollups, `(1,202611)`.
            let p = row.partition.trim_matches(|c| c == '(' || c == ')');
            let (code, value) = match p.split_once(',') {
                Some((c, v)) => (c.trim().parse::<u8>().ok(), v.trim()),
                None => (None, p),
            };
            if res.is_some_and(|r| Some(r.code()) != code) {
                continue;
            }
            let Ok(v) = value.parse::<i64>() else {
                continue;
            };
            if v < below {
                inner.client.execute_on(
                    host,
                    &format!("ALTER TABLE {db}.{local} DROP PARTITION {}", row.partition),
                )?;
                tracing::info!(
                    "ClickHouse at {host}: dropped partition {} of {local}",
                    row.partition
                );
            }
        }
    }
    Ok(())
}

/// `YYYYMMDD` and `YYYYMM` of a unix time (UTC), as partition values.
fn ymd(t: i64) -> (i64, i64) {
    let (y, m, d) = minutely_core::timeparse::civil_from_days(t.div_euclid(86_400));
    (y * 10_000 + m * 100 + d, y * 100 + m)
}

fn retention(inner: &Inner, now: i64) -> Result<(), StoreError> {
    let ret = inner.cfg.retention;
    if let Some(cutoff) = ret.cutoff(Resolution::Minute, now) {
        // Only what both rollups already hold.
        let rolled = [Resolution::Hour, Resolution::Day]
            .iter()
            .map(|r| watermark(inner, *r).map(|w| w.unwrap_or(i64::MIN)))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .min()
            .unwrap_or(i64::MIN);
        let upto = cutoff.min(rolled);
        if upto > i64::MIN {
            drop_partitions(inner, "points", None, ymd(upto).0)?;
        }
    }
    for res in [Resolution::Hour, Resolution::Day] {
        if let Some(cutoff) = ret.cutoff(res, now) {
            // Whole months only: a month goes once all of it is past.
            drop_partitions(inner, "rollups", Some(res), ymd(cutoff).1)?;
        }
    }
    let batch_cutoff = now - inner.cfg.batch_window_secs;
    drop_partitions(inner, "batches", None, ymd(batch_cutoff).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dates_are_utc_civil_dates() {
        assert_eq!(ymd(0), (19_700_101, 197_001));
        assert_eq!(ymd(1_764_028_800), (20_251_125, 202_511));
        assert_eq!(ymd(951_782_400), (20_000_229, 200_002));
    }

    #[test]
    fn bucket_bounds() {
        assert_eq!(ceil_to(3_601, 3_600), 7_200);
        assert_eq!(ceil_to(3_600, 3_600), 3_600);
        assert_eq!(floor_to(-1, 60), -60);
    }
}
