//! The HTTP API over a real socket: metrics text, health, watch filters and limits.

mod support;

use huatuo_dsl::output::{MetricKind, MetricPoint};
use huatuo_http::metric_store::MetricStore;
use huatuo_http::server::{bind, serve, ApiState};
use huatuo_http::watch::WatchHub;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn start(max_clients: usize) -> (String, ApiState) {
    let store = Arc::new(MetricStore::new(
        labels(&[("host", "node-1"), ("region", "dev")]),
        100,
    ));
    let state = ApiState {
        metrics: store,
        watch: Arc::new(WatchHub::new(max_clients)),
        status: Arc::new(|| serde_json::json!({"templates": []})),
        on_scrape: Arc::new(|_| {}),
        keep_alive: Duration::from_millis(200),
        node: support::node_api(true, Default::default()),
    };
    let listener = bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(state.clone(), listener, std::future::pending()));
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn metrics_are_prefixed_typed_and_labelled() {
    let (base, state) = start(1).await;
    state.metrics.update(&[
        MetricPoint {
            family: "runqlat_latency".into(),
            help: "cpu run queue latency".into(),
            kind: MetricKind::Counter,
            labels: labels(&[("zone", "0")]),
            value: 12.0,
        },
        MetricPoint {
            family: "loadavg_load1".into(),
            help: "load average over 1 minute".into(),
            kind: MetricKind::Gauge,
            labels: BTreeMap::new(),
            value: 0.5,
        },
    ]);
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains("# TYPE huatuo_bamai_runqlat_latency counter"),
        "{text}"
    );
    assert!(
        text.contains("huatuo_bamai_runqlat_latency{host=\"node-1\",region=\"dev\",zone=\"0\"} 12"),
        "{text}"
    );
    assert!(text.contains("# HELP huatuo_bamai_loadavg_load1 load average over 1 minute"));
    assert!(text.contains("huatuo_bamai_loadavg_load1{host=\"node-1\",region=\"dev\"} 0.5"));
    let health = reqwest::get(format!("{base}/healthz")).await.expect("get");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn series_beyond_the_bound_are_dropped_and_counted() {
    let store = MetricStore::new(BTreeMap::new(), 3);
    let points: Vec<MetricPoint> = (0..5)
        .map(|i| MetricPoint {
            family: "x".into(),
            help: String::new(),
            kind: MetricKind::Gauge,
            labels: labels(&[("i", &i.to_string())]),
            value: 1.0,
        })
        .collect();
    store.update(&points);
    assert_eq!(store.series(), 3);
    assert_eq!(store.dropped_series(), 2);
    store.expire(Duration::ZERO);
    std::thread::sleep(Duration::from_millis(5));
    store.expire(Duration::from_millis(1));
    assert_eq!(store.series(), 0);
}

#[tokio::test]
async fn watch_rejects_bad_bodies_with_the_field_named() {
    let (base, _state) = start(2).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/events/watch");
    let bad_json = client
        .post(&url)
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(bad_json.status(), 400);
    let bad_regex = client
        .post(&url)
        .body(r#"{"filters":{"tracer_name":"(unclosed"}}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(bad_regex.status(), 400);
    let text = bad_regex.text().await.expect("text");
    assert!(text.contains("filters.tracer_name"), "{text}");
    let bad_field = client
        .post(&url)
        .body(r#"{"filters":{"pod":"x"}}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(bad_field.status(), 400);
}

#[tokio::test]
async fn watch_streams_matching_events_and_limits_clients() {
    let (base, state) = start(1).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/events/watch");
    let mut response = client
        .post(&url)
        .body(r#"{"filters":{"tracer_name":"^oom$"}}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let second = client.post(&url).body("{}").send().await.expect("post");
    assert_eq!(second.status(), 429);
    // Give the subscription a moment to be registered before publishing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    state
        .watch
        .publish(serde_json::json!({"tracer_name": "dropwatch", "hostname": "n"}));
    state.watch.publish(
        serde_json::json!({"tracer_name": "oom", "hostname": "n", "tracer_data": {"pid": 7}}),
    );
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains("\"oom\"") && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(1), response.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("\"source\":\"/huatuo/n/oom\""), "{seen}");
    assert!(seen.contains("\"type\":\"tech.huatuo.kernel.event\""));
    assert!(
        !seen.contains("dropwatch"),
        "filter let a dropwatch event through: {seen}"
    );
    assert!(seen.contains("\"pid\":7"));
    // Keep-alive pings arrive while idle.
    let mut pings = String::new();
    while !pings.contains(": ping") && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(1), response.chunk()).await
        {
            pings.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(pings.contains(": ping"), "{pings:?}");
}
