//! `POST /api/v1/alerts/test-notification?app=`: sends one notification,
//! marked as a test, through a channel right away with the same code as
//! real notifications (no outbox, no retry), and answers whether the
//! channel accepted it, so a wrong URL or SMTP setting shows at once.

use crate::error::{ApiError, ApiResult};
use crate::keys_api::{body_format, existing_app, BodyFormat};
use crate::push::read_body;
use crate::{blocking, Shared};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use minutely_alerts::{AlertDef, Channel};
use minutely_store::Scope;
use serde::Deserialize;
use serde_json::{json, Value};

/// A channel object is small; an alert id and an index are smaller.
const MAX_BODY_BYTES: usize = 64 << 10;

/// Either `channel` (sent as given), or `alert` with `channel_index` (the
/// stored alert's channel, with its real secret). `alert` alone with
/// `channel` only names the alert in the message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default)]
    pub channel_index: Option<usize>,
}

/// A test-notification body, JSON or YAML by `Content-Type` (no I/O: the
/// alert it names is looked up afterwards).
pub fn parse_request(headers: &HeaderMap, body: &[u8]) -> ApiResult<TestRequest> {
    match body_format(headers)? {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid test notification: {e}"))),
        BodyFormat::Yaml => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid test notification: {e}"))),
    }
}

/// The webhook JSON of a test: the keys of a real notification, with
/// `event` and `state` `test`, `test: true` and no values.
fn payload(app: &str, alert_id: Option<&str>, def: Option<&AlertDef>, now: i64) -> Value {
    json!({
        "event": "test",
        "state": "test",
        "test": true,
        "id": format!("test-{now}"),
        "alert_id": alert_id,
        "alert": def.map_or("test notification", |d| d.name.as_str()),
        "app": app,
        "env": def.and_then(|d| d.env.clone()),
        "metric": def.map(|d| d.metric.clone()),
        "field": def.and_then(|d| d.field.clone()),
        "tags": def.map(|d| json!(d.tags)).unwrap_or(json!({})),
        "condition": def.map(|d| json!(d.condition)),
        "condition_text": def.map(|d| d.condition.describe()),
        "last": null, "peak": null, "mean": null, "no_data": false,
        "started_at": null, "opened_at": null, "closed_at": null,
        "evaluated_minute": minutely_core::time::floor_to(now, 60),
        "description": "This is a test notification from minutely: no incident is open.",
        "link": "",
    })
}

pub async fn send(
    State(st): State<Shared>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let caller = st.keys.authenticate(&headers)?;
    let p = super::api::params(q, &["app"])?;
    let app = existing_app(&st, &caller, p.get("app").cloned(), Scope::Admin).await?;
    let body = read_body(body, MAX_BODY_BYTES).await?;
    let req = parse_request(&headers, &body)?;
    let (store, rt, now) = (st.store.clone(), st.alerts.clone(), st.now() as i64);
    let (status, answer) = blocking(move || {
        let def: Option<AlertDef> = match &req.alert {
            None => None,
            Some(id) => {
                let rec = store
                    .alerts(Some(&app))?
                    .into_iter()
                    .find(|r| r.id == *id)
                    .ok_or_else(|| {
                        ApiError::not_found(format!("app {app:?} has no alert {id:?}"))
                    })?;
                Some(serde_json::from_str(&rec.body).map_err(|e| {
                    ApiError::from(minutely_store::StoreError::Engine(format!(
                        "bad alert {id}: {e}"
                    )))
                })?)
            }
        };
        let channel = match (req.channel, req.channel_index, &def) {
            (Some(c), None, _) => c,
            (None, Some(i), Some(d)) => d.channels.get(i).cloned().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "alert {:?} has {} channels; channel_index {i} does not exist",
                    req.alert.as_deref().unwrap_or(""),
                    d.channels.len()
                ))
            })?,
            _ => {
                return Err(ApiError::bad_request(
                    "send either {\"channel\": {...}} or {\"alert\": ID, \"channel_index\": N}",
                ))
            }
        };
        channel
            .validate()
            .map_err(|e| ApiError::bad_request(format!("invalid channel: {e}")))?;
        let kind = channel.kind();
        let queued = super::notify::Queued {
            channel,
            payload: payload(&app, req.alert.as_deref(), def.as_ref(), now),
        };
        // A delivery id apart from the outbox's sequence numbers, so a
        // receiver that dedupes never drops a real notification for a test.
        let delivery_id = (now as u64).wrapping_mul(1_000) | (1 << 62);
        Ok(match super::notify::deliver(&rt, delivery_id, &queued) {
            Ok(()) => (StatusCode::OK, json!({"sent": true, "channel": kind})),
            Err(e) => (
                StatusCode::BAD_GATEWAY,
                json!({"sent": false, "channel": kind,
                       "error": format!("the {kind} channel failed: {e}")}),
            ),
        })
    })
    .await?;
    Ok((status, Json(answer)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderValue};

    fn typed(ctype: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        h
    }

    #[test]
    fn requests_parse_from_json_and_yaml_and_refuse_unknown_keys() {
        let r = parse_request(
            &typed("application/json"),
            br#"{"alert": "orders", "channel_index": 1}"#,
        )
        .unwrap();
        assert_eq!(
            (r.alert.as_deref(), r.channel_index, r.channel.is_none()),
            (Some("orders"), Some(1), true)
        );
        let r = parse_request(
            &typed("application/yaml"),
            b"channel: {type: slack, url: 'https://hooks.example/x'}\n",
        )
        .unwrap();
        assert_eq!(r.channel.map(|c| c.kind()), Some("slack"));
        let e = parse_request(&typed("application/json"), br#"{"chanel": {}}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("chanel"), "{}", e.message);
    }
}
