//! The schema and its versioned migrations.
//!
//! ClickHouse 18.16 runs `ON CLUSTER` only with ZooKeeper, so every
//! statement is run on each host of the store URL. With a cluster, each
//! table is a `*_local` table on every node plus a Distributed table of the
//! plain name over them; without one, the plain name is the table itself.
//! Every statement says `IF NOT EXISTS`, so two servers starting at once,
//! or a migration cut short, run it again harmlessly.

use crate::http::Client;
use minutely_store::StoreError;

/// One logical table: its columns, its MergeTree engine clause and the
/// sharding key that keeps the rows that must meet on one shard together.
struct Table {
    name: &'static str,
    columns: &'static str,
    engine: &'static str,
    shard_by: &'static str,
}

/// Aggregate columns shared by minutes and rollups. For a counter only
/// `sum` is used; the sketch is stored as key/count arrays so that
/// `sumMap` merges buckets exactly.
const AGG_COLUMNS: &str = "kind UInt8, sum Float64, count Float64, min Float64, max Float64, \
     last Float64, last_ms Int64, pos_keys Array(Int32), pos_counts Array(Float64), \
     neg_keys Array(Int32), neg_counts Array(Float64), zero Float64";

const SERIES: Table = Table {
    name: "series",
    columns: "app String, env String, name String, kind UInt8, sid UInt64, \
              tag_keys Array(String), tag_values Array(String)",
    engine: "ReplacingMergeTree ORDER BY (app, name, env, sid)",
    shard_by: "sid",
};

/// One row per (series, minute, batch). A retried batch writes the same
/// rows again, wherever it lands; reads collapse them before merging.
const POINTS: Table = Table {
    name: "points",
    columns: "sid UInt64, minute UInt32, batch UInt64, {AGG}",
    engine:
        "MergeTree PARTITION BY toYYYYMMDD(toDateTime(minute), 'UTC') ORDER BY (sid, minute, batch)",
    shard_by: "sid",
};

/// Hourly (res 1) and daily (res 2) aggregates of closed periods, written
/// again identically if the job runs twice.
const ROLLUPS: Table = Table {
    name: "rollups",
    columns: "res UInt8, sid UInt64, ts UInt32, {AGG}",
    engine: "ReplacingMergeTree PARTITION BY (res, toYYYYMM(toDateTime(ts), 'UTC')) ORDER BY (res, sid, ts)",
    shard_by: "sid",
};

/// Apps, keys, dashboards, alerts and the evaluator's records: the newest
/// version of (kind, app, id) wins, `deleted` marks a removal.
const META: Table = Table {
    name: "meta",
    columns: "kind String, app String, id String, version UInt64, deleted UInt8, body String",
    engine: "ReplacingMergeTree(version) ORDER BY (kind, app, id)",
    shard_by: "cityHash64(kind, app, id)",
};

/// Batch keys already stored, so a retry on any server answers `duplicate`.
const BATCHES: Table = Table {
    name: "batches",
    columns: "key UInt64, accepted UInt64, ts UInt32",
    engine: "ReplacingMergeTree PARTITION BY toYYYYMMDD(toDateTime(ts), 'UTC') ORDER BY key",
    shard_by: "key",
};

/// Schema versions; a migration's statements are kept as they shipped.
fn migrations() -> Vec<(u32, Vec<&'static Table>)> {
    vec![(1, vec![&SERIES, &POINTS, &ROLLUPS, &META, &BATCHES])]
}

pub const CURRENT_VERSION: u32 = 1;

/// The statements that create one table on one node.
fn create(db: &str, cluster: Option<&str>, t: &Table) -> Vec<String> {
    let columns = t.columns.replace("{AGG}", AGG_COLUMNS);
    match cluster {
        None => vec![format!(
            "CREATE TABLE IF NOT EXISTS {db}.{} ({columns}) ENGINE = {}",
            t.name, t.engine
        )],
        Some(c) => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{}_local ({columns}) ENGINE = {}",
                t.name, t.engine
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{name} AS {db}.{name}_local \
                 ENGINE = Distributed({c}, {db}, {name}_local, {})",
                t.shard_by,
                name = t.name
            ),
        ],
    }
}

/// The table that holds a logical table's rows on one node (for dropping
/// partitions, which a Distributed table cannot do).
pub fn local_name(cluster: Option<&str>, name: &str) -> String {
    match cluster {
        Some(_) => format!("{name}_local"),
        None => name.to_string(),
    }
}

/// Brings every reachable host to the current schema. Fails if none is
/// reachable or one refuses a statement; an unreachable host is skipped
/// with a warning (it is migrated when a server next starts).
pub fn migrate(client: &Client) -> Result<(), StoreError> {
    let target = client.target().clone();
    let db = &target.database;
    let mut reached = 0;
    for host in &target.hosts {
        let Some(_) = client.execute_on(host, &format!("CREATE DATABASE IF NOT EXISTS {db}"))?
        else {
            tracing::warn!("ClickHouse at {host} is unreachable; its schema is not checked");
            continue;
        };
        reached += 1;
        client.execute_on(
            host,
            &format!(
                "CREATE TABLE IF NOT EXISTS {db}.minutely_schema (version UInt32, applied UInt32) \
                 ENGINE = MergeTree ORDER BY version"
            ),
        )?;
        let have: u32 = client
            .execute_on(
                host,
                &format!("SELECT max(version) FROM {db}.minutely_schema"),
            )?
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0);
        if have > CURRENT_VERSION {
            return Err(StoreError::NewerFormat {
                found: have as u64,
                supported: CURRENT_VERSION as u64,
            });
        }
        for (version, tables) in migrations() {
            if version <= have {
                continue;
            }
            for t in tables {
                for sql in create(db, target.cluster.as_deref(), t) {
                    client.execute_on(host, &sql)?;
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            client.execute_on(
                host,
                &format!("INSERT INTO {db}.minutely_schema VALUES ({version}, {now})"),
            )?;
            tracing::info!("ClickHouse at {host}: schema version {version} applied");
        }
    }
    if reached == 0 {
        return Err(StoreError::Engine(format!(
            "no ClickHouse host answers ({})",
            target.hosts.join(", ")
        )));
    }
    Ok(())
}
