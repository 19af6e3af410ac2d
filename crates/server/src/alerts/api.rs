//! `GET|POST /api/v1/alerts`, `GET|PUT|DELETE /api/v1/alerts/{id}` (JSON or
//! YAML by `Content-Type`, `?format=yaml` exports),
//! `POST /api/v1/alerts/preview?from=&to=`, `GET /api/v1/incidents`,
//! `GET /api/v1/alerts/outbox` and, with `--alerts-clock manual`,
//! `POST /api/v1/alerts/evaluate?to=`. Read keys read, admin keys write.

use super::eval;
use crate::auth::ALL_APPS;
use crate::error::{ApiError, ApiResult};
use crate::keys_api::{body_format, check_id, existing_app, BodyFormat};
use crate::push::read_body;
use crate::{blocking, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use minutely_alerts::{AlertDef, AlertState, Channel};
use minutely_core::timeparse::parse_time;
use minutely_store::{AlertRecord, Scope, Store};
use serde_json::{json, Value};
use std::collections::HashMap;

/// An alert is text a person wrote: 256 KiB is generous.
const MAX_ALERT_BYTES: usize = 256 << 10;
/// Alerts per app: bounds the evaluator's work per minute.
const MAX_ALERTS_PER_APP: usize = 1_000;
/// The longest preview range: 31 days of minutes.
const MAX_PREVIEW_SECS: i64 = 31 * 86_400;

pub(crate) fn params(q: Option<String>, allowed: &[&str]) -> ApiResult<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {k:?}: use {}",
                allowed.join(", ")
            )));
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

/// JSON or YAML by `Content-Type`, then checked. The app in the body, if
/// any, must be the app of the request.
pub fn parse_body(headers: &HeaderMap, body: &[u8], app: &str) -> ApiResult<AlertDef> {
    let def: AlertDef = match body_format(headers)? {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid alert: {e}")))?,
        BodyFormat::Yaml => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid alert: {e}")))?,
    };
    def.validate()
        .map_err(|e| ApiError::bad_request(format!("invalid alert: {e}")))?;
    if let Some(a) = &def.app {
        if a != app {
            return Err(ApiError::bad_request(format!(
                "the alert names app {a:?} but the request is for app {app:?}; pass ?app={a}"
            )));
        }
    }
    Ok(def)
}

/// Checks what needs the store: the field must suit the metric's kind.
fn check_against_store(store: &dyn Store, app: &str, def: &AlertDef) -> ApiResult<()> {
    if let Some(kind) = store.metric_kind(app, &def.metric) {
        eval::field_of(def, kind)
            .map_err(|e| ApiError::bad_request(format!("invalid alert: {e}")))?;
    }
    Ok(())
}

/// Hides channel secrets from callers that cannot change alerts.
fn redact(def: &mut AlertDef) {
    for c in &mut def.channels {
        if let Channel::Webhook {
            secret: Some(s), ..
        } = c
        {
            *s = "********".into();
        }
    }
}

fn answer(store: &dyn Store, r: &AlertRecord, admin: bool) -> ApiResult<Value> {
    let mut def: AlertDef = serde_json::from_str(&r.body).map_err(|e| {
        ApiError::from(minutely_store::StoreError::Engine(format!(
            "bad alert {}: {e}",
            r.id
        )))
    })?;
    if !admin {
        redact(&mut def);
    }
    def.app = Some(r.app.clone());
    let state: AlertState = store
        .alert_state(&r.app, &r.id)?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let series: Vec<Value> = state
        .series
        .iter()
        .map(|(k, s)| {
            let (env, tags) = eval::parse_series_key(k);
            json!({"env": env, "tags": tags, "state": s.phase,
                   "incident_id": s.incident.as_ref().filter(|i| !i.id.is_empty()).map(|i| i.id.clone())})
        })
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("id".into(), r.id.clone().into());
    out.insert("created".into(), r.created.into());
    out.insert("updated".into(), r.updated.into());
    if let Value::Object(mut m) = serde_json::to_value(&def).unwrap_or_default() {
        out.append(&mut m);
    }
    out.insert("evaluated_through".into(), json!(state.cursor));
    out.insert("series".into(), series.into());
    Ok(Value::Object(out))
}

fn record(app: &str, id: &str, def: &AlertDef, created: i64, now: i64) -> ApiResult<AlertRecord> {
    let mut def = def.clone();
    def.app = None;
    Ok(AlertRecord {
        app: app.into(),
        id: id.into(),
        created,
        updated: now,
        body: serde_json::to_string(&def)
            .map_err(|e| ApiError::bad_request(format!("cannot store the alert: {e}")))?,
    })
}

pub async fn list(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q, &["app"])?;
    let app = existing_app(&st, &caller, p.get("app").cloned(), Scope::Read).await?;
    let admin = caller.scope == Scope::Admin;
    let (store, a) = (st.store.clone(), app.clone());
    let items = blocking(move || {
        store
            .alerts(Some(&a))?
            .iter()
            .map(|r| answer(store.as_ref(), r, admin))
            .collect::<ApiResult<Vec<_>>>()
    })
    .await?;
    Ok(Json(json!({"app": app, "alerts": items})))
}

async fn find(st: &Shared, app: &str, id: &str) -> ApiResult<AlertRecord> {
    let (store, a, i) = (st.store.clone(), app.to_string(), id.to_string());
    blocking(move || Ok(store.alerts(Some(&a))?.into_iter().find(|r| r.id == i)))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("app {app:?} has no alert {id:?}")))
}

pub async fn get_one(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q, &["app", "format"])?;
    let app = existing_app(&st, &caller, p.get("app").cloned(), Scope::Read).await?;
    let admin = caller.scope == Scope::Admin;
    let r = find(&st, &app, &id).await?;
    match p.get("format").map(String::as_str) {
        None | Some("json") => {
            let store = st.store.clone();
            let v = blocking(move || answer(store.as_ref(), &r, admin)).await?;
            Ok(Json(v).into_response())
        }
        Some("yaml") => {
            let mut def: AlertDef = serde_json::from_str(&r.body)
                .map_err(|e| ApiError::from(minutely_store::StoreError::Engine(e.to_string())))?;
            if !admin {
                redact(&mut def);
            }
            let text = serde_norway::to_string(&def)
                .map_err(|e| ApiError::from(minutely_store::StoreError::Engine(e.to_string())))?;
            Ok((
                [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
                text,
            )
                .into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format {other:?} is not supported: use json or yaml"
        ))),
    }
}

pub async fn create_one(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q, &["app"])?;
    let app = existing_app(&st, &caller, p.get("app").cloned(), Scope::Admin).await?;
    let body = read_body(body, MAX_ALERT_BYTES).await?;
    let def = parse_body(&headers, &body, &app)?;
    let (store, now, a) = (st.store.clone(), st.now() as i64, app.clone());
    let (r, v) = blocking(move || {
        check_against_store(store.as_ref(), &a, &def)?;
        let existing = store.alerts(Some(&a))?;
        if existing.len() >= MAX_ALERTS_PER_APP {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("app {a:?} has {MAX_ALERTS_PER_APP} alerts, the most allowed"),
            ));
        }
        let base = crate::dashboards::slug(&def.name);
        let base = if base == "dashboard" {
            "alert".to_string()
        } else {
            base
        };
        let mut id = base.clone();
        let mut n = 2;
        while existing.iter().any(|r| r.id == id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        let r = record(&a, &id, &def, now, now)?;
        store.put_alert(r.clone())?;
        let v = answer(store.as_ref(), &r, true)?;
        Ok((r, v))
    })
    .await?;
    let location = format!("/api/v1/alerts/{}?app={}", r.id, r.app);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(v)).into_response())
}

/// Replaces an alert (its state and incident history stay), or creates it
/// under that id.
pub async fn put_one(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q, &["app"])?;
    let app = existing_app(&st, &caller, p.get("app").cloned(), Scope::Admin).await?;
    check_id("alert", &id)?;
    let body = read_body(body, MAX_ALERT_BYTES).await?;
    let def = parse_body(&headers, &body, &app)?;
    let (store, now, a) = (st.store.clone(), st.now() as i64, app.clone());
    let (v, created) = blocking(move || {
        check_against_store(store.as_ref(), &a, &def)?;
        let existing = store.alerts(Some(&a))?;
        let old = existing.iter().find(|r| r.id == id);
        if old.is_none() && existing.len() >= MAX_ALERTS_PER_APP {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("app {a:?} has {MAX_ALERTS_PER_APP} alerts, the most allowed"),
            ));
        }
        let r = record(&a, &id, &def, old.map_or(now, |o| o.created), now)?;
        store.put_alert(r.clone())?;
        Ok((answer(store.as_ref(), &r, true)?, old.is_none()))
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(v)).into_response())
}

pub async fn delete_one(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<StatusCode> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q, &["app"])?;
    let app = existing_app(&st, &caller, p.get("app").cloned(), Scope::Admin).await?;
    let (store, a, i) = (st.store.clone(), app.clone(), id.clone());
    if blocking(move || Ok(store.delete_alert(&a, &i)?)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "app {app:?} has no alert {id:?}"
        )))
    }
}

fn time_param(p: &HashMap<String, String>, key: &str, default: &str, now: f64) -> ApiResult<i64> {
    let t = parse_time(p.get(key).map_or(default, String::as_str), now)
        .map_err(ApiError::bad_request)?;
    if !(0.0..=253_402_300_799.0).contains(&t) {
        return Err(ApiError::bad_request(format!(
            "{key} is outside 1970..9999"
        )));
    }
    Ok(minutely_core::time::floor_to(t as i64, 60))
}

/// The incidents an alert body would have opened and closed over stored
/// data in `[from, to)`; sends nothing and stores nothing.
pub async fn preview(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Json<Value>> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q, &["app", "from", "to"])?;
    let app = existing_app(&st, &caller, p.get("app").cloned(), Scope::Read).await?;
    let now = st.now();
    let from = time_param(&p, "from", "-24h", now)?;
    let to = time_param(&p, "to", "now", now)?;
    if to <= from || to - from > MAX_PREVIEW_SECS {
        return Err(ApiError::bad_request(format!(
            "from must be before to, at most {} days apart",
            MAX_PREVIEW_SECS / 86_400
        )));
    }
    let body = read_body(body, MAX_ALERT_BYTES).await?;
    let def = parse_body(&headers, &body, &app)?;
    let store = st.store.clone();
    let incidents = blocking(move || {
        check_against_store(store.as_ref(), &app, &def)?;
        let mut state = AlertState {
            cursor: Some(from - 60),
            ..Default::default()
        };
        // A preview sees every series with data from an hour before `from`.
        state.cursor = None;
        let events = eval::run_minutes(
            store.as_ref(),
            &app,
            "preview",
            &def,
            &mut state,
            from,
            to - 60,
        )
        .map_err(ApiError::bad_request)?;
        let mut out: Vec<Value> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for se in events {
            let inc = &se.event.incident;
            let v = json!({"tags": se.tags, "env": se.env, "opened_at": inc.opened_at,
                "closed_at": inc.closed_at, "peak": inc.peak, "last": inc.last,
                "mean": inc.mean(), "no_data": inc.no_data});
            match index.get(&inc.id) {
                Some(&i) => out[i] = v,
                None => {
                    index.insert(inc.id.clone(), out.len());
                    out.push(v);
                }
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(json!({ "incidents": incidents })))
}

pub async fn incidents(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let caller = st.keys.authenticate(&headers)?;
    let p = params(q, &["app", "state", "alert", "from", "to"])?;
    let app = existing_app(&st, &caller, p.get("app").cloned(), Scope::Read).await?;
    // Only incidents open at some time in [from, to): a chart's markers.
    let now = st.now();
    let from = p
        .get("from")
        .map(|_| time_param(&p, "from", "now", now))
        .transpose()?;
    let to = p
        .get("to")
        .map(|_| time_param(&p, "to", "now", now))
        .transpose()?;
    let want_open = match p.get("state").map(String::as_str) {
        None => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "state {other:?}: use open or closed"
            )))
        }
    };
    let alert = p.get("alert").cloned();
    let (store, a) = (st.store.clone(), app.clone());
    let mut list = blocking(move || Ok(store.incidents(&a)?)).await?;
    list.retain(|i| {
        want_open.is_none_or(|o| o == i.closed_at.is_none())
            && alert.as_ref().is_none_or(|a| *a == i.alert_id)
            && to.is_none_or(|t| i.opened_at < t)
            && from.is_none_or(|f| i.closed_at.is_none_or(|c| c >= f))
    });
    list.sort_by(|a, b| b.opened_at.cmp(&a.opened_at).then(b.id.cmp(&a.id)));
    let items: Vec<Value> = list
        .iter()
        .map(|i| serde_json::from_str(&i.body).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({"app": app, "incidents": items})))
}

/// Notifications waiting for (another) delivery attempt, of every app
/// (admin of all apps).
pub async fn outbox(State(st): State<Shared>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let caller = st.keys.authenticate(&headers)?;
    caller.require(Scope::Admin, ALL_APPS)?;
    let store = st.store.clone();
    let entries = blocking(move || Ok(store.outbox()?)).await?;
    Ok(Json(
        json!({"notifications": super::notify::pending_view(&entries)}),
    ))
}

/// Evaluates every alert through the minute that starts before `to`
/// (manual clock only). `from`: where alerts never evaluated start.
pub async fn evaluate(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let caller = st.keys.authenticate(&headers)?;
    caller.require(Scope::Admin, ALL_APPS)?;
    let rt = st.alerts.clone();
    if rt.cfg.clock != super::AlertsClock::Manual || !rt.cfg.evaluate {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this server evaluates alerts on its own clock; start it with --alerts-clock manual to drive evaluation",
        ));
    }
    let p = params(q, &["from", "to"])?;
    let now = st.now();
    let to = time_param(&p, "to", "now", now)?;
    let from = p
        .get("from")
        .map(|_| time_param(&p, "from", "now", now))
        .transpose()?;
    let store = st.store.clone();
    let queued = blocking(move || {
        Ok(super::evaluate_all(
            store.as_ref(),
            &rt,
            from,
            to - 60,
            now as i64,
        ))
    })
    .await?;
    Ok(Json(
        json!({"evaluated_through": to - 60, "notifications_queued": queued}),
    ))
}
