//! `POST /api/v1/push`: bounded read, optional gunzip, per-point parsing and
//! validation, then one store call. Good points are kept even when others
//! in the same batch are bad.

use crate::error::{ApiError, ApiResult};
use crate::{blocking, Shared};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use minutely_core::validate::{validate_point, PointError, RawPoint};
use minutely_store::{PushRequest, Rejected, Scope};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::Read;
use std::time::Instant;

mod fast;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody<'a> {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    batch: Option<String>,
    /// Only for keys allowed on every app; an app's own keys push to it.
    #[serde(default)]
    app: Option<String>,
    #[serde(borrow)]
    points: Vec<&'a RawValue>,
}

/// The same body with every point typed at once: one pass over the bytes
/// when all points are well-formed, the usual case. When one is not, the
/// body is parsed again as [`PushBody`], point by point, so that the bad
/// point gets its own error and the others are kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypedPushBody {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    batch: Option<String>,
    #[serde(default)]
    app: Option<String>,
    points: Vec<RawPoint>,
}

/// A body's points: all typed, or each still raw JSON.
enum BodyPoints<'a> {
    Typed(Vec<RawPoint>),
    Raw(Vec<&'a RawValue>),
}

/// Reads at most `limit` bytes of the body.
pub async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    })
}

/// Gunzips when the body is gzip (by header or magic bytes), never past `limit`.
pub fn maybe_gunzip(headers: &HeaderMap, raw: Bytes, limit: usize) -> ApiResult<Bytes> {
    let declared = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let gzip = match declared.as_deref() {
        Some("gzip") => true,
        None | Some("identity") | Some("") => raw.starts_with(&[0x1f, 0x8b]),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other:?} is not supported: send gzip or plain JSON"),
            ))
        }
    };
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request(format!("body is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body is larger than the limit of {limit} bytes"),
        ));
    }
    Ok(out.into())
}

/// `env` names follow tag-key rules: short and safe in URLs.
pub fn validate_env(env: &str) -> ApiResult<()> {
    let ok = !env.is_empty()
        && env.len() <= 64
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "env {:?} is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -",
            minutely_core::validate::clip(env)
        )))
    }
}

fn reason(e: &PointError) -> &'static str {
    match e {
        PointError::Kind(_) => "bad_kind",
        PointError::Name(_) => "bad_name",
        PointError::TooManyTags(_) | PointError::TagKey(_) | PointError::TagValue { .. } => {
            "bad_tags"
        }
        PointError::NotFinite(_) | PointError::NoValue | PointError::ValueAndSummary => "bad_value",
        PointError::CounterSummary
        | PointError::SummaryMissing(_)
        | PointError::SummaryInconsistent(_)
        | PointError::Sketch(_) => "bad_summary",
        PointError::Future { .. } => "future",
        PointError::TooOld { .. } => "too_old",
    }
}

/// A push body taken apart: whole-request problems are an `Err`, each bad
/// point a `Rejected` beside the good ones. Pure, so it can be fuzzed.
#[derive(Debug)]
pub struct ParsedPush {
    pub app: Option<String>,
    pub env: String,
    pub batch: Option<String>,
    pub points: Vec<(usize, minutely_core::Point)>,
    pub rejected: Vec<Rejected>,
}

pub fn parse_push(bytes: &[u8], now: f64, cfg: &crate::ServerConfig) -> ApiResult<ParsedPush> {
    match fast::parse(bytes, now, cfg) {
        Some(parsed) => Ok(parsed),
        None => parse_general(bytes, now, cfg),
    }
}

/// Any body: the one-pass serde parse, or point by point when a point is
/// malformed. Words every error.
fn parse_general(bytes: &[u8], now: f64, cfg: &crate::ServerConfig) -> ApiResult<ParsedPush> {
    let (env, batch, app, body_points) = match serde_json::from_slice::<TypedPushBody>(bytes) {
        Ok(b) => (b.env, b.batch, b.app, BodyPoints::Typed(b.points)),
        Err(_) => {
            let b: PushBody = serde_json::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("body is not a valid push: {e}")))?;
            (b.env, b.batch, b.app, BodyPoints::Raw(b.points))
        }
    };
    let env = env.unwrap_or_else(|| "default".into());
    validate_env(&env)?;
    if let Some(b) = &batch {
        if b.is_empty() || b.len() > 256 {
            return Err(ApiError::bad_request("batch must be 1-256 characters"));
        }
    }
    let n = match &body_points {
        BodyPoints::Typed(p) => p.len(),
        BodyPoints::Raw(p) => p.len(),
    };
    if n > cfg.max_points_per_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "batch has {n} points; at most {} are allowed per push",
                cfg.max_points_per_batch
            ),
        ));
    }
    let mut points = Vec::with_capacity(n);
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut take = |index: usize, point: Result<RawPoint, Rejected>| {
        let point = point.and_then(|p| {
            validate_point(p, now, cfg.late_secs).map_err(|e| Rejected {
                index,
                reason: reason(&e),
                message: e.to_string(),
            })
        });
        match point {
            Ok(p) => points.push((index, p)),
            Err(r) => rejected.push(r),
        }
    };
    match body_points {
        BodyPoints::Typed(raw) => raw
            .into_iter()
            .enumerate()
            .for_each(|(i, p)| take(i, Ok(p))),
        BodyPoints::Raw(raw) => {
            for (index, raw) in raw.iter().enumerate() {
                let point = serde_json::from_str::<RawPoint>(raw.get()).map_err(|e| Rejected {
                    index,
                    reason: "malformed",
                    message: format!("malformed point: {e}"),
                });
                take(index, point);
            }
        }
    }
    Ok(ParsedPush {
        app,
        env,
        batch,
        points,
        rejected,
    })
}

pub async fn push(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let started = Instant::now();
    let result = push_inner(&st, &headers, body).await;
    st.metrics.observe_push(
        started.elapsed(),
        result.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200),
    );
    result
}

async fn push_inner(
    st: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let caller = st.keys.authenticate(headers)?;
    let limit = st.cfg.max_body_bytes;
    let raw = read_body(body, limit).await?;
    let bytes = maybe_gunzip(headers, raw, limit)?;
    let parsed = parse_push(&bytes, st.now(), &st.cfg)?;
    let app = caller.act_on(parsed.app.clone(), Scope::Push)?;
    if parsed.app.is_some() {
        crate::keys_api::validate_app(&app)?;
        if !st.store.apps()?.iter().any(|a| a.name == app) {
            return Err(ApiError::not_found(format!(
                "no app {app:?}; create it with POST /api/v1/apps"
            )));
        }
    }
    let (env, points, mut rejected) = (parsed.env, parsed.points, parsed.rejected);
    let req = PushRequest {
        app,
        env,
        batch: parsed.batch,
        points,
    };
    let store = st.store.clone();
    let outcome = blocking(move || store.push(req).map_err(ApiError::from)).await?;
    rejected.extend(outcome.rejected);
    rejected.sort_by_key(|r| r.index);
    // A retried batch was counted the first time.
    if outcome.duplicate {
        st.metrics.count_duplicate();
    } else {
        st.metrics.count_points(outcome.accepted, &rejected);
    }
    let mut answer = serde_json::json!({
        "accepted": outcome.accepted,
        "rejected": rejected.iter().map(|r| serde_json::json!({"index": r.index, "error": r.message})).collect::<Vec<_>>(),
    });
    if outcome.duplicate {
        answer["duplicate"] = true.into();
    }
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: f64 = 1_764_100_000.0;

    #[test]
    fn well_formed_bodies_parse_like_point_by_point() {
        let body = br#"{"env": "prod", "points": [
            {"kind": "counter", "name": "a", "value": 1, "tags": {"b": "2", "a": "1"}},
            {"kind": "counter", "name": "a b", "value": 1},
            {"kind": "gauge", "name": "g", "summary": {"last": 2, "min": 1, "max": 3, "sum": 6, "count": 3}, "ts": 1764100000}]}"#;
        let p = parse_push(body, NOW, &crate::ServerConfig::default()).unwrap();
        let (points, rejected) = point_by_point(body).unwrap();
        assert_eq!(p.points, points);
        assert_eq!(p.rejected, rejected);
        assert_eq!((p.points.len(), p.rejected.len()), (2, 1));
    }

    #[test]
    fn good_and_bad_points_are_split() {
        let body = br#"{"env": "prod", "points": [
            {"kind": "counter", "name": "a", "value": 1},
            {"kind": "counter", "name": "a b", "value": 1},
            17,
            {"kind": "gauge", "name": "g", "value": 2, "ts": 1764100000}]}"#;
        let p = parse_push(body, NOW, &crate::ServerConfig::default()).unwrap();
        assert_eq!(p.env, "prod");
        assert_eq!(
            p.points.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 3]
        );
        assert_eq!(
            p.rejected
                .iter()
                .map(|r| (r.index, r.reason))
                .collect::<Vec<_>>(),
            vec![(1, "bad_name"), (2, "malformed")]
        );
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            prop_oneof![
                Just("counter".to_string()),
                Just("gauge".into()),
                Just("distribution".into()),
                ".{0,12}"
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("kind".to_string()),
                        Just("name".into()),
                        Just("value".into()),
                        Just("tags".into()),
                        Just("ts".into()),
                        Just("summary".into()),
                        Just("sketch".into()),
                        Just("pos".into()),
                        Just("count".into()),
                        Just("points".into()),
                        Just("env".into()),
                        ".{0,6}"
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Accepted points and rejections.
    type Split = (Vec<(usize, minutely_core::Point)>, Vec<Rejected>);

    /// The point-by-point parse alone, as every push was parsed before the
    /// one-pass parse was tried first.
    fn point_by_point(bytes: &[u8]) -> Option<Split> {
        let body: PushBody = serde_json::from_slice(bytes).ok()?;
        let (mut points, mut rejected) = (Vec::new(), Vec::new());
        for (index, raw) in body.points.iter().enumerate() {
            match serde_json::from_str::<RawPoint>(raw.get()) {
                Ok(p) => match validate_point(p, NOW, minutely_core::validate::DEFAULT_LATE_SECS) {
                    Ok(p) => points.push((index, p)),
                    Err(e) => rejected.push(Rejected {
                        index,
                        reason: reason(&e),
                        message: e.to_string(),
                    }),
                },
                Err(e) => rejected.push(Rejected {
                    index,
                    reason: "malformed",
                    message: format!("malformed point: {e}"),
                }),
            }
        }
        Some((points, rejected))
    }

    proptest! {
        /// Whether every point is well-formed (one pass) or not (point by
        /// point), the outcome is what the point-by-point parse gives.
        #[test]
        fn one_pass_agrees_with_point_by_point(points in prop::collection::vec(json_value(), 0..20)) {
            let body = serde_json::json!({"points": points}).to_string();
            let p = parse_push(body.as_bytes(), NOW, &crate::ServerConfig::default()).unwrap();
            let (points, rejected) = point_by_point(body.as_bytes()).unwrap();
            prop_assert_eq!(p.points, points);
            prop_assert_eq!(p.rejected, rejected);
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_push(&bytes, NOW, &crate::ServerConfig::default());
        }

        /// JSON shaped like pushes: never panics, and every point is either
        /// accepted or rejected with a message, never lost.
        #[test]
        fn every_point_is_accounted_for(points in prop::collection::vec(json_value(), 0..20)) {
            let body = serde_json::json!({"points": points}).to_string();
            let p = parse_push(body.as_bytes(), NOW, &crate::ServerConfig::default()).unwrap();
            prop_assert_eq!(p.points.len() + p.rejected.len(), points.len());
            prop_assert!(p.rejected.iter().all(|r| !r.message.is_empty()));
        }
    }
}
