//! Shared by the http crate's tests: a node API over a scripted executor.

#![allow(dead_code)]

use huatuo_http::api::error::ApiError;
use huatuo_http::api::operations::{Control, Executor, Finished, Limits, Operations};
use huatuo_http::api::request::{OperationRequest, Spec};
use huatuo_http::api::NodeApi;
use huatuo_http::auth::Auth;
use huatuo_http::body::BodyLimits;
use huatuo_http::conn::Listener;
use huatuo_http::metric_store::MetricStore;
use huatuo_http::server::{bind, serve, ApiState};
use huatuo_http::watch::WatchHub;
use huatuo_storage::history::History;
use serde_json::json;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The container id the scripted lookup knows.
pub const KNOWN_CONTAINER: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Admits `cpu` profiles and `networking_drop` traces; refuses `io_tracing` as unsupported
/// (422) and `tcp_retransmit` as unimplemented (501). A run waits out its duration (counted
/// in tenths of a second here, to keep tests short) or a stop; a `fail-` request id fails.
pub struct ScriptedExecutor;

impl Executor for ScriptedExecutor {
    fn admit(&self, request: &OperationRequest) -> Result<(), ApiError> {
        match request.spec.type_name() {
            "io_tracing" => Err(ApiError::unsupported("template `blockio` missing")),
            "tcp_retransmit" => Err(ApiError::not_implemented("no executor")),
            _ => match &request.container_id {
                Some(id) if id != KNOWN_CONTAINER => Err(ApiError::container_not_found(id)),
                _ => Ok(()),
            },
        }
    }

    fn run(&self, request: &OperationRequest, control: &Control) -> Result<Finished, String> {
        control.started();
        let stopped = control.wait(Duration::from_millis(100 * request.duration_seconds));
        if request.request_id.starts_with("fail-") {
            return Err("scripted failure".into());
        }
        Ok(Finished {
            summary: json!({ "stopped_early": stopped }),
            svg: matches!(request.spec, Spec::Profiling(_))
                .then(|| "<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_string()),
        })
    }
}

/// A node API over [`ScriptedExecutor`], ready or not.
pub fn node_api(ready: bool, limits: Limits) -> NodeApi {
    NodeApi {
        ready: Arc::new(AtomicBool::new(ready)),
        containers: Arc::new(|id: &str| {
            (id == KNOWN_CONTAINER).then(|| json!({ "id": id, "name": "web" }))
        }),
        operations: Operations::new(Arc::new(ScriptedExecutor), limits),
        reload: Arc::new(|| {
            huatuo_http::api::reload::ReloadOutcome::Applied(json!({ "generation": 2 }))
        }),
        profiles: huatuo_http::api::profiles::disabled(),
    }
}

/// Serves `node` (and `history`, when given) on a loopback port with `auth`; the base URL.
pub async fn serve_api(node: NodeApi, history: Option<Arc<History>>, auth: Auth) -> String {
    let state = ApiState {
        metrics: Arc::new(MetricStore::new(Default::default(), 10)),
        watch: Arc::new(WatchHub::new(2, 0)),
        status: Arc::new(|| Some(json!({}))),
        on_scrape: Arc::new(|_| {}),
        keep_alive: Duration::from_secs(30),
        node,
        history,
        auth: Arc::new(auth),
        body: BodyLimits {
            max_bytes: 16 * 1024,
            read_timeout: Duration::from_secs(5),
        },
    };
    let listener = bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(
        state,
        Listener::plain(listener),
        std::future::pending(),
    ));
    format!("http://{addr}")
}
