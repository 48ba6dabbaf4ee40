//! The real binary over a fixture node (trimmed /proc, a cgroup v2 tree) with the shipped
//! metric rules: exact `/metrics` lines for every family the fixture can produce, the
//! MetricCollector include/exclude filters and the BlackList (seed 001 §5.1, §7.5, §8).

mod scrape_common;

use scrape_common::*;
use std::time::Duration;

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
    // M20: unlabelled event counters are exported at 0 before any event (seed 001 §5.1
    // "通用系统"); the fixture's kmsg is empty and BPF is off.
    for family in ["softlockup_total", "hungtask_total", "oom_total"] {
        lines.push(format!("# TYPE huatuo_bamai_{family} counter"));
        lines.push(format!("huatuo_bamai_{family}{{{host}}} 0"));
    }
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
    let fixture = repo().join("engine/agent/tests/fixtures/node");
    let config = TempConfig::new("metrics-fixture", CONFIG);
    let port = free_port();
    let roots = [
        ("--procfs-root", "proc"),
        ("--sysfs-root", "sys"),
        ("--cgroup-root", "cgroup"),
        ("--netlink-recorded", "netlink"),
        ("--kmsg", "kmsg"),
    ];
    let mut args: Vec<std::ffi::OsString> = vec!["--no-bpf".into()];
    for (flag, dir) in roots {
        args.push(flag.into());
        args.push(fixture.join(dir).into());
    }
    for arg in [
        "--rules",
        "rules/metrics",
        "--stdlib",
        "stdlib",
        "--run-for",
        "40",
    ] {
        args.push(arg.into());
    }
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let _agent = start_agent(port, &config.path, &args);
    let wanted = expected();
    // Two poll intervals (10 s each): the deltas need a second read.
    let body = scrape_until(port, Duration::from_secs(35), |body| {
        wanted.iter().all(|line| body.lines().any(|l| l == line))
    });
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|line| !body.lines().any(|l| l == line.as_str()))
        .collect();
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
