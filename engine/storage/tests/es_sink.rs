//! The Elasticsearch sink against a fake cluster on a loopback port: bulk format, auth,
//! spooling while the cluster is down, ordered replay, the spool cap, permanent rejections
//! and restarts. Every wait is bounded.
//!
//! No Elasticsearch or OpenSearch server can be installed here, so the fake behaves as the
//! real API does on the points that matter: `GET /` names the version, `PUT
//! _index_template/<name>` stores a template, wrong credentials get 401 on every route,
//! `_bulk` answers per item, 429 when overloaded, and it maps each daily index dynamically
//! (the first document to use a field fixes its shape), refusing with 400
//! `mapper_parsing_exception` a later document whose field has another shape unless an
//! installed template maps `tracer_data` as `flattened`.

use huatuo_storage::{Document, EsCounters, EsSettings, EsSink, Storage};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fake cluster answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Bulk items answered by the item rule.
    Up,
    /// Like `Up`, after a delay.
    Slow(Duration),
    /// Every request answered 503.
    Unavailable,
    /// Every bulk request answered 429 (too many requests).
    TooMany,
    /// Every bulk request refused as a whole with 400 (a body the cluster cannot parse).
    BadRequest,
}

/// Decides the status of one bulk item from its source document.
type ItemRule = Box<dyn FnMut(&Json) -> u16 + Send>;

/// One request the fake cluster received.
#[derive(Debug, Clone)]
struct Request {
    head: String,
    authorization: String,
    content_type: String,
    /// (action line, source line) pairs.
    pairs: Vec<(Json, Json)>,
    /// Statuses given to the items (empty when the whole request failed).
    statuses: Vec<u16>,
}

struct FakeState {
    mode: Mode,
    rule: ItemRule,
    /// Bulk requests, in arrival order.
    requests: Vec<Request>,
    /// The `Authorization` header every request must carry.
    credentials: String,
    /// Index templates installed, by name.
    templates: std::collections::BTreeMap<String, Json>,
    /// The status `PUT _index_template` answers (200, or 400 as an old cluster would).
    template_status: u16,
    /// Per index, the shape each field path got from the first document that used it.
    mappings: std::collections::BTreeMap<String, std::collections::BTreeMap<String, &'static str>>,
}

/// A fake `_bulk` endpoint on 127.0.0.1.
#[derive(Clone)]
struct FakeEs {
    port: u16,
    state: Arc<Mutex<FakeState>>,
    /// Connections accepted (a refused TLS handshake still counts).
    connections: Arc<AtomicUsize>,
    /// The PEM of the self-signed certificate, for TLS servers.
    cert_pem: Option<String>,
}

impl FakeEs {
    /// Listens on `port` (0: any free port), answering every item 201.
    fn bind(port: u16) -> FakeEs {
        FakeEs::start(port, None)
    }

    /// Listens on a free port over TLS with a self-signed certificate for 127.0.0.1.
    fn bind_tls() -> FakeEs {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        let pem = cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("server config");
        let mut es = FakeEs::start(0, Some(Arc::new(config)));
        es.cert_pem = Some(pem);
        es
    }

    /// Serves plain HTTP, or HTTPS with `tls`.
    fn start(port: u16, tls: Option<Arc<ServerConfig>>) -> FakeEs {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind fake ES");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(FakeState {
            mode: Mode::Up,
            rule: Box::new(|_| 201),
            requests: Vec::new(),
            credentials: "Basic ZWxhc3RpYzoxMjM0NTY=".into(),
            templates: Default::default(),
            template_status: 200,
            mappings: Default::default(),
        }));
        let shared = Arc::clone(&state);
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                match &tls {
                    None => serve(stream, &shared),
                    Some(config) => match ServerConnection::new(Arc::clone(config)) {
                        Ok(conn) => serve(StreamOwned::new(conn, stream), &shared),
                        Err(e) => panic!("TLS session: {e}"),
                    },
                }
            }
        });
        FakeEs {
            port,
            state,
            connections,
            cert_pem: None,
        }
    }

    fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn tls_address(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn set_rule(&self, rule: impl FnMut(&Json) -> u16 + Send + 'static) {
        self.state.lock().unwrap().rule = Box::new(rule);
    }

    fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    fn set_credentials(&self, authorization: &str) {
        self.state.lock().unwrap().credentials = authorization.to_string();
    }

    fn set_template_status(&self, status: u16) {
        self.state.lock().unwrap().template_status = status;
    }

    fn template(&self, name: &str) -> Option<Json> {
        self.state.lock().unwrap().templates.get(name).cloned()
    }

    /// The `n` field of every document the cluster accepted, in arrival order.
    fn accepted(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for request in self.requests() {
            for ((_, source), status) in request.pairs.iter().zip(&request.statuses) {
                if (200..300).contains(status) {
                    out.push(source["n"].as_u64().expect("n"));
                }
            }
        }
        out
    }
}

/// Answers one HTTP request on `stream`, then closes it.
fn serve(stream: impl Read + Write, state: &Mutex<FakeState>) {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let (mut length, mut authorization, mut content_type) = (0usize, String::new(), String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if head.is_empty() {
            head = line;
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "authorization" => authorization = value,
                "content-type" => content_type = value,
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let text = String::from_utf8_lossy(&body).to_string();
    let mut parts = head.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    if path != "/_bulk" {
        let (status, answer) = {
            let mut state = state.lock().unwrap();
            if authorization != state.credentials {
                (401, unauthorized())
            } else if method == "GET" && path == "/" {
                (
                    200,
                    json!({"version": {"number": "8.13.4"}, "tagline": "You Know, for Search"}),
                )
            } else if let (true, Some(name)) =
                (method == "PUT", path.strip_prefix("/_index_template/"))
            {
                let status = state.template_status;
                if status == 200 {
                    let template: Json = serde_json::from_str(&text).expect("template JSON");
                    state.templates.insert(name.to_string(), template);
                    (200, json!({"acknowledged": true}))
                } else {
                    (
                        status,
                        json!({"error": {"type": "illegal_argument_exception", "reason": "unknown setting"}, "status": status}),
                    )
                }
            } else {
                (404, json!({"error": "no handler"}))
            }
        };
        answer_with(reader.into_inner(), status, &answer);
        return;
    }
    let lines: Vec<Json> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    let pairs: Vec<(Json, Json)> = lines
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    let mode = state.lock().unwrap().mode;
    if let Mode::Slow(delay) = mode {
        std::thread::sleep(delay);
    }
    let mut state = state.lock().unwrap();
    let (status, answer, statuses) = if authorization != state.credentials {
        (401, unauthorized(), Vec::new())
    } else if mode == Mode::Unavailable {
        (503, json!({"error": "unavailable"}), Vec::new())
    } else if mode == Mode::BadRequest {
        (
            400,
            json!({"error": {"type": "parse_exception", "reason": "request body is required"}, "status": 400}),
            Vec::new(),
        )
    } else if mode == Mode::TooMany {
        (
            429,
            json!({"error": {"type": "es_rejected_execution_exception"}, "status": 429}),
            Vec::new(),
        )
    } else {
        let statuses: Vec<u16> = pairs
            .iter()
            .map(|(action, source)| match (state.rule)(source) {
                200..=299 => map_document(&mut state, action, source),
                refused => refused,
            })
            .collect();
        let items: Vec<Json> = statuses
            .iter()
            .map(|s| match s {
                200..=299 => json!({"index": {"status": s, "result": "created"}}),
                _ => json!({"index": {"status": s, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}}}),
            })
            .collect();
        let errors = statuses.iter().any(|s| !(200..300).contains(s));
        (
            200,
            json!({"took": 1, "errors": errors, "items": items}),
            statuses,
        )
    };
    state.requests.push(Request {
        head,
        authorization,
        content_type,
        pairs,
        statuses,
    });
    drop(state);
    answer_with(reader.into_inner(), status, &answer);
}

/// Writes one HTTP answer and closes.
fn answer_with(mut stream: impl Write, status: u16, answer: &Json) {
    let answer = answer.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.flush();
}

/// The body of a 401, as Elasticsearch's security layer answers it.
fn unauthorized() -> Json {
    json!({"error": {"type": "security_exception", "reason": "unable to authenticate user [elastic]"}, "status": 401})
}

/// The shape dynamic mapping gives a JSON value.
fn shape(value: &Json) -> &'static str {
    match value {
        Json::Object(_) => "object",
        Json::Number(_) => "number",
        Json::Bool(_) => "boolean",
        _ => "text",
    }
}

/// Maps `source` into its index as dynamic mapping does: each new field path takes the shape
/// of its first value; a later value of another shape (an object where text was, text where a
/// number was) refuses the document with 400. A `tracer_data` that an installed template maps
/// as `flattened` takes any shape.
fn map_document(state: &mut FakeState, action: &Json, source: &Json) -> u16 {
    let index = action["index"]["_index"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let flattened = state.templates.values().any(|t| {
        let covers = t["index_patterns"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| {
                p.as_str()
                    .and_then(|p| p.strip_suffix('*'))
                    .is_some_and(|prefix| index.starts_with(prefix))
            });
        covers && t["template"]["mappings"]["properties"]["tracer_data"]["type"] == "flattened"
    });
    let mut leaves = Vec::new();
    fn walk(path: String, value: &Json, flattened: bool, out: &mut Vec<(String, &'static str)>) {
        if flattened && path == "tracer_data" {
            return;
        }
        let values: Vec<&Json> = match value {
            Json::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for value in values {
            out.push((path.clone(), shape(value)));
            if let Json::Object(fields) = value {
                for (key, inner) in fields {
                    let inner_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(inner_path, inner, flattened, out);
                }
            }
        }
    }
    walk(String::new(), source, flattened, &mut leaves);
    let mapping = state.mappings.entry(index).or_default();
    for (path, kind) in &leaves {
        match mapping.get(path) {
            None => {}
            Some(known) if known == kind => {}
            // A number fits a text field; nothing else changes shape.
            Some(&"text") if *kind == "number" || *kind == "boolean" => {}
            Some(_) => return 400,
        }
    }
    for (path, kind) in leaves {
        mapping.entry(path).or_insert(kind);
    }
    201
}

/// A document with a fixed-width body: `n` orders it, `bad` marks one the cluster refuses.
fn doc(n: u64, bad: bool) -> Document {
    let id = format!("id{n:06}");
    Document {
        tracer_name: "oom".into(),
        tracer_id: id.clone(),
        body: json!({"tracer_id": id, "tracer_name": "oom", "n": n, "bad": bad, "pad": format!("{n:06}")}),
    }
}

/// Fast settings for tests against `address`, spooling in `dir`.
/// Stores `count` well-formed documents, numbered from 0.
fn store_docs(sink: &EsSink, count: u64) {
    for n in 0..count {
        sink.store(&doc(n, false));
    }
}

fn settings(address: &str, dir: &Path) -> EsSettings {
    let mut s = EsSettings::new(address, "huatuo_test", "elastic", "123456", dir, 1 << 20);
    s.batch_docs = 4;
    s.batch_interval = Duration::from_millis(20);
    s.request_timeout = Duration::from_secs(2);
    s.retry_initial = Duration::from_millis(50);
    s.retry_max = Duration::from_millis(200);
    s.dead_letter_path = dir.join("dead-letters.jsonl");
    s
}

fn get(counter: &AtomicU64) -> u64 {
    EsCounters::get(counter)
}

/// Waits up to 10 s for `cond`, failing with `what` and the counters.
fn wait_for(what: &str, counters: &EsCounters, cond: impl Fn(&EsCounters) -> bool) {
    let start = Instant::now();
    while !cond(counters) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}: {counters:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ndjson"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn documents_are_bulk_indexed_with_index_id_and_auth() {
    let es = FakeEs::bind(0);
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    let storage = Storage::new(None).with_es(sink);
    for n in 0..3 {
        storage.store(&doc(n, false));
    }
    let counters = storage.es_counters().expect("es counters");
    wait_for("3 indexed", counters, |c| get(&c.indexed) == 3);
    assert_eq!(get(&counters.spooled), 0);
    assert_eq!(get(&counters.failed), 0);
    let requests = es.requests();
    let first = &requests[0];
    assert!(
        first.head.starts_with("POST /_bulk HTTP/1.1"),
        "{}",
        first.head
    );
    assert_eq!(first.authorization, "Basic ZWxhc3RpYzoxMjM0NTY=");
    assert_eq!(first.content_type, "application/x-ndjson");
    let pairs: Vec<_> = requests.iter().flat_map(|r| r.pairs.clone()).collect();
    assert_eq!(pairs.len(), 3);
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    for (n, (action, source)) in pairs.iter().enumerate() {
        assert_eq!(
            action["index"]["_index"],
            format!("huatuo_test_cases_{today}")
        );
        assert_eq!(action["index"]["_id"], format!("id{n:06}"));
        let mut source = source.clone();
        let stamped = source
            .as_object_mut()
            .and_then(|o| o.remove("es_index_time"))
            .and_then(|t| t.as_i64())
            .expect("es_index_time");
        assert!((chrono::Utc::now().timestamp_millis() - stamped).abs() < 60_000);
        assert_eq!(source, doc(n as u64, false).body);
    }
}

#[test]
fn documents_spool_while_the_cluster_is_down_and_replay_in_order() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::Unavailable);
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    store_docs(&sink, 10);
    let c = sink.counters();
    wait_for("10 spooled", c, |c| get(&c.spool_docs) == 10);
    assert_eq!(get(&c.indexed), 0);
    assert!(get(&c.spool_bytes) > 0);
    // Replays keep failing while the cluster is down: the spool keeps everything.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&c.spool_docs), 10);
    es.set_mode(Mode::Up);
    wait_for("10 replayed", c, |c| {
        get(&c.replayed) == 10 && get(&c.spool_docs) == 0
    });
    assert_eq!(get(&c.indexed), 10);
    assert_eq!(get(&c.spool_bytes), 0);
    assert_eq!(es.accepted(), (0..10).collect::<Vec<_>>());
    assert_eq!(segment_files(dir.path()), 0);
    // Once drained, live documents go straight to the cluster again.
    sink.store(&doc(10, false));
    wait_for("live after replay", c, |c| get(&c.indexed) == 11);
    assert_eq!(get(&c.spooled), 10);
}

#[test]
fn a_refused_connection_spools_until_the_cluster_appears() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let sink = EsSink::start(settings(&address, dir.path())).unwrap();
    store_docs(&sink, 5);
    let c = sink.counters();
    wait_for("5 spooled", c, |c| get(&c.spool_docs) == 5);
    let es = FakeEs::bind(port);
    wait_for("5 replayed", c, |c| get(&c.replayed) == 5);
    assert_eq!(es.accepted(), (0..5).collect::<Vec<_>>());
}

#[test]
fn a_full_spool_drops_the_oldest_documents_and_counts_them_exactly() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::Unavailable);
    let dir = tempfile::tempdir().unwrap();
    // Two-digit numbers keep every line the same length.
    let line = doc(10, false).body.to_string().len() as u64 + 1;
    let mut s = settings(&es.address(), dir.path());
    s.spool_segment_bytes = 3 * line;
    s.spool_max_bytes = 9 * line;
    let sink = EsSink::start(s).unwrap();
    for n in 10..30 {
        sink.store(&doc(n, false));
    }
    let c = sink.counters();
    wait_for("20 spooled", c, |c| get(&c.spooled) == 20);
    // Segments of 3 documents, 3 segments at most: the 10th, 13th, 16th and 19th document
    // each push out the oldest segment.
    assert_eq!(get(&c.spool_dropped), 12);
    assert_eq!(get(&c.spool_docs), 8);
    assert!(get(&c.spool_bytes) <= 9 * line);
    es.set_mode(Mode::Up);
    wait_for("8 replayed", c, |c| {
        get(&c.replayed) == 8 && get(&c.spool_docs) == 0
    });
    assert_eq!(es.accepted(), (22..30).collect::<Vec<_>>());
}

#[test]
fn a_refused_item_is_a_permanent_failure_and_is_not_retried() {
    let es = FakeEs::bind(0);
    es.set_rule(|source| if source["bad"] == true { 400 } else { 201 });
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    for n in 0..5 {
        sink.store(&doc(n, n == 1 || n == 3));
    }
    let c = sink.counters();
    wait_for("3 indexed, 2 failed", c, |c| {
        get(&c.indexed) == 3 && get(&c.failed) == 2
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent: Vec<u64> = es
        .requests()
        .iter()
        .flat_map(|r| r.pairs.iter().map(|(_, s)| s["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(sent, vec![0, 1, 2, 3, 4], "each document sent once");
    assert_eq!(get(&c.spooled), 0);
    assert_eq!(get(&c.failed), 2);
}

#[test]
fn a_retryable_item_goes_through_the_spool_and_is_delivered() {
    let es = FakeEs::bind(0);
    let mut refused_once = false;
    es.set_rule(move |source| {
        if source["n"] == 2 && !refused_once {
            refused_once = true;
            429
        } else {
            201
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    store_docs(&sink, 4);
    let c = sink.counters();
    wait_for("4 indexed", c, |c| {
        get(&c.indexed) == 4 && get(&c.spool_docs) == 0
    });
    assert_eq!(get(&c.spooled), 1);
    assert_eq!(get(&c.replayed), 1);
    assert_eq!(get(&c.failed), 0);
    let mut accepted = es.accepted();
    accepted.sort_unstable();
    assert_eq!(accepted, vec![0, 1, 2, 3]);
}

#[test]
fn the_spool_and_the_queue_survive_a_restart() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::Unavailable);
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = settings(&es.address(), dir.path());
        s.batch_docs = 3;
        s.batch_interval = Duration::from_secs(30);
        let sink = EsSink::start(s).unwrap();
        for n in 0..6 {
            sink.store(&doc(n, false));
        }
        wait_for("6 spooled", sink.counters(), |c| get(&c.spool_docs) == 6);
        // Two more wait in memory for a batch that never fills before the sink closes.
        let counters = sink.counters_handle();
        sink.store(&doc(6, false));
        sink.store(&doc(7, false));
        sink.close();
        assert_eq!(get(&counters.spool_docs), 8, "{counters:?}");
        assert_eq!(get(&counters.indexed), 0);
    }
    assert!(segment_files(dir.path()) > 0);
    es.set_mode(Mode::Up);
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    let c = sink.counters();
    assert_eq!(get(&c.spool_docs), 8);
    wait_for("8 replayed", c, |c| {
        get(&c.replayed) == 8 && get(&c.spool_docs) == 0
    });
    assert_eq!(es.accepted(), (0..8).collect::<Vec<_>>());
}

#[test]
fn a_bad_address_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "ftp://es:21",
        "ftp//127.0.0.1:9200",
        "http://a:9200,ftp://b",
    ] {
        let err = EsSink::start(settings(bad, dir.path())).unwrap_err();
        assert!(err.to_string().contains("Storage.ES.Address"), "{err}");
    }
}

#[test]
fn a_full_queue_spools_directly_and_nothing_is_lost() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::Slow(Duration::from_millis(300)));
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&es.address(), dir.path());
    s.queue_capacity = 2;
    s.batch_docs = 2;
    let sink = EsSink::start(s).unwrap();
    store_docs(&sink, 20);
    let c = sink.counters();
    // The worker holds at most a batch in flight and the queue two more: the rest went
    // to the spool without waiting.
    assert!(get(&c.spooled) >= 14, "{c:?}");
    es.set_mode(Mode::Up);
    wait_for("20 indexed", c, |c| {
        get(&c.indexed) == 20 && get(&c.spool_docs) == 0
    });
    assert_eq!(get(&c.spool_dropped) + get(&c.lost) + get(&c.failed), 0);
    let mut accepted = es.accepted();
    accepted.sort_unstable();
    assert_eq!(accepted, (0..20).collect::<Vec<_>>());
}

#[test]
fn a_self_signed_server_is_refused_by_default_and_never_sees_the_credentials() {
    let es = FakeEs::bind_tls();
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.tls_address(), dir.path())).unwrap();
    sink.store(&doc(1, false));
    wait_for("1 spooled", sink.counters(), |c| get(&c.spool_docs) == 1);
    // The client did connect (more than once: the replay retries) ...
    let start = Instant::now();
    while es.connections.load(Ordering::Relaxed) < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "no retry");
        std::thread::sleep(Duration::from_millis(10));
    }
    // ... but no request, and so no Authorization header, ever reached the server.
    assert!(es.requests().is_empty(), "{:?}", es.requests());
    assert_eq!(get(&sink.counters().indexed), 0);
}

#[test]
fn a_self_signed_server_is_accepted_when_its_ca_is_configured() {
    let es = FakeEs::bind_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, es.cert_pem.as_deref().expect("pem")).unwrap();
    let mut s = settings(&es.tls_address(), &dir.path().join("spool"));
    s.ca_cert_path = Some(ca);
    let sink = EsSink::start(s).unwrap();
    sink.store(&doc(1, false));
    wait_for("1 indexed over TLS", sink.counters(), |c| {
        get(&c.indexed) == 1
    });
    assert_eq!(es.requests()[0].authorization, "Basic ZWxhc3RpYzoxMjM0NTY=");
}

#[test]
fn insecure_skip_verify_accepts_an_unverified_server() {
    let es = FakeEs::bind_tls();
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&es.tls_address(), dir.path());
    s.insecure_skip_verify = true;
    let sink = EsSink::start(s).unwrap();
    sink.store(&doc(1, false));
    wait_for("1 indexed over TLS", sink.counters(), |c| {
        get(&c.indexed) == 1
    });
}

#[test]
fn a_bad_ca_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings("https://127.0.0.1:9200", dir.path());
    s.ca_cert_path = Some(dir.path().join("missing.pem"));
    let err = EsSink::start(s.clone()).unwrap_err().to_string();
    assert!(
        err.contains("CACertPath") && err.contains("missing.pem"),
        "{err}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    s.ca_cert_path = Some(empty);
    let err = EsSink::start(s).unwrap_err().to_string();
    assert!(err.contains("no PEM certificate"), "{err}");
}

#[test]
fn the_next_address_is_tried_when_one_is_down() {
    let down = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let es = FakeEs::bind(0);
    let dir = tempfile::tempdir().unwrap();
    let address = format!("http://127.0.0.1:{down},{}", es.address());
    let sink = EsSink::start(settings(&address, dir.path())).unwrap();
    store_docs(&sink, 3);
    wait_for("3 indexed", sink.counters(), |c| get(&c.indexed) == 3);
    assert_eq!(es.accepted(), vec![0, 1, 2]);
}

#[test]
fn flush_spools_the_queue_and_later_documents_go_to_the_spool() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::Slow(Duration::from_secs(5)));
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&es.address(), dir.path());
    s.request_timeout = Duration::from_secs(8);
    let sink = EsSink::start(s).unwrap();
    store_docs(&sink, 3);
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    sink.flush();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(get(&sink.counters().spool_docs), 3);
    sink.store(&doc(3, false));
    assert_eq!(get(&sink.counters().spool_docs), 4);
    assert_eq!(get(&sink.counters().indexed), 0);
}

#[test]
fn closing_interrupts_a_request_in_flight_and_keeps_its_documents() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::Slow(Duration::from_secs(3)));
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&es.address(), dir.path());
    s.request_timeout = Duration::from_secs(8);
    let sink = EsSink::start(s).unwrap();
    let counters = sink.counters_handle();
    sink.store(&doc(1, false));
    // Let the batch leave for the (slow) cluster.
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    sink.close();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        start.elapsed()
    );
    assert_eq!(get(&counters.spool_docs), 1);
    assert_eq!(get(&counters.indexed), 0);
}

/// A record of `tracer` taken at `time` whose `tracer_data.stack` is `stack`.
fn record_doc(n: u64, tracer: &str, time: &str, stack: Json) -> Document {
    let id = format!("rec{n:04}");
    Document {
        tracer_name: tracer.into(),
        tracer_id: id.clone(),
        body: json!({"tracer_id": id, "tracer_name": tracer, "time": time, "n": n,
                     "tracer_data": {"stack": stack}}),
    }
}

/// The dead letters kept in the test's dead-letter file.
/// Stores, for the same day, a record whose `tracer_data.stack` is a string and then one
/// whose `tracer_data.stack` is a list of objects: two shapes of one field path.
fn store_two_stack_shapes(sink: &EsSink) {
    let day = "2025-06-11 16:05:16.251 +0800";
    sink.store(&record_doc(
        1,
        "softirq_tracing",
        day,
        json!("scheduler_tick/ffff"),
    ));
    sink.store(&record_doc(
        2,
        "dload",
        day,
        json!([{"pid": 1, "stack": "io_schedule"}]),
    ));
}

fn dead_letters(dir: &Path) -> Vec<Json> {
    std::fs::read_to_string(dir.join("dead-letters.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter JSON"))
        .collect()
}

#[test]
fn the_index_template_is_installed_first_and_documents_go_to_daily_indices() {
    let es = FakeEs::bind(0);
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    sink.store(&record_doc(
        1,
        "softirq_tracing",
        "2025-06-11 16:05:16.251 +0800",
        json!("a/1"),
    ));
    sink.store(&record_doc(
        2,
        "oom",
        "2025-06-12 00:00:01.000 +0800",
        json!("b/2"),
    ));
    let c = sink.counters();
    wait_for("2 indexed", c, |c| get(&c.indexed) == 2);
    let template = es
        .template("huatuo_test_cases")
        .expect("template installed");
    assert_eq!(template["index_patterns"], json!(["huatuo_test_cases_*"]));
    let props = &template["template"]["mappings"]["properties"];
    assert_eq!(props["tracer_data"]["type"], "flattened");
    assert_eq!(props["es_index_time"]["type"], "date");
    let indices: Vec<Json> = es
        .requests()
        .iter()
        .flat_map(|r| r.pairs.iter().map(|(a, _)| a["index"]["_index"].clone()))
        .collect();
    assert_eq!(
        indices,
        [
            json!("huatuo_test_cases_2025-06-11"),
            json!("huatuo_test_cases_2025-06-12")
        ]
    );
    assert_eq!(c.status()["index_template"], "installed");
}

#[test]
fn with_the_template_tracers_of_different_field_shapes_share_an_index() {
    let es = FakeEs::bind(0);
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    store_two_stack_shapes(&sink);
    let c = sink.counters();
    wait_for("2 indexed", c, |c| get(&c.indexed) == 2);
    assert_eq!(get(&c.failed), 0);
    assert!(dead_letters(dir.path()).is_empty());
}

#[test]
fn a_mapping_conflict_is_kept_as_a_dead_letter_with_the_reason() {
    // An old cluster refuses the template: dynamic mapping then makes `tracer_data.stack`
    // text with the first record, and the second record's list of objects conflicts.
    let es = FakeEs::bind(0);
    es.set_template_status(400);
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    store_two_stack_shapes(&sink);
    let c = sink.counters();
    wait_for("1 indexed, 1 dead letter", c, |c| {
        get(&c.indexed) == 1 && get(&c.dead_lettered) == 1
    });
    assert_eq!(get(&c.failed), 1);
    let letters = dead_letters(dir.path());
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["status"], 400);
    assert_eq!(letters[0]["index"], "huatuo_test_cases_2025-06-11");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("mapper_parsing_exception"),
        "{}",
        letters[0]
    );
    assert_eq!(letters[0]["document"]["tracer_name"], "dload");
    assert_eq!(letters[0]["document"]["tracer_data"]["stack"][0]["pid"], 1);
    assert!(c.status()["index_template"]
        .as_str()
        .unwrap_or_default()
        .starts_with("refused: HTTP 400"));
}

#[test]
fn too_many_requests_are_retried_until_the_cluster_takes_them() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::TooMany);
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    store_docs(&sink, 6);
    let c = sink.counters();
    wait_for("6 spooled", c, |c| get(&c.spool_docs) == 6);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&c.indexed), 0);
    assert_eq!(get(&c.failed), 0);
    es.set_mode(Mode::Up);
    wait_for("6 delivered", c, |c| {
        get(&c.indexed) == 6 && get(&c.spool_docs) == 0
    });
    assert_eq!(es.accepted(), vec![0, 1, 2, 3, 4, 5]);
    assert!(dead_letters(dir.path()).is_empty());
}

#[test]
fn refused_credentials_are_reported_retried_and_cleared_once_fixed() {
    let es = FakeEs::bind(0);
    es.set_credentials("Basic b3RoZXI6b3RoZXI=");
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    store_docs(&sink, 3);
    let c = sink.counters();
    wait_for("an auth failure", c, |c| get(&c.auth_failures) >= 1);
    wait_for("3 spooled", c, |c| get(&c.spool_docs) == 3);
    let status = c.status();
    let error = status["auth_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("HTTP 401") && error.contains("security_exception"),
        "{status}"
    );
    assert_eq!(
        get(&c.failed),
        0,
        "credentials are not the documents' fault"
    );
    // The operator fixes the cluster's side: the spooled documents go, the error clears.
    es.set_credentials("Basic ZWxhc3RpYzoxMjM0NTY=");
    wait_for("3 delivered", c, |c| get(&c.indexed) == 3);
    assert_eq!(c.status()["auth_error"], Json::Null);
    assert_eq!(c.status()["index_template"], "installed");
}

#[test]
fn the_dead_letter_file_is_bounded_and_what_leaves_it_is_counted() {
    let es = FakeEs::bind(0);
    es.set_rule(|_| 400);
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&es.address(), dir.path());
    s.dead_letter_max_bytes = 1200;
    let sink = EsSink::start(s).unwrap();
    for n in 0..30 {
        sink.store(&doc(n, true));
    }
    let c = sink.counters();
    wait_for("30 refused", c, |c| get(&c.failed) == 30);
    let current = dead_letters(dir.path()).len() as u64;
    let rotated = std::fs::read_to_string(dir.path().join("dead-letters.jsonl.1"))
        .expect("rotated dead letters")
        .lines()
        .count() as u64;
    assert!(
        std::fs::metadata(dir.path().join("dead-letters.jsonl"))
            .unwrap()
            .len()
            <= 1200
    );
    assert_eq!(get(&c.dead_lettered), 30);
    // Every refused document is in a file or counted as removed with a rotated file.
    assert_eq!(current + rotated + get(&c.dead_letter_dropped), 30);
    assert!(get(&c.dead_letter_dropped) > 0);
}

#[test]
fn a_request_refused_as_a_whole_keeps_every_document_as_a_dead_letter() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::BadRequest);
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    store_docs(&sink, 3);
    let c = sink.counters();
    wait_for("3 dead letters", c, |c| get(&c.dead_lettered) == 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&c.failed), 3);
    assert_eq!(get(&c.spool_docs), 0, "not retried");
    let letters = dead_letters(dir.path());
    let ids: Vec<&str> = letters
        .iter()
        .map(|l| l["document"]["tracer_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["id000000", "id000001", "id000002"]);
    assert!(letters.iter().all(|l| l["status"] == 400));
    assert!(letters[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("parse_exception"));
}
