//! The agent never reports itself: the real `huatuo run` with the shipped rules, on a host
//! without Kubernetes, makes connections of its own — Elasticsearch storage pointed at a
//! closed loopback port (each record it stores is a SYN dropped by the kernel in the agent's
//! context), scrapes and watch (SSE) clients closed under it — and no dropwatch record may
//! name the agent's pid or its HTTP port, while a drop caused by this test is recorded and
//! the left-out events are counted in `/metrics`.
//! Needs root and BPF: skipped with a message when not root, unless `CI=true`.

mod kernel_agent;

use kernel_agent::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

/// Opens a watch stream, reads its first bytes and closes it with data unread.
fn closed_watch_client(port: u16) {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return;
    };
    let request = format!(
        "POST /v1/events/watch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = stream.write_all(request.as_bytes());
    let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
    let mut head = [0u8; 64];
    let _ = stream.read(&mut head);
}

#[test]
fn the_agent_does_not_report_its_own_drops() {
    if !kernel_tests_enabled("events_selfnoise", "root and BPF") {
        return;
    }
    let es_port = free_port();
    let spool = std::env::temp_dir().join(format!("huatuo-selfnoise-spool-{}", std::process::id()));
    let spool_arg = spool.display().to_string();
    let agent = Agent::start(Setup {
        tag: "selfnoise",
        rules: "rules/",
        config: &format!(
            "[Storage.ES]\n    Address = \"http://127.0.0.1:{es_port}\"\n    \
             Username = \"u\"\n    Password = \"p\"\n"
        ),
        args: &["--spool-dir", &spool_arg],
    });
    agent.wait_attached(&["drops"]);
    let (pid, port) = (agent.pid(), agent.port());

    // The agent's own traffic: scrapes and watch clients that go away.
    for _ in 0..10 {
        let _ = agent.get("/metrics");
        closed_watch_client(port);
    }
    // A drop of this test's own: a SYN to another closed port. Its record makes the agent
    // send a document to the closed Elasticsearch port, dropped in the agent's context.
    let closed = free_port();
    for _ in 0..3 {
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, closed)).is_err());
    }
    let ours = agent
        .wait_record("dropwatch", Duration::from_secs(15), |r| {
            r["dport"] == closed
        })
        .unwrap_or_else(|| panic!("no dropwatch record for port {closed}\n{}", agent.log()));
    assert_ne!(ours["pid"], pid, "{ours}");

    // Once the agent has left out some of its own drops, none of them is in the records.
    let excluded = wait_until(Duration::from_secs(30), || {
        let metrics = agent.get("/metrics")?;
        sample_value(
            &metrics,
            "huatuo_bamai_agent_self_events_excluded_total",
            ("source", "bpf.drops"),
        )
        .filter(|n| *n > 0.0)
    });
    std::thread::sleep(Duration::from_secs(2));
    let records = agent.records("dropwatch");
    let own: Vec<_> = records
        .iter()
        .filter(|r| r["pid"] == pid || r["sport"] == port || r["dport"] == port)
        .collect();
    println!(
        "{} dropwatch records, {excluded:?} left out, own: {own:?}",
        records.len()
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&spool);
    assert!(own.is_empty(), "the agent reported itself: {own:?}");
    assert!(
        excluded.is_some(),
        "no drop of the agent's was left out (its Elasticsearch port {es_port} is closed)"
    );
}
