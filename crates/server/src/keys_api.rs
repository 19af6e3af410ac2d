//! Apps and keys over HTTP (admin keys only): `POST /api/v1/apps`,
//! `GET|POST /api/v1/apps/{app}/keys`, `DELETE /api/v1/apps/{app}/keys/{id}`.

use crate::auth::{create_key as make_key, Caller, ALL_APPS};
use crate::error::{ApiError, ApiResult};
use crate::push::read_body;
use crate::{blocking, Shared};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use minutely_store::{AppRecord, Scope};
use serde::Deserialize;

/// App names follow metric-name rules so they are safe in URLs and files.
pub fn validate_app(name: &str) -> ApiResult<()> {
    minutely_core::validate::validate_name(name)
        .map_err(|_| ApiError::bad_request(format!("app name {:?} is invalid: use 1-200 characters of A-Z a-z 0-9 _ . : - starting with a letter or _", minutely_core::validate::clip(name))))
}

/// The app a definition request acts on, checked against the caller and
/// the app naming rules (dashboards and alerts).
pub(crate) fn checked_app(
    caller: &Caller,
    named: Option<String>,
    need: Scope,
) -> ApiResult<String> {
    let app = caller.act_on(named, need)?;
    validate_app(&app)?;
    Ok(app)
}

/// Ids of definitions (dashboards, alerts): short and safe in URLs and files.
pub(crate) fn check_id(what: &str, id: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} id {:?} is invalid: use 1-64 characters of a-z 0-9 - _",
            minutely_core::validate::clip(id)
        )))
    }
}

/// How a definition body (dashboard, alert) is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Json,
    Yaml,
}

/// The body format from `Content-Type` (JSON when absent), or 415.
pub(crate) fn body_format(headers: &HeaderMap) -> ApiResult<BodyFormat> {
    let ctype = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match ctype.as_str() {
        "" | "application/json" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            Ok(BodyFormat::Yaml)
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {:?} is not supported: send application/json or application/yaml",
                minutely_core::validate::clip(other)
            ),
        )),
    }
}

/// These bodies are a few fields; read only after the key is checked.
const SMALL_BODY: usize = 64 * 1024;

/// Parses a small JSON body, naming the expected shape when it is wrong.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body must be {shape}: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    name: String,
}

pub async fn list_apps(
    State(st): State<Shared>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let caller = st.keys.authenticate(&headers)?;
    caller.require(Scope::Admin, ALL_APPS)?;
    let apps = st.store.apps()?;
    Ok(Json(
        serde_json::json!({ "apps": apps.iter().map(|a| serde_json::json!({"name": a.name, "created": a.created})).collect::<Vec<_>>() }),
    ))
}

pub async fn create_app(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let caller = st.keys.authenticate(&headers)?;
    caller.require(Scope::Admin, ALL_APPS)?;
    let body = read_body(body, SMALL_BODY).await?;
    let new: NewApp = json_body(&body, r#"{"name": "..."}"#)?;
    validate_app(&new.name)?;
    let record = AppRecord {
        name: new.name.clone(),
        created: st.now() as i64,
    };
    let store = st.store.clone();
    blocking(move || store.create_app(record).map_err(ApiError::from)).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "name": new.name })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    scope: String,
    #[serde(default)]
    name: String,
}

/// `404` unless the app exists (an admin key of every app may name any).
pub(crate) async fn app_exists(st: &Shared, app: &str) -> ApiResult<()> {
    // Off the reactor: over a shared store this is a network round trip.
    let (store, name) = (st.store.clone(), app.to_string());
    if blocking(move || Ok(store.apps()?.iter().any(|a| a.name == name))).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no app {app:?}; create it with POST /api/v1/apps"
        )))
    }
}

/// [`checked_app`] for an app that must exist (`404` otherwise): what the
/// dashboards and alerts endpoints act on.
pub(crate) async fn existing_app(
    st: &Shared,
    caller: &Caller,
    named: Option<String>,
    need: Scope,
) -> ApiResult<String> {
    let app = checked_app(caller, named, need)?;
    app_exists(st, &app).await?;
    Ok(app)
}

pub async fn list_keys(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(app): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let caller = st.keys.authenticate(&headers)?;
    caller.require(Scope::Admin, &app)?;
    let keys: Vec<_> = st
        .store
        .keys()?
        .into_iter()
        .filter(|k| k.app == app)
        .map(|k| serde_json::json!({"id": k.id, "app": k.app, "scope": k.scope, "name": k.name, "created": k.created}))
        .collect();
    Ok(Json(serde_json::json!({ "keys": keys })))
}

pub async fn create_key(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let caller = st.keys.authenticate(&headers)?;
    caller.require(Scope::Admin, &app)?;
    let body = read_body(body, SMALL_BODY).await?;
    let new: NewKey = json_body(&body, r#"{"scope": "push|read|admin", "name": "..."}"#)?;
    app_exists(&st, &app).await?;
    let scope: Scope = new.scope.parse().map_err(ApiError::bad_request)?;
    let (store, now, key_app) = (st.store.clone(), st.now() as i64, app.clone());
    let (secret, record) = blocking(move || {
        let made = make_key(store.as_ref(), &key_app, scope, &new.name, None, now)?;
        Ok(made)
    })
    .await?;
    st.keys.reload(st.store.as_ref())?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({"id": record.id, "key": secret, "app": app, "scope": record.scope, "name": record.name}),
        ),
    ))
}

pub async fn revoke_key(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let caller = st.keys.authenticate(&headers)?;
    caller.require(Scope::Admin, &app)?;
    let (store, key_app, key_id) = (st.store.clone(), app.clone(), id.clone());
    let revoked = blocking(move || {
        let belongs = store
            .keys()?
            .iter()
            .any(|k| k.id == key_id && k.app == key_app);
        Ok(belongs && store.revoke_key(&key_id)?)
    })
    .await?;
    if !revoked {
        return Err(ApiError::not_found(format!(
            "app {app:?} has no key {id:?}"
        )));
    }
    st.keys.reload(st.store.as_ref())?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    dest: String,
}

/// `POST /api/v1/backup {"dest": "/path"}`: a consistent copy of the data
/// while the server runs, written on the server's machine.
pub async fn backup(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<serde_json::Value>> {
    let caller = st.keys.authenticate(&headers)?;
    caller.require(Scope::Admin, ALL_APPS)?;
    let body = read_body(body, SMALL_BODY).await?;
    let req: BackupRequest = json_body(&body, r#"{"dest": "/absolute/path"}"#)?;
    let dest = std::path::PathBuf::from(&req.dest);
    if !dest.is_absolute() {
        return Err(ApiError::bad_request(
            "dest must be an absolute path on the server's machine",
        ));
    }
    let store = st.store.clone();
    let target = dest.clone();
    blocking(move || store.backup(&target).map_err(ApiError::from)).await?;
    Ok(Json(serde_json::json!({ "dest": req.dest })))
}
