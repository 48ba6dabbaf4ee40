//! The HTTP API: /metrics, /healthz, the SSE events watch and the status view.
