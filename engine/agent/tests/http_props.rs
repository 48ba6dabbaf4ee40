//! What a network client reaches, fuzzed against the real agent over loopback: arbitrary
//! request lines, headers and bodies, and arbitrary watch request bodies. The agent answers
//! each with a well-formed HTTP status below 500 (or closes the connection) and keeps serving.
//! (Stand-in for the `http_request` and `watch` cargo-fuzz targets, which need nightly.)

mod scrape_common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use scrape_common::{free_port, get, start_fixture_agent, Agent, TempConfig};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Starts the agent over the fixture node and waits until it serves `/healthz`.
fn agent(tag: &str) -> (Agent, TempConfig, u16) {
    let config = TempConfig::new(tag, "");
    let port = free_port();
    let agent = start_fixture_agent(port, &config.path, "cgroup", 120, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(port, "/healthz").as_deref() != Some("ok\n") {
        assert!(Instant::now() < deadline, "the agent did not start serving");
        std::thread::sleep(Duration::from_millis(200));
    }
    (agent, config, port)
}

/// Writes `request` (then half-closes when `half_close`: the server sees where the bytes
/// end) and returns the status code of the reply, if any.
fn status_of(port: u16, request: &[u8], half_close: bool) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = stream.write_all(request);
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    // A watch stream never ends: the status line is enough.
    while !head.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    if head.is_empty() {
        return None;
    }
    let line = String::from_utf8_lossy(&head);
    assert!(line.starts_with("HTTP/1."), "not an HTTP reply: {line:?}");
    line.get(9..12).and_then(|code| code.parse().ok())
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "G\0T", "",
];
const PATHS: &[&str] = &[
    "/metrics",
    "/healthz",
    "/status",
    "/v1/events/watch",
    "/",
    "//..//%00",
    "*",
    "/v1/events/watch?x=%zz",
];
const HEADERS: &[&str] = &[
    "Host: x",
    "Content-Length: 5",
    "Content-Length: -1",
    "Content-Length: 99999999999999999999",
    "Transfer-Encoding: chunked",
    "Content-Type: application/json",
    "Connection: close",
    "X: \u{7f}\u{1}",
    ": empty-name",
    "no-colon",
];

fn request() -> impl Strategy<Value = Vec<u8>> {
    let structured = (
        prop::sample::select(METHODS),
        prop::sample::select(PATHS),
        prop::sample::select(&["HTTP/1.1", "HTTP/1.0", "HTTP/9", ""][..]),
        prop::collection::vec(prop::sample::select(HEADERS), 0..5),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(method, path, version, headers, body)| {
            let mut text = format!("{method} {path} {version}\r\n");
            for header in headers {
                text.push_str(header);
                text.push_str("\r\n");
            }
            text.push_str("\r\n");
            let mut bytes = text.into_bytes();
            bytes.extend(body);
            bytes
        });
    prop_oneof![structured, prop::collection::vec(any::<u8>(), 0..512)]
}

fn watch_body() -> impl Strategy<Value = Vec<u8>> {
    let filters = prop::collection::btree_map(
        prop::sample::select(&["tracer_name", "hostname", "region", "nope"][..]),
        "[a-z.*+?()\\[\\]{}|^$\\\\0-9,]{0,16}",
        0..4,
    )
    .prop_map(|filters| serde_json::to_vec(&serde_json::json!({ "filters": filters })).unwrap());
    prop_oneof![filters, prop::collection::vec(any::<u8>(), 0..128)]
}

fn run(cases: u32, strategy: impl Strategy<Value = Vec<u8>>, test: impl Fn(Vec<u8>)) {
    let mut runner = TestRunner::new(Config::with_cases(cases));
    runner
        .run(&strategy, |input| {
            test(input);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn arbitrary_requests_get_a_status_below_500_and_the_agent_keeps_serving() {
    let (_agent, _config, port) = agent("http-props");
    run(200, request(), |bytes| {
        if let Some(code) = status_of(port, &bytes, true) {
            assert!((100..500).contains(&code), "{code} for {bytes:?}");
        }
    });
    run(100, watch_body(), |body| {
        let mut request = format!(
            "POST /v1/events/watch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let code = status_of(port, &request, false);
        assert!(
            matches!(code, Some(200 | 400 | 429)),
            "{code:?} for {:?}",
            String::from_utf8_lossy(&body)
        );
    });
    assert_eq!(get(port, "/healthz").as_deref(), Some("ok\n"));
    assert!(get(port, "/metrics").is_some_and(|m| m.contains("huatuo_bamai_agent_samples_total")));
}
