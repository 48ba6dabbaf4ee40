//! The HTTP API over a real socket: metrics text, health, watch filters and limits.

mod support;

use huatuo_dsl::output::{MetricKind, MetricPoint};
use huatuo_http::auth::Auth;
use huatuo_http::body::BodyLimits;
use huatuo_http::conn::Listener;
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
    let (base, state, _stop) = start_with(max_clients, 16).await;
    std::mem::forget(_stop);
    (base, state)
}

/// A server on a free loopback port; sending on the returned channel stops it, and the
/// server task's handle tells when it returned.
async fn start_with(
    max_clients: usize,
    replay: usize,
) -> (
    String,
    ApiState,
    (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
) {
    let store = Arc::new(MetricStore::new(
        labels(&[("host", "node-1"), ("region", "dev")]),
        100,
    ));
    let state = ApiState {
        metrics: store,
        watch: Arc::new(WatchHub::new(max_clients, replay)),
        status: Arc::new(|| Some(serde_json::json!({"templates": []}))),
        on_scrape: Arc::new(|_| {}),
        keep_alive: Duration::from_millis(200),
        node: support::node_api(true, Default::default()),
        history: None,
        auth: Arc::new(Auth::new(
            Vec::new(),
            vec!["/metrics".into(), "/healthz".into()],
        )),
        body: BodyLimits {
            max_bytes: 16 * 1024,
            read_timeout: Duration::from_secs(2),
        },
    };
    let listener = bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(state.clone(), Listener::plain(listener), async {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), state, (stop, server))
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

    // `prefix` narrows the page to the families named; a bad one is a 400 naming it.
    let get = |query: &'static str| reqwest::get(format!("{base}/metrics?{query}"));
    let only = get("prefix=runqlat&prefix=nothing_").await.expect("get");
    assert_eq!(only.status(), 200);
    let only = only.text().await.expect("body");
    assert!(only.contains("huatuo_bamai_runqlat_latency{"), "{only}");
    assert!(!only.contains("loadavg"), "{only}");
    let bad = get("prefix=Run").await.expect("get");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("prefix:"));
    assert_eq!(get("match=x").await.expect("get").status(), 400);
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

/// Reads SSE text from `response` until `done` holds for it or `within` passes.
async fn read_until(
    response: &mut reqwest::Response,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + within;
    while !done(&seen) && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), response.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    seen
}

fn event(tracer: &str, n: u64) -> serde_json::Value {
    serde_json::json!({"tracer_name": tracer, "hostname": "n", "tracer_data": {"n": n}})
}

#[tokio::test]
async fn watch_accepts_chunked_and_empty_bodies() {
    let (base, state) = start(4).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/events/watch");
    // No Content-Length: a chunked body, then no body at all (everything).
    let chunks = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(r#"{"filters":"#.to_string()),
        Ok(r#"{"tracer_name":"^oom$"}}"#.to_string()),
    ]);
    let mut chunked = client
        .post(&url)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("post");
    assert_eq!(chunked.status(), 200, "{:?}", chunked.text().await);
    let mut empty = client.post(&url).send().await.expect("post");
    assert_eq!(empty.status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    state.watch.publish(event("dropwatch", 1));
    state.watch.publish(event("oom", 2));
    let all = read_until(&mut empty, Duration::from_secs(5), |s| {
        s.contains("\"n\":2")
    })
    .await;
    assert!(all.contains("\"n\":1") && all.contains("\"n\":2"), "{all}");
    let oom = read_until(&mut chunked, Duration::from_secs(5), |s| {
        s.contains("\"n\":2")
    })
    .await;
    assert!(oom.contains("\"n\":2") && !oom.contains("\"n\":1"), "{oom}");
    // Over the size bound, chunked or not: 413 with the stable code.
    let big = client
        .post(&url)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            (0..40).map(|_| Ok::<_, std::io::Error>(" ".repeat(1024))),
        )))
        .send()
        .await
        .expect("post");
    assert_eq!(big.status(), 413);
    let body: serde_json::Value = big.json().await.expect("json");
    assert_eq!(body["error"]["code"], "request_too_large", "{body}");
}

#[tokio::test]
async fn a_body_over_the_bound_gets_its_413_while_the_client_is_still_sending() {
    let (base, _state) = start(4).await;
    let addr = base.trim_start_matches("http://").to_string();
    // A client that writes its whole request before it reads (as blocking HTTP clients do),
    // slowly: the server refuses the body on its announced length while most of it is still
    // to come, and must take the rest rather than reset the connection under the client.
    let replies = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let piece = vec![b' '; 64 * 1024];
        (0..5)
            .map(|_| {
                let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
                conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .expect("timeout");
                let head = format!(
                    "POST /v1/events/watch HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    8 * piece.len()
                );
                let mut sent = conn.write_all(head.as_bytes());
                for _ in 0..8 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    sent = sent.and_then(|()| conn.write_all(&piece));
                }
                let mut reply = String::new();
                let read = conn.read_to_string(&mut reply);
                (
                    sent.err().map(|e| e.to_string()),
                    read.err().map(|e| e.to_string()),
                    reply,
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("client thread");
    for (attempt, (sent, read, reply)) in replies.iter().enumerate() {
        assert!(
            sent.is_none()
                && reply.starts_with("HTTP/1.1 413")
                && reply.contains("request_too_large"),
            "attempt {attempt}: send {sent:?}, read {read:?}, reply {reply:?}"
        );
    }
}

#[tokio::test]
async fn watch_resumes_after_last_event_id_and_counts_what_left_the_ring() {
    let (base, state, _stop) = start_with(4, 3).await;
    for n in 1..=5 {
        state.watch.publish(event("oom", n));
    }
    let boot = state.watch.boot_id().to_string();
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/events/watch");
    // Within the ring (it holds 3, 4, 5): after 3, events 4 and 5 with their ids.
    let mut resumed = client
        .post(&url)
        .header("last-event-id", format!("{boot}-3"))
        .send()
        .await
        .expect("post");
    assert_eq!(resumed.status(), 200);
    let text = read_until(&mut resumed, Duration::from_secs(5), |s| {
        s.contains("\"n\":5")
    })
    .await;
    assert!(text.contains(&format!("id:{boot}-4")), "{text}");
    assert!(text.contains(&format!("id:{boot}-5")), "{text}");
    assert!(
        !text.contains("\"n\":3") && !text.contains("event:lost"),
        "{text}"
    );
    // Older than the ring: first a `lost` event with the count (1 left the ring: event 2).
    let mut late = client
        .post(&url)
        .header("last-event-id", format!("{boot}-1"))
        .send()
        .await
        .expect("post");
    let text = read_until(&mut late, Duration::from_secs(5), |s| s.contains("\"n\":5")).await;
    let lost = text.find("event:lost").expect("a lost event");
    assert!(
        text.contains(r#"{"lost":1,"reason":"replay_buffer_exceeded"}"#),
        "{text}"
    );
    assert!(lost < text.find("\"n\":3").expect("event 3"), "{text}");
    // Live events follow the replay.
    state.watch.publish(event("oom", 6));
    let text = read_until(&mut late, Duration::from_secs(5), |s| s.contains("\"n\":6")).await;
    assert!(text.contains(&format!("id:{boot}-6")), "{text}");
    // A malformed id is a 400 with its code.
    let bad = client
        .post(&url)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_last_event_id");
}

#[tokio::test]
async fn a_slow_client_is_dropped_with_the_reason_and_the_count() {
    let hub = WatchHub::new(2, 0);
    let filter = huatuo_http::watch::WatchFilter::compile(&Default::default()).expect("filter");
    let mut subscription = hub.subscribe(filter, None).expect("subscribe");
    // Nothing is read: the queue fills, then three more are lost and the client is dropped.
    let queue = huatuo_http::watch::CLIENT_BUFFER as u64;
    for n in 0..queue + 10 {
        hub.publish(event("oom", n));
        tokio::task::yield_now().await;
    }
    let mut received = 0;
    while let Some(_frame) = subscription.frames.recv().await {
        received += 1;
    }
    assert_eq!(received, queue);
    let ending = subscription
        .ending
        .lock()
        .expect("lock")
        .expect("an ending");
    assert_eq!(ending.reason, "slow_client");
    assert_eq!(ending.lost, huatuo_http::watch::MAX_FAILED_WRITES as u64);
    assert_eq!(hub.client_drops()[0], ending.lost);
    assert_eq!(
        hub.counters()
            .disconnected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn shutdown_ends_streams_and_the_server_returns_with_a_stalled_client() {
    let (base, state, (stop, server)) = start_with(4, 16).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/events/watch");
    let mut reading = client.post(&url).send().await.expect("post");
    // A client that never reads its stream, with more queued than the socket holds.
    let addr = base.trim_start_matches("http://").to_string();
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        format!("POST /v1/events/watch HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..200 {
        state.watch.publish(serde_json::json!({
            "tracer_name": "oom", "tracer_data": {"n": n, "pad": "x".repeat(8000)}
        }));
    }
    let started = std::time::Instant::now();
    let _ = stop.send(());
    let returned = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(returned.is_ok(), "the server did not return within 10 s");
    println!("server returned {:?} after shutdown", started.elapsed());
    let text = read_until(&mut reading, Duration::from_secs(5), |s| {
        s.contains("event:dropped")
    })
    .await;
    assert!(
        text.contains(r#"{"lost":0,"reason":"agent_stopping"}"#),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_never_cost_reading_clients_an_event() {
    const READERS: usize = 100;
    const EVENTS: u64 = 2_000;
    let hub = Arc::new(WatchHub::new(READERS + 3, 64));
    let all = || huatuo_http::watch::WatchFilter::compile(&Default::default()).expect("filter");
    // Three clients that never read, in slots 0..3; then 100 that read everything.
    let stalled: Vec<_> = (0..3)
        .map(|_| hub.subscribe(all(), None).expect("subscribe"))
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let mut subscription = hub.subscribe(all(), None).expect("subscribe");
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                while let Some(frame) = subscription.frames.recv().await {
                    if let huatuo_http::watch::Frame::Event(event) = frame {
                        seqs.push(event.seq);
                    }
                    if seqs.len() as u64 == EVENTS {
                        break;
                    }
                }
                seqs
            })
        })
        .collect();
    // Produced in bursts well under a reader's queue: 500 events per second.
    for burst in 0..EVENTS / 10 {
        for n in 0..10 {
            hub.publish(event("oom", burst * 10 + n));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for reader in readers {
        let seqs = tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .expect("a reader did not get every event in time")
            .expect("reader");
        assert_eq!(
            seqs,
            (1..=EVENTS).collect::<Vec<_>>(),
            "a reader missed events"
        );
    }
    let drops = hub.client_drops();
    for (slot, subscription) in stalled.into_iter().enumerate() {
        // Each stalled client holds at most its bounded queue, then is dropped with a count.
        assert!(subscription.frames.len() <= huatuo_http::watch::CLIENT_BUFFER);
        let ending = subscription.ending.lock().expect("lock").expect("dropped");
        assert_eq!(ending.reason, "slow_client");
        assert_eq!(ending.lost, drops[slot], "slot {slot}");
        assert!(ending.lost > 0);
    }
    assert!(
        drops[3..].iter().all(|&d| d == 0),
        "a reader lost events: {drops:?}"
    );
    let counters = hub.counters();
    assert_eq!(
        counters
            .disconnected
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        counters
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        READERS as u64 * EVENTS + 3 * huatuo_http::watch::CLIENT_BUFFER as u64
    );
}
