//! Error replies of every route: `{"error": {"code", "message"}}` with a stable snake_case code.

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

/// A refused request: the status, a stable code clients can branch on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code (`unauthorized`, `invalid_body`, ...).
    pub code: &'static str,
    /// What went wrong; never holds a secret.
    pub message: String,
    /// The `WWW-Authenticate` challenge sent with a 401.
    pub challenge: Option<&'static str>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            challenge: None,
        }
    }

    /// Adds the `WWW-Authenticate` challenge of a 401.
    pub fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// The reply sent for this error.
    pub fn response(&self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
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

impl warp::reject::Reject for ApiError {}

/// The reply of any rejection: an [`ApiError`] as it is, warp's own rejections mapped to codes.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, std::convert::Infallible> {
    Ok(from_rejection(&rejection).response())
}

fn from_rejection(rejection: &warp::Rejection) -> ApiError {
    if let Some(error) = rejection.find::<ApiError>() {
        return error.clone();
    }
    if rejection.is_not_found() {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this endpoint",
        );
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "request body too large",
        );
    }
    if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "unsupported content type",
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "the request could not be read",
    )
}
