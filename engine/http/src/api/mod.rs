//! The node API v1 (HUATUO's `apis/v1/node` paths, bodies and status codes): readiness,
//! container metadata, on-demand operations and the bundled OpenAPI document.
//!
//! Protected boundary: every route here except `/readyz` and `/openapi.json` is marked
//! `protected` in [`table::ROUTES`]; the server's bearer-token check wraps exactly those.

pub mod docs;
pub mod error;
pub mod operations;
pub mod profiles;
pub mod reload;
pub mod request;
pub mod table;

use error::ApiError;
use operations::Operations;
use serde_json::{json, Value as Json};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The OpenAPI 3 document of every route, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Largest accepted operation request body.
pub const MAX_BODY: u64 = 16 * 1024;

/// Looks a container up by full id: its metadata, `None` when the node has no such
/// container (may read cgroupfs: called off the async workers).
pub type ContainerFn = Arc<dyn Fn(&str) -> Option<Json> + Send + Sync>;

/// What the node API routes serve.
#[derive(Clone)]
pub struct NodeApi {
    /// Set once rules are compiled and templates settled (`/readyz` answers 204).
    pub ready: Arc<AtomicBool>,
    /// Container metadata.
    pub containers: ContainerFn,
    /// On-demand operations.
    pub operations: Arc<Operations>,
    /// Re-reads and swaps in rules, stdlib and config (`POST /v1/rules/reload`).
    pub reload: reload::ReloadFn,
    /// Continuous profiles (`GET /v1/profiles`).
    pub profiles: profiles::ProfilesFn,
}

fn data(status: StatusCode, value: impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(&json!({ "data": value })), status).into_response()
}

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| e.response())
}

/// Runs blocking work (cgroupfs reads, executor admission) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("request handler failed: {e}"))))
}

fn readyz(api: &NodeApi) -> Response {
    if api.ready.load(Ordering::Acquire) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "rules are compiling or templates are still loading",
        )
        .response()
    }
}

fn openapi() -> Response {
    warp::reply::with_header(OPENAPI, "content-type", "application/json").into_response()
}

async fn container(api: NodeApi, id: String) -> Result<Response, Infallible> {
    if !request::valid_container_id(&id) {
        return Ok(
            ApiError::invalid("container_id: must be a full container id of 64 hex digits")
                .response(),
        );
    }
    let lookup = api.containers.clone();
    let found =
        blocking(move || lookup(&id).ok_or_else(|| ApiError::container_not_found(&id))).await;
    Ok(answer(found.map(|c| data(StatusCode::OK, c))))
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

async fn start(
    api: NodeApi,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, Infallible> {
    if !is_json(content_type.as_deref()) {
        return Ok(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        )
        .response());
    }
    let max = api.operations.limits().max_duration_s;
    let request = match request::parse(&body, max) {
        Ok(request) => request,
        Err(e) => return Ok(e.response()),
    };
    let operations = api.operations.clone();
    let started = blocking(move || operations.start(request)).await;
    Ok(answer(started.map(|(status, op)| data(status, op))))
}

fn flamegraph(api: &NodeApi, id: &str) -> Response {
    answer(api.operations.flamegraph(id).map(|svg| {
        warp::reply::with_header(svg.as_str().to_owned(), "content-type", "image/svg+xml")
            .into_response()
    }))
}

async fn profiles(
    api: NodeApi,
    params: std::collections::HashMap<String, String>,
) -> Result<Response, Infallible> {
    let query = match profiles::parse_query(&params) {
        Ok(query) => query,
        Err(e) => return Ok(e.response()),
    };
    let answer_fn = api.profiles.clone();
    let body = blocking(move || answer_fn(&query)).await;
    Ok(answer(body.map(|b| {
        warp::reply::with_header(b.body, "content-type", b.content_type).into_response()
    })))
}

async fn profile_flamegraph(
    api: NodeApi,
    params: std::collections::HashMap<String, String>,
) -> Result<Response, Infallible> {
    let query = match profiles::parse_flame_query(&params) {
        Ok(query) => query,
        Err(e) => return Ok(e.response()),
    };
    let answer_fn = api.profiles.clone();
    let svg = blocking(move || profiles::flamegraph(&answer_fn, &query)).await;
    Ok(answer(svg.map(|svg| {
        warp::reply::with_header(svg, "content-type", "image/svg+xml").into_response()
    })))
}

/// The node API routes (see [`table::ROUTES`]).
/// `/readyz` and `/openapi.json` are open unless the config's `OpenPaths` drops them; every
/// other route needs what [`crate::auth::protected`] asks.
pub fn routes(
    api: NodeApi,
    auth: std::sync::Arc<crate::auth::Auth>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let open = {
        let auth = auth.clone();
        move |path| crate::auth::open(auth.clone(), path)
    };
    let protected = move || crate::auth::protected(auth.clone());
    let with = move || {
        let api = api.clone();
        warp::any().map(move || api.clone())
    };
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(open("/readyz"))
        .and(with())
        .map(|api: NodeApi| readyz(&api));
    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .and(open("/openapi.json"))
        .map(openapi);
    let container = warp::path!("v1" / "containers" / String)
        .and(warp::get())
        .and(protected())
        .and(with())
        .and_then(|id, api| container(api, id));
    let start = warp::path!("v1" / "operations")
        .and(warp::post())
        .and(protected())
        .and(with())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and_then(start);
    let get = warp::path!("v1" / "operations" / String)
        .and(warp::get())
        .and(protected())
        .and(with())
        .map(|id: String, api: NodeApi| {
            answer(api.operations.get(&id).map(|op| data(StatusCode::OK, op)))
        });
    let stop = warp::path!("v1" / "operations" / String / "stop")
        .and(warp::post())
        .and(protected())
        .and(with())
        .map(|id: String, api: NodeApi| {
            answer(
                api.operations
                    .stop(&id)
                    .map(|(status, op)| data(status, op)),
            )
        });
    let reload = warp::path!("v1" / "rules" / "reload")
        .and(warp::post())
        .and(protected())
        .and(with())
        .then(|api: NodeApi| async move {
            let run = api.reload.clone();
            match tokio::task::spawn_blocking(move || run()).await {
                Ok(outcome) => reload::reply(outcome),
                Err(e) => reload::reply(reload::ReloadOutcome::Failed(format!(
                    "reload handler failed: {e}"
                ))),
            }
        });
    let flame = warp::path!("v1" / "operations" / String / "flamegraph.svg")
        .and(warp::get())
        .and(protected())
        .and(with())
        .map(|id: String, api: NodeApi| flamegraph(&api, &id));
    let profiles = warp::path!("v1" / "profiles")
        .and(warp::get())
        .and(protected())
        .and(with())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .and_then(profiles);
    let profile_flame = warp::path!("v1" / "profiles" / "flamegraph.svg")
        .and(warp::get())
        .and(protected())
        .and(with())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .and_then(profile_flamegraph);
    readyz
        .or(openapi)
        .unify()
        .or(container)
        .unify()
        .or(start)
        .unify()
        .or(get)
        .unify()
        .or(stop)
        .unify()
        .or(flame)
        .unify()
        .or(reload)
        .unify()
        .or(profiles)
        .unify()
        .or(profile_flame)
        .unify()
}
