//! 100 clients reading the event stream and 3 that never read, against the real agent while
//! events are produced: every reading client gets every event in order, the agent's memory
//! stays bounded, and the stalled clients are dropped with a per-client count in /metrics.

mod api_agent;

use api_agent::{get, request, sample, ApiAgent, Setup, Watch};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reading clients.
const READERS: usize = 100;
/// Clients that never read.
const STALLED: usize = 3;
/// Rules producing events (each one event per 100 ms poll).
const PRODUCERS: usize = 10;
/// Longest the events are produced while waiting for the stalled clients to be dropped.
const PRODUCE_AT_MOST: Duration = Duration::from_secs(25);

/// The sequence of an event id `<boot>-<seq>`.
fn seq(id: &str) -> Option<u64> {
    id.rsplit('-').next()?.parse().ok()
}

/// A watch whose socket receive buffer is as small as the kernel allows, never read.
fn stalled_watch(addr: SocketAddr) -> TcpStream {
    // SAFETY: plain socket syscalls on a descriptor owned here, handed to TcpStream once
    // connected.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let size: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let SocketAddr::V4(v4) = addr else {
            panic!("IPv4 loopback expected")
        };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect");
        TcpStream::from_raw_fd(fd)
    };
    let mut writer = stream.try_clone().expect("clone");
    write!(
        writer,
        "POST /v1/events/watch HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("request");
    stream
}

fn flood_rules(agent: &ApiAgent) {
    let pad = "x".repeat(4000);
    let text: String = (0..PRODUCERS)
        .map(|i| {
            format!(
                "event api_flood_{i} {{\n    source proc.loadavg\n    every 100ms\n    \
                 cooldown none\n    limit 1000 per 1s\n    when load1 >= 0\n    \
                 emit load1, pad = \"{pad}\"\n}}\n"
            )
        })
        .collect();
    std::fs::write(agent.dir().join("rules").join("flood.hto"), text).expect("rules");
    let reply = request(agent.addr, "POST", "/v1/rules/reload", &[], "").expect("reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_hundred_readers_get_every_event_and_three_stalled_clients_are_dropped() {
    let config = format!(
        "[EventsWatch]\n    MaxClients = {}\n",
        READERS + STALLED + 5
    );
    let agent = ApiAgent::start_healthy(Setup {
        tag: "watch-clients",
        config: &config,
        every: "100ms",
        ..Setup::default()
    });
    // Anonymous memory (heap, client buffers): the binary's pages come and go as the agent
    // returns the ones it is not running.
    let rss_before = agent.status_kb("RssAnon");
    let started = Instant::now();

    let stalled: Vec<TcpStream> = (0..STALLED).map(|_| stalled_watch(agent.addr)).collect();
    let (first_tx, first_rx) = std::sync::mpsc::channel::<u64>();
    // The last event the readers wait for; set once every reader is in.
    let target = Arc::new(AtomicU64::new(u64::MAX));
    // The newest event any reader got.
    let latest = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let mut watch = Watch::open(agent.addr, "", &[]).expect("watch");
            assert_eq!(watch.status, 200);
            let first_tx = first_tx.clone();
            let target = target.clone();
            let latest = latest.clone();
            std::thread::spawn(move || {
                let mut seen: Vec<u64> = Vec::new();
                let mut reported = false;
                while let Some(frame) = watch.next_frame() {
                    assert!(
                        frame.event.is_empty(),
                        "a reading client got a `{}` frame: {}",
                        frame.event,
                        frame.data
                    );
                    let Some(n) = seq(&frame.id) else { continue };
                    seen.push(n);
                    latest.fetch_max(n, Ordering::Relaxed);
                    if !reported {
                        reported = true;
                        let _ = first_tx.send(n);
                    }
                    if n >= target.load(Ordering::Acquire) {
                        break;
                    }
                }
                seen
            })
        })
        .collect();
    drop(first_tx);
    // Every reader saw its first event: from the latest of those on, all must see everything.
    let common = (0..READERS)
        .map(|_| {
            first_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("every reader gets a first event")
        })
        .max()
        .expect("readers");
    flood_rules(&agent);
    // Events flow until the stalled clients are dropped; then the readers read up to a bit
    // past the newest event.
    let disconnected = |agent: &ApiAgent| {
        get(agent.addr, "/metrics", &[])
            .and_then(|r| sample(&r.body, "huatuo_bamai_agent_watch_disconnected_total"))
            .unwrap_or(0.0)
    };
    let mut peak_rss = 0;
    let deadline = Instant::now() + PRODUCE_AT_MOST;
    while disconnected(&agent) < STALLED as f64 && Instant::now() < deadline {
        peak_rss = peak_rss.max(agent.status_kb("RssAnon"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let end = latest.load(Ordering::Relaxed) + 20;
    target.store(end, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(20);
    while readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
        peak_rss = peak_rss.max(agent.status_kb("RssAnon"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut complete = 0;
    for reader in readers {
        let seen = reader.join().expect("reader thread");
        let from = seen.iter().position(|&n| n == common);
        let Some(from) = from else {
            panic!(
                "a reader never saw event {common}: {:?}",
                &seen[..seen.len().min(20)]
            )
        };
        let tail = &seen[from..];
        assert!(
            tail.windows(2).all(|w| w[1] == w[0] + 1),
            "a reader missed or repeated events after {common}"
        );
        assert!(
            tail.last().is_some_and(|&n| n >= end),
            "a reader stopped at {tail:?}"
        );
        complete += 1;
    }
    assert_eq!(complete, READERS);

    // The stalled clients were dropped, each with its own count.
    let metrics = get(agent.addr, "/metrics", &[]).expect("metrics").body;
    let disconnected =
        sample(&metrics, "huatuo_bamai_agent_watch_disconnected_total").unwrap_or(0.0);
    let per_client: Vec<f64> = metrics
        .lines()
        .filter(|l| l.contains("agent_watch_client_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    println!(
        "{READERS} readers got events {common}..={end}; stalled dropped: {disconnected}; \
         per-client drops {per_client:?}; agent RSS {rss_before} kB before, peak {peak_rss} kB; \
         {:?}",
        started.elapsed()
    );
    assert!(disconnected >= STALLED as f64, "{metrics}");
    assert!(
        per_client.len() >= STALLED && per_client.iter().all(|&d| d > 0.0),
        "{metrics}"
    );
    assert!(
        peak_rss < rss_before + 64 * 1024,
        "memory grew from {rss_before} kB to {peak_rss} kB"
    );
    drop(stalled);
}
