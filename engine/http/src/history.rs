//! `GET /v1/events`: stored records from local storage, newest first, paged with a stable
//! cursor and filtered by regex within the watch filter's bounds; and
//! `GET /v1/events/{tracer_id}/flamegraph.svg`: the flame graph of a stored profile, or the
//! differential graph against another (`?base=<tracer_id>`).

use crate::error::ApiError;
use crate::watch::compile_pattern;
use huatuo_storage::history::{Cursor, History, Query, MAX_LIMIT};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Query parameters `GET /v1/events` accepts.
pub const PARAMETERS: &[&str] = &[
    "tracer",
    "container",
    "text",
    "since",
    "until",
    "limit",
    "cursor",
];

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// A time parameter: RFC 3339 (`2026-12-02T16:00:00Z`) or seconds since the epoch.
fn time_ms(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds.abs() < 1e13 {
            return Ok((seconds * 1000.0) as i64);
        }
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            invalid(format!(
                "{name}: `{value}` is neither RFC 3339 nor seconds since the epoch"
            ))
        })
}

/// Reads the query string of `GET /v1/events`; every error names its parameter.
pub fn parse_query(params: &HashMap<String, String>) -> Result<Query, ApiError> {
    if let Some(unknown) = params.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "{unknown}: unknown parameter (known: {})",
            PARAMETERS.join(", ")
        )));
    }
    let pattern = |name: &str| -> Result<_, ApiError> {
        match params.get(name).filter(|p| !p.is_empty()) {
            Some(p) => compile_pattern(name, p).map(Some).map_err(invalid),
            None => Ok(None),
        }
    };
    let limit = match params.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| invalid(format!("limit: `{l}` is not a number in 1..={MAX_LIMIT}")))?,
        None => DEFAULT_LIMIT,
    };
    Ok(Query {
        tracer: pattern("tracer")?,
        container: pattern("container")?,
        text: pattern("text")?,
        since_ms: params
            .get("since")
            .map(|v| time_ms("since", v))
            .transpose()?,
        until_ms: params
            .get("until")
            .map(|v| time_ms("until", v))
            .transpose()?,
        limit,
        cursor: params
            .get("cursor")
            .filter(|c| !c.is_empty())
            .map(|c| Cursor::decode(c))
            .transpose()
            .map_err(invalid)?,
    })
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "history_unavailable",
        "local record storage is off ([Storage.LocalFile] Path is empty): no history to read",
    )
}

fn storage_failed(message: String) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        format!("reading local records: {message}"),
    )
}

/// Runs blocking history work off the async workers.
async fn blocking(work: impl FnOnce() -> Result<Response, ApiError> + Send + 'static) -> Response {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(storage_failed(e.to_string())))
        .unwrap_or_else(|e| e.response())
}

/// Answers `GET /v1/events`.
pub async fn events(history: Option<Arc<History>>, params: HashMap<String, String>) -> Response {
    let query = match parse_query(&params) {
        Ok(q) => q,
        Err(e) => return e.response(),
    };
    let Some(history) = history else {
        return not_configured().response();
    };
    blocking(move || {
        let page = history.query(&query).map_err(storage_failed)?;
        Ok(warp::reply::json(&json!({ "data": page })).into_response())
    })
    .await
}

/// The folded stacks a stored record carries (`tracer_data.folded_stacks`).
fn folded(doc: &Json) -> Option<Vec<String>> {
    let stacks = doc.get("tracer_data")?.get("folded_stacks")?.as_array()?;
    Some(
        stacks
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect(),
    )
}

fn profile_of(history: &History, id: &str) -> Result<(Json, Vec<String>), ApiError> {
    if id.is_empty()
        || id.len() > 128
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(invalid("tracer_id: 1 to 128 letters, digits or -"));
    }
    let doc = history.find(id).map_err(storage_failed)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "record_not_found",
            format!("no stored record has tracer_id {id}"),
        )
    })?;
    let stacks = folded(&doc).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_profile",
            format!("record {id} carries no folded stacks"),
        )
    })?;
    Ok((doc, stacks))
}

fn title_of(doc: &Json) -> String {
    let text = |name: &str| doc.get(name).and_then(Json::as_str).unwrap_or("");
    format!("{} {}", text("tracer_name"), text("tracer_time"))
}

/// Answers `GET /v1/events/{tracer_id}/flamegraph.svg[?base=<tracer_id>]`.
pub async fn flamegraph(
    history: Option<Arc<History>>,
    id: String,
    params: HashMap<String, String>,
) -> Response {
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "base") {
        return invalid(format!("{unknown}: unknown parameter (known: base)")).response();
    }
    let Some(history) = history else {
        return not_configured().response();
    };
    blocking(move || {
        let (doc, after) = profile_of(&history, &id)?;
        let svg = match params.get("base") {
            Some(base) => {
                let (base_doc, before) = profile_of(&history, base)?;
                let title = format!("{} vs {}", title_of(&doc), title_of(&base_doc));
                crate::flame::diff_svg(&before, &after, &title, "samples")
            }
            None => crate::flame::svg(&after, &title_of(&doc), "samples"),
        }
        .map_err(storage_failed)?;
        Ok(warp::reply::with_header(svg, "content-type", "image/svg+xml").into_response())
    })
    .await
}
