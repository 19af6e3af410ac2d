//! Metadata (apps, keys, dashboards, alerts, alert state, incidents, the
//! outbox) as versioned JSON rows of one `meta` table.
//!
//! A write inserts a row with a newer version (nanoseconds since the
//! epoch); a removal inserts one with `deleted = 1`. Reads take the newest
//! version per (kind, app, id) with `argMax`, which is right on any engine
//! and over shards; ReplacingMergeTree only reclaims the space of older
//! versions in the background. There is no transaction: read-then-write
//! operations (create an app, revoke a key) can race between servers, and
//! the last writer wins.

use crate::http::Client;
use crate::sql::{quote, RowBinary};
use minutely_store::StoreError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const APP: &str = "app";
pub const KEY: &str = "key";
pub const DASHBOARD: &str = "dashboard";
pub const ALERT: &str = "alert";
pub const ALERT_STATE: &str = "alert_state";
pub const INCIDENT: &str = "incident";
pub const OUTBOX: &str = "outbox";

/// One change to write.
pub struct MetaRow {
    pub kind: &'static str,
    pub app: String,
    pub id: String,
    /// `None` deletes.
    pub body: Option<String>,
}

impl MetaRow {
    pub fn put<T: Serialize>(kind: &'static str, app: &str, id: &str, value: &T) -> MetaRow {
        MetaRow {
            kind,
            app: app.to_string(),
            id: id.to_string(),
            body: Some(serde_json::to_string(value).unwrap_or_default()),
        }
    }

    pub fn delete(kind: &'static str, app: &str, id: &str) -> MetaRow {
        MetaRow {
            kind,
            app: app.to_string(),
            id: id.to_string(),
            body: None,
        }
    }
}

/// Versions increase on this server even if the clock steps back; between
/// servers the clocks order them (keep them in sync, as for any cluster).
fn next_version() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// Writes the rows in one INSERT (one block: all or nothing per shard).
pub fn write(client: &Client, rows: &[MetaRow]) -> Result<(), StoreError> {
    let mut rb = RowBinary::default();
    for r in rows {
        rb.str(r.kind)
            .str(&r.app)
            .str(&r.id)
            .u64(next_version())
            .u8(r.body.is_none() as u8)
            .str(r.body.as_deref().unwrap_or(""));
    }
    client.insert("meta", "kind, app, id, version, deleted, body", &rb.buf)
}

#[derive(Deserialize)]
struct Latest {
    body: String,
}

/// The live records of a kind, of one app or (`None`) all, sorted by
/// (app, id).
pub fn list<T: DeserializeOwned>(
    client: &Client,
    kind: &str,
    app: Option<&str>,
    id: Option<&str>,
) -> Result<Vec<T>, StoreError> {
    let mut filter = format!("kind = {}", quote(kind));
    if let Some(a) = app {
        filter.push_str(&format!(" AND app = {}", quote(a)));
    }
    if let Some(i) = id {
        filter.push_str(&format!(" AND id = {}", quote(i)));
    }
    let db = &client.target().database;
    let rows: Vec<Latest> = client.select(&format!(
        "SELECT app, id, argMax(body, version) AS body, argMax(deleted, version) AS gone \
         FROM {db}.meta WHERE {filter} GROUP BY app, id HAVING gone = 0 ORDER BY app, id"
    ))?;
    rows.into_iter()
        .map(|r| {
            serde_json::from_str(&r.body)
                .map_err(|e| StoreError::Engine(format!("unreadable {kind} record: {e}")))
        })
        .collect()
}

/// One live record.
pub fn get<T: DeserializeOwned>(
    client: &Client,
    kind: &str,
    app: &str,
    id: &str,
) -> Result<Option<T>, StoreError> {
    Ok(list(client, kind, Some(app), Some(id))?.into_iter().next())
}

/// A notification id, unique across servers and increasing with time:
/// seconds, then 20 random bits (increasing within this server). It stays
/// below 2^53, so JSON readers that use doubles keep it exact.
pub fn outbox_id() -> Result<u64, StoreError> {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let mut b = [0u8; 4];
    getrandom::getrandom(&mut b).map_err(|e| StoreError::Engine(format!("no randomness: {e}")))?;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let fresh = (secs << 20) | (u32::from_le_bytes(b) as u64 & 0xf_ffff);
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
            Some(fresh.max(p + 1))
        })
        .unwrap_or(0);
    Ok(fresh.max(prev + 1))
}

/// The outbox row id: zero-padded so that (app, id) order is id order.
pub fn outbox_key(id: u64) -> String {
    format!("{id:020}")
}
