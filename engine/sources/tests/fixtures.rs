//! Every reader on the recorded fixture tree, with exact expected values.

use huatuo_dsl::source::Reader;
use huatuo_dsl::value::{Sample, Value};
use huatuo_sources::mounts::{FsUsage, MountsReader};
use huatuo_sources::netdev_hw::NetdevHwReader;
use huatuo_sources::{
    arp, buddyinfo, diskstats, loadavg, memory, net_dev, netstat, sockstat, stat, NetnsView, Roots,
};
use std::path::{Path, PathBuf};

const NOW: i64 = 1_700_000_000_000_000_000;

fn roots() -> Roots {
    Roots::fixture(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

fn read(reader: &mut dyn Reader) -> Vec<Sample> {
    let samples = reader.read(NOW).expect("fixture reads");
    let name = reader.schema().name;
    for s in &samples {
        assert_eq!(s.source, name);
        assert_eq!(s.time_ns, NOW);
        for field in s.fields.keys() {
            assert!(
                reader.schema().field(field).is_some(),
                "{name}: field {field} not in schema"
            );
        }
        for label in s.labels.keys() {
            assert!(
                reader.schema().labels.contains(label),
                "{name}: label {label}"
            );
        }
    }
    samples
}

fn int(sample: &Sample, field: &str) -> i64 {
    match sample.fields.get(field) {
        Some(Value::Int(v)) => *v,
        other => panic!("{field}: {other:?}"),
    }
}

fn with_label<'a>(samples: &'a [Sample], label: &str, value: &str) -> &'a Sample {
    samples
        .iter()
        .find(|s| s.labels.get(label).map(String::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no sample with {label}={value}"))
}

#[test]
fn proc_stat_host_in_nanoseconds() {
    let text = std::fs::read_to_string(roots().proc.join("stat")).unwrap();
    let samples = stat::parse(&text, NOW, 100).unwrap();
    assert_eq!(samples.len(), 1);
    let host = &samples[0];
    assert!(host.labels.is_empty());
    let tick = 10_000_000;
    assert_eq!(int(host, "user"), 34629 * tick);
    assert_eq!(int(host, "system"), 7920 * tick);
    assert_eq!(int(host, "idle"), 87046 * tick);
    assert_eq!(int(host, "iowait"), 2820 * tick);
    assert_eq!(int(host, "softirq"), 128 * tick);
    assert_eq!(int(host, "steal"), 123 * tick);
    assert_eq!(int(host, "guest_nice"), 0);
    assert_eq!(int(host, "total"), 132666 * tick);
    assert_eq!(int(host, "ctxt"), 528434);
    assert_eq!(int(host, "procs_running"), 3);
}

#[test]
fn proc_stat_cpu_per_cpu() {
    let mut reader = stat::cpu_reader(&roots().proc);
    let samples = read(&mut reader);
    assert_eq!(samples.len(), 2);
    let cpu1 = with_label(&samples, "cpu", "1");
    let tick = 1_000_000_000 / procfs::ticks_per_second() as i64;
    assert_eq!(int(cpu1, "user"), 17313 * tick);
    assert_eq!(int(cpu1, "idle"), 42126 * tick);
    assert!(!cpu1.fields.contains_key("ctxt"));
}

#[test]
fn proc_loadavg() {
    let samples = read(&mut loadavg::reader(&roots().proc));
    let s = &samples[0];
    assert_eq!(s.fields["load1"], Value::Float(1.95));
    assert_eq!(s.fields["load5"], Value::Float(1.0));
    assert_eq!(s.fields["load15"], Value::Float(0.45));
    assert_eq!(int(s, "nr_running"), 3);
    assert_eq!(int(s, "nr_threads"), 123);
}

#[test]
fn proc_vmstat_open_counters() {
    let samples = read(&mut memory::vmstat_reader(&roots().proc));
    assert_eq!(int(&samples[0], "pgfault"), 18023076);
    assert_eq!(int(&samples[0], "nr_free_pages"), 831240);
    assert_eq!(samples[0].fields.len(), 25);
}

#[test]
fn proc_meminfo_in_bytes() {
    let samples = read(&mut memory::meminfo_reader(&roots().proc));
    let s = &samples[0];
    assert_eq!(int(s, "MemTotal"), 24683656 * 1024);
    assert_eq!(int(s, "MemAvailable"), 23935400 * 1024);
    assert_eq!(int(s, "AnonPages"), 254332 * 1024);
    assert_eq!(int(s, "Hugepagesize"), 2048 * 1024);
    assert_eq!(int(s, "HugePages_Total"), 0);
}

#[test]
fn proc_buddyinfo_per_node_zone_order() {
    let samples = read(&mut buddyinfo::reader(&roots().proc));
    assert_eq!(samples.len(), 3 * 11);
    let normal0 = samples
        .iter()
        .find(|s| s.labels["zone"] == "Normal" && s.labels["order"] == "0")
        .unwrap();
    assert_eq!(normal0.labels["node"], "0");
    assert_eq!(int(normal0, "blocks"), 8482);
    let dma32_10 = samples
        .iter()
        .find(|s| s.labels["zone"] == "DMA32" && s.labels["order"] == "10")
        .unwrap();
    assert_eq!(int(dma32_10, "blocks"), 752);
}

#[test]
fn proc_diskstats_in_bytes_and_ns() {
    let samples = read(&mut diskstats::reader(&roots().proc));
    assert_eq!(samples.len(), 3);
    let vda = with_label(&samples, "device", "vda");
    assert_eq!(int(vda, "reads"), 44612);
    assert_eq!(int(vda, "read_bytes"), 5550114 * 512);
    assert_eq!(int(vda, "read_time"), 86382 * 1_000_000);
    assert_eq!(int(vda, "writes"), 10152);
    assert_eq!(int(vda, "write_bytes"), 6602936 * 512);
    assert_eq!(int(vda, "write_time"), 55022 * 1_000_000);
    assert_eq!(int(vda, "in_flight"), 0);
    assert_eq!(int(vda, "io_ticks"), 30480 * 1_000_000);
    assert_eq!(int(vda, "time_in_queue"), 143829 * 1_000_000);
    assert_eq!((int(vda, "major"), int(vda, "minor")), (254, 0));
}

#[test]
fn proc_net_dev_per_device() {
    let samples = read(&mut net_dev::reader(&roots().proc.join("net")));
    let devices: Vec<_> = samples
        .iter()
        .map(|s| s.labels["device"].as_str())
        .collect();
    assert_eq!(devices, ["eth0", "ifb0", "ifb1", "lo"]);
    let eth0 = with_label(&samples, "device", "eth0");
    assert_eq!(int(eth0, "receive_bytes"), 213495487);
    assert_eq!(int(eth0, "receive_packets"), 13266);
    assert_eq!(int(eth0, "transmit_bytes"), 1028046);
    assert_eq!(int(eth0, "transmit_packets"), 11129);
}

#[test]
fn proc_netstat_and_snmp_as_group_fields() {
    let samples = read(&mut netstat::reader(&roots().proc.join("net")));
    let s = &samples[0];
    assert_eq!(int(s, "TcpExt_ListenDrops"), 0);
    assert_eq!(int(s, "TcpExt_TCPTimeouts"), 2);
    assert_eq!(int(s, "IpExt_InOctets"), 213318496);
    assert_eq!(int(s, "Tcp_ActiveOpens"), 78);
    assert_eq!(int(s, "Tcp_MaxConn"), -1);
    assert_eq!(int(s, "Udp_InDatagrams"), 135);
    assert_eq!(s.fields.len(), 229 + 83);
}

#[test]
fn proc_sockstat_with_tcp_mem_limit() {
    let samples = read(&mut sockstat::reader(
        &roots().proc.join("net"),
        &roots().proc,
    ));
    let s = &samples[0];
    assert_eq!(int(s, "sockets_used"), 24);
    assert_eq!(int(s, "TCP_inuse"), 1);
    assert_eq!(int(s, "TCP_tw"), 5);
    assert_eq!(int(s, "TCP_mem"), 315);
    assert_eq!(int(s, "UDPLITE_inuse"), 0);
    assert_eq!(int(s, "FRAG_memory"), 0);
    assert_eq!(int(s, "tcp_mem_limit_pages"), 575796);
    assert_eq!(int(s, "page_size"), procfs::page_size() as i64);
}

#[test]
fn proc_arp_total_and_per_device() {
    let net = roots().proc.join("net");
    let samples = read(&mut arp::reader(&net));
    assert_eq!(samples.len(), 1);
    assert!(samples[0].labels.is_empty());
    assert_eq!(int(&samples[0], "entries"), 2);
    assert_eq!(int(&samples[0], "arp_total"), 2);

    let devices = read(&mut arp::devices_reader(&net));
    assert_eq!(devices.len(), 2);
    assert_eq!(int(with_label(&devices, "device", "eth0"), "entries"), 1);
    assert_eq!(int(with_label(&devices, "device", "docker0"), "entries"), 1);
}

#[test]
fn proc_arp_total_falls_back_to_entries_without_arp_cache() {
    let arp = std::fs::read_to_string(roots().proc.join("net/arp")).unwrap();
    let samples = arp::parse(&[Some(arp), None], NOW).unwrap();
    assert_eq!(int(&samples[0], "arp_total"), 2);
    let cache = "entries  allocs\n0000000c 00000002\n".to_string();
    let arp = std::fs::read_to_string(roots().proc.join("net/arp")).unwrap();
    let samples = arp::parse(&[Some(arp), Some(cache)], NOW).unwrap();
    assert_eq!(int(&samples[0], "arp_total"), 12);
    assert_eq!(int(&samples[0], "entries"), 2);
}

#[test]
fn sys_netdev_hw_skips_virtual_devices() {
    let mut reader = NetdevHwReader::new(&roots().sys, false);
    let samples = read(&mut reader);
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels["device"], "eth0");
    assert_eq!(samples[0].labels["driver"], "virtio_net");
    assert_eq!(int(&samples[0], "rx_dropped"), 17);

    let mut listed = NetdevHwReader::new(&roots().sys, false).only(vec!["lo".to_string()]);
    let samples = read(&mut listed);
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels["device"], "lo");

    let mut all = NetdevHwReader::new(&roots().sys, true);
    let samples = read(&mut all);
    let lo = with_label(&samples, "device", "lo");
    assert_eq!(lo.labels["driver"], "");
    assert_eq!(int(lo, "rx_dropped"), 0);
}

fn fake_statfs(path: &Path) -> std::io::Result<FsUsage> {
    match path.to_str() {
        Some("/") => Ok(FsUsage {
            fragment_size: 4096,
            blocks: 1000,
            blocks_free: 400,
            blocks_avail: 350,
            files: 64,
            files_free: 60,
        }),
        Some("/proc") => Ok(FsUsage {
            fragment_size: 4096,
            blocks: 0,
            blocks_free: 0,
            blocks_avail: 0,
            files: 0,
            files_free: 0,
        }),
        _ => Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
    }
}

#[test]
fn statfs_mounts_from_mountinfo() {
    let mut reader = MountsReader::new(&roots().proc, Vec::new(), Box::new(fake_statfs));
    let samples = read(&mut reader);
    assert_eq!(
        samples.len(),
        1,
        "proc has no blocks, /dev/shm fails statfs"
    );
    let root = &samples[0];
    assert_eq!(root.labels["mountpoint"], "/");
    assert_eq!(root.labels["fstype"], "ext4");
    assert_eq!(int(root, "size"), 4096 * 1000);
    assert_eq!(int(root, "free"), 4096 * 400);
    assert_eq!(int(root, "avail"), 4096 * 350);
    assert_eq!(int(root, "files"), 64);
    assert_eq!(int(root, "files_free"), 60);
    assert_eq!(root.fields["device"], Value::Str("/dev/vda".into()));
    assert_eq!(int(root, "readonly"), 0);

    let mut none = MountsReader::new(
        &roots().proc,
        vec![PathBuf::from("/work")],
        Box::new(fake_statfs),
    );
    assert!(read(&mut none).is_empty());

    // An explicitly listed pseudo filesystem is asked, and dropped for having no blocks.
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    let mut proc_only = MountsReader::new(
        &roots().proc,
        vec![PathBuf::from("/proc")],
        Box::new(move |p: &Path| {
            log.lock().unwrap().push(p.to_path_buf());
            fake_statfs(p)
        }),
    );
    assert!(read(&mut proc_only).is_empty());
    assert_eq!(*asked.lock().unwrap(), [PathBuf::from("/proc")]);
}

#[test]
fn statfs_skips_remote_and_pseudo_filesystems_by_default() {
    use huatuo_sources::mounts::skipped_by_default;
    for fstype in ["proc", "cgroup2", "nfs4", "fuse.sshfs", "autofs"] {
        assert!(skipped_by_default(fstype), "{fstype}");
    }
    for fstype in ["ext4", "xfs", "tmpfs", "overlay", "btrfs"] {
        assert!(!skipped_by_default(fstype), "{fstype}");
    }
}

#[test]
fn netns_view_reads_the_process_net_dir() {
    let view = NetnsView::for_pid_in(&roots().proc, 4242);
    assert!(view.net_dir().ends_with("proc/4242/net"));
    let samples = read(&mut view.net_dev());
    assert_eq!(samples.len(), 2);
    let eth0 = with_label(&samples, "device", "eth0");
    assert_eq!(int(eth0, "receive_bytes"), 5000);
    assert_eq!(int(eth0, "receive_errs"), 1);
    assert_eq!(int(eth0, "receive_drop"), 2);
    assert_eq!(int(eth0, "receive_multicast"), 3);
    assert_eq!(int(eth0, "transmit_drop"), 4);
    assert_eq!(NetnsView::for_pid(1).net_dir(), Path::new("/proc/1/net"));
}

#[test]
fn missing_file_names_its_path_and_others_keep_working() {
    let view = NetnsView::for_pid_in(&roots().proc, 4242);
    let err = view.netstat().read(NOW).unwrap_err();
    assert_eq!(err.source_name, "proc.netstat");
    assert!(err.path.ends_with("proc/4242/net/netstat"), "{}", err.path);
    assert!(view.net_dev().read(NOW).is_ok());
}

#[test]
fn host_readers_all_read_the_fixture_tree() {
    let config = huatuo_sources::ReaderConfig {
        netlink_recorded: Some(roots().proc.with_file_name("netlink")),
        gpu_recorded: Some(roots().proc.with_file_name("gpu")),
        ..Default::default()
    };
    let readers = huatuo_sources::host_readers(&roots(), &config);
    let schemas = huatuo_sources::schemas();
    let polled = schemas
        .iter()
        .filter(|s| s.mode == huatuo_dsl::catalog::SourceMode::Polled)
        .count();
    assert_eq!(readers.len(), polled);
    for mut reader in readers {
        let name = reader.schema().name;
        assert!(schemas.iter().any(|s| s.name == name));
        let samples = reader.read(NOW);
        // statfs.mounts asks the real kernel about the recorded mount points.
        let samples = samples.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reader.unavailable(), None, "{name} is absent");
        if name != "statfs.mounts" {
            assert!(!samples.is_empty(), "{name} returned nothing");
        }
    }
}

#[test]
fn xfs_counters_per_mounted_filesystem() {
    // The recorded sdb1 has a 64 MiB log (16384 blocks of 4 KiB, what XFS_IOC_FSGEOMETRY
    // would say on its mount point), 200 basic blocks between tail and head, 20 KiB reserved.
    let mut reader = huatuo_sources::xfs::XfsReader::with_log_size(
        &roots().sys,
        Box::new(|device| match device {
            "sdb1" => Ok(16384 * 4096),
            _ => Err(std::io::ErrorKind::NotFound.into()),
        }),
    );
    let samples = read(&mut reader);
    assert_eq!(
        samples.len(),
        1,
        "the global stats directory is not a device"
    );
    assert_eq!(samples[0].labels["device"], "sdb1");
    let field = |name: &str| samples[0].fields[name].clone();
    assert_eq!(field("alloc_extents"), Value::Int(5120));
    assert_eq!(field("alloc_blocks"), Value::Int(901234));
    assert_eq!(field("inode_attempts"), Value::Int(80211));
    assert_eq!(field("inode_missed"), Value::Int(10210));
    assert_eq!(field("buf_locked_waited"), Value::Int(31));
    assert_eq!(field("buf_busy_locked"), Value::Int(5));
    assert_eq!(field("log_space_sleep"), Value::Int(7));
    assert_eq!(
        field("log_free_bytes"),
        Value::Int(16384 * 4096 - 200 * 512 - 20480)
    );
}

#[test]
fn gpu_sources_read_recorded_readings() {
    let config = huatuo_sources::ReaderConfig {
        gpu_recorded: Some(roots().proc.with_file_name("gpu")),
        ..Default::default()
    };
    let mut readers = huatuo_sources::host_readers(&roots(), &config);
    let mut read = |source: &str| {
        let reader = readers
            .iter_mut()
            .find(|r| r.schema().name == source)
            .unwrap_or_else(|| panic!("{source} is registered"));
        reader.read(NOW).expect("recorded readings parse")
    };
    let field = |samples: &[Sample], labels: &[(&str, &str)], name: &str| {
        let labels: std::collections::BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        samples
            .iter()
            .find(|s| s.labels == labels)
            .and_then(|s| s.fields.get(name).cloned())
            .unwrap_or_else(|| panic!("no {name} at {labels:?} in {samples:#?}"))
    };
    let metax = read("gpu.metax");
    assert_eq!(
        field(&metax, &[("version", "2.14.6")], "sdk_info"),
        Value::Int(1)
    );
    assert_eq!(
        field(&metax, &[("gpu", "0"), ("die", "0")], "temperature"),
        Value::Float(45.5)
    );
    assert_eq!(
        field(&metax, &[("gpu", "0"), ("metaxlink", "1")], "link_received"),
        Value::Int(123456789)
    );
    assert_eq!(
        field(
            &metax,
            &[("gpu", "0"), ("die", "0"), ("ip", "xcore")],
            "clock"
        ),
        Value::Int(1600)
    );
    let nvidia = read("gpu.nvidia");
    // No die label: the die's values sit on the GPU's sample.
    assert_eq!(
        field(&nvidia, &[("gpu", "0")], "performance_state"),
        Value::Int(0)
    );
    assert_eq!(
        field(&nvidia, &[("version", "535.104.05")], "driver_info"),
        Value::Int(1)
    );
}

#[test]
fn sys_netdev_hw_garbage_counter_names_the_file() {
    let root = std::env::temp_dir().join(format!("huatuo-sources-sys-{}", std::process::id()));
    let dev = root.join("class/net/eth9");
    std::fs::create_dir_all(dev.join("statistics")).unwrap();
    std::fs::create_dir_all(dev.join("device")).unwrap();
    std::fs::write(dev.join("statistics/rx_dropped"), "not a number\n").unwrap();
    let err = NetdevHwReader::new(&root, false).read(NOW).unwrap_err();
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(err.source_name, "sys.netdev_hw");
    assert!(
        err.path.ends_with("eth9/statistics/rx_dropped"),
        "{}",
        err.path
    );
    assert!(err.message.contains("rx_dropped"), "{}", err.message);
}

#[test]
fn sys_netdev_hw_missing_class_dir_is_an_error() {
    let err = NetdevHwReader::new(Path::new("/nonexistent"), false)
        .read(NOW)
        .unwrap_err();
    assert_eq!(err.path, "/nonexistent/class/net");
}

#[test]
fn schemas_have_unique_names_and_declared_fields() {
    let schemas = huatuo_sources::schemas();
    let mut names: Vec<_> = schemas.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate source names");
    for schema in &schemas {
        assert!(
            !schema.fields.is_empty(),
            "{} declares no field",
            schema.name
        );
        assert!(!schema.description.is_empty(), "{}", schema.name);
        let polled = schema.mode == huatuo_dsl::catalog::SourceMode::Polled;
        assert_eq!(
            polled,
            schema.default_interval_s.is_some(),
            "{}",
            schema.name
        );
    }
}

#[test]
fn statfs_marks_read_only_mounts_and_reads_a_bounded_number() {
    use huatuo_sources::mounts::MAX_MOUNTS;
    let dir = std::env::temp_dir().join(format!("huatuo-mounts-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("self")).unwrap();
    let mut text = String::from(
        "30 1 7:0 / /mnt/ro ro,relatime - ext4 /dev/loop0 ro\n\
         31 1 7:1 / /mnt/rw rw,relatime - xfs /dev/loop1 rw\n",
    );
    for i in 0..MAX_MOUNTS + 10 {
        text.push_str(&format!(
            "{} 1 0:99 / /many/{i} rw - tmpfs tmpfs rw\n",
            40 + i
        ));
    }
    std::fs::write(dir.join("self/mountinfo"), text).unwrap();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = asked.clone();
    let mut reader = MountsReader::new(
        &dir,
        Vec::new(),
        Box::new(move |_: &Path| {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(FsUsage {
                fragment_size: 4096,
                blocks: 10,
                blocks_free: 5,
                blocks_avail: 5,
                files: 1,
                files_free: 1,
            })
        }),
    );
    let samples = read(&mut reader);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(samples.len(), MAX_MOUNTS);
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), MAX_MOUNTS);
    assert_eq!(int(&samples[0], "readonly"), 1);
    assert_eq!(samples[0].fields["device"], Value::Str("/dev/loop0".into()));
    assert_eq!(samples[1].labels["mountpoint"], "/mnt/rw");
    assert_eq!(int(&samples[1], "readonly"), 0);
}
