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

/// Brings the loopback device of the calling thread's network namespace up.
fn loopback_up() {
    // SAFETY: a datagram socket and two ioctls on a zeroed, named ifreq; the fd is closed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req), 0);
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req),
            0,
            "lo up: {}",
            std::io::Error::last_os_error()
        );
        libc::close(fd);
    }
}

/// Sends a few bytes over loopback TCP and reads them 80 ms later; returns the client port.
fn late_read() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    client.write_all(b"late data").expect("write");
    std::thread::sleep(Duration::from_millis(80));
    let mut buf = [0u8; 64];
    let n = server.read(&mut buf).expect("read");
    assert_eq!(&buf[..n], b"late data");
    client.local_addr().expect("addr").port()
}

#[test]
fn host_netns_packets_are_dropped_in_the_kernel_when_no_rule_wants_them() {
    if !kernel_ready("host_netns_packets_are_dropped_in_the_kernel_when_no_rule_wants_them") {
        return;
    }
    let tunables = BTreeMap::from([(
        "netrx_latency".to_string(),
        BTreeMap::from([
            ("threshold_ns".to_string(), 40_000_000u64),
            ("skip_host_netns".to_string(), 1),
        ]),
    )]);
    let mut templates = Templates::load_with(&["netrx_latency"], &tunables, LoadOptions::default());
    assert!(templates.status()[0].loaded, "{:#?}", templates.status());
    let mut rx = templates.take_events().expect("event stream");

    // A late read in the host network namespace, then one in a namespace of its own.
    let host_port = late_read() as i64;
    let container_port = std::thread::spawn(|| {
        // SAFETY: unshare of the network namespace affects only this thread.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        loopback_up();
        late_read() as i64
    })
    .join()
    .expect("netns thread");

    let (event, seen) = wait_for(&mut rx, Duration::from_secs(5), |s| {
        text(s, "where") == Some("TO_USER_COPY") && int(s, "sport") == Some(container_port)
    });
    let event = event.unwrap_or_else(|| panic!("no event from the other netns; saw {seen:#?}"));
    assert_eq!(event.fields.get("host_netns"), Some(&Value::Bool(false)));
    assert!(
        !seen.iter().any(|s| int(s, "sport") == Some(host_port)),
        "a host-netns packet was reported: {seen:#?}"
    );
}
