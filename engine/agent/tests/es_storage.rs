//! The real agent storing records in Elasticsearch: https is verified (a self-signed server
//! never sees the credentials unless its CA is configured or verification is explicitly
//! skipped, which /status and the log say), and SIGTERM stops the agent within
//! `ShutdownTimeout` even while a rule's script is stuck, an event stream client reads
//! nothing and the cluster never answers, with every record kept: in the local file and, for
//! Elasticsearch, in the on-disk spool. Against a plain-http fake cluster that installs the
//! index template and then refuses the credentials or every document, the agent says so in
//! `/status`, `/metrics` and the log, and keeps the refused documents in its dead-letter file.

mod scrape_common;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use scrape_common::{free_port, get, repo, Agent};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `ShutdownTimeout` the tests configure.
const BOUND: Duration = Duration::from_secs(3);

/// An "Elasticsearch" that accepts connections, reads what is sent and never answers.
struct BlackHole {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::Relaxed);
                let mut reader = stream.try_clone().expect("clone");
                held.lock().expect("held").push(stream);
                std::thread::spawn(move || {
                    let mut sink = [0u8; 4096];
                    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
        });
        BlackHole { port, connections }
    }
}

/// An https "Elasticsearch" with a self-signed certificate for 127.0.0.1: it records the
/// Authorization header of every request that gets through the handshake, and answers 503.
struct SelfSigned {
    port: u16,
    cert_pem: String,
    connections: Arc<AtomicUsize>,
    authorizations: Arc<Mutex<Vec<String>>>,
}

impl SelfSigned {
    fn start() -> SelfSigned {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        let cert_pem = cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let authorizations: Arc<Mutex<Vec<String>>> = Arc::default();
        let (counted, seen) = (Arc::clone(&connections), Arc::clone(&authorizations));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let (config, seen) = (Arc::clone(&config), Arc::clone(&seen));
                std::thread::spawn(move || serve_once(config, stream, &seen));
            }
        });
        SelfSigned {
            port,
            cert_pem,
            connections,
            authorizations,
        }
    }

    fn authorizations(&self) -> Vec<String> {
        self.authorizations.lock().expect("seen").clone()
    }
}

/// Reads one request's head over TLS, noting its Authorization, and answers 503. A refused
/// handshake ends at the first read: nothing of the request is ever seen.
fn serve_once(config: Arc<ServerConfig>, stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut reader = BufReader::new(StreamOwned::new(conn, stream));
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && !line.trim().is_empty() {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                seen.lock().expect("seen").push(value.trim().to_string());
            }
        }
        line.clear();
    }
    let _ = reader
        .get_mut()
        .write_all(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// How the plain-http fake cluster answers `_bulk`.
#[derive(Clone, Copy)]
enum Refuse {
    /// 401 for the bulk requests (the template install is accepted).
    Credentials,
    /// 200 with every item refused 400 `mapper_parsing_exception`.
    Documents,
}

/// A plain-http "Elasticsearch": `GET /` answers a version, `PUT _index_template/…` is
/// accepted (and counted), `_bulk` is refused as `refuse` says.
struct Refusing {
    port: u16,
    templates: Arc<AtomicUsize>,
}

impl Refusing {
    fn start(refuse: Refuse) -> Refusing {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let templates = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&templates);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let counted = Arc::clone(&counted);
                std::thread::spawn(move || answer_refusing(stream, refuse, &counted));
            }
        });
        Refusing { port, templates }
    }
}

/// Reads one request and answers it as [`Refusing`] does.
fn answer_refusing(stream: TcpStream, refuse: Refuse, templates: &AtomicUsize) {
    let mut reader = BufReader::new(stream);
    let (mut head, mut length, mut line) = (String::new(), 0usize, String::new());
    while reader.read_line(&mut line).unwrap_or(0) > 0 && !line.trim().is_empty() {
        if head.is_empty() {
            head = line.trim().to_string();
        } else if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        line.clear();
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (status, answer) = if head.starts_with("GET / ") {
        (200, r#"{"version":{"number":"8.13.4"}}"#.to_string())
    } else if head.starts_with("PUT /_index_template/") {
        templates.fetch_add(1, Ordering::Relaxed);
        (200, r#"{"acknowledged":true}"#.to_string())
    } else if matches!(refuse, Refuse::Credentials) {
        (
            401,
            r#"{"error":{"type":"security_exception","reason":"unable to authenticate user [elastic]"},"status":401}"#
                .to_string(),
        )
    } else {
        let items = String::from_utf8_lossy(&body).lines().count() / 2;
        let item = r#"{"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [tracer_data.load1]"}}}"#;
        let items = vec![item; items].join(",");
        (
            200,
            format!(r#"{{"took":1,"errors":true,"items":[{items}]}}"#),
        )
    };
    let _ = reader.get_mut().write_all(
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .as_bytes(),
    );
}

/// The value of an unlabelled family of the agent's `/metrics`, when served.
fn metric(port: u16, family: &str) -> Option<f64> {
    let body = get(port, "/metrics")?;
    body.lines().find_map(|l| {
        let rest = l.strip_prefix(family)?;
        let rest = rest.strip_prefix(' ').or_else(|| {
            rest.strip_prefix('{')
                .and_then(|r| r.split_once("} ").map(|(_, v)| v))
        })?;
        rest.trim().parse().ok()
    })
}

/// A temporary tree: procfs root, rules, stdlib, config, local files, spool and log.
struct Tree(PathBuf);

/// The `Address` line of the `[Storage.ES]` section for a cluster on loopback `port`.
fn es_address(scheme: &str, port: u16) -> String {
    format!("Address = \"{scheme}://127.0.0.1:{port}\"")
}

impl Tree {
    /// The tree, with `es` (besides the credentials) in the config's `[Storage.ES]`.
    fn new(tag: &str, es: &str) -> Tree {
        let root = std::env::temp_dir().join(format!("huatuo-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["proc", "cgroup", "rules", "stdlib"] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        let tree = Tree(root);
        tree.set_load("0.30");
        // Records at every poll; a second rule runs a script that takes minutes, once the
        // load goes above 5 (when a test says so).
        std::fs::write(
            tree.path("rules/shutdown.hto"),
            "event store_probe {\n    source proc.loadavg every 100ms\n    cooldown none\n    emit load1\n}\n\n\
             event stuck_script {\n    source proc.loadavg every 100ms\n    where load1 > 5\n    \
             script spun = slow::spin(load1)\n    cooldown none\n    emit spun\n}\n",
        )
        .expect("rules");
        std::fs::write(
            tree.path("stdlib/slow.rhai"),
            "/// Thousands of scans of a 9000-element array: within the operation limit, minutes long.\n\
             fn spin(load) {\n    let a = [];\n    a.pad(9000, 0);\n    let n = 0;\n    \
             for i in 0..15000 {\n        if a.contains(-1) { n += 1; }\n    }\n    n + load\n}\n",
        )
        .expect("script");
        std::fs::write(
            tree.path("huatuo-bamai.conf"),
            format!(
                "ShutdownTimeout = {}\n[Rules]\nScriptTimeout = 500\n[Storage.ES]\nUsername = \"elastic\"\nPassword = \"secret\"\n\
                 {es}\n[Storage.LocalFile]\nPath = \"{}\"\n",
                BOUND.as_secs(),
                tree.path("local").display()
            ),
        )
        .expect("config");
        tree
    }

    fn set_load(&self, load1: &str) {
        let tmp = self.path("proc/loadavg.tmp");
        std::fs::write(&tmp, format!("{load1} 0.20 0.22 2/300 4242\n")).expect("loadavg");
        std::fs::rename(&tmp, self.path("proc/loadavg")).expect("rename");
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Starts `huatuo run` on this tree, its log in `agent.log`, the API on `port`.
    fn start_agent(&self, port: u16) -> Agent {
        let log = std::fs::File::create(self.path("agent.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_huatuo"))
            .current_dir(repo())
            .arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(self.path("huatuo-bamai.conf"))
            .args(["--no-bpf", "--no-self-limit", "--procfs-root"])
            .arg(self.path("proc"))
            .arg("--cgroup-root")
            .arg(self.path("cgroup"))
            .arg("--rules")
            .arg(self.path("rules"))
            .arg("--stdlib")
            .arg(self.path("stdlib"))
            .arg("--spool-dir")
            .arg(self.path("spool"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start huatuo");
        Agent(child)
    }

    /// What the agent logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.path("agent.log")).unwrap_or_default()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The tracer ids of the records in a local record file.
fn local_ids(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    huatuo_storage::local::documents(&text)
        .iter()
        .filter_map(|doc| doc["tracer_id"].as_str().map(str::to_string))
        .collect()
}

/// The tracer ids of the documents in the spool's segment files.
fn spooled_ids(dir: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if !entry.file_name().to_string_lossy().ends_with(".ndjson") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let doc: serde_json::Value = serde_json::from_str(line).expect("spooled JSON");
            ids.insert(doc["tracer_id"].as_str().expect("tracer_id").to_string());
        }
    }
    ids
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `storage.elasticsearch` of the agent's `/status`, once it serves.
fn es_status(port: u16) -> serde_json::Value {
    let mut body = None;
    wait_until("/status", Duration::from_secs(60), || {
        body = get(port, "/status");
        body.is_some()
    });
    let status: serde_json::Value =
        serde_json::from_str(&body.unwrap_or_default()).expect("status JSON");
    status["storage"]["elasticsearch"].clone()
}

#[test]
fn sigterm_exits_within_the_bound_and_spools_the_queued_documents() {
    let es = BlackHole::start();
    let tree = Tree::new("shutdown", &es_address("http", es.port));
    let port = free_port();
    let mut agent = tree.start_agent(port);
    let local = tree.path("local/store_probe");
    wait_until(
        "records and a bulk request in flight",
        Duration::from_secs(60),
        || local_ids(&local).len() >= 5 && es.connections.load(Ordering::Relaxed) >= 1,
    );
    // An event stream client that never reads.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stalled
        .write_all(b"POST /v1/events/watch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .expect("watch request");
    // The next poll starts the minutes-long script: the evaluator is busy in it until the
    // script time limit cuts it (`[Rules] ScriptTimeout`), while SIGTERM arrives.
    tree.set_load("9.00");
    std::thread::sleep(Duration::from_millis(300));

    let pid = agent.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = agent.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < BOUND + Duration::from_secs(3),
            "still running {:?} after SIGTERM (ShutdownTimeout = {BOUND:?})",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = start.elapsed();
    assert!(status.success(), "{status:?}");
    // Nothing reached the cluster, so every record stored locally waits in the spool.
    let stored = local_ids(&local);
    let spooled = spooled_ids(&tree.path("spool"));
    assert!(stored.len() >= 5, "{stored:?}");
    assert_eq!(spooled, stored, "spool vs local records");
    println!(
        "exited {took:?} after SIGTERM; {} documents spooled",
        spooled.len()
    );
    drop(stalled);
}

#[test]
fn a_self_signed_cluster_is_refused_and_never_sees_the_credentials() {
    let es = SelfSigned::start();
    let tree = Tree::new("tls-refused", &es_address("https", es.port));
    let port = free_port();
    let _agent = tree.start_agent(port);
    // The first bulk request and a replay both stop at the handshake.
    wait_until("two connections", Duration::from_secs(60), || {
        es.connections.load(Ordering::Relaxed) >= 2
    });
    assert!(es.authorizations().is_empty(), "{:?}", es.authorizations());
    let status = es_status(port);
    assert_eq!(status["insecure_skip_verify"], false, "{status}");
    assert_eq!(status["warnings"], serde_json::json!([]), "{status}");
}

#[test]
fn a_self_signed_cluster_is_accepted_when_its_ca_is_configured() {
    let es = SelfSigned::start();
    let ca = std::env::temp_dir().join(format!("huatuo-tls-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, &es.cert_pem).expect("write CA");
    let tree = Tree::new(
        "tls-ca",
        &format!(
            "Address = \"https://127.0.0.1:{}\"\nCACertPath = \"{}\"",
            es.port,
            ca.display()
        ),
    );
    let _agent = tree.start_agent(free_port());
    wait_until("a request through TLS", Duration::from_secs(60), || {
        !es.authorizations().is_empty()
    });
    let _ = std::fs::remove_file(&ca);
    // elastic:secret
    assert_eq!(es.authorizations()[0], "Basic ZWxhc3RpYzpzZWNyZXQ=");
}

#[test]
fn skipping_verification_is_explicit_and_said_in_the_log_and_status() {
    let es = SelfSigned::start();
    let tree = Tree::new(
        "tls-insecure",
        &format!(
            "Address = \"https://127.0.0.1:{}\"\nInsecureSkipVerify = true",
            es.port
        ),
    );
    let port = free_port();
    let _agent = tree.start_agent(port);
    wait_until("a request through TLS", Duration::from_secs(60), || {
        !es.authorizations().is_empty()
    });
    let status = es_status(port);
    assert_eq!(status["insecure_skip_verify"], true, "{status}");
    let warning = status["warnings"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(warning.contains("InsecureSkipVerify = true"), "{status}");
    assert_eq!(tree.log().matches(&warning).count(), 1, "{}", tree.log());
}

#[test]
fn refused_credentials_are_said_in_status_metrics_and_log() {
    let es = Refusing::start(Refuse::Credentials);
    let tree = Tree::new("es-auth", &es_address("http", es.port));
    let port = free_port();
    let _agent = tree.start_agent(port);
    wait_until("an auth failure counted", Duration::from_secs(60), || {
        metric(port, "huatuo_bamai_agent_es_auth_failures_total").is_some_and(|v| v >= 1.0)
    });
    let delivery = es_status(port)["delivery"].clone();
    let error = delivery["auth_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("HTTP 401") && error.contains("security_exception"),
        "{delivery}"
    );
    assert_eq!(delivery["index_template"], "installed", "{delivery}");
    assert_eq!(
        delivery["dead_lettered"], 0,
        "credentials are not the documents' fault"
    );
    assert!(es.templates.load(Ordering::Relaxed) >= 1);
    assert!(tree.log().contains("HTTP 401"), "{}", tree.log());
}

#[test]
fn documents_refused_for_their_content_are_kept_as_dead_letters_and_counted() {
    let es = Refusing::start(Refuse::Documents);
    let tree = Tree::new(
        "es-dead",
        &format!(
            "Address = \"http://127.0.0.1:{}\"\nDeadLetterPath = \"{}\"\nDeadLetterMaxSize = 1",
            es.port,
            dead_letters_in_tree().display()
        ),
    );
    let dead = dead_letters_in_tree();
    assert!(dead.starts_with(&tree.0), "removed with the tree");
    let port = free_port();
    let _agent = tree.start_agent(port);
    wait_until("3 dead letters counted", Duration::from_secs(60), || {
        metric(port, "huatuo_bamai_agent_es_dead_lettered_total").is_some_and(|v| v >= 3.0)
    });
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .expect("dead-letter file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter JSON"))
        .collect();
    assert!(letters.len() >= 3, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["status"], 400);
    assert!(letter["reason"]
        .as_str()
        .unwrap_or_default()
        .starts_with("mapper_parsing_exception"));
    assert_eq!(letter["document"]["tracer_name"], "store_probe");
    assert!(
        letter["index"]
            .as_str()
            .unwrap_or_default()
            .starts_with("huatuo_bamai_cases_20"),
        "{letter}"
    );
    // Every dead letter's record is also in the local file: nothing was dropped.
    let stored = local_ids(&tree.path("local/store_probe"));
    for letter in &letters {
        let id = letter["document"]["tracer_id"].as_str().unwrap_or_default();
        assert!(stored.contains(id), "{id} not stored locally");
    }
    let status = es_status(port);
    assert_eq!(
        status["dead_letter_path"],
        dead.display().to_string(),
        "{status}"
    );
    assert!(status["delivery"]["dead_lettered"].as_u64().unwrap_or(0) >= 3);
}

/// The dead-letter file of the `es-dead` test, inside its tree.
fn dead_letters_in_tree() -> PathBuf {
    std::env::temp_dir()
        .join(format!("huatuo-es-dead-{}", std::process::id()))
        .join("dead-letters.jsonl")
}

#[test]
fn legacy_tracer_names_write_records_under_huatuo_s_older_names() {
    let es = Refusing::start(Refuse::Documents);
    let tree = Tree::new("legacy-names", &es_address("http", es.port));
    let config = std::fs::read_to_string(tree.path("huatuo-bamai.conf")).expect("config");
    let config = config.replacen("[Rules]", "[Storage]\nLegacyTracerNames = true\n[Rules]", 1);
    std::fs::write(tree.path("huatuo-bamai.conf"), config).expect("config");
    std::fs::write(
        tree.path("rules/renamed.hto"),
        "event net_rx_latency {\n    source proc.loadavg every 100ms\n    cooldown none\n    emit load1\n}\n",
    )
    .expect("rule");
    let port = free_port();
    let _agent = tree.start_agent(port);
    let legacy = tree.path("local/netrecvlat");
    wait_until("records under netrecvlat", Duration::from_secs(60), || {
        !local_ids(&legacy).is_empty()
    });
    let text = std::fs::read_to_string(&legacy).expect("record file");
    let docs = huatuo_storage::local::documents(&text);
    assert!(
        docs.iter().all(|d| d["tracer_name"] == "netrecvlat"),
        "{text}"
    );
    assert!(!tree.path("local/net_rx_latency").exists());
    // Records of tracers HUATUO never renamed keep their name.
    let kept = tree.path("local/store_probe");
    wait_until("records under store_probe", Duration::from_secs(60), || {
        !local_ids(&kept).is_empty()
    });
    assert_eq!(es_status(port)["legacy_tracer_names"], true);
}
