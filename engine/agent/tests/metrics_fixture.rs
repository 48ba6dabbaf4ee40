//! The real binary over a fixture node (trimmed /proc, a cgroup v2 tree, a cgroup v1 tree,
//! recorded netlink qdisc JSON, a mountinfo, recorded reads of the kernel templates' maps)
//! with the shipped metric rules: exact `/metrics` lines for every family the fixture can
//! produce, the MetricCollector include/exclude filters and the BlackList, as HUATUO's manual documents its
//! metrics and configuration.

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
[MetricCollector.Qdisc]
    DeviceExcluded = "^lo$"
[MetricCollector.MountPointStat]
    MountPointsIncluded = "(^/$)|(^/dev/shm$)"
[Pod]
    KubeletReadOnlyPort = 0
    KubeletAuthorizedPort = 0
"#;

const C1: &str = r#"container_host="",container_hostnamespace="",container_id="1234567890123456789012345678901234567890123456789012345678901234",container_level="burstable",container_name="123456789012",container_type="normal",host="fixture-host",region="""#;

fn expected() -> Vec<String> {
    let host = r#"host="fixture-host",region="""#;
    let mut lines: Vec<String> = [
        // CPU: static fixture, so the deltas are 0 (percent of a 0 whole is 0).
        ("cpu_util_sys", "0"),
        ("cpu_util_usr", "0"),
        ("cpu_util_total", "0"),
        // Load averages
        ("loadavg_load1", "0.3"),
        ("loadavg_load5", "0.2"),
        ("loadavg_load15", "0.22"),
        // vmstat: IncludedOnHost nr_dirty|nr_free_pages minus ExcludedOnHost "threshold".
        ("memory_vmstat_nr_dirty", "19047"),
        ("memory_vmstat_nr_free_pages", "3205350"),
        // TCP memory: 3 pages of 4096 bytes against tcp_mem[2] = 16384 pages.
        ("tcp_memory_limit_pages", "16384"),
        ("tcp_memory_usage_pages", "3"),
        ("tcp_memory_usage_bytes", "12288"),
        ("tcp_memory_usage_percent", "0.018310546875"),
        // ARP
        ("arp_entries", "2"),
        ("arp_total", "2"),
        // netstat: Tcp_* excluded, TcpExt kept.
        ("netstat_TcpExt_ListenOverflows", "7"),
        ("netstat_TcpExt_ListenDrops", "9"),
        // sockstat
        ("sockstat_sockets_used", "120"),
        ("sockstat_TCP_inuse", "10"),
        ("sockstat_TCP_orphan", "1"),
        ("sockstat_TCP_tw", "5"),
        ("sockstat_TCP_alloc", "12"),
        ("sockstat_TCP_mem", "3"),
        ("sockstat_UDP_inuse", "4"),
        // TCP mem 3 and UDP mem 2 pages of 4096 bytes.
        ("sockstat_TCP_mem_bytes", "12288"),
        ("sockstat_UDP_mem_bytes", "8192"),
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
    // Unlabelled event counters are exported at 0 before any event, as HUATUO's general system
    // metrics are; the fixture's kmsg is empty and BPF is off.
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

/// Qdisc: qdisc.json holds lo (excluded by DeviceExcluded), eth0's pfifo_fast as recorded on
/// this VM by `record_netlink`, and eth1's mq root with two fq_codel children, which are
/// summed per (device, kind): backlog 100+50, qlen 1+0, requeues 0+1, drops 0+2,
/// bytes 1000+2000, packets 10+20.
fn qdisc_expected() -> Vec<String> {
    let mut lines = Vec::new();
    let series = [
        ("eth0", "pfifo_fast", [0, 0, 0, 0, 0, 1908723, 21639]),
        ("eth1", "mq", [150, 1, 0, 1, 2, 3000, 30]),
        ("eth1", "fq_codel", [150, 1, 0, 1, 2, 3000, 30]),
    ];
    let families = [
        "backlog",
        "current_queue_length",
        "overlimits_total",
        "requeues_total",
        "drops_total",
        "bytes_total",
        "packets_total",
    ];
    for (device, kind, values) in series {
        for (family, value) in families.iter().zip(values) {
            lines.push(format!(
                r#"huatuo_bamai_netdev_qdisc_{family}{{device="{device}",host="fixture-host",kind="{kind}",region=""}} {value}"#
            ));
        }
    }
    lines
}

/// Mount points: the fixture mountinfo lists /, /dev/shm, /proc, /sys/fs/cgroup and /tmp; statfs reads
/// the real paths, so sizes come from `stat -f` (fragment size × blocks, inodes) of this
/// machine. MountPointsIncluded keeps / and /dev/shm.
fn mountpoint_expected() -> Vec<String> {
    let mut lines = Vec::new();
    for (point, fstype) in [("/", "ext4"), ("/dev/shm", "tmpfs")] {
        let out = std::process::Command::new("stat")
            .args(["-f", "-c", "%S %b %c", point])
            .output()
            .expect("stat -f");
        let text = String::from_utf8_lossy(&out.stdout);
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().expect("a number from stat -f"))
            .collect();
        let labels =
            format!(r#"fstype="{fstype}",host="fixture-host",mountpoint="{point}",region="""#);
        lines.push(format!(
            "huatuo_bamai_mountpoint_size_bytes{{{labels}}} {}",
            numbers[0] * numbers[1]
        ));
        lines.push(format!(
            "huatuo_bamai_mountpoint_files{{{labels}}} {}",
            numbers[2]
        ));
    }
    lines
}

/// From `fixtures/node/bpf/maps.jsonl` (recorded bpf.reclaim map reads, see the comments
/// there): HUATUO's three families with HUATUO's label sets and help (HUATUO's memory
/// reclaim metrics), typed counter since they are cumulative; our zone histograms of the same
/// stalls under names of ours.
fn reclaim_expected() -> Vec<String> {
    let host = r#"host="fixture-host",region="""#;
    let mut lines = vec![
        "# HELP huatuo_bamai_memory_free_allocpages_stall time stalled in alloc pages".to_string(),
        "# TYPE huatuo_bamai_memory_free_allocpages_stall counter".to_string(),
        format!("huatuo_bamai_memory_free_allocpages_stall{{{host}}} 33100000"),
        "# HELP huatuo_bamai_memory_free_compaction_stall time stalled in memory compaction"
            .to_string(),
        "# TYPE huatuo_bamai_memory_free_compaction_stall counter".to_string(),
        format!("huatuo_bamai_memory_free_compaction_stall{{{host}}} 0"),
        "# HELP huatuo_bamai_memory_reclaim_container_directstall counter of cgroup reclaim when try_charge".to_string(),
        "# TYPE huatuo_bamai_memory_reclaim_container_directstall counter".to_string(),
        format!("huatuo_bamai_memory_reclaim_container_directstall{{{C1}}} 3"),
    ];
    // Zones 0-1ms, 1-10ms, 10-100ms, 100ms-1s, 1s+.
    for (family, labels, zones) in [
        ("memory_stall_allocpages_latency", host, [0, 2, 1, 0, 0]),
        ("memory_stall_compaction_latency", host, [0; 5]),
        (
            "memory_stall_container_directstall_latency",
            C1,
            [2, 1, 0, 0, 0],
        ),
    ] {
        lines.push(format!("# TYPE huatuo_bamai_{family} counter"));
        for (zone, count) in zones.iter().enumerate() {
            lines.push(format!(
                r#"huatuo_bamai_{family}{{{labels},zone="{zone}"}} {count}"#
            ));
        }
    }
    lines
}

/// The docker container `aaaa…` of the cgroup v1 tree (copied from the containers crate).
const V1: &str = r#"container_host="",container_hostnamespace="",container_id="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",container_level="",container_name="aaaaaaaaaaaa",container_type="normal",host="fixture-host",region="""#;

/// Container series read from cgroup v1 files of container `aaaa…`: cpu.cfs_quota_us 250000
/// over cpu.cfs_period_us 100000 = 2.5 cores; cpu.stat nr_throttled 3, throttled_time 7 ms,
/// nr_bursts 2, burst_time 0.9 ms; memory.failcnt 5 (the v1 counterpart of memory.events
/// max); memory.oom_control oom_kill 2; memory.stat active_anon 8192. Other containers: a
/// kubepods guaranteed pod (no QoS directory) and a besteffort one.
fn v1_expected() -> Vec<String> {
    let mut lines: Vec<String> = [
        ("cpu_util_container_cores", "2.5"),
        ("cpu_util_container_sys", "0"),
        ("cpu_stat_container_nr_throttled", "3"),
        ("cpu_stat_container_throttled_time", "7000000"),
        ("cpu_stat_container_nr_bursts", "2"),
        ("cpu_stat_container_burst_time", "900000"),
        ("memory_events_container_max", "5"),
        ("memory_events_container_oom_kill", "2"),
        ("memory_vmstat_container_active_anon", "8192"),
    ]
    .iter()
    .map(|(family, value)| format!("huatuo_bamai_{family}{{{V1}}} {value}"))
    .collect();
    for (id, level) in [("eeee", "guaranteed"), ("dddd", "besteffort")] {
        let full = id.repeat(16);
        lines.push(format!(
            r#"huatuo_bamai_cpu_util_container_sys{{container_host="",container_hostnamespace="",container_id="{full}",container_level="{level}",container_name="{}",container_type="normal",host="fixture-host",region=""}} 0"#,
            &full[..12]
        ));
    }
    lines
}

/// Runs the agent over the fixture node with `cgroup` as the cgroup root and returns the
/// first scrape holding every `wanted` line (or the last one, with the missing lines).
fn scrape_fixture(cgroup: &str, bpf_recorded: bool, wanted: &[String]) -> (String, Vec<String>) {
    let config = TempConfig::new(&format!("metrics-fixture-{cgroup}"), CONFIG);
    let port = free_port();
    let recorded: &[(&str, &str)] = if bpf_recorded {
        &[(
            "--bpf-recorded",
            "engine/agent/tests/fixtures/node/bpf/maps.jsonl",
        )]
    } else {
        &[]
    };
    let _agent = start_fixture_agent(port, &config.path, cgroup, 40, recorded);
    // Two poll intervals (10 s each): the deltas need a second read.
    let body = scrape_until(port, Duration::from_secs(35), |body| {
        missing_lines(body, wanted).is_empty()
    });
    let missing = missing_lines(&body, wanted);
    (body, missing)
}

#[test]
fn fixture_node_metrics_are_exact() {
    let mut wanted = expected();
    wanted.extend(qdisc_expected());
    wanted.extend(mountpoint_expected());
    wanted.extend(reclaim_expected());
    let (body, missing) = scrape_fixture("cgroup", true, &wanted);
    assert!(
        missing.is_empty(),
        "missing lines: {missing:#?}\n---\n{body}"
    );
    // Filters: lo excluded (netdev and qdisc), Tcp_ excluded, vmstat threshold and pgfault
    // absent, netdev_hw blacklisted, mount points outside MountPointsIncluded and pseudo
    // filesystems absent, and no family twice-prefixed with `container`.
    for absent in [
        r#"device="lo""#,
        "huatuo_bamai_netstat_Tcp_",
        "memory_vmstat_nr_dirty_threshold",
        "memory_vmstat_pgfault",
        "huatuo_bamai_netdev_hw_",
        r#"mountpoint="/tmp""#,
        r#"mountpoint="/proc""#,
        r#"mountpoint="/sys/fs/cgroup""#,
        "_container_container_",
    ] {
        assert!(
            !body.contains(absent),
            "`{absent}` should not be exported:\n{body}"
        );
    }
    // Memory reclaim: one series per HUATUO host family and one per container for directstall, no `zone`
    // label on them (the zones are ours, under memory_stall_*).
    let series_of = |family: &str| -> Vec<&str> {
        body.lines()
            .filter(|l| l.starts_with(&format!("huatuo_bamai_{family}{{")))
            .collect()
    };
    for family in [
        "memory_free_allocpages_stall",
        "memory_free_compaction_stall",
    ] {
        let series = series_of(family);
        assert_eq!(series.len(), 1, "{family}: {series:#?}");
        assert!(!series[0].contains("zone="), "{}", series[0]);
    }
    // Every container the node has gets a directstall series from the start: 0 until its
    // first memcg reclaim (C1's 3 is asserted exactly above), as HUATUO's do.
    let containers: std::collections::BTreeSet<&str> = body
        .lines()
        .filter_map(|l| l.split("container_id=\"").nth(1)?.split('"').next())
        .collect();
    let directstall = series_of("memory_reclaim_container_directstall");
    assert_eq!(directstall.len(), containers.len(), "{directstall:#?}");
    assert!(directstall.len() > 1, "{directstall:#?}");
    for line in &directstall {
        assert!(!line.contains("zone="), "{line}");
        assert!(
            line.ends_with(" 0") || line.contains(C1),
            "only C1 reclaimed: {line}"
        );
    }
    // Free space changes while the test runs: present, not exact.
    for family in ["free_bytes", "avail_bytes", "files_free"] {
        for point in ["/", "/dev/shm"] {
            let series = format!(r#"huatuo_bamai_mountpoint_{family}{{fstype="#);
            let label = format!(r#"mountpoint="{point}""#);
            assert!(
                body.lines()
                    .any(|l| l.starts_with(&series) && l.contains(&label)),
                "{family} of {point} missing:\n{body}"
            );
        }
    }
}

#[test]
fn fixture_node_cgroup_v1_container_metrics_are_exact() {
    let (body, missing) = scrape_fixture("cgroup-v1", false, &v1_expected());
    assert!(
        missing.is_empty(),
        "missing lines: {missing:#?}\n---\n{body}"
    );
    // Six containers in the v1 tree (docker ×2, podman, three kubepods); user.slice is not one.
    let ids: std::collections::BTreeSet<&str> = body
        .lines()
        .filter_map(|l| l.split_once(r#"container_id=""#))
        .filter_map(|(_, rest)| rest.split_once('"').map(|(id, _)| id))
        .collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
}
