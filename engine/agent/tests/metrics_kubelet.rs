//! The real binary over the fixture cgroup v2 tree with a fake kubelet answering `/pods` on a
//! loopback port: container series carry the pod's name, namespace, QoS and container type;
//! with the kubelet down they keep cgroup-only labels and the agent serves on.

mod scrape_common;

use scrape_common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Answers every request with the containers crate's recorded pod list until dropped.
struct FakeKubelet {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeKubelet {
    fn start() -> FakeKubelet {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let body = std::fs::read(repo().join("engine/containers/tests/fixtures/pods.json"))
            .expect("pods.json");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => continue,
                });
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let mut stream = stream;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        FakeKubelet { port, stop }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run_agent(kubelet_port: u16, within: Duration, done: impl Fn(&str) -> bool) -> String {
    let config = TempConfig::new(
        &format!("metrics-kubelet-{kubelet_port}"),
        &format!(
            "[Storage.ES]\n    Address = \"\"\n[Pod]\n    KubeletReadOnlyPort = {kubelet_port}\n    KubeletAuthorizedPort = 0\n"
        ),
    );
    let port = free_port();
    let _agent = start_fixture_agent(port, &config.path, "cgroup", 40, &[]);
    scrape_until(port, within, done)
}

const CORES_OF_COREDNS: &str = r#"huatuo_bamai_cpu_util_container_cores{container_host="coredns-855c4dd65d-8v5kg",container_hostnamespace="kube-system",container_id="cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",container_level="burstable",container_name="coredns",container_type="normal",host="fixture-host",region=""}"#;

#[test]
fn container_series_carry_pod_labels_from_the_kubelet() {
    let kubelet = FakeKubelet::start();
    let body = run_agent(kubelet.port, Duration::from_secs(30), |body| {
        body.lines().any(|l| l.starts_with(CORES_OF_COREDNS))
            && body.contains(r#"container_type="sidecar""#)
    });
    assert!(
        body.lines().any(|l| l.starts_with(CORES_OF_COREDNS)),
        "no coredns series with pod labels:\n{body}"
    );
    // The istio-proxy container of the same pod is a sidecar (restartPolicy Always init).
    assert!(
        body.lines()
            .any(|l| l.contains(r#"container_name="istio-proxy""#)
                && l.contains(r#"container_type="sidecar""#)
                && l.contains(r#"container_hostnamespace="kube-system""#)),
        "{body}"
    );
    // web-0 in namespace shop is BestEffort.
    assert!(
        body.lines().any(|l| l.contains(r#"container_host="web-0""#)
            && l.contains(r#"container_level="besteffort""#)),
        "{body}"
    );
}

#[test]
fn a_kubelet_that_is_down_leaves_cgroup_only_labels() {
    // Nothing listens on this port: the kubelet is down.
    let port = free_port();
    let body = run_agent(port, Duration::from_secs(30), |body| {
        body.contains("huatuo_bamai_cpu_util_container_cores{")
    });
    let series: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("huatuo_bamai_cpu_util_container_cores{"))
        .collect();
    assert!(
        !series.is_empty(),
        "agent did not serve container series:\n{body}"
    );
    assert!(
        series.iter().all(|l| l.contains(r#"container_host="""#)),
        "{series:#?}"
    );
}
