//! The real binary over a fixture node (trimmed /proc, a cgroup v2 tree) with the shipped
//! metric rules: exact `/metrics` lines for every family the fixture can produce, the
//! MetricCollector include/exclude filters and the BlackList (seed 001 §5.1, §7.5, §8).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the agent when the test ends, pass or fail.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

const CONFIG: &str = r#"
BlackList = ["netdev_hw", "metax_gpu"]
[Storage.ES]
    Address = ""
[MetricCollector.NetdevStats]
    DeviceExcluded = "^lo$"
[MetricCollector.NetdevHW]
    DeviceList = ["eth0"]
[MetricCollector.Vmstat]
    IncludedOnHost = "nr_dirty|nr_free_pages"
    ExcludedOnHost = "threshold"
[MetricCollector.Netstat]
    Excluded = "^Tcp_"
[Pod]
    KubeletReadOnlyPort = 0
    KubeletAuthorizedPort = 0
"#;

const C1: &str = r#"container_host="",container_hostnamespace="",container_id="1234567890123456789012345678901234567890123456789012345678901234",container_level="burstable",container_name="123456789012",container_type="normal",host="fixture-host",region="""#;

fn expected() -> Vec<String> {
    let host = r#"host="fixture-host",region="""#;
    let mut lines: Vec<String> = [
        // M3: static fixture, so the deltas are 0 (percent of a 0 whole is 0).
        ("cpu_util_sys", "0"),
        ("cpu_util_usr", "0"),
        ("cpu_util_total", "0"),
        // M5
        ("loadavg_load1", "0.3"),
        ("loadavg_load5", "0.2"),
        ("loadavg_load15", "0.22"),
        // M7: IncludedOnHost nr_dirty|nr_free_pages minus ExcludedOnHost "threshold".
        ("memory_vmstat_nr_dirty", "19047"),
        ("memory_vmstat_nr_free_pages", "3205350"),
        // M10: TCP mem 3 pages of 4096 bytes against tcp_mem[2] = 16384 pages.
        ("tcp_memory_limit_pages", "16384"),
        ("tcp_memory_usage_pages", "3"),
        ("tcp_memory_usage_bytes", "12288"),
        ("tcp_memory_usage_percent", "0.018310546875"),
        // M11
        ("arp_entries", "2"),
        ("arp_total", "2"),
        // M15: Tcp_* excluded, TcpExt kept.
        ("netstat_TcpExt_ListenOverflows", "7"),
        ("netstat_TcpExt_ListenDrops", "9"),
        // M16
        ("sockstat_sockets_used", "120"),
        ("sockstat_TCP_inuse", "10"),
        ("sockstat_TCP_orphan", "1"),
        ("sockstat_TCP_tw", "5"),
        ("sockstat_TCP_alloc", "12"),
        ("sockstat_TCP_mem", "3"),
        ("sockstat_UDP_inuse", "4"),
    ]
    .iter()
    .map(|(family, value)| format!("huatuo_bamai_{family}{{{host}}} {value}"))
    .collect();
    let eth0 = format!(r#"device="eth0",{host}"#);
    for (family, value) in [
        ("receive_bytes", "1000000"),
        ("receive_packets", "2000"),
        ("receive_errors", "1"),
        ("receive_dropped", "2"),
        ("receive_multicast", "3"),
        ("transmit_bytes", "500000"),
        ("transmit_packets", "1500"),
        ("transmit_dropped", "4"),
    ] {
        lines.push(format!(
            "huatuo_bamai_netdev_{family}_total{{{eth0}}} {value}"
        ));
    }
    lines.push("# TYPE huatuo_bamai_netdev_receive_bytes_total counter".into());
    lines.push(
        r#"huatuo_bamai_memory_buddyinfo_blocks{host="fixture-host",node="0",order="10",region="",zone="DMA"} 3"#
            .to_string(),
    );
    // cgroup v2 container 1234…: memory.events, cpu.max 200000/100000 = 2 cores.
    for (family, value) in [
        ("memory_events_container_low", "0"),
        ("memory_events_container_high", "7"),
        ("memory_events_container_max", "3"),
        ("memory_events_container_oom", "1"),
        ("memory_events_container_oom_kill", "1"),
        ("memory_events_container_oom_group_kill", "0"),
        ("cpu_util_container_cores", "2"),
        ("cpu_util_container_sys", "0"),
        ("loadavg_container_nr_running", "0"),
    ] {
        lines.push(format!("huatuo_bamai_{family}{{{C1}}} {value}"));
    }
    lines
}

#[test]
fn fixture_node_metrics_are_exact() {
    let root = repo();
    let fixture = root.join("engine/agent/tests/fixtures/node");
    let dir = std::env::temp_dir().join(format!("huatuo-metrics-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("huatuo-bamai.conf");
    let local = dir.join("local");
    let text = format!(
        "{CONFIG}[Storage.LocalFile]\n    Path = \"{}\"\n",
        local.display()
    );
    std::fs::write(&config, text).expect("write config");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_huatuo"))
        .current_dir(&root)
        .args(["run", "--no-bpf", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--procfs-root")
        .arg(fixture.join("proc"))
        .arg("--sysfs-root")
        .arg(fixture.join("sys"))
        .arg("--cgroup-root")
        .arg(fixture.join("cgroup"))
        .arg("--netlink-recorded")
        .arg(fixture.join("netlink"))
        .arg("--kmsg")
        .arg(fixture.join("kmsg"))
        .args(["--rules", "rules/metrics", "--stdlib", "stdlib", "--config"])
        .arg(&config)
        .args(["--run-for", "40"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start huatuo");
    let _agent = Agent(child);
    let wanted = expected();
    // Two poll intervals (10 s each): the deltas need a second read.
    let deadline = Instant::now() + Duration::from_secs(35);
    let mut body = String::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        body = scrape(port).unwrap_or_default();
        if wanted.iter().all(|line| body.lines().any(|l| l == line)) {
            break;
        }
    }
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|line| !body.lines().any(|l| l == line.as_str()))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        missing.is_empty(),
        "missing lines: {missing:#?}\n---\n{body}"
    );
    // Filters: lo excluded, Tcp_ excluded, vmstat threshold and pgfault absent, netdev_hw
    // blacklisted, and no family twice-prefixed with `container`.
    for absent in [
        r#"device="lo""#,
        "huatuo_bamai_netstat_Tcp_",
        "memory_vmstat_nr_dirty_threshold",
        "memory_vmstat_pgfault",
        "huatuo_bamai_netdev_hw_",
        "_container_container_",
    ] {
        assert!(
            !body.contains(absent),
            "`{absent}` should not be exported:\n{body}"
        );
    }
}
