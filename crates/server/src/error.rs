//! The one error type of the HTTP API: a status and a message for the
//! client, as `{"error": "..."}`. Internal faults are logged, not leaked.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use minutely_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server's disk is full: nothing was stored; retry later",
            ),
            StoreError::BatchInFlight(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down; retry",
            ),
            StoreError::Corrupt { ref detail, .. } => {
                tracing::error!("{e}");
                // The file path and remedy go to the operator's log; the
                // caller learns what failed and that it is not their input.
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "stored data needed by this request is damaged ({}); the server's operator must restore it from a backup (`minutely check` lists the damage)",
                        detail
                    ),
                )
            }
            other => {
                tracing::error!("storage error: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal storage error; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
