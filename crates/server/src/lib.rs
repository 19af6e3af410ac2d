//! The HTTP API of minutely (DESIGN section 3): push, query, the metrics
//! catalogue, apps and keys, health and the server's own metrics.
//!
//! Handlers parse and check at the edge, then call the [`Store`]; calls
//! that write or may wait on the disk (push, query, keys, backup) run on a
//! blocking thread, reads of in-memory state (catalogue) run inline.

pub mod alerts;
pub mod auth;
pub mod bootstrap;
mod catalogue;
pub mod dashboards;
pub mod demo;
mod error;
pub mod ingest;
mod keys_api;
mod push;
mod query;
pub mod selfmetrics;
pub mod web;

pub use error::{ApiError, ApiResult};
pub use query::{QueryAnswer, QueryInput};
// Pure parsers of outside input, public so that fuzz/ can reach them.
pub use push::{maybe_gunzip, parse_push, ParsedPush};
pub use query::check_query;

use axum::routing::{delete, get, post};
use axum::Router;
use minutely_store::Store;
use std::sync::Arc;

/// Limits and settings of the API.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body, compressed or not (also after gunzip).
    pub max_body_bytes: usize,
    pub max_points_per_batch: usize,
    /// Late points older than this are rejected (seconds).
    pub late_secs: f64,
    /// Evaluation, clock, links and SMTP of alerts.
    pub alerts: alerts::AlertsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            // 10 MiB holds ~50,000 JSON points: far above what a client
            // sends every 10 s, small enough to parse without a memory spike.
            max_body_bytes: 10 << 20,
            max_points_per_batch: 50_000,
            late_secs: minutely_core::validate::DEFAULT_LATE_SECS,
            alerts: Default::default(),
        }
    }
}

/// The clock the API judges timestamps by (tests inject their own).
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(minutely_store::embedded::now_secs)
}

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: auth::Keyring,
    pub cfg: ServerConfig,
    pub metrics: selfmetrics::SelfMetrics,
    pub clock: Clock,
    /// Cumulative OTLP streams (`POST /v1/metrics`).
    pub otlp: ingest::otlp::convert::Streams,
    /// The alert evaluator and notification sender.
    pub alerts: Arc<alerts::Runtime>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        cfg: ServerConfig,
        clock: Clock,
    ) -> Result<Shared, minutely_store::StoreError> {
        let keys = auth::Keyring::default();
        keys.reload(store.as_ref())?;
        let otlp = ingest::otlp::convert::Streams::new(clock());
        let alerts = Arc::new(alerts::Runtime::new(cfg.alerts.clone()));
        Ok(Arc::new(AppState {
            store,
            keys,
            cfg,
            metrics: Default::default(),
            clock,
            otlp,
            alerts,
        }))
    }

    pub fn now(&self) -> f64 {
        (self.clock)()
    }
}

/// Runs a blocking storage call off the async reactor.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker failed: {e}"),
        )
    })?
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/push", post(push::push))
        .route(
            "/api/v1/query",
            get(query::get_query).post(query::post_query),
        )
        .route("/api/v1/metrics", get(catalogue::catalogue))
        .route(
            "/api/v1/apps",
            get(keys_api::list_apps).post(keys_api::create_app),
        )
        .route(
            "/api/v1/apps/{app}/keys",
            get(keys_api::list_keys).post(keys_api::create_key),
        )
        .route("/api/v1/apps/{app}/keys/{id}", delete(keys_api::revoke_key))
        .route("/api/v1/backup", post(keys_api::backup))
        .route(
            "/api/v1/dashboards",
            get(dashboards::list).post(dashboards::create_one),
        )
        .route(
            "/api/v1/dashboards/{id}",
            get(dashboards::get_one)
                .put(dashboards::put_one)
                .delete(dashboards::delete_one),
        )
        .route(
            "/api/v1/alerts",
            get(alerts::api::list).post(alerts::api::create_one),
        )
        .route("/api/v1/alerts/preview", post(alerts::api::preview))
        .route("/api/v1/alerts/evaluate", post(alerts::api::evaluate))
        .route("/api/v1/alerts/outbox", get(alerts::api::outbox))
        .route(
            "/api/v1/alerts/test-notification",
            post(alerts::test_notification::send),
        )
        .route(
            "/api/v1/alerts/{id}",
            get(alerts::api::get_one)
                .put(alerts::api::put_one)
                .delete(alerts::api::delete_one),
        )
        .route("/api/v1/incidents", get(alerts::api::incidents))
        .route("/v1/metrics", post(ingest::otlp::export))
        .route("/healthz", get(healthz))
        .route("/", get(web::asset))
        .route("/index.html", get(web::asset))
        .route("/app.js", get(web::asset))
        .route("/style.css", get(web::asset))
        .route("/metrics", get(selfmetrics::render))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read with our own bound (push) so the error names the limit.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}", uri.path()),
    )
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}
