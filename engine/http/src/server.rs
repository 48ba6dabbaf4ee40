//! The warp routes: the console (`/`), `/metrics`, `/healthz`, `/status`, `POST /v1/events/watch`,
//! the record history (`GET /v1/events`), the node API of
//! [`crate::api`] (readiness, containers, operations, `/openapi.json`), and serving them on a
//! [`Listener`].

use crate::api::NodeApi;
use crate::auth::{self, Auth};
use crate::body::{self, BodyLimits};
use crate::conn::{self, Listener};
use crate::error::{self, ApiError};
use crate::metric_store::MetricStore;
use crate::watch::{Ending, Frame, Refusal, WatchFilter, WatchHub, WatchRequest};
use futures_util::StreamExt;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

/// Produces the status document served at `/status` (what is loaded, what attached);
/// `None` while the agent is still starting (`/status` answers 503 then).
pub type StatusFn = Arc<dyn Fn() -> Option<serde_json::Value> + Send + Sync>;
/// Called before a scrape is rendered, to refresh agent self-metrics.
pub type ScrapeHook = Arc<dyn Fn(&MetricStore) + Send + Sync>;

/// Everything the routes serve.
#[derive(Clone)]
pub struct ApiState {
    /// Latest metric values.
    pub metrics: Arc<MetricStore>,
    /// Event fan-out.
    pub watch: Arc<WatchHub>,
    /// Status document.
    pub status: StatusFn,
    /// Refreshes self-metrics before rendering.
    pub on_scrape: ScrapeHook,
    /// `: ping` interval of SSE streams.
    pub keep_alive: Duration,
    /// Who may call which route.
    pub auth: Arc<Auth>,
    /// Bounds of request bodies.
    pub body: BodyLimits,
    /// Readiness, containers and operations.
    pub node: NodeApi,
    /// Stored records for `GET /v1/events`; `None` when local storage is off.
    pub history: Option<Arc<huatuo_storage::history::History>>,
}

/// Largest accepted watch request body.
pub const MAX_WATCH_BODY: usize = 16 * 1024;

/// All routes of the API, errors included.
pub fn routes(state: ApiState) -> BoxedFilter<(Response,)> {
    let auth = state.auth.clone();
    let metrics_state = state.clone();
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(auth::open(auth.clone(), "/metrics"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |query: String| {
            let prefixes = match crate::metric_filter::prefixes(&query) {
                Ok(prefixes) => prefixes,
                Err(e) => return e.response(),
            };
            (metrics_state.on_scrape)(&metrics_state.metrics);
            let text = if prefixes.is_empty() {
                metrics_state.metrics.render()
            } else {
                metrics_state
                    .metrics
                    .render_matching(&|name| prefixes.iter().any(|p| name.starts_with(p)))
            };
            warp::reply::with_header(
                text,
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .into_response()
        });
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(auth::open(auth.clone(), "/healthz"))
        .map(|| "ok\n".into_response());
    let status_state = state.clone();
    let status = warp::path!("status")
        .and(warp::get())
        .and(auth::protected(auth.clone()))
        .map(move || match (status_state.status)() {
            Some(document) => warp::reply::json(&document).into_response(),
            None => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the agent is still starting",
            )
            .response(),
        });
    let node = crate::api::routes(state.node.clone(), auth.clone());
    let watch_state = state.clone();
    let watch = warp::path!("v1" / "events" / "watch")
        .and(warp::post())
        .and(auth::protected(auth.clone()))
        .and(warp::header::optional::<String>("last-event-id"))
        .and(body::bounded(BodyLimits {
            max_bytes: MAX_WATCH_BODY,
            ..state.body
        }))
        .then(
            move |last: Option<String>, body: warp::hyper::body::Bytes| {
                let state = watch_state.clone();
                async move {
                    // Compiling filters can take milliseconds: off the async workers.
                    let filter = tokio::task::spawn_blocking(move || watch_filter(&body)).await;
                    match filter {
                        Ok(Ok(filter)) => watch_reply(&state, last.as_deref(), filter),
                        Ok(Err(error)) => error.response(),
                        Err(_) => ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            "compiling the filters failed",
                        )
                        .response(),
                    }
                }
            },
        );
    let history = state.history.clone();
    let events = warp::path!("v1" / "events")
        .and(warp::get())
        .and(auth::protected(auth.clone()))
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .then(move |params| crate::history::events(history.clone(), params));
    let history = state.history.clone();
    let profile = warp::path!("v1" / "events" / String / "flamegraph.svg")
        .and(warp::get())
        .and(auth::protected(auth))
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .then(move |id, params| crate::history::flamegraph(history.clone(), id, params));
    metrics
        .or(crate::console::routes())
        .unify()
        .or(events)
        .unify()
        .or(profile)
        .unify()
        .or(healthz)
        .unify()
        .or(status)
        .unify()
        .or(watch)
        .unify()
        .or(node)
        .unify()
        .recover(error::recover)
        .unify()
        .boxed()
}

/// The filter of a watch request body; an empty body watches everything.
fn watch_filter(body: &[u8]) -> Result<WatchFilter, ApiError> {
    let bad = |code, message: String| ApiError::new(StatusCode::BAD_REQUEST, code, message);
    let request: WatchRequest = if body.iter().all(u8::is_ascii_whitespace) {
        WatchRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| bad("invalid_request", format!("request body: {e}")))?
    };
    WatchFilter::compile(&request).map_err(|message| bad("invalid_request", message))
}

fn watch_reply(state: &ApiState, last_event_id: Option<&str>, filter: WatchFilter) -> Response {
    let subscription = match state.watch.subscribe(filter, last_event_id) {
        Ok(subscription) => subscription,
        Err(refusal) => return refusal_error(refusal).response(),
    };
    let ending = subscription.ending;
    let frames = ReceiverStream::new(subscription.frames).map(frame_event);
    let end = futures_util::stream::once(async move {
        ending
            .lock()
            .ok()
            .and_then(|ending| *ending)
            .map(ending_event)
    })
    .filter_map(std::future::ready);
    let events = frames.chain(end).map(Ok::<_, Infallible>);
    let stream = warp::sse::keep_alive()
        .interval(state.keep_alive)
        .text(" ping")
        .stream(events);
    warp::sse::reply(stream).into_response()
}

fn refusal_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::TooManyClients => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "event_stream_limit_exceeded",
            "too many watch clients (EventsWatch.MaxClients)",
        ),
        Refusal::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the agent is stopping",
        ),
        Refusal::BadLastEventId(message) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_last_event_id", message)
        }
    }
}

fn frame_event(frame: Frame) -> warp::sse::Event {
    match frame {
        Frame::Event(event) => warp::sse::Event::default()
            .id(event.id.as_str())
            .data(event.json.as_str()),
        Frame::Lost { count, reason } => warp::sse::Event::default()
            .event("lost")
            .data(serde_json::json!({ "lost": count, "reason": reason }).to_string()),
    }
}

fn ending_event(ending: Ending) -> warp::sse::Event {
    warp::sse::Event::default()
        .event("dropped")
        .data(serde_json::json!({ "reason": ending.reason, "lost": ending.lost }).to_string())
}

/// Binds `addr` for [`serve`]; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {addr}: {e}")))
}

/// Serves the API on `listener` until `shutdown` resolves; then every event stream ends and
/// the server returns within the listener's shutdown grace.
pub async fn serve(
    state: ApiState,
    listener: Listener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let watch = state.watch.clone();
    conn::run(listener, routes(state), async move {
        shutdown.await;
        watch.close();
    })
    .await;
}
