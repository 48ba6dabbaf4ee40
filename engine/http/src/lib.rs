//! The HTTP API: /metrics, /healthz, the SSE events watch and the status view.

pub mod metric_store;
pub mod server;
pub mod watch;
