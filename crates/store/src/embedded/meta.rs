//! Tables beside the metrics: format version, series definitions at start,
//! apps, keys and dashboards.

use super::index::SeriesIndex;
use super::record::SeriesDef;
use super::tables::*;
use crate::{AppRecord, DashboardRecord, KeyRecord, StoreError};
use redb::{Database, ReadableTable};

/// Creates missing tables and checks the format version.
pub fn init_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    {
        // The version first: a newer layout may have changed other tables.
        let mut meta = txn.open_table(META).map_err(engine)?;
        let found = meta
            .get("format_version")
            .map_err(engine)?
            .map(|v| v.value());
        match found {
            Some(v) if v > FORMAT_VERSION => {
                return Err(StoreError::NewerFormat {
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Some(v) if v == FORMAT_VERSION => {}
            _ => {
                meta.insert("format_version", FORMAT_VERSION)
                    .map_err(engine)?;
            }
        }
        txn.open_table(SERIES).map_err(engine)?;
        txn.open_table(BLOCK_FILES).map_err(engine)?;
        txn.open_table(BATCHES).map_err(engine)?;
        txn.open_table(BATCH_EXPIRY).map_err(engine)?;
        txn.open_table(KEYS).map_err(engine)?;
        txn.open_table(APPS).map_err(engine)?;
        txn.open_table(DASHBOARDS).map_err(engine)?;
        txn.open_table(ALERTS).map_err(engine)?;
        txn.open_table(ALERT_STATE).map_err(engine)?;
        txn.open_table(INCIDENTS).map_err(engine)?;
        txn.open_table(OUTBOX).map_err(engine)?;
    }
    txn.commit().map_err(engine)?;
    Ok(())
}

/// A u64 from the META table (0 when absent).
pub fn meta_u64(db: &Database, key: &str) -> Result<u64, StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let meta = txn.open_table(META).map_err(engine)?;
    Ok(meta.get(key).map_err(engine)?.map_or(0, |v| v.value()))
}

pub fn load_index(db: &Database, index: &mut SeriesIndex) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let series = txn.open_table(SERIES).map_err(engine)?;
    for entry in series.iter().map_err(engine)? {
        let (_, v) = entry.map_err(engine)?;
        let def: SeriesDef = serde_json::from_slice(v.value())
            .map_err(|e| StoreError::Engine(format!("series table holds a bad definition: {e}")))?;
        index.insert(def, true);
    }
    index.reserve_ids(meta_u64(db, NEXT_SERIES_ID)?);
    Ok(())
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Engine(format!("bad {what} record: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub fn apps(db: &Database) -> Result<Vec<AppRecord>, StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let table = txn.open_table(APPS).map_err(engine)?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(engine)? {
        out.push(json(entry.map_err(engine)?.1.value(), "app")?);
    }
    Ok(out)
}

pub fn create_app(db: &Database, app: AppRecord) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    {
        let mut table = txn.open_table(APPS).map_err(engine)?;
        if table.get(app.name.as_str()).map_err(engine)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "app {:?} already exists",
                app.name
            )));
        }
        table
            .insert(app.name.as_str(), to_json(&app).as_slice())
            .map_err(engine)?;
    }
    txn.commit().map_err(engine)
}

pub fn keys(db: &Database) -> Result<Vec<KeyRecord>, StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let table = txn.open_table(KEYS).map_err(engine)?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(engine)? {
        out.push(json(entry.map_err(engine)?.1.value(), "key")?);
    }
    Ok(out)
}

pub fn put_key(db: &Database, key: KeyRecord) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    {
        let mut table = txn.open_table(KEYS).map_err(engine)?;
        table
            .insert(key.hash.as_str(), to_json(&key).as_slice())
            .map_err(engine)?;
    }
    txn.commit().map_err(engine)
}

pub fn revoke_key(db: &Database, id: &str) -> Result<bool, StoreError> {
    let hash = keys(db)?.into_iter().find(|k| k.id == id).map(|k| k.hash);
    let Some(hash) = hash else { return Ok(false) };
    let txn = db.begin_write().map_err(engine)?;
    {
        let mut table = txn.open_table(KEYS).map_err(engine)?;
        table.remove(hash.as_str()).map_err(engine)?;
    }
    txn.commit().map_err(engine)?;
    Ok(true)
}

pub fn dashboards(db: &Database, app: &str) -> Result<Vec<DashboardRecord>, StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let table = match txn.open_table(DASHBOARDS) {
        Ok(t) => t,
        // A directory opened read-only by an older layout has no table yet.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(engine(e)),
    };
    let mut out = Vec::new();
    for entry in table.range((app, "")..).map_err(engine)? {
        let (k, v) = entry.map_err(engine)?;
        if k.value().0 != app {
            break;
        }
        out.push(json(v.value(), "dashboard")?);
    }
    Ok(out)
}

pub fn put_dashboard(db: &Database, d: DashboardRecord) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    {
        let mut table = txn.open_table(DASHBOARDS).map_err(engine)?;
        table
            .insert((d.app.as_str(), d.id.as_str()), to_json(&d).as_slice())
            .map_err(engine)?;
    }
    txn.commit().map_err(engine)
}

pub fn delete_dashboard(db: &Database, app: &str, id: &str) -> Result<bool, StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    let existed = {
        let mut table = txn.open_table(DASHBOARDS).map_err(engine)?;
        let removed = table.remove((app, id)).map_err(engine)?;
        removed.is_some()
    };
    txn.commit().map_err(engine)?;
    Ok(existed)
}
