//! Pod enrichment against a fake kubelet on a loopback port.

use huatuo_containers::kubelet::{
    KubeletClient, KubeletConfig, KubeletError, KubeletWatcher, PodStore, Presence, RefreshPolicy,
};
use huatuo_containers::{
    container_labels, Container, ContainerType, Discovery, DiscoveryOptions, QosClass, Runtime,
};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const D: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
const E: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const G: &str = "1234567890123456789012345678901234567890123456789012345678901234";

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A fake kubelet answering each of `answers` (status, body) to one request, in order.
/// Returns its port, the request lines it saw, and the thread.
fn fake_kubelet(answers: Vec<(u16, Vec<u8>)>) -> (u16, Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    fake_kubelet_on(TcpListener::bind("127.0.0.1:0").expect("bind"), answers)
}

/// `fake_kubelet` on a socket already listening.
fn fake_kubelet_on(
    listener: TcpListener,
    answers: Vec<(u16, Vec<u8>)>,
) -> (u16, Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let thread = std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            reader.read_line(&mut line).expect("request line");
            seen2.lock().unwrap().push(line.trim().to_string());
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let mut stream = stream;
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (port, seen, thread)
}

fn pods_json() -> Vec<u8> {
    std::fs::read(fixture("pods.json")).expect("pods.json")
}

fn http_config(port: u16) -> KubeletConfig {
    KubeletConfig {
        read_only_port: port,
        authorized_port: 0,
        timeout: Duration::from_secs(2),
        ..KubeletConfig::default()
    }
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn scan_v2(store: &Arc<PodStore>) -> Vec<Container> {
    Discovery::new(DiscoveryOptions {
        root: fixture("v2"),
        docker_root: None,
        ..DiscoveryOptions::default()
    })
    .with_pods(store.clone())
    .scan()
    .expect("scan")
}

fn by_id<'a>(found: &'a [Container], id: &str) -> &'a Container {
    found
        .iter()
        .find(|c| c.id == id)
        .expect("container present")
}

#[test]
fn enrichment_from_the_read_only_port() {
    let (port, seen, server) = fake_kubelet(vec![(200, pods_json())]);
    let store = Arc::new(PodStore::new());
    let client = KubeletClient::new(http_config(port)).expect("client");
    store.refresh(&client).expect("fetch");
    server.join().unwrap();
    assert_eq!(seen.lock().unwrap().as_slice(), ["GET /pods HTTP/1.1"]);
    assert_eq!(store.current().map(|s| s.len()), Some(3));

    let found = scan_v2(&store);
    let coredns = by_id(&found, C);
    let labels: Vec<(String, String)> = container_labels(coredns).into_iter().collect();
    let expected: Vec<(String, String)> = [
        ("container_host", "coredns-855c4dd65d-8v5kg"),
        ("container_hostnamespace", "kube-system"),
        ("container_id", C),
        ("container_level", "burstable"),
        ("container_name", "coredns"),
        ("container_type", "normal"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, expected);
    assert_eq!(
        coredns.labels.get("app").map(String::as_str),
        Some("coredns")
    );

    let sidecar = by_id(&found, G);
    assert_eq!(sidecar.name, "istio-proxy");
    assert_eq!(
        sidecar.pod.as_ref().map(|p| p.container_type),
        Some(ContainerType::Sidecar)
    );

    let web = by_id(&found, D);
    assert_eq!(web.runtime, Runtime::CriO);
    assert_eq!(web.qos_class, Some(QosClass::BestEffort));
    assert_eq!(container_labels(web)["container_host"], "web-0");
    assert_eq!(container_labels(web)["container_hostnamespace"], "shop");

    let exporter = by_id(&found, E);
    let pod = exporter.pod.as_ref().expect("pod");
    assert_eq!(pod.container_type, ContainerType::DaemonSet);
    assert!(pod.host_network);
    assert_eq!(container_labels(exporter)["container_type"], "daemonset");
    assert_eq!(container_labels(exporter)["container_level"], "guaranteed");

    // Not a pod: cgroup-only name.
    let docker = by_id(&found, B);
    assert_eq!(docker.pod, None);
    assert_eq!(docker.name, "bbbbbbbbbbbb");
}

#[test]
fn kubelet_down_keeps_cgroup_names_and_counts() {
    let store = Arc::new(PodStore::new());
    let client = KubeletClient::new(http_config(closed_port())).expect("client");
    let err = store.refresh(&client).expect_err("nothing listens");
    assert!(matches!(err, KubeletError::Unreachable { .. }), "{err}");
    assert_eq!(store.stats().unreachable, 1);
    assert!(store.last_error().is_some());
    let found = scan_v2(&store);
    let coredns = by_id(&found, C);
    assert_eq!(coredns.name, "cccccccccccc");
    assert_eq!(coredns.pod, None);
    assert_eq!(
        container_labels(coredns)["container_level"],
        "burstable",
        "from the path"
    );
}

#[test]
fn malformed_answer_is_counted_and_last_good_snapshot_kept() {
    let (port, _, server) = fake_kubelet(vec![
        (200, pods_json()),
        (200, b"{\"items\": [ {not json".to_vec()),
        (500, b"oops".to_vec()),
    ]);
    let store = Arc::new(PodStore::new());
    let client = KubeletClient::new(http_config(port)).expect("client");
    store.refresh(&client).expect("first fetch");
    let err = store.refresh(&client).expect_err("malformed");
    assert!(matches!(err, KubeletError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("line 1 column"), "{err}");
    let err = store.refresh(&client).expect_err("status 500");
    assert!(
        matches!(err, KubeletError::Status { status: 500, .. }),
        "{err}"
    );
    server.join().unwrap();
    let stats = store.stats();
    assert_eq!(
        (stats.fetches, stats.malformed, stats.unreachable),
        (1, 1, 1)
    );
    assert_eq!(
        store.current().map(|s| s.len()),
        Some(3),
        "last good snapshot kept"
    );
    assert_eq!(by_id(&scan_v2(&store), C).name, "coredns");
}

#[test]
fn oversized_answer_is_rejected() {
    let (port, _, server) = fake_kubelet(vec![(200, pods_json())]);
    let client = KubeletClient::new(KubeletConfig {
        max_body_bytes: 100,
        ..http_config(port)
    })
    .expect("client");
    let store = PodStore::new();
    let err = store.refresh(&client).expect_err("too large");
    assert!(err.to_string().contains("larger than 100 bytes"), "{err}");
    server.join().unwrap();
    assert_eq!(store.stats().malformed, 1);
}

#[test]
fn both_ports_zero_disables_the_kubelet() {
    let config = KubeletConfig {
        read_only_port: 0,
        authorized_port: 0,
        ..KubeletConfig::default()
    };
    assert!(!config.enabled());
    assert!(matches!(
        KubeletClient::new(config.clone()),
        Err(KubeletError::Disabled)
    ));
    let watcher =
        KubeletWatcher::spawn(config, RefreshPolicy::default(), Arc::new(PodStore::new()));
    assert!(matches!(watcher, Ok(None)));
}

#[test]
fn watcher_refreshes_in_the_background_and_retries() {
    // First answer malformed, then good: the watcher backs off and retries.
    let (port, seen, server) = fake_kubelet(vec![
        (200, br#"{"kind":"Status"}"#.to_vec()),
        (200, pods_json()),
    ]);
    let store = Arc::new(PodStore::new());
    let policy = RefreshPolicy {
        interval: Duration::from_secs(3600),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..RefreshPolicy::default()
    };
    let watcher = KubeletWatcher::spawn(http_config(port), policy, store.clone())
        .expect("spawn")
        .expect("enabled");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.current().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    drop(watcher);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop stops the thread promptly"
    );
    server.join().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(store.stats().malformed, 1);
    assert_eq!(store.stats().fetches, 1);
    assert_eq!(store.current().map(|s| s.len()), Some(3));
}

#[test]
fn no_request_while_no_kubelet_port_listens() {
    // Nothing listens on the port: the watcher looks at the socket tables only, never
    // connects (no refused connection counted), until a kubelet appears there.
    let port = closed_port();
    let store = Arc::new(PodStore::new());
    let policy = RefreshPolicy {
        interval: Duration::from_secs(3600),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        absent_recheck: Duration::from_millis(50),
    };
    let watcher = KubeletWatcher::spawn(http_config(port), policy, store.clone())
        .expect("spawn")
        .expect("enabled");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().absent < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = store.stats();
    assert!(stats.absent >= 3, "{stats:?}");
    assert_eq!((stats.unreachable, stats.fetches), (0, 0), "{stats:?}");

    // A kubelet starts listening on that port: it is asked within a recheck.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the freed port");
    let (_, seen, server) = fake_kubelet_on(listener, vec![(200, pods_json())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.current().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(watcher);
    server.join().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(store.stats().fetches, 1);
}

#[test]
fn a_node_whose_socket_tables_cannot_be_read_is_still_asked() {
    let config = KubeletConfig {
        presence: Presence::Tables(PathBuf::from("/nonexistent/proc/net")),
        ..http_config(closed_port())
    };
    assert!(config.may_answer());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    assert!(http_config(port).may_answer());
    drop(listener);
    assert!(!http_config(port).may_answer());
}
