//! End-to-end kernel tests of the daemon with the shipped event rules: the real binary runs
//! `rules/`, real kernel activity is triggered, and the records stored under
//! `[Storage.LocalFile] Path` are checked. Needs root and BPF: skipped with a message when not
//! root, unless `CI=true`, where it must run.
//!
//! The OOM trigger is a child process running this test binary again (the
//! `oom_child_allocates` helper, inert unless `HUATUO_OOM_CHILD` names a cgroup).

use serde_json::Value as Json;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when the test should run; prints why it is skipped otherwise.
fn kernel_tests_enabled() -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        return true;
    }
    if !is_root() {
        println!("SKIPPED: events_kernel needs root and BPF (set CI=true to require it)");
        return false;
    }
    true
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The running agent and its scratch directory; killed and removed on drop.
struct Agent {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Agent {
    fn start(dir: PathBuf, device: &str) -> Agent {
        std::fs::create_dir_all(dir.join("local")).expect("scratch dir");
        let config = format!(
            "[Storage.LocalFile]\n    Path = \"{}\"\n[EventTracing.Netdev]\n    DeviceList = [\"{device}\"]\n",
            dir.join("local").display()
        );
        std::fs::write(dir.join("huatuo-bamai.conf"), config).expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("agent.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_huatuo"))
            .current_dir(repo())
            .args(["run", "--rules", "rules/", "--stdlib", "stdlib", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(dir.join("huatuo-bamai.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the agent");
        Agent { child, dir, port }
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
    }

    fn status(&self) -> Option<Json> {
        serde_json::from_str(&self.get("/status")?).ok()
    }

    /// The `tracer_data` of every stored record of `tracer` (a `#` header line, then JSON).
    fn records(&self, tracer: &str) -> Vec<Json> {
        std::fs::read_to_string(self.dir.join("local").join(tracer))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .map(|doc| {
                assert_eq!(doc["tracer_name"], tracer, "{doc}");
                doc["tracer_data"].clone()
            })
            .collect()
    }

    fn wait_record(&self, tracer: &str, what: impl Fn(&Json) -> bool) -> Option<Json> {
        wait_until(Duration::from_secs(15), || {
            self.records(tracer).into_iter().find(|r| what(r))
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether template `name` loaded with every required program attached.
fn template_attached(status: &Json, name: &str) -> bool {
    status["templates"].as_array().is_some_and(|ts| {
        ts.iter().any(|t| {
            t["name"] == name
                && t["loaded"] == true
                && t["programs"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .filter(|p| p["required"] == true)
                        .all(|p| !p["attached"].is_null())
                })
        })
    })
}

/// The value of an enumerator of the running kernel's BTF (through bpftool), if it can be read.
fn kernel_enum_value(name: &str) -> Option<i64> {
    let out = Command::new("bpftool")
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "c",
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let (lhs, rhs) = line.trim().trim_end_matches(',').split_once(" = ")?;
            (lhs == name).then(|| rhs.parse().ok())?
        })
}

/// A v1 memory cgroup limited to 20 MiB, removed on drop.
struct MemCgroup(PathBuf);

impl MemCgroup {
    fn create() -> MemCgroup {
        let path = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/huatuo-test-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create the v1 memory cgroup");
        let cg = MemCgroup(path);
        std::fs::write(cg.0.join("memory.limit_in_bytes"), "20971520").expect("limit");
        let memsw = cg.0.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            std::fs::write(&memsw, "20971520").expect("memsw limit");
        }
        cg
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("could not remove {}", self.0.display());
    }
}

/// A veth pair, deleted on drop.
struct Veth(String);

impl Veth {
    fn create(name: &str) -> Veth {
        let peer = format!("{name}p");
        let status = Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", &peer])
            .status()
            .expect("run ip");
        assert!(status.success(), "ip link add {name} failed");
        Veth(name.to_string())
    }

    fn set(&self, state: &str) {
        let status = Command::new("ip")
            .args(["link", "set", &self.0, state])
            .status()
            .expect("run ip");
        assert!(status.success(), "ip link set {} {state} failed", self.0);
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// Helper run as a child process: joins the cgroup named by `HUATUO_OOM_CHILD` and touches
/// 100 MiB, which the 20 MiB limit turns into an OOM kill. Does nothing otherwise.
#[test]
fn oom_child_allocates() {
    let Ok(cgroup) = std::env::var("HUATUO_OOM_CHILD") else {
        return;
    };
    std::fs::write(
        Path::new(&cgroup).join("cgroup.procs"),
        std::process::id().to_string(),
    )
    .expect("join the cgroup");
    let mut chunks = Vec::new();
    for _ in 0..100 {
        chunks.push(vec![1u8; 1 << 20]);
    }
    println!("allocated {} MiB without being killed", chunks.len());
}

#[test]
fn daemon_records_real_kernel_events() {
    if !kernel_tests_enabled() {
        return;
    }
    let pid = std::process::id();
    let device = format!("htv{}", pid % 100_000);
    let dir = std::env::temp_dir().join(format!("huatuo-events-kernel-{pid}"));
    let agent = Agent::start(dir, &device);

    // The agent serves /status with the templates attached.
    let status = wait_until(Duration::from_secs(60), || {
        agent
            .status()
            .filter(|s| template_attached(s, "drops") && template_attached(s, "oom"))
    })
    .unwrap_or_else(|| {
        panic!(
            "drops and oom never attached; status {:?}\nlog:\n{}",
            agent.status(),
            agent.log()
        )
    });
    let rules: Vec<&str> = status["rules"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    for rule in ["dropwatch", "oom", "netdev_events", "softirq_tracing"] {
        assert!(rules.contains(&rule), "{rule} not loaded: {rules:?}");
    }

    // (a) dropwatch: a SYN to a closed loopback port is dropped with reason NO_SOCKET.
    let port = free_port();
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    let drop = agent
        .wait_record("dropwatch", |r| r["dport"] == port)
        .unwrap_or_else(|| panic!("no dropwatch record for port {port}\n{}", agent.log()));
    println!("dropwatch record: {drop}");
    assert_eq!(drop["type"], "common_drop", "{drop}");
    assert_eq!(drop["saddr"], "127.0.0.1", "{drop}");
    assert_eq!(drop["daddr"], "127.0.0.1", "{drop}");
    match kernel_enum_value("SKB_DROP_REASON_NO_SOCKET") {
        Some(no_socket) => assert_eq!(drop["reason_code"], no_socket, "{drop}"),
        None => assert!(drop["reason_code"].as_i64() > Some(0), "{drop}"),
    }
    assert!(
        drop["stack"].to_string().contains("tcp_v4_rcv"),
        "stack {drop}"
    );

    // (b) oom: a child in a 20 MiB v1 memory cgroup touching 100 MiB is the OOM victim.
    if Path::new("/sys/fs/cgroup/memory").is_dir() {
        let cgroup = MemCgroup::create();
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "oom_child_allocates", "--nocapture"])
            .env("HUATUO_OOM_CHILD", &cgroup.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the OOM child");
        let child_pid = child.id();
        let exit = child.wait_with_output().expect("wait for the OOM child");
        assert!(!exit.status.success(), "the child was not killed");
        let victim = agent
            .wait_record("oom", |r| r["victim_pid"] == child_pid)
            .unwrap_or_else(|| {
                panic!(
                    "no oom record for pid {child_pid}: {:?}\n{}",
                    agent.records("oom"),
                    agent.log()
                )
            });
        println!("oom record: {victim}");
        assert!(victim["victim_cgroup_id"].as_i64() > Some(0), "{victim}");
        assert!(victim["trigger_pid"].as_i64() > Some(0), "{victim}");
    } else {
        println!("no v1 memory controller at /sys/fs/cgroup/memory: oom part skipped");
    }

    // (c) netdev_events: a listed veth going up and down is recorded, with its baseline absent
    // (created after the start) and its driver.
    let veth = Veth::create(&device);
    veth.set("up");
    let up = agent
        .wait_record("netdev_events", |r| {
            r["ifname"] == device.as_str()
                && r["linkstatus"]
                    .as_str()
                    .is_some_and(|s| s.contains("linkStatusAdminUp"))
        })
        .unwrap_or_else(|| panic!("no admin-up record for {device}\n{}", agent.log()));
    assert_eq!(up["driver"], "veth", "{up}");
    assert_eq!(up["start"], false, "{up}");
    veth.set("down");
    let down = agent.wait_record("netdev_events", |r| {
        r["ifname"] == device.as_str()
            && r["linkstatus"]
                .as_str()
                .is_some_and(|s| s.contains("linkStatusAdminDown"))
            && r["index"] == up["index"]
    });
    println!("netdev_events records: {up} then {down:?}");
    assert!(down.is_some(), "no admin-down record for {device}");
    assert!(
        agent
            .records("netdev_events")
            .iter()
            .all(|r| r["ifname"] == device.as_str()),
        "only listed devices are recorded"
    );
}
