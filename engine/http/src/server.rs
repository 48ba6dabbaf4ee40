//! The warp routes: `/metrics`, `/healthz`, `/status`, `POST /v1/events/watch`, and the node
//! API of [`crate::api`] (readiness, containers, operations, `/openapi.json`).

use crate::api::error::error_response;
use crate::api::NodeApi;
use crate::metric_store::MetricStore;
use crate::watch::{WatchFilter, WatchHub, WatchRequest};
use futures_util::StreamExt;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use warp::http::StatusCode;
use warp::Filter;

/// Produces the status document served at `/status` (what is loaded, what attached).
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;
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
    /// Readiness, containers and operations.
    pub node: NodeApi,
}

/// Largest accepted watch request body.
const MAX_BODY: u64 = 16 * 1024;

/// All routes of the API.
pub fn routes(
    state: ApiState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let metrics_state = state.clone();
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        (metrics_state.on_scrape)(&metrics_state.metrics);
        warp::reply::with_header(
            metrics_state.metrics.render(),
            "content-type",
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .into_response_boxed()
    });
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| "ok\n".into_response_boxed());
    let status_state = state.clone();
    let status = warp::path!("status")
        .and(warp::get())
        .map(move || warp::reply::json(&(status_state.status)()).into_response_boxed());
    let node = crate::api::routes(state.node.clone());
    let watch_state = state.clone();
    let watch = warp::path!("v1" / "events" / "watch")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .map(move |body: bytes_alias::Bytes| watch_reply(&watch_state, &body));
    metrics
        .or(healthz)
        .unify()
        .or(status)
        .unify()
        .or(watch)
        .unify()
        .or(node)
        .unify()
        .recover(recover)
        .unify()
}

mod bytes_alias {
    pub use warp::hyper::body::Bytes;
}

fn error_reply(status: StatusCode, code: &str, message: String) -> warp::reply::Response {
    error_response(status, code, &message)
}

trait IntoResponseBoxed {
    fn into_response_boxed(self) -> warp::reply::Response;
}

impl<T: warp::Reply> IntoResponseBoxed for T {
    fn into_response_boxed(self) -> warp::reply::Response {
        self.into_response()
    }
}

fn watch_reply(state: &ApiState, body: &[u8]) -> warp::reply::Response {
    let request: WatchRequest = if body.iter().all(u8::is_ascii_whitespace) {
        WatchRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(e) => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("request body: {e}"),
                );
            }
        }
    };
    let filter = match WatchFilter::compile(&request) {
        Ok(filter) => filter,
        Err(message) => return error_reply(StatusCode::BAD_REQUEST, "invalid_request", message),
    };
    let Some((slot, receiver)) = state.watch.subscribe(filter) else {
        return error_reply(
            StatusCode::TOO_MANY_REQUESTS,
            "event_stream_limit_exceeded",
            "too many watch clients (EventsWatch.MaxClients)".into(),
        );
    };
    let events = ReceiverStream::new(receiver).map(move |event| {
        let _held = &slot;
        Ok::<_, Infallible>(warp::sse::Event::default().data(event.to_string()))
    });
    let stream = warp::sse::keep_alive()
        .interval(state.keep_alive)
        .text(" ping")
        .stream(events);
    warp::sse::reply(stream).into_response_boxed()
}

async fn recover(rejection: warp::Rejection) -> Result<warp::reply::Response, Infallible> {
    if rejection.is_not_found() {
        return Ok(error_reply(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint".into(),
        ));
    }
    if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        return Ok(error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("request body over {MAX_BODY} bytes"),
        ));
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed".into(),
        ));
    }
    Ok(error_reply(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("{rejection:?}"),
    ))
}

/// Binds `addr` for [`serve`]; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {addr}: {e}")))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    state: ApiState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
    Ok(())
}
