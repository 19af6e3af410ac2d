//! The redb tables of the embedded store (layout in docs/format.md).

use crate::StoreError;
use redb::TableDefinition;

/// Bumped when the layout changes; older layouts stay readable (and are
/// marked with this version at open, as this build may write what an
/// older one cannot read: version 2 keeps blocks in block files).
pub const FORMAT_VERSION: u64 = 5;

/// series id -> JSON series definition: written by format versions 1 and
/// 2; later ones append definitions to `series.defs` and only read this.
pub const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");
/// series id -> newest minute with data.
pub const LAST_SEEN: TableDefinition<u64, i64> = TableDefinition::new("last_seen");
/// (series id, resolution code, block number) -> encoded block, or its
/// place in a block file (`block_files::BlockRef`).
pub const BLOCKS: TableDefinition<(u64, u8, u32), &[u8]> = TableDefinition::new("blocks");
/// block file id -> (live bytes, length): what checkpoints collect.
pub const BLOCK_FILES: TableDefinition<u64, (u64, u64)> = TableDefinition::new("block_files");
/// 128-bit hash of (app, env, batch key) -> (unix seconds, points accepted).
pub const BATCHES: TableDefinition<u128, (i64, u64)> = TableDefinition::new("batches");
/// (unix seconds, batch hash) -> (): expiry order of `BATCHES`.
pub const BATCH_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("batch_expiry");
/// key hash -> JSON key record.
pub const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// app name -> JSON app record.
pub const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
/// (app, dashboard id) -> JSON dashboard record. Added in 0.1 without a
/// format bump: a missing table is created at open, older binaries ignore it.
pub const DASHBOARDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("dashboards");
/// (app, alert id) -> JSON alert record (definition as JSON text). The four
/// alert tables were added in 0.1 without a format bump, like `dashboards`.
pub const ALERTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("alerts");
/// (app, alert id) -> JSON evaluator state of the alert (cursor, series).
pub const ALERT_STATE: TableDefinition<(&str, &str), &str> = TableDefinition::new("alert_state");
/// (app, incident id) -> JSON incident record.
pub const INCIDENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("incidents");
/// notification id -> JSON outbox entry, until delivered.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// "format_version", "next_series_id", "wal_applied_through".
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// META key: the newest log segment whose records are all in redb.
pub const WAL_APPLIED_THROUGH: &str = "wal_applied_through";
/// META key: the next series id (ids are never reused).
pub const NEXT_SERIES_ID: &str = "next_series_id";
/// META key: the places file (`blocks/N.places`) of the last commit.
pub const PLACES_FILE: &str = "places_file";
/// META key: the bytes of that file the last commit made count.
pub const PLACES_LEN: &str = "places_len";
/// META key: the next outbox notification id.
pub const NEXT_OUTBOX_ID: &str = "next_outbox_id";

/// Converts any redb error; a full disk becomes `DiskFull` so pushes get 503.
pub fn engine<E: std::fmt::Display>(e: E) -> StoreError {
    let text = e.to_string();
    if text.contains("No space left") || text.contains("os error 28") {
        StoreError::DiskFull(text)
    } else {
        StoreError::Engine(text)
    }
}
