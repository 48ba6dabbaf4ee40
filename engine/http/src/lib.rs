//! The HTTP API: /metrics, /healthz, the SSE events watch, the status view and the node API
//! (readiness, containers, on-demand operations, /openapi.json).

pub mod api;
pub mod metric_store;
pub mod server;
pub mod watch;
