//! The HTTP API: /metrics, /healthz, the SSE events watch, the status view and the node API
//! (readiness, containers, on-demand operations, /openapi.json), served within connection,
//! time and body bounds, behind bearer tokens or loopback-only, optionally over TLS.

pub mod api;
pub mod auth;
pub mod body;
pub mod conn;
pub mod console;
pub mod error;
pub mod exposition;
pub mod flame;
pub mod history;
pub mod metric_filter;
pub mod metric_store;
pub mod server;
pub mod tls;
pub mod watch;
