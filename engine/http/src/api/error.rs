//! The node API's errors: the stable codes of the operations and container routes, as
//! constructors of the one [`ApiError`] every route answers with.

pub use crate::error::ApiError;
use warp::http::StatusCode;

impl ApiError {
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

    /// 500 `internal_error`: the agent failed to answer a valid request.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// 501 `service_not_implemented`: a known type without an executor.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "service_not_implemented",
            message,
        )
    }
}
