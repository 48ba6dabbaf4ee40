//! The table of every route the server answers: the router is built beside it and the OpenAPI
//! document is tested against it, so a route cannot exist undocumented or be documented and
//! missing.

/// One route: method, path in OpenAPI form (`{request_id}` for a path parameter) and whether
/// it sits behind the bearer-token check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path template as the OpenAPI document writes it.
    pub path: &'static str,
    /// Needs a token (reads status, streams records or starts work); open routes are
    /// probes and descriptions.
    pub protected: bool,
}

const fn route(method: &'static str, path: &'static str, protected: bool) -> Route {
    Route {
        method,
        path,
        protected,
    }
}

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    route("GET", "/metrics", false),
    route("GET", "/healthz", false),
    route("GET", "/readyz", false),
    route("GET", "/openapi.json", false),
    route("GET", "/status", true),
    route("POST", "/v1/events/watch", true),
    route("GET", "/v1/events", true),
    route("GET", "/v1/events/{tracer_id}/flamegraph.svg", true),
    route("GET", "/", false),
    route("GET", "/console/{asset}", false),
    route("GET", "/v1/containers/{container_id}", true),
    route("POST", "/v1/operations", true),
    route("GET", "/v1/operations/{request_id}", true),
    route("POST", "/v1/operations/{request_id}/stop", true),
    route("GET", "/v1/operations/{request_id}/flamegraph.svg", true),
    route("POST", "/v1/rules/reload", true),
    route("GET", "/v1/profiles", true),
    route("GET", "/v1/profiles/flamegraph.svg", true),
];
