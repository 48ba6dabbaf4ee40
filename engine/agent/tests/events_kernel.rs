//! End-to-end kernel tests of the daemon with the shipped event rules: the real binary runs
//! `rules/`, real kernel activity is triggered, and the records stored under
//! `[Storage.LocalFile] Path` are checked. Needs root and BPF: skipped with a message when not
//! root, unless `CI=true`, where it must run.
//!
//! The OOM trigger is a child process running this test binary again (the
//! `oom_child_allocates` helper, inert unless `HUATUO_OOM_CHILD` names cgroups).

mod kernel_agent;

use kernel_agent::*;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a triggered event may take to be stored.
const RECORD_WAIT: Duration = Duration::from_secs(15);

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

/// Helper run as a child process: joins the cgroups named by `HUATUO_OOM_CHILD` (separated by
/// `:`) and touches 100 MiB, which the 20 MiB limit turns into an OOM kill. Does nothing
/// otherwise.
#[test]
fn oom_child_allocates() {
    let Ok(cgroups) = std::env::var("HUATUO_OOM_CHILD") else {
        return;
    };
    for cgroup in cgroups.split(':') {
        std::fs::write(
            Path::new(cgroup).join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .expect("join the cgroup");
    }
    let mut chunks = Vec::new();
    for _ in 0..100 {
        chunks.push(vec![1u8; 1 << 20]);
    }
    println!("allocated {} MiB without being killed", chunks.len());
}

#[test]
fn daemon_records_real_kernel_events() {
    if !kernel_tests_enabled("events_kernel", "root and BPF") {
        return;
    }
    let pid = std::process::id();
    let device = format!("htv{}", pid % 100_000);
    // The OOM child's container, made before the agent starts so discovery knows it.
    let container = CpuContainer::create(0xc3);
    let agent = Agent::start(Setup {
        tag: "events-kernel",
        rules: "rules/",
        config: &format!("[EventTracing.Netdev]\n    DeviceList = [\"{device}\"]\n"),
        args: &[],
    });

    // The agent serves /status with the templates attached.
    let status = agent.wait_attached(&["drops", "oom"]);
    let rules = rule_names(&status);
    for rule in ["dropwatch", "oom", "netdev_events", "softirq_tracing"] {
        assert!(rules.contains(&rule), "{rule} not loaded: {rules:?}");
    }

    // (a) dropwatch: a SYN to a closed loopback port is dropped with reason NO_SOCKET.
    let port = free_port();
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    let drop = agent
        .wait_record("dropwatch", RECORD_WAIT, |r| r["dport"] == port)
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
    // The loopback device is up with a carrier.
    assert_eq!(drop["netdev_name"], "lo", "{drop}");
    assert_eq!(
        drop["netdev_linkstatus"],
        serde_json::json!(["linkStatusAdminUp", "linkStatusCarrierUp"]),
        "{drop}"
    );
    // Reverse DNS is resolved off the hot path: the first drop of 127.0.0.1 may have no name
    // yet, a later one has /etc/hosts' `localhost` for both ends.
    assert!(drop["src_hostname"].is_string(), "{drop}");
    let named = (0..20).find_map(|_| {
        let port = free_port();
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
        agent.wait_record("dropwatch", Duration::from_secs(2), |r| {
            r["dport"] == port && r["src_hostname"] == "localhost"
        })
    });
    let named = named.unwrap_or_else(|| {
        panic!(
            "no dropwatch record named localhost: {:?}\n{}",
            agent.records("dropwatch"),
            agent.log()
        )
    });
    assert_eq!(named["dest_hostname"], "localhost", "{named}");

    // (b) oom: a child in a 20 MiB v1 memory cgroup touching 100 MiB is the OOM victim, and
    // (its own allocation running the OOM killer) the trigger; it runs in a container.
    if let (true, Some(container)) = (Path::new("/sys/fs/cgroup/memory").is_dir(), &container) {
        let cgroup = MemCgroup::create();
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "oom_child_allocates", "--nocapture"])
            .env(
                "HUATUO_OOM_CHILD",
                format!("{}:{}", cgroup.0.display(), container.dir.display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the OOM child");
        let child_pid = child.id();
        let exit = child.wait_with_output().expect("wait for the OOM child");
        assert!(!exit.status.success(), "the child was not killed");
        let victim = agent
            .wait_record("oom", RECORD_WAIT, |r| r["victim_pid"] == child_pid)
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
        // HUATUO's memcg css: the kernel address of the memory cgroup state, in hex; the child
        // ran out of memory in its own cgroup, so victim and trigger name the same one.
        let css = victim["victim_memcg_css"].as_str().unwrap_or("");
        assert!(
            css.starts_with("0xff") && u64::from_str_radix(&css[2..], 16).is_ok(),
            "victim_memcg_css is a kernel address: {victim}"
        );
        assert_eq!(
            victim["trigger_memcg_css"], victim["victim_memcg_css"],
            "{victim}"
        );
        // Both tasks' containers, found by the same lookup: the record's own container.
        let doc = agent
            .documents("oom")
            .into_iter()
            .find(|d| d["tracer_data"]["victim_pid"] == child_pid)
            .unwrap_or_else(|| panic!("no stored oom document for {child_pid}"));
        assert_eq!(doc["container_id"], container.id.as_str(), "{doc}");
        for whose in ["victim", "trigger"] {
            assert_eq!(
                victim[format!("{whose}_container_id")],
                container.id.as_str(),
                "{victim}"
            );
            assert_eq!(
                victim[format!("{whose}_container_hostname")],
                doc["container_hostname"],
                "{victim}"
            );
        }
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: the oom part needs the v1 memory and cpu controllers"
        );
        println!("no v1 memory and cpu controllers: oom part skipped");
    }

    // (c) netdev_events: a listed veth going up and down is recorded, with its baseline absent
    // (created after the start) and its driver.
    let veth = Veth::create(&device);
    veth.set("up");
    let up = agent
        .wait_record("netdev_events", RECORD_WAIT, |r| {
            r["ifname"] == device.as_str()
                && r["linkstatus"]
                    .as_str()
                    .is_some_and(|s| s.contains("linkstatus_adminup"))
        })
        .unwrap_or_else(|| panic!("no admin-up record for {device}\n{}", agent.log()));
    assert_eq!(up["driver"], "veth", "{up}");
    assert_eq!(up["start"], false, "{up}");
    veth.set("down");
    let down = agent.wait_record("netdev_events", RECORD_WAIT, |r| {
        r["ifname"] == device.as_str()
            && r["linkstatus"]
                .as_str()
                .is_some_and(|s| s.contains("linkstatus_admindown"))
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
