//! End-to-end test of the node API with the real `huatuo run` (root + BPF): readiness, the
//! OpenAPI document, container lookups, every operation error code, a 3 s CPU profile of a
//! busy function in this test process whose stored `manual` record and served flame graph
//! parse as XML and name that function, and `huatuo op start|get|stop` stopping a running
//! profile early; a 3 s off-CPU profile of a thread sleeping in `nanosleep` whose folded
//! stacks weigh the kernel sleep path in microseconds; traces in a lossy network namespace (tcp_retransmit, networking_drop) and
//! an io_tracing scan of this process's writes; a 3 s io_tracing operation naming the loop disk
//! this process writes to with O_DIRECT, its requests and latency. Skips without root unless
//! `CI=true`.

mod kernel_agent;

use kernel_agent::*;
use serde_json::{json, Value as Json};
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The function the sleeping thread spends its time in: `nanosleep` for 10 ms issued by a
/// `syscall` instruction right here, so the user stack's first frame is this function even
/// though the standard library keeps no frame pointers.
#[no_mangle]
#[inline(never)]
pub extern "C" fn huatuo_ops_offcpu_sleep() -> i64 {
    let request = libc::timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    let ret: i64;
    // SAFETY: nanosleep reads the valid timespec above and writes nothing (NULL remainder);
    // the syscall instruction clobbers only rcx and r11, declared below.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_nanosleep => ret,
            in("rdi") &request as *const libc::timespec,
            in("rsi") 0usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A thread named `huatuo-offcpu` sleeping in [`huatuo_ops_offcpu_sleep`] until stopped.
fn start_sleeper(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("huatuo-offcpu".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                black_box(huatuo_ops_offcpu_sleep());
            }
        })
        .expect("spawn the sleeping thread")
}

/// Sends a request; status and body (JSON when it parses, the text as a string otherwise);
/// status 0 with the error when the agent cannot be reached.
fn http(method: &str, url: &str, body: Option<(&str, &str)>) -> (u16, Json) {
    let request = ureq::request(method, url).timeout(Duration::from_secs(10));
    let result = match body {
        Some((content_type, text)) => request.set("Content-Type", content_type).send_string(text),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => return (0, Json::String(format!("{method} {url}: {e}"))),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Json::String(text)),
    )
}

fn code(body: &Json) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

fn start_body(request_id: &str, duration: u64, spec: Json) -> String {
    let kind = if spec.get("mode").is_some() {
        "profiling"
    } else {
        "tracing"
    };
    json!({"request_id": request_id, "kind": kind, "scope": "host",
           "duration_seconds": duration, "spec": spec})
    .to_string()
}

fn cpu() -> Json {
    json!({"type": "cpu", "mode": "oncpu"})
}

fn wait_terminal(agent: &Agent, request_id: &str, within: Duration) -> Json {
    let url = format!("http://{}/v1/operations/{request_id}", agent.addr());
    wait_until(within, || {
        let (_, body) = http("GET", &url, None);
        (body["data"]["status"] == "terminal").then(|| body["data"].clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "{request_id} never finished: {}\nlog:\n{}",
            http("GET", &url, None).1,
            agent.log()
        )
    })
}

/// Stored documents of `tracer` (whole documents, not only `tracer_data`).
fn stored(agent: &Agent, tracer: &str) -> Vec<Json> {
    std::fs::read_to_string(agent.record_file(tracer))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Asserts `svg` parses as XML and has a frame naming `function`.
fn assert_svg_names(svg: &str, function: &str) {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(svg, options).unwrap_or_else(|e| {
        panic!(
            "flame graph is not XML: {e}\n{}",
            &svg[..svg.len().min(500)]
        )
    });
    let named = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .any(|t| t.contains(function));
    assert!(named, "no flame graph frame names {function}");
}

#[test]
fn operations_profile_stop_and_refuse_with_their_codes() {
    if !kernel_tests_enabled("operations_kernel", "root and BPF") {
        return;
    }
    let agent = Agent::start(Setup {
        tag: "operations",
        rules: "rules/autotrace",
        config: "[Operations]\n    MaxConcurrent = 1\n    MaxDuration = 300\n",
        args: &["--run-for", "240"],
    });
    let base = format!("http://{}", agent.addr());
    wait_until(Duration::from_secs(60), || {
        (http("GET", &format!("{base}/readyz"), None).0 == 204).then_some(())
    })
    .unwrap_or_else(|| panic!("never ready\nlog:\n{}", agent.log()));

    let (status, doc) = http("GET", &format!("{base}/openapi.json"), None);
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/operations"]["post"].is_object(), "{doc}");
    let (status, body) = http("GET", &format!("{base}/v1/containers/abc"), None);
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    let missing = "e".repeat(64);
    let (status, body) = http("GET", &format!("{base}/v1/containers/{missing}"), None);
    assert_eq!(
        (status, code(&body)),
        (404, "container_not_found"),
        "{body}"
    );

    let ops = format!("{base}/v1/operations");
    let json = "application/json";
    let busy = Busy::start();
    let (status, body) = http("POST", &ops, Some((json, &start_body("prof-1", 3, cpu()))));
    assert_eq!(status, 202, "{body}\nlog:\n{}", agent.log());
    let (status, again) = http("POST", &ops, Some((json, &start_body("prof-1", 3, cpu()))));
    assert_eq!(status, 200, "idempotent repeat: {again}");
    assert_eq!(again["data"]["created_at"], body["data"]["created_at"]);
    let drops = json!({"type": "networking_drop"});
    let (status, body) = http("POST", &ops, Some((json, &start_body("prof-1", 3, drops))));
    assert_eq!(
        (status, code(&body)),
        (409, "request_id_conflict"),
        "{body}"
    );
    let (status, body) = http("POST", &ops, Some((json, &start_body("prof-2", 3, cpu()))));
    assert_eq!(
        (status, code(&body)),
        (429, "operation_limit_exceeded"),
        "{body}"
    );
    let memory = json!({"type": "memory", "mode": "object_alloc"});
    let (status, body) = http("POST", &ops, Some((json, &start_body("mem", 3, memory))));
    assert_eq!(
        (status, code(&body)),
        (501, "service_not_implemented"),
        "{body}"
    );
    let unknown = json!({"type": "cpu", "mode": "oncpu", "frequency": 99});
    let (status, body) = http("POST", &ops, Some((json, &start_body("unk", 3, unknown))));
    assert_eq!((status, code(&body)), (400, "invalid_request"), "{body}");
    let (status, body) = http(
        "POST",
        &ops,
        Some(("text/plain", &start_body("txt", 3, cpu()))),
    );
    assert_eq!(
        (status, code(&body)),
        (415, "unsupported_media_type"),
        "{body}"
    );
    let (status, body) = http("POST", &ops, Some((json, &" ".repeat(64 * 1024))));
    assert_eq!((status, code(&body)), (413, "request_too_large"), "{body}");
    let (status, body) = http("GET", &format!("{ops}/nope"), None);
    assert_eq!(
        (status, code(&body)),
        (404, "operation_not_found"),
        "{body}"
    );
    let (status, body) = http("POST", &format!("{ops}/nope/stop"), None);
    assert_eq!(
        (status, code(&body)),
        (404, "operation_not_found"),
        "{body}"
    );

    let done = wait_terminal(&agent, "prof-1", Duration::from_secs(90));
    drop(busy);
    assert_eq!(done["terminal"]["outcome"], "completed", "{done}");
    assert!(
        done["result"]["samples"].as_u64().unwrap_or(0) > 0,
        "{done}"
    );
    let (status, svg) = http("GET", &format!("{ops}/prof-1/flamegraph.svg"), None);
    assert_eq!(status, 200);
    assert_svg_names(svg.as_str().unwrap_or(""), "huatuo_test_busy_spin");
    let record = wait_until(Duration::from_secs(10), || {
        stored(&agent, "profiling_cpu")
            .into_iter()
            .find(|d| d["tracer_data"]["request_id"] == "prof-1")
    })
    .unwrap_or_else(|| panic!("no stored profiling_cpu record\nlog:\n{}", agent.log()));
    assert_eq!(record["tracer_type"], "manual", "{}", record["tracer_type"]);
    let data = &record["tracer_data"];
    assert_svg_names(
        data["flamegraph_svg"].as_str().unwrap_or(""),
        "huatuo_test_busy_spin",
    );
    let folded = data["folded_stacks"].as_array().expect("folded_stacks");
    assert!(
        folded
            .iter()
            .any(|l| l.as_str().unwrap_or("").contains("huatuo_test_busy_spin")),
        "no folded stack names the busy function: {:?}",
        &folded[..folded.len().min(10)]
    );
    assert!(data["flamedata"].as_array().is_some_and(|f| !f.is_empty()));

    // The CLI: start a long profile, see it running, stop it; it ends `stopped` and is stored.
    let token = agent.dir().join("token");
    std::fs::write(&token, "not-checked-yet\n").expect("token file");
    let op = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_huatuo"))
            .arg("op")
            .args(["--addr", &agent.addr(), "--token-file"])
            .arg(&token)
            .args(args)
            .output()
            .expect("run huatuo op");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "huatuo op {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str::<Json>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    let started = op(&[
        "start",
        "--request-id",
        "long-1",
        "--kind",
        "profiling",
        "--type",
        "cpu",
        "--duration",
        "200",
    ]);
    assert_eq!(started["data"]["request_id"], "long-1", "{started}");
    wait_until(Duration::from_secs(30), || {
        (op(&["get", "long-1"])["data"]["status"] == "running").then_some(())
    })
    .unwrap_or_else(|| panic!("long-1 never ran\nlog:\n{}", agent.log()));
    let stopping = op(&["stop", "long-1"]);
    assert_eq!(stopping["data"]["status"], "stopping", "{stopping}");
    let done = wait_terminal(&agent, "long-1", Duration::from_secs(90));
    assert_eq!(done["terminal"]["outcome"], "stopped", "{done}");
    assert_eq!(done["terminal"]["reason"], "stop_requested", "{done}");
    let again = op(&["stop", "long-1"]);
    assert_eq!(again["data"]["status"], "terminal", "{again}");
    wait_until(Duration::from_secs(10), || {
        stored(&agent, "profiling_cpu").into_iter().find(|d| {
            d["tracer_data"]["request_id"] == "long-1" && d["tracer_data"]["stopped_early"] == true
        })
    })
    .unwrap_or_else(|| panic!("the stopped profile was not stored\nlog:\n{}", agent.log()));
}

#[test]
fn offcpu_profile_weighs_the_kernel_sleep_path() {
    if !kernel_tests_enabled("operations_kernel", "root and BPF") {
        return;
    }
    let agent = Agent::start(Setup {
        tag: "offcpu",
        rules: "rules/autotrace",
        config: "",
        args: &["--run-for", "120"],
    });
    let base = format!("http://{}", agent.addr());
    wait_until(Duration::from_secs(60), || {
        (http("GET", &format!("{base}/readyz"), None).0 == 204).then_some(())
    })
    .unwrap_or_else(|| panic!("agent never ready\nlog:\n{}", agent.log()));
    let stop = Arc::new(AtomicBool::new(false));
    let sleeper = start_sleeper(stop.clone());
    let ops = format!("{base}/v1/operations");
    let offcpu = json!({"type": "cpu", "mode": "offcpu"});
    let body = start_body("off-1", 3, offcpu);
    let (status, body) = http("POST", &ops, Some(("application/json", &body)));
    assert_eq!(status, 202, "{body}\nlog:\n{}", agent.log());
    let done = wait_terminal(&agent, "off-1", Duration::from_secs(90));
    stop.store(true, Ordering::Relaxed);
    let _ = sleeper.join();
    assert_eq!(done["terminal"]["outcome"], "completed", "{done}");
    let (status, svg) = http("GET", &format!("{ops}/off-1/flamegraph.svg"), None);
    assert_eq!(status, 200);
    let svg = svg.as_str().unwrap_or("");
    assert_svg_names(svg, "huatuo_ops_offcpu_sleep");
    assert!(
        svg.contains(" us"),
        "the flame graph does not count microseconds"
    );
    let record = wait_until(Duration::from_secs(10), || {
        stored(&agent, "profiling_cpu")
            .into_iter()
            .find(|d| d["tracer_data"]["request_id"] == "off-1")
    })
    .unwrap_or_else(|| panic!("no stored off-CPU record\nlog:\n{}", agent.log()));
    assert_eq!(record["tracer_type"], "manual", "{}", record["tracer_type"]);
    let data = &record["tracer_data"];
    assert_eq!(data["unit"], "us", "{data}");
    let folded: Vec<&str> = data["folded_stacks"]
        .as_array()
        .expect("folded_stacks")
        .iter()
        .filter_map(Json::as_str)
        .collect();
    // The sleeper's stacks: its thread name, its function, the scheduler and the sleep.
    let sleeping: Vec<&str> = folded
        .iter()
        .copied()
        .filter(|l| l.starts_with("huatuo-offcpu;") && l.contains("huatuo_ops_offcpu_sleep"))
        .collect();
    // ... ending in the scheduler, with the BPF program's own frames cut off.
    let kernel_path = |l: &&str| {
        (l.contains("do_nanosleep") || l.contains("hrtimer_nanosleep"))
            && l.rsplit_once(' ').is_some_and(|(path, _)| {
                path.ends_with(";__schedule") || path.ends_with(";schedule")
            })
    };
    assert!(
        sleeping.iter().any(kernel_path),
        "no folded stack of the sleeper shows schedule under nanosleep: {:?}",
        &folded[..folded.len().min(10)]
    );
    // About 3 s asleep (minus wakeups and start/stop slack), counted in microseconds.
    let slept: u64 = sleeping
        .iter()
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    assert!(
        (1_500_000..=4_000_000).contains(&slept),
        "sleeper off-CPU total {slept} us not about 3 s: {sleeping:?}"
    );
}

/// Subscribes to `POST /v1/events/watch` with a `tracer_name` filter; the CloudEvents arrive
/// on the returned channel (the reading thread ends with the agent).
fn watch_events(addr: &str, tracer_filter: &str) -> std::sync::mpsc::Receiver<Json> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let url = format!("http://{addr}/v1/events/watch");
    let body = json!({ "filters": { "tracer_name": tracer_filter } }).to_string();
    std::thread::spawn(move || {
        let Ok(response) = ureq::post(&url)
            .timeout(Duration::from_secs(170))
            .set("Content-Type", "application/json")
            .send_string(&body)
        else {
            return;
        };
        for line in std::io::BufReader::new(response.into_reader()).lines() {
            let Ok(line) = line else { break };
            if let Some(Ok(event)) = line
                .strip_prefix("data:")
                .map(|d| serde_json::from_str::<Json>(d.trim()))
            {
                if tx.send(event).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// A network namespace whose nftables input chain drops 30 % of the TCP segments to
/// `port`; deleted on drop.
struct LossyNetns {
    name: String,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl LossyNetns {
    fn create(port: u16) -> LossyNetns {
        let name = format!("hto-rtx-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let netns = LossyNetns { name };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        let rules = format!(
            "table inet huatuo_test {{\n  chain in {{\n    type filter hook input priority 0;\n    \
             tcp dport {port} numgen random mod 10 < 3 drop\n  }}\n}}\n"
        );
        let output = Command::new("ip")
            .args(["netns", "exec", &netns.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(rules.as_bytes())?;
                child.wait_with_output()
            })
            .expect("run nft (install nftables: scripts/deps.sh)");
        assert!(
            output.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        netns
    }

    fn path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for LossyNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A TCP connection inside `netns` sending to `port` until dropped; the receiver discards.
struct Traffic {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(netns: &LossyNetns, port: u16) -> Traffic {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let (listener, client) = huatuo_sources::netns::run_in(&netns.path(), || {
            let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            let client = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            Ok((listener, client))
        })
        .expect("sockets in the test netns");
        let stop = Arc::new(AtomicBool::new(false));
        let reader = std::thread::spawn(move || {
            if let Ok((mut server, _)) = listener.accept() {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(server.read(&mut buf), Ok(n) if n > 0) {}
            }
        });
        let flag = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut client = client;
            let _ = client.set_write_timeout(Some(Duration::from_secs(5)));
            let chunk = vec![0x5au8; 16 * 1024];
            while !flag.load(Ordering::Relaxed) {
                if client.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = client.shutdown(std::net::Shutdown::Both);
        });
        Traffic {
            stop,
            threads: vec![writer, reader],
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[test]
fn traces_see_real_retransmissions_and_drops_in_a_lossy_netns() {
    if !kernel_tests_enabled("operations_kernel", "root, BPF, ip and nft") {
        return;
    }
    let port = free_port();
    let netns = LossyNetns::create(port);
    let netns_inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(netns.path()).expect("netns file").ino()
    };
    let agent = Agent::start(Setup {
        tag: "operations-trace",
        rules: "rules/autotrace",
        config: "",
        args: &["--run-for", "180"],
    });
    let base = format!("http://{}", agent.addr());
    wait_until(Duration::from_secs(60), || {
        (http("GET", &format!("{base}/readyz"), None).0 == 204).then_some(())
    })
    .unwrap_or_else(|| panic!("never ready\nlog:\n{}", agent.log()));
    let ops = format!("{base}/v1/operations");
    let json = "application/json";
    let stream = watch_events(&agent.addr(), "^tracing_tcp_retransmit$");
    for (id, kind) in [("rtx", "tcp_retransmit"), ("drops", "networking_drop")] {
        let (status, body) = http(
            "POST",
            &ops,
            Some((json, &start_body(id, 5, json!({ "type": kind })))),
        );
        assert_eq!(status, 202, "{kind}: {body}\nlog:\n{}", agent.log());
    }
    // Start the traffic once both traces are collecting.
    for id in ["rtx", "drops"] {
        wait_until(Duration::from_secs(30), || {
            let (_, body) = http("GET", &format!("{ops}/{id}"), None);
            (body["data"]["status"] != "pending").then_some(())
        })
        .unwrap_or_else(|| panic!("{id} never started\nlog:\n{}", agent.log()));
    }
    let traffic = Traffic::start(&netns, port);
    let rtx = wait_terminal(&agent, "rtx", Duration::from_secs(60));
    let drops = wait_terminal(&agent, "drops", Duration::from_secs(60));
    drop(traffic);
    assert_eq!(rtx["terminal"]["outcome"], "completed", "{rtx}");
    assert_eq!(drops["terminal"]["outcome"], "completed", "{drops}");

    let ours = |event: &Json| {
        let fields = &event["fields"];
        fields["netns"].as_u64() == Some(netns_inode)
            && (fields["dport"].as_u64() == Some(u64::from(port))
                || fields["sport"].as_u64() == Some(u64::from(port)))
    };
    let record = |tracer: &str, id: &str| {
        wait_until(Duration::from_secs(10), || {
            stored(&agent, tracer)
                .into_iter()
                .find(|d| d["tracer_data"]["request_id"] == id)
        })
        .unwrap_or_else(|| panic!("no stored {tracer} record\nlog:\n{}", agent.log()))
    };
    let rtx_doc = record("tracing_tcp_retransmit", "rtx");
    assert_eq!(rtx_doc["tracer_type"], "manual");
    let events = rtx_doc["tracer_data"]["events"].as_array().expect("events");
    let retransmits: Vec<&Json> = events.iter().filter(|e| ours(e)).collect();
    assert!(
        !retransmits.is_empty(),
        "no retransmission on port {port} in netns {netns_inode} among {} events: {:?}",
        events.len(),
        &events[..events.len().min(5)]
    );
    let first = &retransmits[0]["fields"];
    assert_eq!(first["saddr"], "127.0.0.1", "{first}");
    assert_eq!(first["daddr"], "127.0.0.1", "{first}");
    assert_eq!(first["family"], 2, "{first}");
    assert!(
        retransmits
            .iter()
            .any(|e| e["fields"]["total_retrans"].as_u64().unwrap_or(0) > 0),
        "{first}"
    );

    // The record is published on the event stream too, as a manual tracer.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let published = std::iter::from_fn(|| {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        stream.recv_timeout(left).ok()
    })
    .find(|e| e["data"]["tracer_data"]["request_id"] == "rtx");
    let published = published.expect("the tcp_retransmit record on the event stream");
    assert_eq!(published["data"]["tracer_name"], "tracing_tcp_retransmit");
    assert_eq!(published["data"]["tracer_run_type"], "manual");

    // io_tracing: this process writes and syncs 32 MiB while the operation runs, then stops
    // it (the window is what ran until the stop).
    let (status, body) = http(
        "POST",
        &ops,
        Some((
            json,
            &start_body("io", 120, json!({ "type": "io_tracing" })),
        )),
    );
    assert_eq!(status, 202, "io_tracing: {body}");
    wait_until(Duration::from_secs(30), || {
        let (_, body) = http("GET", &format!("{ops}/io"), None);
        (body["data"]["status"] == "running").then_some(())
    })
    .unwrap_or_else(|| panic!("io never ran\nlog:\n{}", agent.log()));
    const WRITTEN: u64 = 32 << 20;
    {
        use std::io::Write;
        let mut file = std::fs::File::create(agent.dir().join("io-load")).expect("io file");
        let chunk = vec![0xa5u8; 1 << 20];
        for _ in 0..(WRITTEN >> 20) {
            file.write_all(&chunk).expect("write");
        }
        file.sync_all().expect("fsync");
    }
    assert_eq!(http("POST", &format!("{ops}/io/stop"), None).0, 202);
    let io = wait_terminal(&agent, "io", Duration::from_secs(30));
    assert_eq!(io["terminal"]["outcome"], "stopped", "{io}");
    let io_doc = record("tracing_io_tracing", "io");
    let processes = io_doc["tracer_data"]["processes"]
        .as_array()
        .expect("processes");
    let me = processes
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(std::process::id())))
        .unwrap_or_else(|| panic!("this process is not listed: {processes:?}"));
    assert!(me["fs_write"].as_u64().unwrap_or(0) >= WRITTEN, "{me}");
    assert!(me["disk_write"].as_u64().unwrap_or(0) > 0, "{me}");

    let drops_doc = record("tracing_networking_drop", "drops");
    let events = drops_doc["tracer_data"]["events"]
        .as_array()
        .expect("events");
    let dropped: Vec<&Json> = events.iter().filter(|e| ours(e)).collect();
    assert!(
        dropped.iter().any(|e| e["fields"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("NETFILTER")),
        "no NETFILTER_DROP of port {port} among {} events: {:?}",
        events.len(),
        &events[..events.len().min(5)]
    );
}

/// A 4 KiB-aligned block for O_DIRECT writes.
#[repr(align(4096))]
struct Block([u8; 4096]);

#[test]
fn io_tracing_names_the_loop_disk_written_with_o_direct() {
    if !kernel_tests_enabled("operations_kernel", "root, BPF and losetup") {
        return;
    }
    let Some(device) = LoopDevice::create("iotrace-op") else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot create a loop device");
        }
        eprintln!("SKIP io_tracing block side: no loop device");
        return;
    };
    let disk = device.dev.trim_start_matches("/dev/").to_string();
    let dev = {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&device.dev).expect("stat loop").rdev();
        format!("{}:{}", libc::major(rdev), libc::minor(rdev))
    };
    let agent = start_io_tracing("iotrace-op", &["--run-for", "120"], "blk", 3);
    // O_DIRECT 4 KiB writes: each one is a request of the loop disk, none stays in the cache.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&device.dev)
        .expect("open loop device O_DIRECT");
    let block = Block([0x5a; 4096]);
    let mut written = 0u64;
    for _ in 0..400 {
        file.write_all(&block.0).expect("direct write");
        written += 4096;
    }
    drop(file);
    let doc = io_tracing_record(&agent, "blk");
    let data = &doc["tracer_data"];
    assert!(data.get("block_unavailable").is_none(), "{data}");
    let disks = data["disks"].as_array().expect("disks");
    let ours = disks
        .iter()
        .find(|d| d["disk"] == disk.as_str())
        .unwrap_or_else(|| panic!("{disk} is not listed: {disks:?}"));
    eprintln!("io_tracing {disk}: {ours}");
    assert_eq!(ours["dev"], dev.as_str(), "{ours}");
    let requests = ours["requests"].as_u64().unwrap_or(0);
    // Merges can only lower the count of 400 single-block writes.
    assert!((40..=420).contains(&requests), "{ours}");
    for field in ["q2c", "d2c"] {
        let p50 = ours[field]["p50_ns"].as_u64().expect("p50");
        let p99 = ours[field]["p99_ns"].as_u64().expect("p99");
        let max = ours[field]["max_bucket_ns"].as_u64().expect("max");
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{field}: {ours}");
    }
    let processes = data["processes"].as_array().expect("processes");
    let me = processes
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(std::process::id())))
        .unwrap_or_else(|| panic!("the writing process is not listed: {processes:?}"));
    assert!(me["fs_write"].as_u64().unwrap_or(0) >= written, "{me}");
}

/// Without kernel templates (`--no-bpf`) the operation still completes with the process
/// part, and the record says why the block part is missing.
#[test]
fn io_tracing_without_templates_says_why_the_block_part_is_missing() {
    if !kernel_tests_enabled("operations_kernel", "root") {
        return;
    }
    let agent = start_io_tracing(
        "iotrace-nobpf",
        &["--no-bpf", "--run-for", "60"],
        "nobpf",
        2,
    );
    const WRITTEN: usize = 1 << 20;
    std::fs::write(agent.dir().join("io-load"), vec![0x3cu8; WRITTEN]).expect("write");
    let doc = io_tracing_record(&agent, "nobpf");
    let data = &doc["tracer_data"];
    let reason = data["block_unavailable"].as_str().unwrap_or("");
    assert!(
        reason.contains("turned off") && reason.contains("blockio"),
        "{data}"
    );
    assert!(data.get("disks").is_none(), "{data}");
    let processes = data["processes"].as_array().expect("processes");
    let me = processes
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(std::process::id())))
        .unwrap_or_else(|| panic!("this process is not listed: {processes:?}"));
    assert!(
        me["fs_write"].as_u64().unwrap_or(0) >= WRITTEN as u64,
        "{me}"
    );
}

/// Starts an agent over the autotrace rules with `args`, waits until it is ready, starts an
/// `io_tracing` operation `id` of `seconds` and waits until it runs.
fn start_io_tracing(tag: &str, args: &[&str], id: &str, seconds: u64) -> Agent {
    let agent = Agent::start(Setup {
        tag,
        rules: "rules/autotrace",
        config: "",
        args,
    });
    let base = format!("http://{}", agent.addr());
    wait_until(Duration::from_secs(60), || {
        (http("GET", &format!("{base}/readyz"), None).0 == 204).then_some(())
    })
    .unwrap_or_else(|| panic!("never ready\nlog:\n{}", agent.log()));
    let ops = format!("{base}/v1/operations");
    let (status, body) = http(
        "POST",
        &ops,
        Some((
            "application/json",
            &start_body(id, seconds, json!({ "type": "io_tracing" })),
        )),
    );
    assert_eq!(status, 202, "io_tracing: {body}");
    wait_until(Duration::from_secs(30), || {
        let (_, body) = http("GET", &format!("{ops}/{id}"), None);
        (body["data"]["status"] != "pending").then_some(())
    })
    .unwrap_or_else(|| panic!("{id} never ran\nlog:\n{}", agent.log()));
    agent
}

/// Waits for the `io_tracing` operation `id` to complete and returns its stored record.
fn io_tracing_record(agent: &Agent, id: &str) -> Json {
    let done = wait_terminal(agent, id, Duration::from_secs(30));
    assert_eq!(done["terminal"]["outcome"], "completed", "{done}");
    wait_until(Duration::from_secs(10), || {
        stored(agent, "tracing_io_tracing")
            .into_iter()
            .find(|d| d["tracer_data"]["request_id"] == id)
    })
    .unwrap_or_else(|| panic!("no stored io_tracing record\nlog:\n{}", agent.log()))
}
