//! The error body every node API route answers with: `{"error": {"code", "message"}}`, the
//! code a stable snake_case name a client can switch on.

use serde_json::json;
use warp::http::StatusCode;

/// An API error: HTTP status, stable code and a message naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the reply.
    pub status: StatusCode,
    /// Stable machine-readable code (`request_id_conflict`).
    pub code: &'static str,
    /// What was wrong, naming the field or resource.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`: the request breaks the API contract.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `operation_not_found`.
    pub fn operation_not_found(request_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "operation_not_found",
            format!("no operation with request_id `{request_id}`"),
        )
    }

    /// 404 `container_not_found`.
    pub fn container_not_found(container_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "container_not_found",
            format!("no container with id `{container_id}` on this node"),
        )
    }

    /// 422 `execution_environment_unsupported`: valid, but this node cannot run it.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution_environment_unsupported",
            message,
        )
    }

    /// 501 `service_not_implemented`: a known type without an executor.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "service_not_implemented",
            message,
        )
    }

    /// The JSON reply.
    pub fn reply(&self) -> warp::reply::Response {
        error_response(self.status, self.code, &self.message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// A `{"error": {"code", "message"}}` reply with `status`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> warp::reply::Response {
    let body = warp::reply::json(&json!({ "error": { "code": code, "message": message } }));
    warp::Reply::into_response(warp::reply::with_status(body, status))
}
