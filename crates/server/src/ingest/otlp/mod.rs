//! `POST /v1/metrics`: OTLP/HTTP metrics export, protobuf or JSON, plain
//! or gzip. The answer follows the OTLP/HTTP specification: `200` with an
//! `ExportMetricsServiceResponse` (with `partial_success` naming how many
//! data points were refused and why), or an error status with a
//! `google.rpc.Status` body, in the request's encoding.
//!
//! The push key comes from `Authorization: Bearer <key>` or, for
//! AppSignal's collector mode, from the resource attribute
//! `appsignal.config.push_api_key`. The environment comes from the
//! resource attributes `deployment.environment.name`,
//! `deployment.environment` or `appsignal.config.environment` (else
//! `default`).

pub mod convert;
pub mod histogram;
pub mod json;
pub mod proto;

use crate::auth::{Caller, ALL_APPS};
use crate::error::ApiError;
use crate::push::{maybe_gunzip, read_body, validate_env};
use crate::{blocking, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use convert::{attribute, convert, Route, ENV_ATTRIBUTES, KEY_ATTRIBUTE};
use minutely_store::{PushRequest, Scope};
use prost::Message;
use proto::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

pub use prost::Message as ProstMessage;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Option<Encoding> {
        let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let ct = ct.split(';').next()?.trim().to_ascii_lowercase();
        match ct.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// An answer in the request's encoding.
fn answer(enc: Encoding, status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, enc.content_type())], body).into_response()
}

fn error(enc: Encoding, e: ApiError) -> Response {
    let code = match e.status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    };
    let body = match enc {
        Encoding::Protobuf => proto::Status {
            code,
            message: e.message.clone(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": e.message})
            .to_string()
            .into_bytes(),
    };
    answer(enc, e.status, body)
}

pub async fn export(State(st): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let declared = Encoding::of(&headers);
    let enc = declared.unwrap_or(Encoding::Protobuf);
    let result = export_inner(&st, &headers, declared, body).await;
    let response = match result {
        Ok(r) => r,
        Err((enc2, e)) => error(enc2.unwrap_or(enc), e),
    };
    st.metrics.ingest.otlp_request(response.status().as_u16());
    response
}

type Failure = (Option<Encoding>, ApiError);

async fn export_inner(
    st: &Shared,
    headers: &HeaderMap,
    declared: Option<Encoding>,
    body: Body,
) -> Result<Response, Failure> {
    let fail = |e: ApiError| (declared, e);
    // A key in the header must be valid; without one, each resource names its own.
    let header_caller = match headers.get(header::AUTHORIZATION) {
        Some(_) => Some(st.keys.authenticate(headers).map_err(fail)?),
        None => None,
    };
    // A read key in the header can push nothing: say so at once rather than
    // answering 200 with every point refused.
    if let Some(c) = &header_caller {
        if !matches!(c.scope, Scope::Push | Scope::Admin) {
            let app = if c.app == ALL_APPS { "default" } else { &c.app };
            c.require(Scope::Push, app).map_err(fail)?;
        }
    }
    let limit = st.cfg.max_body_bytes;
    let raw = read_body(body, limit).await.map_err(fail)?;
    let bytes = maybe_gunzip(headers, raw, limit).map_err(fail)?;
    let enc = declared.unwrap_or_else(|| match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Encoding::Json,
        _ => Encoding::Protobuf,
    });
    let fail = |e: ApiError| (Some(enc), e);
    let req = decode(enc, &bytes).map_err(fail)?;
    let points: u64 = req
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(convert::point_count)
        .sum();
    if points > st.cfg.max_points_per_batch as u64 {
        return Err(fail(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "export has {points} data points; at most {} are allowed per request (--max-points-per-batch)",
                st.cfg.max_points_per_batch
            ),
        )));
    }
    let routes: Vec<Route> = req
        .resource_metrics
        .iter()
        .map(|rm| {
            route(
                st,
                header_caller.as_ref(),
                rm.resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default(),
            )
        })
        .collect();
    if header_caller.is_none() && !routes.is_empty() && routes.iter().all(|r| r.is_err()) {
        let (_, msg) = routes[0].as_ref().err().cloned().unwrap_or_default();
        return Err(fail(ApiError::unauthorized(msg)));
    }
    let st2 = st.clone();
    let outcome = blocking(move || store(&st2, &req, &routes))
        .await
        .map_err(fail)?;
    let (accepted, rejected) = outcome;
    let rejected_n: u64 = rejected.iter().map(|r| r.2).sum();
    st.metrics.ingest.otlp_points(
        accepted as u64,
        &rejected.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
    );
    let partial = (rejected_n > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: rejected_n as i64,
        error_message: rejected
            .iter()
            .take(5)
            .map(|r| format!("{} data point(s) refused: {}", r.2, r.1))
            .collect::<Vec<_>>()
            .join("; "),
    });
    let body = match enc {
        Encoding::Protobuf => ExportMetricsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => {
            let v = match partial {
                Some(p) => {
                    serde_json::json!({"partialSuccess": {"rejectedDataPoints": p.rejected_data_points.to_string(), "errorMessage": p.error_message}})
                }
                None => serde_json::json!({}),
            };
            v.to_string().into_bytes()
        }
    };
    Ok(answer(enc, StatusCode::OK, body))
}

fn decode(enc: Encoding, bytes: &[u8]) -> Result<ExportMetricsServiceRequest, ApiError> {
    match enc {
        Encoding::Protobuf => proto::decode(bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "body is not an OTLP ExportMetricsServiceRequest: {e}"
            ))
        }),
        Encoding::Json => json::decode(bytes)
            .map_err(|e| ApiError::bad_request(format!("body is not OTLP/JSON metrics: {e}"))),
    }
}

/// Where one resource's points go.
fn route(st: &Shared, header: Option<&Caller>, attrs: &[proto::KeyValue]) -> Route {
    let caller = match header {
        Some(c) => c.clone(),
        None => {
            let key = attribute(attrs, KEY_ATTRIBUTE).ok_or((
                "unauthorized",
                format!("no push key: send Authorization: Bearer <key> or the resource attribute {KEY_ATTRIBUTE}"),
            ))?;
            st.keys.lookup(&key).ok_or((
                "unauthorized",
                format!("the key in {KEY_ATTRIBUTE} is unknown or revoked"),
            ))?
        }
    };
    let app = if caller.app == ALL_APPS {
        "default".to_string()
    } else {
        caller.app.clone()
    };
    caller
        .require(Scope::Push, &app)
        .map_err(|e| ("forbidden", e.message))?;
    let env = ENV_ATTRIBUTES
        .iter()
        .find_map(|k| attribute(attrs, k))
        .unwrap_or_else(|| "default".into());
    validate_env(&env).map_err(|e| ("bad_env", e.message))?;
    Ok((app, env))
}

type Rejections = Vec<(&'static str, String, u64)>;

/// Converts and stores; on a storage fault the stream state is rolled back
/// so the sender's retry counts again.
fn store(
    st: &Shared,
    req: &ExportMetricsServiceRequest,
    routes: &[Route],
) -> Result<(usize, Rejections), ApiError> {
    let (converted, undo) = convert(req, routes, &st.otlp, st.now(), st.cfg.late_secs);
    for (reason, n) in &converted.skipped {
        st.metrics.ingest.otlp_skipped(reason, *n);
    }
    let mut rejected = converted.rejected.clone();
    let mut accepted = 0;
    for ((app, env), points) in converted.points {
        let req = PushRequest {
            app,
            env,
            batch: None,
            points: points.into_iter().enumerate().collect(),
        };
        match st.store.push(req) {
            Ok(outcome) => {
                accepted += outcome.accepted;
                for r in outcome.rejected {
                    match rejected.iter_mut().find(|x| x.0 == r.reason) {
                        Some(x) => x.2 += 1,
                        None => rejected.push((r.reason, r.message, 1)),
                    }
                }
            }
            Err(e) => {
                st.otlp.undo(undo);
                return Err(e.into());
            }
        }
    }
    Ok((accepted, rejected))
}
