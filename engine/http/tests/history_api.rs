//! `GET /v1/events` and `GET /v1/events/{tracer_id}/flamegraph.svg` over a real socket: a
//! thousand stored records paged by following `next_cursor` without gap or repeat, every bad
//! parameter named in a 400, the console page open while the record routes want a token.

mod support;

use huatuo_http::auth::Auth;
use huatuo_storage::history::History;
use huatuo_storage::{Document, LocalFileSettings, LocalFileStore};
use serde_json::{json, Value as Json};
use std::sync::Arc;
use support::{node_api, serve_api};

const TOKEN: &str = "history-test-token-0123456789";

/// Writes `count` records of alternating tracers, two per millisecond, the first `profiles`
/// of tracer `cpusys` with folded stacks; the ids newest first.
fn write_records(dir: &std::path::Path, count: usize) -> Vec<String> {
    let store = LocalFileStore::new(LocalFileSettings {
        dir: dir.to_path_buf(),
        rotation_bytes: 32 * 1024,
        max_rotation: 1000,
    })
    .expect("store");
    let mut ids = Vec::new();
    for n in 0..count {
        let tracer = ["dropwatch", "oom", "cpusys"][n % 3];
        let time = chrono::DateTime::from_timestamp_millis(1_780_000_000_000 + (n / 2) as i64)
            .expect("time")
            .format("%Y-%m-%d %H:%M:%S%.3f +0000")
            .to_string();
        let id = format!("{tracer}-{n:05}");
        let mut data = json!({ "n": n });
        if tracer == "cpusys" {
            let spin = if n % 2 == 0 { 80 } else { 20 };
            data["folded_stacks"] = json!([
                format!("app;main;spin_here {spin}"),
                format!("app;main;rest {}", 100 - spin)
            ]);
        }
        store
            .write(&Document {
                tracer_name: tracer.into(),
                tracer_id: id.clone(),
                body: json!({
                    "tracer_name": tracer, "tracer_id": id, "tracer_time": time,
                    "container_hostname": if n % 5 == 0 { "web-1" } else { "" },
                    "tracer_data": data,
                }),
            })
            .expect("write");
        ids.push(id);
    }
    ids.reverse();
    // Within one millisecond the larger id comes first.
    ids.chunks_mut(2)
        .for_each(|pair| pair.sort_by(|a, b| b.cmp(a)));
    ids
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn get_json(url: &str) -> (u16, Json) {
    let (status, body) = get(url, None).await;
    (status, serde_json::from_str(&body).unwrap_or(Json::Null))
}

/// Serves the API over `count` records written by [`write_records`] into a new directory,
/// behind `auth`: the directory (kept alive by the caller), the ids newest first and the
/// base URL.
async fn serve_history(count: usize, auth: Auth) -> (tempfile::TempDir, Vec<String>, String) {
    let dir = tempfile::tempdir().expect("dir");
    let ids = write_records(dir.path(), count);
    let history = Arc::new(History::new(dir.path()));
    let base = serve_api(node_api(true, Default::default()), Some(history), auth).await;
    (dir, ids, base)
}

#[tokio::test]
async fn a_thousand_records_page_by_cursor_without_gaps_or_repeats() {
    let (_dir, expected, base) = serve_history(1000, Auth::default()).await;
    let mut seen = Vec::new();
    let mut url = format!("{base}/v1/events?limit=100");
    let mut pages = 0;
    loop {
        let (status, body) = get_json(&url).await;
        assert_eq!(status, 200, "{body}");
        let page = &body["data"];
        assert_eq!(page["indexed"], 1000);
        let records = page["records"].as_array().expect("records");
        assert!(records.len() <= 100);
        seen.extend(
            records
                .iter()
                .map(|r| r["tracer_id"].as_str().expect("id").to_string()),
        );
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("{base}/v1/events?limit=100&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 10);
    assert_eq!(seen, expected);

    // Filters narrow the walk; the tracer regex and the time window are combined.
    let (_, body) = get_json(&format!(
        "{base}/v1/events?tracer=%5Ecpusys%24&container=web&since=1780000000.000&until=2026-05-28T20:26:40.200Z&limit=500"
    ))
    .await;
    let records = body["data"]["records"].as_array().expect("records");
    assert!(!records.is_empty(), "{body}");
    assert!(records.iter().all(|r| r["tracer_name"] == "cpusys"
        && r["container_hostname"] == "web-1"
        && r["tracer_data"]["n"].as_u64().is_some_and(|n| n < 400)));
}

#[tokio::test]
async fn bad_parameters_are_named_and_missing_storage_says_so() {
    let (_dir, _, base) = serve_history(10, Auth::default()).await;
    for (query, named) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("tracer=(unclosed", "tracer"),
        ("text=a%7B99999%7D%7B99999%7D", "text"),
        ("since=yesterday", "since"),
        ("cursor=not-a-cursor", "cursor"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = get_json(&format!("{base}/v1/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.starts_with(named), "{query}: {message}");
    }
    let long = "a".repeat(1025);
    let (status, body) = get_json(&format!("{base}/v1/events?container={long}")).await;
    assert_eq!(status, 400, "{body}");

    let off = serve_api(node_api(true, Default::default()), None, Auth::default()).await;
    let (status, body) = get_json(&format!("{off}/v1/events")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("history_unavailable"))
    );
}

#[tokio::test]
async fn stored_profiles_draw_as_flame_graphs_and_diffs() {
    let (_dir, _, base) = serve_history(12, Auth::default()).await;
    let (status, svg) = get(
        &format!("{base}/v1/events/cpusys-00002/flamegraph.svg"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{svg}");
    assert!(svg.contains("spin_here") && svg.contains("cpusys"), "{svg}");
    let (status, diff) = get(
        &format!("{base}/v1/events/cpusys-00002/flamegraph.svg?base=cpusys-00005"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{diff}");
    assert!(
        diff.contains(" vs ") && diff.contains("spin_here"),
        "{diff}"
    );
    assert_ne!(svg, diff);
    for (path, code) in [
        ("oom-00001/flamegraph.svg", "no_profile"),
        ("cpusys-99999/flamegraph.svg", "record_not_found"),
        ("cpusys-00002/flamegraph.svg?base=oom-00001", "no_profile"),
        ("cpusys-00002/flamegraph.svg?zoom=2", "invalid_request"),
        ("..%2Fetc/flamegraph.svg", "invalid_request"),
    ] {
        let (_, body) = get_json(&format!("{base}/v1/events/{path}")).await;
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_console_page_is_open_and_the_record_routes_want_the_token() {
    let auth = Auth::new(vec![TOKEN.to_string()], Vec::new());
    let (_dir, _, base) = serve_history(3, auth).await;
    let page = reqwest::get(format!("{base}/")).await.expect("page");
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    let html = page.text().await.expect("html");
    assert!(html.contains("/console/app.js"), "{html}");
    for asset in ["app.js", "style.css"] {
        let (status, body) = get(&format!("{base}/console/{asset}"), None).await;
        assert_eq!(status, 200);
        assert!(!body.is_empty());
    }
    let (status, _) = get(&format!("{base}/console/secrets.txt"), None).await;
    assert_eq!(status, 404);
    for route in ["/v1/events", "/v1/events/cpusys-00002/flamegraph.svg"] {
        let (status, _) = get(&format!("{base}{route}"), None).await;
        assert_eq!(status, 401, "{route} without a token");
        let (status, body) = get(&format!("{base}{route}"), Some(TOKEN)).await;
        assert_eq!(status, 200, "{route} with the token: {body}");
    }
}
