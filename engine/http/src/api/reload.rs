//! `POST /v1/rules/reload`: re-read rules, stdlib and config and swap them in, or say why
//! not with the same `file:line:col` diagnostics `huatuo check` prints.

use super::error::ApiError;
use serde_json::{json, Value as Json};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

/// What a reload came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// The new set runs: its generation, what was kept, attached, what needs a restart.
    Applied(Json),
    /// The new inputs do not check: the running set is untouched. `diagnostics` is the JSON
    /// array `huatuo check --format json` prints.
    Invalid {
        /// One line for people (`2 errors; first: rules/x.hto:3:7: ...`).
        message: String,
        /// Every diagnostic.
        diagnostics: Json,
    },
    /// Another reload is under way.
    Busy,
    /// The agent is still starting: there is no running set to replace yet.
    NotReady,
    /// The agent could not apply a set that checked (the rules run unchanged).
    Failed(String),
}

/// Runs one reload (blocking: reads files and compiles; called off the async workers).
pub type ReloadFn = Arc<dyn Fn() -> ReloadOutcome + Send + Sync>;

/// The reply to a reload: 200 with the result, 422 `rules_invalid` with the diagnostics,
/// 409 `reload_in_progress`, 503 `service_unavailable` while starting, 500 `reload_failed`.
pub fn reply(outcome: ReloadOutcome) -> Response {
    match outcome {
        ReloadOutcome::Applied(result) => {
            warp::reply::json(&json!({ "data": result })).into_response()
        }
        ReloadOutcome::Invalid {
            message,
            diagnostics,
        } => {
            let body = json!({ "error": {
                "code": "rules_invalid",
                "message": message,
                "diagnostics": diagnostics,
            }});
            warp::reply::with_status(warp::reply::json(&body), StatusCode::UNPROCESSABLE_ENTITY)
                .into_response()
        }
        ReloadOutcome::Busy => ApiError::new(
            StatusCode::CONFLICT,
            "reload_in_progress",
            "another reload is under way",
        )
        .response(),
        ReloadOutcome::NotReady => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the agent is still starting",
        )
        .response(),
        ReloadOutcome::Failed(message) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "reload_failed", message).response()
        }
    }
}
