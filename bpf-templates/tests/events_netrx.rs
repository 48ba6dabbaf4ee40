//! Kernel test of netrx_latency: data left unread in a TCP socket for 80 ms is reported at
//! the user-copy stage with its tuple and a latency of at least that long; the loader, not
//! the test, turns receive timestamps on and sets the realtime offset. The event is in the
//! host network namespace and attributed to the cgroup of the thread that read the data.

mod common;
mod events_util;

use common::{kernel_ready, OneContainer, TestCgroup};
use events_util::{int, text, wait_for};
use huatuo_bpf::cgroup::unified_hierarchy;
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn data_read_late_is_a_user_copy_latency_event() {
    if !kernel_ready("data_read_late_is_a_user_copy_latency_event") {
        return;
    }
    // The loader itself sets mono_to_real_ns and holds the SO_TIMESTAMPNS socket.
    let tunables = BTreeMap::from([(
        "netrx_latency".to_string(),
        BTreeMap::from([("threshold_ns".to_string(), 40_000_000u64)]),
    )]);
    // The reading thread runs in a test cpu cgroup: TO_USER_COPY is attributed to it.
    let cgroup = TestCgroup::create("cpu", "huatuo-netrx");
    let options = LoadOptions {
        resolver: Arc::new(OneContainer(cgroup.id(), "reader-container")),
        ..LoadOptions::default()
    };
    let mut templates = Templates::load_with(&["netrx_latency"], &tunables, options);
    let status = templates.status();
    assert!(status[0].loaded, "netrx_latency did not load: {status:#?}");
    let mut rx = templates.take_events().expect("event stream");

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let server_port = listener.local_addr().expect("addr").port();
    let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, server_port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    assert!(
        status[0].notes.iter().any(|n| n.contains("SO_TIMESTAMPNS")),
        "{status:#?}"
    );
    client.write_all(b"late data").expect("write");
    let tasks = cgroup.dir.join(if unified_hierarchy() {
        "cgroup.threads"
    } else {
        "tasks"
    });
    let reader = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        std::fs::write(&tasks, tid.to_string()).expect("move the reader thread");
        std::thread::sleep(Duration::from_millis(80));
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).expect("read");
        buf[..n].to_vec()
    });
    let data = reader.join().expect("reader thread");
    assert_eq!(data, b"late data");

    let client_port = client.local_addr().expect("addr").port() as i64;
    let (event, seen) = wait_for(&mut rx, Duration::from_secs(5), |s| {
        text(s, "where") == Some("TO_USER_COPY") && int(s, "sport") == Some(client_port)
    });
    let event = event.unwrap_or_else(|| panic!("no TO_USER_COPY event; saw {seen:#?}"));
    assert_eq!(int(&event, "dport"), Some(server_port as i64));
    assert_eq!(text(&event, "saddr"), Some("127.0.0.1"));
    assert_eq!(text(&event, "state"), Some("ESTABLISHED"));
    // loopback traffic of this test is in the agent's (the host's) network namespace
    assert_eq!(event.fields.get("host_netns"), Some(&Value::Bool(true)));
    assert_eq!(
        event.labels.get("container_id").map(String::as_str),
        Some("reader-container"),
        "{event:#?}"
    );
    let latency = int(&event, "latency").unwrap_or(0);
    assert!(
        (80_000_000..5_000_000_000).contains(&latency),
        "latency {latency} ns for data left 80 ms"
    );
    // nothing on the earlier stages: they ran long before the threshold
    assert!(!seen
        .iter()
        .any(|s| int(s, "sport") == Some(client_port) && text(s, "where") != Some("TO_USER_COPY")));
}
