//! Kernel tests of the drops template: a SYN to a closed port is dropped with reason
//! NO_SOCKET and the right tuple; a listener whose accept queue is full drops handshakes,
//! classified as listen overflows.

mod common;
mod events_util;

use common::kernel_ready;
use events_util::{int, kernel_enum_value, text, wait_for};
use huatuo_bpf::Templates;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

fn load_drops() -> Templates {
    let templates = Templates::load(&["drops"], &BTreeMap::new());
    let status = templates.status();
    assert!(status[0].loaded, "drops did not load: {status:#?}");
    templates
}

#[test]
fn syn_to_closed_port_is_a_no_socket_drop() {
    if !kernel_ready("syn_to_closed_port_is_a_no_socket_drop") {
        return;
    }
    // a port that was free a moment ago
    let port = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut templates = load_drops();
    let mut rx = templates.take_events().expect("event stream");
    let err = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(2),
    )
    .expect_err("nothing listens there");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    let (event, seen) = wait_for(&mut rx, Duration::from_secs(5), |s| {
        int(s, "dport") == Some(port as i64)
    });
    let event = event.unwrap_or_else(|| panic!("no drop to port {port}; saw {seen:#?}"));
    assert_eq!(event.source, "bpf.drops");
    let no_socket = kernel_enum_value("SKB_DROP_REASON_NO_SOCKET").expect("enum in BTF");
    assert_eq!(int(&event, "reason_code"), Some(no_socket), "{event:#?}");
    // the decoder names the reason from the running kernel's BTF
    assert_eq!(text(&event, "reason"), Some("NO_SOCKET"), "{event:#?}");
    assert_eq!(text(&event, "saddr"), Some("127.0.0.1"));
    assert_eq!(text(&event, "daddr"), Some("127.0.0.1"));
    assert_eq!(int(&event, "l4_proto"), Some(6));
    assert_eq!(
        int(&event, "tcp_flags").map(|f| f & 0x12),
        Some(0x02),
        "a SYN"
    );
    assert_eq!(text(&event, "type"), Some("common_drop"));
    // the namespace cookie is the one the kernel gives this test's own sockets
    assert_eq!(
        int(&event, "net_cookie"),
        Some(own_netns_cookie()),
        "{event:#?}"
    );
    match event.fields.get("stack") {
        Some(huatuo_dsl::value::Value::List(frames)) => {
            assert!(!frames.is_empty(), "empty stack");
            let joined = format!("{frames:?}");
            assert!(joined.contains("tcp_v4_rcv"), "{joined}");
            // the BPF program and tracepoint dispatch frames are stripped: the stack starts
            // in the kernel code that dropped the packet
            let first = frames[0].as_str().unwrap_or_default();
            assert!(
                !first.starts_with("bpf_") && !first.starts_with("__bpf_trace"),
                "{joined}"
            );
            assert!(
                !joined.contains("bpf_trace_run") && !joined.contains("__bpf_trace_"),
                "{joined}"
            );
        }
        other => panic!("stack: {other:?}"),
    }
    let status = templates.status();
    assert!(status[0].counters.emitted >= 1, "{status:#?}");
}

/// A TCP listener with `listen(fd, backlog)`, closed on drop.
fn listener(backlog: i32) -> (OwnedFd, u16) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = l.local_addr().expect("addr").port();
    // SAFETY: re-listen on our own valid socket to shrink the backlog.
    let rc = unsafe { libc::listen(l.as_raw_fd(), backlog) };
    assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
    // SAFETY: the fd is owned by `l`, moved into the OwnedFd here.
    let fd = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(l)) };
    (fd, port)
}

#[test]
fn full_accept_queue_drops_are_listen_overflows() {
    if !kernel_ready("full_accept_queue_drops_are_listen_overflows") {
        return;
    }
    // backlog 1 and TCP_DEFER_ACCEPT: the first client's handshake stays a request until it
    // sends data; meanwhile two more clients send data and fill the accept queue (2 > 1);
    // the first client's data then completes its handshake into a full queue: dropped.
    let (listener, port) = listener(1);
    let defer_secs: libc::c_int = 10;
    // SAFETY: valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            &defer_secs as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "TCP_DEFER_ACCEPT: {}",
        std::io::Error::last_os_error()
    );
    let mut templates = load_drops();
    let mut rx = templates.take_events().expect("event stream");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let connect = || TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    let mut first = connect();
    std::thread::sleep(Duration::from_millis(50));
    // the others send data at once, so they complete into the accept queue
    let others: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = connect();
            std::io::Write::write_all(&mut c, b"fill").expect("write");
            std::thread::sleep(Duration::from_millis(50));
            c
        })
        .collect();
    std::io::Write::write_all(&mut first, b"hello").expect("write");

    let (event, seen) = wait_for(&mut rx, Duration::from_secs(5), |s| {
        int(s, "dport") == Some(port as i64)
            && text(s, "type") == Some("listen_overflow_handshake3")
    });
    drop(others);
    let event = event.unwrap_or_else(|| panic!("no listen overflow drop to {port}; saw {seen:#?}"));
    assert_eq!(text(&event, "state"), Some("LISTEN"), "{event:#?}");
    assert_eq!(int(&event, "max_ack_backlog"), Some(1));
    assert_eq!(
        int(&event, "sport"),
        Some(first.local_addr().unwrap().port() as i64)
    );
    if let Some(overflow) = kernel_enum_value("SKB_DROP_REASON_TCP_LISTEN_OVERFLOW") {
        assert_eq!(int(&event, "reason_code"), Some(overflow), "{event:#?}");
        assert_eq!(text(&event, "reason"), Some("TCP_LISTEN_OVERFLOW"));
    }
}

#[test]
fn tunables_filter_drops_in_the_kernel() {
    if !kernel_ready("tunables_filter_drops_in_the_kernel") {
        return;
    }
    let free_port = || {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (tcp_port, udp_port) = (free_port(), free_port());
    // l4_proto_eq = 17: only UDP drops reach user space
    let tunables = BTreeMap::from([(
        "drops".to_string(),
        BTreeMap::from([("l4_proto_eq".to_string(), 17u64)]),
    )]);
    let mut templates = Templates::load(&["drops"], &tunables);
    assert!(templates.status()[0].loaded);
    let mut rx = templates.take_events().expect("event stream");
    let _ = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, tcp_port)),
        Duration::from_secs(2),
    );
    let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("udp bind");
    udp.send_to(b"x", (Ipv4Addr::LOCALHOST, udp_port))
        .expect("send");

    let (event, seen) = wait_for(&mut rx, Duration::from_secs(5), |s| {
        int(s, "dport") == Some(udp_port as i64)
    });
    let event = event.unwrap_or_else(|| panic!("no UDP drop to {udp_port}; saw {seen:#?}"));
    assert_eq!(int(&event, "l4_proto"), Some(17));
    let (tcp, _) = wait_for(&mut rx, Duration::from_millis(500), |s| {
        int(s, "dport") == Some(tcp_port as i64)
    });
    assert!(
        tcp.is_none(),
        "TCP drop passed the l4_proto_eq = 17 filter: {tcp:#?}"
    );
    assert!(
        !seen.iter().any(|s| int(s, "l4_proto") != Some(17)),
        "{seen:#?}"
    );
    drop(templates);

    // reason_code_ne = NO_SOCKET: the same UDP drop is filtered
    let no_socket = kernel_enum_value("SKB_DROP_REASON_NO_SOCKET").expect("enum in BTF") as u64;
    let tunables = BTreeMap::from([(
        "drops".to_string(),
        BTreeMap::from([("reason_code_ne".to_string(), no_socket)]),
    )]);
    let mut templates = Templates::load(&["drops"], &tunables);
    let mut rx = templates.take_events().expect("event stream");
    udp.send_to(b"x", (Ipv4Addr::LOCALHOST, udp_port))
        .expect("send");
    let (filtered, _) = wait_for(&mut rx, Duration::from_secs(1), |s| {
        int(s, "dport") == Some(udp_port as i64)
    });
    assert!(filtered.is_none(), "{filtered:#?}");
}

/// The cookie of this process's network namespace, as the kernel reports it for a socket
/// (`SO_NETNS_COOKIE`).
fn own_netns_cookie() -> i64 {
    use std::os::fd::AsRawFd;
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the buffer and its length describe `cookie`, which outlives the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "SO_NETNS_COOKIE: {}",
        std::io::Error::last_os_error()
    );
    cookie as i64
}
