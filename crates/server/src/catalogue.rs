//! `GET /api/v1/metrics?app=&env=`: every metric with its kind, tag keys and
//! values, series count and last minute with data.

use crate::error::ApiResult;
use crate::Shared;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use minutely_store::Scope;
use serde::Deserialize;

/// Tag values listed per key at most; the count is always exact.
const MAX_VALUES_LISTED: usize = 1_000;

#[derive(Deserialize)]
pub struct CatalogueParams {
    app: Option<String>,
    env: Option<String>,
}

pub async fn catalogue(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<CatalogueParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let caller = st.keys.authenticate(&headers)?;
    let app = caller.act_on(params.app, Scope::Read)?;
    let metrics: Vec<_> = st
        .store
        .catalogue(&app, params.env.as_deref())
        .into_iter()
        .map(|m| {
            let tags: serde_json::Map<String, serde_json::Value> = m
                .tags
                .iter()
                .map(|(k, vals)| {
                    (
                        k.clone(),
                        vals.iter()
                            .take(MAX_VALUES_LISTED)
                            .cloned()
                            .collect::<Vec<_>>()
                            .into(),
                    )
                })
                .collect();
            let value_counts: serde_json::Map<String, serde_json::Value> = m
                .tags
                .iter()
                .map(|(k, vals)| (k.clone(), vals.len().into()))
                .collect();
            serde_json::json!({
                "name": m.name,
                "kind": m.kind,
                "env": m.env,
                "tags": tags,
                "tag_value_counts": value_counts,
                "series": m.series,
                "last_seen": m.last_seen,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "app": app, "metrics": metrics })))
}
