//! Defaults match the ones HUATUO's manual documents in its configuration section (one
//! comment per section below), and the shipped file is exactly the defaults.

use huatuo_config::{embedded_default, load_dir, load_file, load_str, Config, DEFAULT_FILE_NAME};

#[test]
fn defaults_match_huatuo_s_documentation() {
    let c = Config::default();
    // BlackList
    assert_eq!(c.black_list, ["netdev_hw", "metax_gpu"]);
    // [Log]
    assert_eq!(c.log.level, "Info");
    assert_eq!(c.log.file, "");
    // [RuntimeCgroup]
    assert_eq!(c.runtime_cgroup.limit_init_cpu, 0.5);
    assert_eq!(c.runtime_cgroup.limit_cpu, 2.0);
    assert_eq!(c.runtime_cgroup.limit_mem, 2048);
    // [Storage.ES]; no default credentials
    assert_eq!(c.storage.es.address, "http://127.0.0.1:9200");
    assert_eq!(c.storage.es.index, "huatuo_bamai");
    assert_eq!(c.storage.es.username, "");
    assert_eq!(c.storage.es.password, "");
    // [Storage.LocalFile]
    assert_eq!(c.storage.local_file.path, "huatuo-local");
    assert_eq!(c.storage.local_file.rotation_size, 100);
    assert_eq!(c.storage.local_file.max_rotation, 10);
    // [AutoTracing.CPUIdle]
    let idle = &c.auto_tracing.cpu_idle;
    assert_eq!(idle.user_threshold, 75.0);
    assert_eq!(idle.usage_threshold, 90.0);
    assert_eq!(idle.delta_usage_threshold, 55.0);
    assert_eq!(idle.interval_tracing, 1800);
    assert!(idle.filter.included.is_empty() && idle.filter.excluded.is_empty());
    // [AutoTracing.CPUSys]
    assert_eq!(c.auto_tracing.cpu_sys.sys_threshold, 45.0);
    assert_eq!(c.auto_tracing.cpu_sys.delta_sys_threshold, 20.0);
    // [AutoTracing.Dload]
    assert_eq!(c.auto_tracing.dload.threshold_load, 5.0);
    // [AutoTracing.IOTracing]
    assert_eq!(c.auto_tracing.io_tracing.wbps_threshold, 1500);
    assert_eq!(c.auto_tracing.io_tracing.rbps_threshold, 2000);
    assert_eq!(c.auto_tracing.io_tracing.await_threshold, 100);
    assert_eq!(c.auto_tracing.io_tracing.max_files_per_proc_dump, 5);
    // [AutoTracing.MemoryBurst]
    assert_eq!(c.auto_tracing.memory_burst.delta_anon_threshold, 70.0);
    assert_eq!(c.auto_tracing.memory_burst.sliding_window_length, 60);
    // [AutoTracing] and [EventTracing] IssuesList
    assert!(c.auto_tracing.issues_list.is_empty());
    assert!(c.event_tracing.issues_list.is_empty());
    // [EventTracing.Softirq], [EventTracing.MemoryReclaim]
    assert_eq!(c.event_tracing.softirq.disabled_threshold, 10_000_000);
    assert_eq!(
        c.event_tracing.memory_reclaim.blocked_threshold,
        900_000_000
    );
    // [EventTracing.NetRxLatency]
    assert_eq!(c.event_tracing.net_rx_latency.driver2_net_rx, 5);
    assert_eq!(c.event_tracing.net_rx_latency.driver2_userspace, 115);
    assert!(c.event_tracing.net_rx_latency.excluded_host_netnamespace);
    // [EventTracing.Netdev], ExcludedSelf, [EventTracing.Dropwatch], [EventTracing.Ras]
    // HUATUO's documented example list is our default (HUATUO's own default is empty)
    assert_eq!(
        c.event_tracing.netdev.device_list,
        ["eth0", "eth1", "bond4", "lo"]
    );
    assert!(c.event_tracing.excluded_self);
    assert!(c.event_tracing.dropwatch.excluded_neigh_invalidate);
    assert_eq!(c.event_tracing.ras.mce_thr_backoff, 1800);
    // [MetricCollector.NetdevStats]
    assert!(!c.metric_collector.netdev_stats.enable_netlink);
    assert_eq!(c.metric_collector.netdev_stats.device_excluded, "");
    // [MetricCollector.NetdevDCB], [MetricCollector.NetdevHW]
    assert!(c.metric_collector.netdev_dcb.device_list.is_empty());
    assert!(c.metric_collector.netdev_hw.device_list.is_empty());
    // [MetricCollector.Vmstat]
    assert!(c
        .metric_collector
        .vmstat
        .included_on_host
        .starts_with("allocstall|nr_active_anon|"));
    assert_eq!(c.metric_collector.vmstat.excluded_on_host, "total");
    assert_eq!(c.metric_collector.vmstat.excluded_on_container, "total");
    // [MetricCollector.MemoryEvents], [MetricCollector.MountPointStat]
    assert_eq!(
        c.metric_collector.memory_events.included,
        "watermark_inc|watermark_dec"
    );
    assert_eq!(
        c.metric_collector.mount_point_stat.mount_points_included,
        "(^/home$)|(^/$)|(^/boot$)"
    );
    // [Pod]
    assert_eq!(c.pod.kubelet_read_only_port, 10255);
    assert_eq!(c.pod.kubelet_authorized_port, 10250);
    assert!(c
        .pod
        .kubelet_client_cert_path
        .ends_with("apiserver-kubelet-client.key"));
    // [EventsWatch]
    assert_eq!(c.events_watch.max_clients, 100);
    assert_eq!(c.events_watch.keep_alive_interval, 30);
}

#[test]
fn shipped_file_loads_and_equals_the_defaults() {
    let shipped = load_str("huatuo-bamai.conf", embedded_default())
        .unwrap_or_else(|diags| panic!("shipped file does not load: {diags:#?}"));
    assert_eq!(shipped, Config::default());
    assert_eq!(Config::embedded(), Config::default());
}

#[test]
fn shipped_file_sets_every_key() {
    // Every key of the schema is written out (a filter rule list only as a comment), so an
    // operator sees each knob with its default.
    for key in huatuo_config::key_schemas() {
        if key.path.starts_with("AutoTracing.CPUIdle.Filter.") {
            continue;
        }
        let leaf = key.path.rsplit('.').next().unwrap_or_default();
        let line = format!("{leaf} = ");
        assert!(
            embedded_default().contains(&line),
            "shipped file lacks `{}`",
            key.path
        );
    }
}

#[test]
fn an_empty_file_is_the_defaults() {
    assert_eq!(load_str("empty.conf", "").unwrap(), Config::default());
}

#[test]
fn an_empty_device_list_watches_no_device() {
    // As in HUATUO, `DeviceList = []` means no device, not "the default list".
    let c = load_str("netdev.conf", "[EventTracing.Netdev]\nDeviceList = []\n").unwrap();
    assert!(c.event_tracing.netdev.device_list.is_empty());
}

#[test]
fn an_operators_file_in_huatuo_shape_loads() {
    // The shape of HUATUO's own shipped file: dotted headers, tabs, a filter rule list.
    let text = r#"
BlackList = ["netdev_hw", "metax_gpu"]
[Storage]
    [Storage.ES]
        Username = "elastic"
        Password = "huatuo-bamai"
[AutoTracing]
    IssuesList = [["known_issue1", "softlockup"], ["known_issue2", "alloc_pages.*failed"]]
    [AutoTracing.CPUIdle]
        UsageThreshold = 80
    [[AutoTracing.CPUIdle.Filter.Excluded]]
        Field = "container_qos"
        Pattern = "besteffort"
    [[AutoTracing.CPUIdle.Filter.Included]]
        Field = "container_host_namespace"
        Pattern = "^application-"
[EventTracing.NetRxLatency]
	ExcludedContainerQos = ["besteffort"]
[EventTracing.Netdev]
	DeviceList = ["eth0", "eth1", "bond4", "lo"]
[MetricCollector.NetdevStats]
	DeviceExcluded = "^(lo)|(docker\\w*)|(veth\\w*)$"
"#;
    let c = load_str("op.conf", text).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(c.storage.es.username, "elastic");
    assert_eq!(c.auto_tracing.issues_list.len(), 2);
    assert_eq!(c.auto_tracing.issues_list[1].1, "alloc_pages.*failed");
    assert_eq!(c.auto_tracing.cpu_idle.usage_threshold, 80.0);
    // keys not written keep their defaults
    assert_eq!(c.auto_tracing.cpu_idle.user_threshold, 75.0);
    assert_eq!(
        c.auto_tracing.cpu_idle.filter.excluded[0].pattern,
        "besteffort"
    );
    assert_eq!(
        c.auto_tracing.cpu_idle.filter.included[0].field,
        "container_host_namespace"
    );
    assert_eq!(c.event_tracing.netdev.device_list.len(), 4);
    assert_eq!(
        c.metric_collector.netdev_stats.device_excluded,
        r"^(lo)|(docker\w*)|(veth\w*)$"
    );
}

#[test]
fn dotted_keys_and_inline_tables_are_the_same_as_headers() {
    let text = "AutoTracing.CPUSys.SysThreshold = 50\nPod = { KubeletReadOnlyPort = 0 }\n";
    let c = load_str("dotted.conf", text).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(c.auto_tracing.cpu_sys.sys_threshold, 50.0);
    assert_eq!(c.pod.kubelet_read_only_port, 0);
}

#[test]
fn load_dir_reads_huatuo_bamai_conf_in_the_directory() {
    let dir = std::env::temp_dir().join(format!("huatuo-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(DEFAULT_FILE_NAME),
        "[EventsWatch]\nMaxClients = 7\n",
    )
    .unwrap();
    let c = load_dir(&dir).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(c.events_watch.max_clients, 7);
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = load_file(&dir.join(DEFAULT_FILE_NAME)).unwrap_err();
    assert_eq!(missing[0].code, "config-io");
    assert!(missing[0].path.ends_with(DEFAULT_FILE_NAME));
    assert!(missing[0].message.contains("cannot read config file"));
}

#[test]
fn storage_is_on_only_when_configured() {
    let c = Config::default();
    assert!(!c.storage.es.enabled(), "no default credentials");
    assert!(c.storage.local_file.enabled());
    let c = load_str(
        "t.conf",
        "[Storage.ES]\nUsername = \"elastic\"\nPassword = \"pw\"\n[Storage.LocalFile]\nPath = \"\"\n",
    )
    .unwrap();
    assert!(c.storage.es.enabled());
    assert!(!c.storage.local_file.enabled());
}

#[test]
fn unreadable_files_are_config_io_errors() {
    let dir = std::env::temp_dir().join(format!("huatuo-config-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.conf");
    let line = "# padding\n";
    let copies = (huatuo_config::MAX_FILE_BYTES as usize) / line.len() + 1;
    std::fs::write(&big, line.repeat(copies)).unwrap();
    let d = load_file(&big).unwrap_err();
    assert_eq!(d[0].code, "config-io");
    assert!(
        d[0].message.contains("larger than 4 MiB"),
        "{}",
        d[0].message
    );

    let binary = dir.join("bin.conf");
    std::fs::write(&binary, b"Log = 1\xff\n").unwrap();
    let d = load_file(&binary).unwrap_err();
    assert_eq!(d[0].code, "config-io");
    assert!(d[0].message.contains("offset 7"), "{}", d[0].message);
    std::fs::remove_dir_all(&dir).unwrap();
}
