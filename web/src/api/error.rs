//! The API's one error type: maps to an HTTP status and an X-Ray error body
//! (`{"__type": "...", "message": "..."}` plus the `x-amzn-ErrorType` header the AWS CLI reads).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use roentgen_sdk::scrub::log_safe;

use crate::store::StoreError;

/// An API failure the client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or names something invalid (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// A named resource does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// Too many sampling rules (400).
    #[error("{0}")]
    RuleLimitExceeded(String),
    /// The operation is not implemented (404, `UnknownOperationException`).
    #[error("{0}")]
    UnknownOperation(String),
    /// The store is too busy to answer now; the client may retry (503).
    #[error("{0}")]
    Unavailable(String),
    /// The request body is larger than this many bytes (413).
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// Something failed on our side (500); the detail is logged, not sent.
    #[error("internal failure")]
    Internal(String),
}

impl ApiError {
    /// `(status, __type)`.
    pub fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "InvalidRequestException"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            ApiError::RuleLimitExceeded(_) => {
                (StatusCode::BAD_REQUEST, "RuleLimitExceededException")
            }
            ApiError::UnknownOperation(_) => (StatusCode::NOT_FOUND, "UnknownOperationException"),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
            ),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists(what) => ApiError::InvalidRequest(format!("{what} already exists")),
            StoreError::NotFound(what) => {
                ApiError::InvalidRequest(format!("{what} does not exist"))
            }
            busy @ StoreError::Busy(_) => ApiError::Unavailable(busy.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.parts();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(detail = %log_safe(detail), "request failed");
                "internal failure".to_owned()
            }
            other => {
                tracing::debug!(kind, message = %log_safe(other), "request refused");
                other.to_string()
            }
        };
        let body = serde_json::json!({ "__type": kind, "message": message });
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
        response
    }
}
