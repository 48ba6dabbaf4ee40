//! The Elasticsearch sink against a fake cluster on a loopback port: bulk format, auth,
//! spooling while the cluster is down, ordered replay, the spool cap, permanent rejections
//! and restarts. Every wait is bounded.

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
    requests: Vec<Request>,
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
    let (status, answer, statuses) = if mode == Mode::Unavailable {
        (503, json!({"error": "unavailable"}), Vec::new())
    } else {
        let statuses: Vec<u16> = pairs.iter().map(|(_, s)| (state.rule)(s)).collect();
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
    let answer = answer.to_string();
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.flush();
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
fn settings(address: &str, dir: &Path) -> EsSettings {
    let mut s = EsSettings::new(address, "huatuo_test", "elastic", "123456", dir, 1 << 20);
    s.batch_docs = 4;
    s.batch_interval = Duration::from_millis(20);
    s.request_timeout = Duration::from_secs(2);
    s.retry_initial = Duration::from_millis(50);
    s.retry_max = Duration::from_millis(200);
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
    for (n, (action, source)) in pairs.iter().enumerate() {
        assert_eq!(action["index"]["_index"], "huatuo_test");
        assert_eq!(action["index"]["_id"], format!("id{n:06}"));
        assert_eq!(source, &doc(n as u64, false).body);
    }
}

#[test]
fn documents_spool_while_the_cluster_is_down_and_replay_in_order() {
    let es = FakeEs::bind(0);
    es.set_mode(Mode::Unavailable);
    let dir = tempfile::tempdir().unwrap();
    let sink = EsSink::start(settings(&es.address(), dir.path())).unwrap();
    for n in 0..10 {
        sink.store(&doc(n, false));
    }
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
    for n in 0..5 {
        sink.store(&doc(n, false));
    }
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
    for n in 0..4 {
        sink.store(&doc(n, false));
    }
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
    for n in 0..20 {
        sink.store(&doc(n, false));
    }
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
    for n in 0..3 {
        sink.store(&doc(n, false));
    }
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
    for n in 0..3 {
        sink.store(&doc(n, false));
    }
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
