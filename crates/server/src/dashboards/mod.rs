//! Dashboards as code (DESIGN sections 3 and 4):
//! `GET|POST /api/v1/dashboards`, `GET|PUT|DELETE /api/v1/dashboards/{id}`,
//! JSON or YAML by `Content-Type`, `?format=yaml` to export, AppSignal
//! imports recognised by their shape. Read keys read, admin keys write.

pub mod appsignal;
pub mod model;

use crate::error::{ApiError, ApiResult};
use crate::keys_api::{body_format, check_id, existing_app, BodyFormat};
use crate::push::read_body;
use crate::{blocking, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use minutely_store::{DashboardRecord, Scope, Store};
pub use model::Dashboard;
use serde_json::Value;

/// A definition is text a person wrote: 1 MiB is generous.
const MAX_DASHBOARD_BYTES: usize = 1 << 20;
/// Dashboards per app: bounds the list answer and the automatic dashboard's work.
const MAX_DASHBOARDS_PER_APP: usize = 1_000;

struct Params {
    app: Option<String>,
    format: Option<String>,
}

fn params(q: Option<String>) -> ApiResult<Params> {
    let mut p = Params {
        app: None,
        format: None,
    };
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "app" => p.app = Some(v.into_owned()),
            "format" => p.format = Some(v.into_owned()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: use app, format"
                )))
            }
        }
    }
    Ok(p)
}

/// An id from the title: lower-case words joined by `-`.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "dashboard".into()
    } else {
        out
    }
}

/// JSON or YAML by `Content-Type`, then the shape: native or AppSignal.
pub fn parse_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Dashboard> {
    let value: Value = match body_format(headers)? {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?,
        BodyFormat::Yaml => model::yaml_value(body).map_err(ApiError::bad_request)?,
    };
    let d = appsignal::detect(value).and_then(|found| match found {
        appsignal::Detected::Native(v) => model::from_value(v),
        appsignal::Detected::AppSignal(d) => Ok(d),
    });
    d.map_err(|e| ApiError::bad_request(format!("invalid dashboard: {e}")))
}

/// The JSON answer for one dashboard: its definition with id, app and times.
fn answer(r: &DashboardRecord) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_str(&r.body).map_err(|e| {
        ApiError::from(minutely_store::StoreError::Engine(format!(
            "bad dashboard {}: {e}",
            r.id
        )))
    })?;
    let obj = v.as_object_mut().ok_or_else(|| {
        ApiError::from(minutely_store::StoreError::Engine(format!(
            "dashboard {} is not an object",
            r.id
        )))
    })?;
    let mut out = serde_json::Map::new();
    out.insert("id".into(), r.id.clone().into());
    out.insert("app".into(), r.app.clone().into());
    out.insert("created".into(), r.created.into());
    out.insert("updated".into(), r.updated.into());
    out.append(obj);
    Ok(Value::Object(out))
}

fn record(
    app: &str,
    id: &str,
    d: &Dashboard,
    created: i64,
    now: i64,
) -> ApiResult<DashboardRecord> {
    Ok(DashboardRecord {
        app: app.into(),
        id: id.into(),
        created,
        updated: now,
        body: serde_json::to_string(d)
            .map_err(|e| ApiError::bad_request(format!("cannot store the dashboard: {e}")))?,
    })
}

/// Stores a new dashboard under a free id made from its title (blocking).
pub fn create(store: &dyn Store, app: &str, d: &Dashboard, now: i64) -> ApiResult<DashboardRecord> {
    let existing = store.dashboards(app)?;
    if existing.len() >= MAX_DASHBOARDS_PER_APP {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("app {app:?} has {MAX_DASHBOARDS_PER_APP} dashboards, the most allowed; delete some first"),
        ));
    }
    let base = slug(&d.title);
    let mut id = base.clone();
    let mut n = 2;
    while existing.iter().any(|r| r.id == id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    let r = record(app, &id, d, now, now)?;
    store.put_dashboard(r.clone())?;
    Ok(r)
}

pub async fn list(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q)?;
    let app = existing_app(&st, &caller, p.app, Scope::Read).await?;
    let store = st.store.clone();
    let list_app = app.clone();
    let records = blocking(move || Ok(store.dashboards(&list_app)?)).await?;
    let items = records.iter().map(answer).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(serde_json::json!({"app": app, "dashboards": items})))
}

pub async fn get_one(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q)?;
    let app = existing_app(&st, &caller, p.app, Scope::Read).await?;
    let r = find(&st, &app, &id).await?;
    match p.format.as_deref() {
        None | Some("json") => Ok(Json(answer(&r)?).into_response()),
        Some("yaml") => {
            let d = model::from_value(serde_json::from_str(&r.body).unwrap_or(Value::Null))
                .map_err(|e| ApiError::from(minutely_store::StoreError::Engine(e)))?;
            let text = model::to_yaml(&d)
                .map_err(|e| ApiError::from(minutely_store::StoreError::Engine(e)))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        "application/yaml; charset=utf-8".to_string(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"{}.yaml\"", r.id),
                    ),
                ],
                text,
            )
                .into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?} is not supported: use json or yaml"
        ))),
    }
}

async fn find(st: &Shared, app: &str, id: &str) -> ApiResult<DashboardRecord> {
    let (store, find_app, find_id) = (st.store.clone(), app.to_string(), id.to_string());
    let found = blocking(move || {
        Ok(store
            .dashboards(&find_app)?
            .into_iter()
            .find(|r| r.id == find_id))
    })
    .await?;
    found.ok_or_else(|| ApiError::not_found(format!("app {app:?} has no dashboard {id:?}")))
}

pub async fn create_one(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q)?;
    let app = existing_app(&st, &caller, p.app, Scope::Admin).await?;
    let body = read_body(body, MAX_DASHBOARD_BYTES).await?;
    let d = parse_body(&headers, &body)?;
    let (store, now, new_app) = (st.store.clone(), st.now() as i64, app.clone());
    let r = blocking(move || create(store.as_ref(), &new_app, &d, now)).await?;
    let location = format!("/api/v1/dashboards/{}?app={}", r.id, r.app);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(answer(&r)?),
    )
        .into_response())
}

/// Replaces a dashboard, or creates it under that id (so a file can be
/// applied again and again).
pub async fn put_one(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q)?;
    let app = existing_app(&st, &caller, p.app, Scope::Admin).await?;
    check_id("dashboard", &id)?;
    let body = read_body(body, MAX_DASHBOARD_BYTES).await?;
    let d = parse_body(&headers, &body)?;
    let (store, now, put_app) = (st.store.clone(), st.now() as i64, app.clone());
    let (r, created) = blocking(move || {
        let existing = store.dashboards(&put_app)?;
        let old = existing.iter().find(|r| r.id == id);
        if old.is_none() && existing.len() >= MAX_DASHBOARDS_PER_APP {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "app {put_app:?} has {MAX_DASHBOARDS_PER_APP} dashboards, the most allowed"
                ),
            ));
        }
        let r = record(&put_app, &id, &d, old.map_or(now, |o| o.created), now)?;
        store.put_dashboard(r.clone())?;
        Ok((r, old.is_none()))
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer(&r)?)).into_response())
}

pub async fn delete_one(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<StatusCode> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q)?;
    let app = existing_app(&st, &caller, p.app, Scope::Admin).await?;
    let (store, del_app, del_id) = (st.store.clone(), app.clone(), id.clone());
    let deleted = blocking(move || Ok(store.delete_dashboard(&del_app, &del_id)?)).await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "app {app:?} has no dashboard {id:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("Webshop: orders & items"), "webshop-orders-items");
        assert_eq!(slug("  ***"), "dashboard");
        assert_eq!(slug("Ünïcode Überblick"), "n-code-berblick");
    }
}
