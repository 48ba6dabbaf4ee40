//! The node API over a real socket with a scripted executor: readiness, container lookup,
//! the operation state machine and every error code, the OpenAPI document against the route
//! table, `docs/API.md` against the document, and hostile request bodies.

mod support;

use huatuo_http::api::operations::Limits;
use huatuo_http::api::table::ROUTES;
use huatuo_http::api::{docs, NodeApi, OPENAPI};
use huatuo_http::auth::Auth;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value as Json};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::{node_api, KNOWN_CONTAINER};

async fn start(node: NodeApi) -> String {
    // No tokens: the test's loopback client may call every route.
    support::serve_api(node, None, Auth::new(Vec::new(), Vec::new())).await
}

/// Status and parsed JSON body (Null when the body is not JSON).
async fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Json) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().expect("method"), url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Json::Null))
}

fn profile(request_id: &str, duration: u64) -> String {
    json!({
        "request_id": request_id,
        "kind": "profiling",
        "scope": "host",
        "duration_seconds": duration,
        "spec": {"type": "cpu", "mode": "oncpu"},
    })
    .to_string()
}

fn error_code(body: &Json) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

async fn wait_status(base: &str, id: &str, status: &str) -> Json {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = call("GET", &format!("{base}/v1/operations/{id}"), None).await;
        assert_eq!(code, 200, "{body}");
        if body["data"]["status"] == status {
            return body["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readyz_answers_503_until_ready_then_204() {
    let node = node_api(false, Limits::default());
    let base = start(node.clone()).await;
    let (status, body) = call("GET", &format!("{base}/readyz"), None).await;
    assert_eq!((status, error_code(&body)), (503, "service_unavailable"));
    node.ready.store(true, Ordering::Release);
    let response = reqwest::get(format!("{base}/readyz")).await.expect("get");
    assert_eq!(response.status(), 204);
}

#[test]
fn the_openapi_document_lists_exactly_the_route_table() {
    let doc: Json = serde_json::from_str(OPENAPI).expect("openapi.json parses");
    assert_eq!(doc["openapi"], "3.0.3");
    let documented: BTreeSet<(String, String)> =
        docs::documented_routes(&doc).into_iter().collect();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "documented routes not in the route table: {missing:?}"
    );
    // The document marks the same routes protected as the table.
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.to_lowercase()];
        let locked = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(locked, route.protected, "{} {}", route.method, route.path);
    }
    // Every error code the document promises is snake_case.
    let codes = doc["x-error-codes"].as_object().expect("x-error-codes");
    let snake = regex::Regex::new("^[a-z][a-z0-9]*(_[a-z0-9]+)*$").expect("regex");
    assert!(codes.keys().all(|c| snake.is_match(c)), "{codes:?}");
}

#[tokio::test]
async fn every_route_in_the_table_is_served() {
    let base = start(node_api(true, Limits::default())).await;
    for route in ROUTES {
        if route.path == "/v1/events/watch" {
            // An SSE stream that never ends: its own tests cover it.
            continue;
        }
        let path = route
            .path
            .replace("{container_id}", KNOWN_CONTAINER)
            .replace("{request_id}", "no-such-op")
            .replace("{tracer_id}", "no-such-record")
            .replace("{asset}", "app.js");
        let body = (route.method == "POST").then(|| profile("table-check", 1));
        let body = if route.path.ends_with("/stop") {
            None
        } else {
            body
        };
        let (status, reply) = call(route.method, &format!("{base}{path}"), body.as_deref()).await;
        let code = error_code(&reply);
        assert!(
            code != "not_found" && code != "method_not_allowed",
            "{} {} is in the route table but answers {status} {reply}",
            route.method,
            route.path
        );
    }
    let (status, body) = call("GET", &format!("{base}/v1/nothing"), None).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let served: Json = reqwest::get(format!("{base}/openapi.json"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(served, serde_json::from_str::<Json>(OPENAPI).expect("doc"));
}

#[test]
fn docs_api_md_is_rendered_from_the_document() {
    let doc: Json = serde_json::from_str(OPENAPI).expect("doc");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == docs::render(&doc),
        "docs/API.md is stale: run `cargo run -p huatuo-http --example api_doc > docs/API.md`"
    );
}

#[tokio::test]
async fn containers_are_found_by_full_id() {
    let base = start(node_api(true, Limits::default())).await;
    let (status, body) = call(
        "GET",
        &format!("{base}/v1/containers/{KNOWN_CONTAINER}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], KNOWN_CONTAINER);
    let other = "f".repeat(64);
    let (status, body) = call("GET", &format!("{base}/v1/containers/{other}"), None).await;
    assert_eq!((status, error_code(&body)), (404, "container_not_found"));
    for bad in ["abc", "../../etc", &"g".repeat(64)] {
        let (status, body) = call("GET", &format!("{base}/v1/containers/{bad}"), None).await;
        assert!(
            status == 400 && error_code(&body) == "invalid_request" || status == 404,
            "{bad}: {status} {body}"
        );
    }
    let (status, body) = call("GET", &format!("{base}/v1/containers/abc"), None).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_request"));
}

#[tokio::test]
async fn an_operation_runs_to_completion_and_repeats_idempotently() {
    let base = start(node_api(true, Limits::default())).await;
    let url = format!("{base}/v1/operations");
    // 30 "seconds" are 3 s for the scripted executor: long enough that the checks below
    // run while the operation is still going, even on a loaded machine.
    let (status, body) = call("POST", &url, Some(&profile("op-1", 30))).await;
    assert_eq!(status, 202, "{body}");
    assert!(["pending", "running"].contains(&body["data"]["status"].as_str().unwrap_or("")));
    assert!(body["data"]["created_at"].is_string(), "{body}");
    let (status, again) = call("POST", &url, Some(&profile("op-1", 30))).await;
    assert_eq!(status, 200, "same request id again: {again}");
    assert_eq!(again["data"]["created_at"], body["data"]["created_at"]);
    let tracing = json!({"request_id": "op-1", "kind": "tracing", "scope": "host",
        "duration_seconds": 1, "spec": {"type": "networking_drop"}});
    let (status, conflict) = call("POST", &url, Some(&tracing.to_string())).await;
    assert_eq!(
        (status, error_code(&conflict)),
        (409, "request_id_conflict")
    );
    let (status, early) = call("GET", &format!("{url}/op-1/flamegraph.svg"), None).await;
    assert_eq!((status, error_code(&early)), (404, "flamegraph_not_found"));

    let done = wait_status(&base, "op-1", "terminal").await;
    assert_eq!(done["terminal"]["outcome"], "completed", "{done}");
    assert!(
        done["started_at"].is_string() && done["finished_at"].is_string(),
        "{done}"
    );
    assert_eq!(done["result"]["stopped_early"], false);
    let svg = reqwest::get(format!("{url}/op-1/flamegraph.svg"))
        .await
        .expect("get");
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    roxmltree::Document::parse(&svg.text().await.expect("svg")).expect("svg is XML");
    // Stopping a terminal operation is a no-op answered with 200.
    let (status, body) = call("POST", &format!("{url}/op-1/stop"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["terminal"]["outcome"], "completed");
}

#[tokio::test]
async fn stop_ends_a_running_operation_early() {
    let base = start(node_api(true, Limits::default())).await;
    let url = format!("{base}/v1/operations");
    // 600 "seconds" are 60 s for the scripted executor: only a stop ends it in time.
    let (status, _) = call("POST", &url, Some(&profile("long", 600))).await;
    assert_eq!(status, 202);
    wait_status(&base, "long", "running").await;
    let (status, body) = call("POST", &format!("{url}/long/stop"), None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["status"], "stopping");
    let (status, body) = call("POST", &format!("{url}/long/stop"), None).await;
    assert!(status == 200, "second stop: {status} {body}");
    let done = wait_status(&base, "long", "terminal").await;
    assert_eq!(done["terminal"]["outcome"], "stopped", "{done}");
    assert_eq!(done["terminal"]["reason"], "stop_requested", "{done}");
    assert_eq!(done["result"]["stopped_early"], true);
    let (status, body) = call("POST", &format!("{url}/nope/stop"), None).await;
    assert_eq!((status, error_code(&body)), (404, "operation_not_found"));
    let (status, body) = call("GET", &format!("{url}/nope"), None).await;
    assert_eq!((status, error_code(&body)), (404, "operation_not_found"));
}

#[tokio::test]
async fn a_failing_executor_ends_failed_with_its_message() {
    let base = start(node_api(true, Limits::default())).await;
    let (status, _) = call(
        "POST",
        &format!("{base}/v1/operations"),
        Some(&profile("fail-1", 1)),
    )
    .await;
    assert_eq!(status, 202);
    let done = wait_status(&base, "fail-1", "terminal").await;
    assert_eq!(done["terminal"]["outcome"], "failed");
    assert_eq!(done["terminal"]["reason"], "execution_failed");
    assert_eq!(done["terminal"]["message"], "scripted failure");
}

#[tokio::test]
async fn concurrency_past_the_limit_is_429_and_old_operations_are_evicted() {
    let limits = Limits {
        max_concurrent: 2,
        max_duration_s: 600,
        retained: 3,
    };
    let base = start(node_api(true, limits)).await;
    let url = format!("{base}/v1/operations");
    for id in ["a", "b"] {
        assert_eq!(call("POST", &url, Some(&profile(id, 600))).await.0, 202);
    }
    let (status, body) = call("POST", &url, Some(&profile("c", 1))).await;
    assert_eq!(
        (status, error_code(&body)),
        (429, "operation_limit_exceeded"),
        "{body}"
    );
    for id in ["a", "b"] {
        call("POST", &format!("{url}/{id}/stop"), None).await;
        wait_status(&base, id, "terminal").await;
    }
    for id in ["c", "d"] {
        assert_eq!(call("POST", &url, Some(&profile(id, 1))).await.0, 202);
        wait_status(&base, id, "terminal").await;
    }
    // Four operations, three retained: the oldest terminal one is gone.
    assert_eq!(call("GET", &format!("{url}/a"), None).await.0, 404);
    for id in ["b", "c", "d"] {
        assert_eq!(
            call("GET", &format!("{url}/{id}"), None).await.0,
            200,
            "{id}"
        );
    }
}

#[tokio::test]
async fn bad_requests_get_their_codes() {
    let base = start(node_api(true, Limits::default())).await;
    let url = format!("{base}/v1/operations");
    let client = reqwest::Client::new();
    let huge = "x".repeat(20 * 1024);
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413);
    let body: Json = response.json().await.expect("json");
    assert_eq!(error_code(&body), "request_too_large");
    let response = client
        .post(&url)
        .header("content-type", "text/plain")
        .body(profile("t", 1))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 415);
    let body: Json = response.json().await.expect("json");
    assert_eq!(error_code(&body), "unsupported_media_type");

    let base_body = json!({"request_id": "x", "kind": "profiling", "scope": "host",
        "duration_seconds": 1, "spec": {"type": "cpu", "mode": "oncpu"}});
    let with = |patch: Json| {
        let mut body = base_body.clone();
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        body.to_string()
    };
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (with(json!({"extra": 1})), 400, "invalid_request", "extra"),
        (
            with(json!({"spec": {"type": "cpu", "mode": "oncpu", "rate": 9}})),
            400,
            "invalid_request",
            "rate",
        ),
        (
            with(json!({"spec": {"type": "cpu", "mode": "object_alloc"}})),
            400,
            "invalid_request",
            "spec.mode",
        ),
        (
            with(json!({"kind": "tracing", "spec": {"type": "cpu"}})),
            400,
            "invalid_request",
            "spec",
        ),
        (
            with(json!({"duration_seconds": 0})),
            400,
            "invalid_request",
            "duration_seconds",
        ),
        (
            with(json!({"duration_seconds": 601})),
            400,
            "invalid_request",
            "duration_seconds",
        ),
        (
            with(json!({"request_id": ""})),
            400,
            "invalid_request",
            "request_id",
        ),
        (
            with(json!({"request_id": "a/b"})),
            400,
            "invalid_request",
            "request_id",
        ),
        (
            with(json!({"scope": "container"})),
            400,
            "invalid_request",
            "container_id",
        ),
        (
            with(json!({"container_id": KNOWN_CONTAINER})),
            400,
            "invalid_request",
            "container_id",
        ),
        (
            with(json!({"scope": "container", "container_id": "f".repeat(64)})),
            404,
            "container_not_found",
            "ffff",
        ),
        (
            "{not json".to_string(),
            400,
            "invalid_request",
            "request body",
        ),
        (
            with(json!({"kind": "tracing", "spec": {"type": "io_tracing"}})),
            422,
            "execution_environment_unsupported",
            "blockio",
        ),
        (
            with(json!({"kind": "tracing", "spec": {"type": "tcp_retransmit"}})),
            501,
            "service_not_implemented",
            "executor",
        ),
    ];
    for (body, want_status, want_code, mentions) in cases {
        let (status, reply) = call("POST", &url, Some(&body)).await;
        assert_eq!(
            (status, error_code(&reply)),
            (want_status, want_code),
            "{body} -> {reply}"
        );
        let message = reply["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(mentions),
            "{body}: message {message:?} does not name {mentions}"
        );
    }
    let (status, body) = call(
        "POST",
        &url,
        Some(&with(
            json!({"scope": "container", "container_id": KNOWN_CONTAINER}),
        )),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

/// A JSON value built from the request's vocabulary, so that fuzzed bodies get deep into
/// the parser rather than failing at the first byte.
fn fuzzed_json() -> impl Strategy<Value = Json> {
    let words = prop::sample::select(vec![
        "request_id",
        "kind",
        "scope",
        "container_id",
        "duration_seconds",
        "spec",
        "type",
        "mode",
        "language",
        "binary_match_path",
        "profiling",
        "tracing",
        "host",
        "container",
        "cpu",
        "memory",
        "oncpu",
        "offcpu",
        "networking_drop",
        "io_tracing",
        "tcp_retransmit",
        "c++",
        "",
        "\u{0}",
        "../x",
    ]);
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| json!(f)),
        words.clone().prop_map(Json::from),
        "[a-f0-9]{0,70}".prop_map(Json::from),
    ];
    leaf.prop_recursive(3, 32, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::from),
            prop::collection::btree_map(words.clone().prop_map(String::from), inner, 0..8)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_parser_never_panics_and_errors_are_invalid_request(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = huatuo_http::api::request::parse(&bytes, 600) {
            prop_assert_eq!(e.code, "invalid_request");
            prop_assert_eq!(e.status.as_u16(), 400);
        }
    }

    #[test]
    fn structured_bodies_parse_or_get_a_named_400(body in fuzzed_json()) {
        let bytes = body.to_string().into_bytes();
        if let Err(e) = huatuo_http::api::request::parse(&bytes, 600) {
            prop_assert_eq!(e.status.as_u16(), 400);
            prop_assert!(!e.message.is_empty());
        }
    }
}

#[tokio::test]
async fn fuzzed_bodies_over_http_get_4xx_or_are_accepted_never_5xx() {
    let base = start(node_api(
        true,
        Limits {
            max_concurrent: 64,
            max_duration_s: 600,
            retained: 64,
        },
    ))
    .await;
    let url = format!("{base}/v1/operations");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(128));
    let strategy = fuzzed_json();
    for _ in 0..128 {
        let body = strategy.new_tree(&mut runner).expect("value").current();
        let (status, reply) = call("POST", &url, Some(&body.to_string())).await;
        assert!(
            (400..500).contains(&status) || status == 200 || status == 202,
            "{body} -> {status} {reply}"
        );
        if (400..500).contains(&status) {
            assert!(reply["error"]["code"].is_string(), "{body} -> {reply}");
        }
    }
    assert_eq!(call("GET", &format!("{base}/readyz"), None).await.0, 204);
}

/// Continuous profiles answering folded stacks that name the range asked.
fn ranged_profiles() -> huatuo_http::api::profiles::ProfilesFn {
    use huatuo_http::api::profiles::{ProfileBody, ProfileQuery};
    std::sync::Arc::new(|q: &ProfileQuery| {
        let frame = if q.since_s == Some(100) {
            "base_range_fn"
        } else {
            "drawn_range_fn"
        };
        Ok(ProfileBody {
            content_type: "text/plain; charset=utf-8",
            body: format!("busy;main;{frame} 30\nbusy;main;shared_fn 10\n").into_bytes(),
        })
    })
}

#[tokio::test]
async fn profile_flame_graphs_draw_a_range_or_a_diff_and_want_the_token() {
    let token = "profile-flame-token-0123456789";
    let mut node = node_api(true, Limits::default());
    node.profiles = ranged_profiles();
    let base = support::serve_api(node, None, Auth::new(vec![token.to_string()], Vec::new())).await;
    let client = reqwest::Client::new();
    let get = |query: &str| {
        client
            .get(format!("{base}/v1/profiles/flamegraph.svg?{query}"))
            .bearer_auth(token)
            .send()
    };
    let response = get("type=cpu&since=200&until=300").await.expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    let svg = response.text().await.expect("svg");
    assert!(svg.contains("drawn_range_fn") && !svg.contains("base_range_fn"));
    assert!(svg.contains("CPU profile of the host"), "title missing");

    let svg = get("type=cpu&container=web&since=200&base_since=100&base_until=150")
        .await
        .expect("send")
        .text()
        .await
        .expect("svg");
    assert!(
        svg.contains(" vs ") && svg.contains("container web"),
        "not a diff"
    );
    assert!(svg.contains("drawn_range_fn"));

    for (query, key) in [
        ("format=folded", "format:"),
        ("base_since=later", "base_since:"),
        ("until=1&since=2", "since:"),
    ] {
        let response = get(query).await.expect("send");
        assert_eq!(response.status(), 400, "{query}");
        let body: Json = response.json().await.expect("json");
        assert_eq!(error_code(&body), "invalid_request");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.starts_with(key), "{query}: {message}");
    }
    let response = reqwest::get(format!("{base}/v1/profiles/flamegraph.svg"))
        .await
        .expect("send");
    assert_eq!(response.status(), 401, "served without the token");

    // An agent without the continuous profiler says so.
    let base = start(node_api(true, Limits::default())).await;
    let (status, body) = call("GET", &format!("{base}/v1/profiles/flamegraph.svg"), None).await;
    assert_eq!((status, error_code(&body)), (404, "profiling_disabled"));
}
