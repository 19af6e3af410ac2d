//! Tables of alerting: definitions, the evaluator's state per alert,
//! incident history and the notification outbox. An evaluation pass of one
//! alert commits its state, its incidents and its notifications in one
//! transaction, so a crash never opens an incident twice nor loses a
//! notification that a committed state change owes.

use super::tables::*;
use crate::{AlertPass, AlertRecord, IncidentRecord, OutboxEntry, StoreError};
use redb::{Database, ReadableTable, ReadableTableMetadata};

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Engine(format!("bad {what} record: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Opens a table for reading; a directory from before alerts has none.
macro_rules! read_table {
    ($txn:expr, $def:expr) => {
        match $txn.open_table($def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Default::default()),
            Err(e) => return Err(engine(e)),
        }
    };
}

/// The alerts of one app (sorted by id), or of every app (`None`).
pub fn alerts(db: &Database, app: Option<&str>) -> Result<Vec<AlertRecord>, StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let table = read_table!(txn, ALERTS);
    let mut out = Vec::new();
    let range = match app {
        Some(a) => table.range((a, "")..).map_err(engine)?,
        None => table.iter().map_err(engine)?,
    };
    for entry in range {
        let (k, v) = entry.map_err(engine)?;
        if app.is_some_and(|a| k.value().0 != a) {
            break;
        }
        out.push(json(v.value(), "alert")?);
    }
    Ok(out)
}

pub fn put_alert(db: &Database, a: AlertRecord) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    {
        let mut table = txn.open_table(ALERTS).map_err(engine)?;
        table
            .insert((a.app.as_str(), a.id.as_str()), to_json(&a).as_slice())
            .map_err(engine)?;
    }
    txn.commit().map_err(engine)
}

/// Deletes a definition and its evaluator state; its incidents stay.
pub fn delete_alert(db: &Database, app: &str, id: &str) -> Result<bool, StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    let existed = {
        let mut table = txn.open_table(ALERTS).map_err(engine)?;
        let removed = table.remove((app, id)).map_err(engine)?.is_some();
        let mut state = txn.open_table(ALERT_STATE).map_err(engine)?;
        state.remove((app, id)).map_err(engine)?;
        removed
    };
    txn.commit().map_err(engine)?;
    Ok(existed)
}

pub fn alert_state(db: &Database, app: &str, id: &str) -> Result<Option<String>, StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let table = read_table!(txn, ALERT_STATE);
    let v = table.get((app, id)).map_err(engine)?;
    Ok(v.map(|v| v.value().to_string()))
}

pub fn commit_pass(db: &Database, pass: AlertPass) -> Result<Vec<u64>, StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    let mut ids = Vec::new();
    {
        let mut state = txn.open_table(ALERT_STATE).map_err(engine)?;
        state
            .insert(
                (pass.app.as_str(), pass.alert_id.as_str()),
                pass.state.as_str(),
            )
            .map_err(engine)?;
        let mut incidents = txn.open_table(INCIDENTS).map_err(engine)?;
        for i in &pass.incidents {
            incidents
                .insert((i.app.as_str(), i.id.as_str()), to_json(i).as_slice())
                .map_err(engine)?;
        }
        let mut meta = txn.open_table(META).map_err(engine)?;
        let mut next = meta
            .get(NEXT_OUTBOX_ID)
            .map_err(engine)?
            .map_or(1, |v| v.value());
        let mut outbox = txn.open_table(OUTBOX).map_err(engine)?;
        for body in pass.notifications {
            let entry = OutboxEntry {
                id: next,
                due: pass.now,
                attempts: 0,
                last_error: None,
                body,
            };
            outbox
                .insert(next, to_json(&entry).as_slice())
                .map_err(engine)?;
            ids.push(next);
            next += 1;
        }
        meta.insert(NEXT_OUTBOX_ID, next).map_err(engine)?;
    }
    txn.commit().map_err(engine)?;
    Ok(ids)
}

/// The incidents of an app, in key order.
pub fn incidents(db: &Database, app: &str) -> Result<Vec<IncidentRecord>, StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let table = read_table!(txn, INCIDENTS);
    let mut out = Vec::new();
    for entry in table.range((app, "")..).map_err(engine)? {
        let (k, v) = entry.map_err(engine)?;
        if k.value().0 != app {
            break;
        }
        out.push(json(v.value(), "incident")?);
    }
    Ok(out)
}

/// Deletes incidents of every app that closed before `before`.
pub fn prune_incidents(db: &Database, before: i64) -> Result<usize, StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    let n = {
        let mut table = txn.open_table(INCIDENTS).map_err(engine)?;
        let mut old = Vec::new();
        for entry in table.iter().map_err(engine)? {
            let (k, v) = entry.map_err(engine)?;
            let i: IncidentRecord = json(v.value(), "incident")?;
            if i.closed_at.is_some_and(|c| c < before) {
                let (a, id) = k.value();
                old.push((a.to_string(), id.to_string()));
            }
        }
        for (a, id) in &old {
            table.remove((a.as_str(), id.as_str())).map_err(engine)?;
        }
        old.len()
    };
    txn.commit().map_err(engine)?;
    Ok(n)
}

pub fn outbox(db: &Database) -> Result<Vec<OutboxEntry>, StoreError> {
    let txn = db.begin_read().map_err(engine)?;
    let table = read_table!(txn, OUTBOX);
    let mut out = Vec::with_capacity(table.len().map_err(engine)? as usize);
    for entry in table.iter().map_err(engine)? {
        out.push(json(entry.map_err(engine)?.1.value(), "outbox")?);
    }
    Ok(out)
}

/// Records a failed attempt (the entry with its new `attempts` and `due`).
pub fn update_outbox(db: &Database, e: OutboxEntry) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    {
        let mut table = txn.open_table(OUTBOX).map_err(engine)?;
        if table.get(e.id).map_err(engine)?.is_some() {
            table.insert(e.id, to_json(&e).as_slice()).map_err(engine)?;
        }
    }
    txn.commit().map_err(engine)
}

/// Forgets a delivered notification.
pub fn remove_outbox(db: &Database, id: u64) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(engine)?;
    {
        let mut table = txn.open_table(OUTBOX).map_err(engine)?;
        table.remove(id).map_err(engine)?;
    }
    txn.commit().map_err(engine)
}

#[cfg(test)]
mod tests {
    use super::super::{EmbeddedConfig, EmbeddedStore};
    use crate::{AlertPass, AlertRecord, IncidentRecord, Store};

    fn open(dir: &std::path::Path) -> EmbeddedStore {
        EmbeddedStore::open(EmbeddedConfig::new(dir)).unwrap()
    }

    fn incident(id: &str, closed_at: Option<i64>) -> IncidentRecord {
        IncidentRecord {
            app: "shop".into(),
            id: id.into(),
            alert_id: "a".into(),
            opened_at: 100,
            closed_at,
            body: "{}".into(),
        }
    }

    #[test]
    fn alerts_state_incidents_and_outbox_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            assert!(store.alerts(None).unwrap().is_empty());
            for (app, id) in [("shop", "b"), ("shop", "a"), ("shop2", "a")] {
                store
                    .put_alert(AlertRecord {
                        app: app.into(),
                        id: id.into(),
                        created: 1,
                        updated: 1,
                        body: "{}".into(),
                    })
                    .unwrap();
            }
            let ids = store
                .commit_alert_pass(AlertPass {
                    app: "shop".into(),
                    alert_id: "a".into(),
                    state: r#"{"cursor":60}"#.into(),
                    incidents: vec![incident("a-1", None), incident("a-0", Some(50))],
                    notifications: vec!["n1".into(), "n2".into()],
                    now: 7,
                })
                .unwrap();
            assert_eq!(ids, vec![1, 2]);
            store.close().unwrap();
        }
        let store = open(dir.path());
        let ids: Vec<_> = store
            .alerts(Some("shop"))
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(store.alerts(None).unwrap().len(), 3);
        assert_eq!(
            store.alert_state("shop", "a").unwrap().as_deref(),
            Some(r#"{"cursor":60}"#)
        );
        assert_eq!(store.incidents("shop").unwrap().len(), 2);
        assert!(store.incidents("shop2").unwrap().is_empty());
        let mut out = store.outbox().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].id, out[0].due, out[0].body.as_str()), (1, 7, "n1"));
        out[0].attempts = 3;
        out[0].due = 99;
        store.update_outbox(out[0].clone()).unwrap();
        store.remove_outbox(2).unwrap();
        // An update after delivery does not bring the entry back.
        store.update_outbox(out[1].clone()).unwrap();
        let out = store.outbox().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].attempts, out[0].due), (3, 99));
        // Ids go on after a restart.
        let ids = store
            .commit_alert_pass(AlertPass {
                app: "shop".into(),
                alert_id: "a".into(),
                state: "{}".into(),
                incidents: vec![],
                notifications: vec!["n3".into()],
                now: 8,
            })
            .unwrap();
        assert_eq!(ids, vec![3]);
        assert_eq!(store.prune_incidents(60).unwrap(), 1);
        assert_eq!(store.incidents("shop").unwrap()[0].id, "a-1");
        // Deleting an alert forgets its state, keeps its incidents.
        assert!(store.delete_alert("shop", "a").unwrap());
        assert!(!store.delete_alert("shop", "a").unwrap());
        assert_eq!(store.alert_state("shop", "a").unwrap(), None);
        assert_eq!(store.incidents("shop").unwrap().len(), 1);
    }
}
