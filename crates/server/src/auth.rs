//! API keys: generation, hashing, the in-memory keyring and the scope check.
//!
//! A key is `mk_<scope>_<32 random base62 chars>` (~190 bits); only its
//! SHA-256 is stored, so a copy of the data directory does not leak keys.

use crate::error::{ApiError, ApiResult};
use axum::http::HeaderMap;
use minutely_store::{KeyRecord, Scope, Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::RwLock;

/// App value of a key that may act on every app (the first admin key).
pub const ALL_APPS: &str = "*";

pub fn hash_key(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_chars(n: usize) -> Result<String, StoreError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::getrandom(&mut buf)
            .map_err(|e| StoreError::Engine(format!("no randomness: {e}")))?;
        // Rejection sampling keeps every character equally likely.
        for &b in buf.iter().filter(|&&b| (b as usize) < 248) {
            if out.len() < n {
                out.push(ALPHABET[b as usize % 62] as char);
            }
        }
    }
    Ok(out)
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Push => "push",
        Scope::Read => "read",
        Scope::Admin => "admin",
    }
}

/// Creates a key (random unless `secret` is given), stores its hash and
/// returns the secret with its record.
pub fn create_key(
    store: &dyn Store,
    app: &str,
    scope: Scope,
    name: &str,
    secret: Option<String>,
    now: i64,
) -> Result<(String, KeyRecord), StoreError> {
    let secret = match secret {
        Some(s) => s,
        None => format!("mk_{}_{}", scope_name(scope), random_chars(32)?),
    };
    let record = KeyRecord {
        id: random_chars(8)?,
        hash: hash_key(&secret),
        app: app.to_string(),
        scope,
        name: name.to_string(),
        created: now,
    };
    store.put_key(record.clone())?;
    Ok((secret, record))
}

/// Who a request is.
#[derive(Debug, Clone)]
pub struct Caller {
    pub app: String,
    pub scope: Scope,
}

impl Caller {
    /// May this caller act on `app` with at least `need`?
    /// Push keys only push; read keys read; admin keys do everything.
    /// The app a request acts on: the one it names, else the key's own
    /// (`default` for a key of every app), checked against this key.
    pub fn act_on(&self, named: Option<String>, need: Scope) -> ApiResult<String> {
        let app = match (named, self.app.as_str()) {
            (Some(a), _) => a,
            (None, ALL_APPS) => "default".into(),
            (None, own) => own.into(),
        };
        self.require(need, &app)?;
        Ok(app)
    }

    pub fn require(&self, need: Scope, app: &str) -> ApiResult<()> {
        let scope_ok = match need {
            Scope::Push => matches!(self.scope, Scope::Push | Scope::Admin),
            Scope::Read => matches!(self.scope, Scope::Read | Scope::Admin),
            Scope::Admin => self.scope == Scope::Admin,
        };
        if !scope_ok {
            return Err(ApiError::forbidden(format!(
                "this {} key cannot {}",
                scope_name(self.scope),
                match need {
                    Scope::Push => "push",
                    Scope::Read => "read metrics (use a read or admin key)",
                    Scope::Admin => "change settings (use an admin key)",
                }
            )));
        }
        if self.app != ALL_APPS && self.app != app {
            return Err(ApiError::forbidden(format!(
                "this key belongs to app {:?}, not {:?}",
                self.app,
                minutely_core::validate::clip(app)
            )));
        }
        Ok(())
    }
}

/// Key hashes to callers, loaded from the store and refreshed on change.
#[derive(Default)]
pub struct Keyring {
    by_hash: RwLock<HashMap<String, Caller>>,
}

impl Keyring {
    pub fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let map = store
            .keys()?
            .into_iter()
            .map(|k| {
                (
                    k.hash,
                    Caller {
                        app: k.app,
                        scope: k.scope,
                    },
                )
            })
            .collect();
        *self.by_hash.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    pub fn lookup(&self, secret: &str) -> Option<Caller> {
        self.by_hash
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash_key(secret))
            .cloned()
    }

    /// The caller named by the `Authorization: Bearer` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> ApiResult<Caller> {
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <key> header"))?;
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer <key>")
            })?;
        self.lookup(secret)
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let push = Caller {
            app: "shop".into(),
            scope: Scope::Push,
        };
        assert!(push.require(Scope::Push, "shop").is_ok());
        assert!(push.require(Scope::Read, "shop").is_err());
        assert!(push.require(Scope::Push, "blog").is_err());
        let read = Caller {
            app: "shop".into(),
            scope: Scope::Read,
        };
        assert!(read.require(Scope::Push, "shop").is_err());
        assert!(read.require(Scope::Admin, "shop").is_err());
        let admin = Caller {
            app: ALL_APPS.into(),
            scope: Scope::Admin,
        };
        assert!(admin.require(Scope::Read, "anything").is_ok());
        assert!(admin.require(Scope::Admin, "shop").is_ok());
    }

    #[test]
    fn random_keys_differ_and_hash_is_hex() {
        let a = random_chars(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_chars(32).unwrap());
        assert_eq!(hash_key("x").len(), 64);
    }
}
