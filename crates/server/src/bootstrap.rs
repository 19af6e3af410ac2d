//! First start: app `default`, a push key and an admin key, random or from
//! `MINUTELY_PUSH_KEY` / `MINUTELY_ADMIN_KEY`, shown once.

use crate::auth::{create_key, ALL_APPS};
use minutely_store::{AppRecord, Scope, Store, StoreError};

/// The keys made at first start; `None` fields were given by the operator.
pub struct FirstKeys {
    pub push: String,
    pub admin: String,
}

/// Creates the first app and keys if the store has no keys yet.
pub fn first_start(
    store: &dyn Store,
    push: Option<String>,
    admin: Option<String>,
    now: i64,
) -> Result<Option<FirstKeys>, StoreError> {
    // First start means: no admin key for every app yet (keys made with the
    // CLI before the first start do not count).
    if store
        .keys()?
        .iter()
        .any(|k| k.scope == Scope::Admin && k.app == ALL_APPS)
    {
        return Ok(None);
    }
    if !store.apps()?.iter().any(|a| a.name == "default") {
        store.create_app(AppRecord {
            name: "default".into(),
            created: now,
        })?;
    }
    // Push key first: if a crash came between the two, the next start makes both again.
    let (push, _) = create_key(store, "default", Scope::Push, "first push key", push, now)?;
    let (admin, _) = create_key(store, ALL_APPS, Scope::Admin, "first admin key", admin, now)?;
    Ok(Some(FirstKeys { push, admin }))
}
