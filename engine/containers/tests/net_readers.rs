//! The per-container network readers (`container.net_dev`, `container.netstat`,
//! `container.arp`, `container.sockstat`) on the fixture tree `fixtures/net`:
//!
//! | container | init pid | network namespace |
//! |---|---|---|
//! | a… | 4001 | its own (`proc/4001/net/*`) |
//! | b… | 4002 | the host's (`ns/net` links to `proc/1/ns/net`): skipped |
//! | c… | 4003 | a's (`ns/net` links to `proc/4001/ns/net`, no `net/` of its own) |
//! | d… | 4004 | process gone (no `proc/4004`): vanished |
//! | e… | none | empty `cgroup.procs`: no pid |
//! | f… | 4005 | its own, with a malformed `net/dev` and no netstat/arp: error |
//!
//! `fixtures/net/netlink/netns/4001/link.json` is a recorded RTM_GETLINK dump of a's
//! namespace for `container.net_dev` through netlink (`EnableNetlink`).

use huatuo_containers::readers::net::{NetKind, NetnsReader, NetnsStats};
use huatuo_containers::{cgroup_readers_with, schemas, Discovery, DiscoveryOptions, ReaderOptions};
use huatuo_dsl::source::Reader;
use huatuo_dsl::value::{Sample, Value};
use huatuo_sources::net_dev::NetDevVia;
use huatuo_sources::NetnsView;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

mod cgroup_v1;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/net")
        .join(rel)
}

fn discovery() -> Arc<Discovery> {
    Arc::new(Discovery::new(DiscoveryOptions {
        root: fixture("cgroup"),
        docker_root: None,
        ..DiscoveryOptions::default()
    }))
}

fn reader(kind: NetKind) -> NetnsReader {
    NetnsReader::new(kind, discovery(), fixture("proc"))
}

/// (container_id, device) of each sample, in order.
fn keys(samples: &[Sample]) -> Vec<(String, Option<String>)> {
    samples
        .iter()
        .map(|s| {
            (
                s.labels["container_id"].clone(),
                s.labels.get("device").cloned(),
            )
        })
        .collect()
}

fn key(id: &str, device: Option<&str>) -> (String, Option<String>) {
    (id.to_string(), device.map(str::to_string))
}

fn ints(pairs: &[(&str, i64)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Int(*v)))
        .collect()
}

/// The fixture's per-container outcome, the same for every kind: a read once, c shares it,
/// b host network, d vanished, e no pid, f failed.
fn expected_stats() -> NetnsStats {
    NetnsStats {
        reads: 1,
        namespaces_read: 1,
        host_network_skipped: 1,
        no_pid_skipped: 1,
        vanished: 1,
        capped: 0,
        errors: 1,
    }
}

#[test]
fn schemas_and_readers_are_registered() {
    let all = schemas();
    for name in [
        "container.net_dev",
        "container.netstat",
        "container.arp",
        "container.sockstat",
    ] {
        let schema = all
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in schemas()"));
        assert!(schema.per_container, "{name} is per container");
    }
    let net_dev = NetKind::NetDev.schema();
    assert_eq!(net_dev.labels, ["device"]);
    assert_eq!(net_dev.fields.len(), 16);
    assert_eq!(
        net_dev.field("receive_bytes").map(|f| f.dim),
        Some(huatuo_dsl::units::Dim::Bytes)
    );
    let arp = NetKind::Arp.schema();
    assert!(arp.field("entries").is_some());
    assert!(
        arp.field("arp_total").is_none(),
        "the ARP table size is host-wide, not a container value"
    );
    assert!(NetKind::Netstat.schema().open_fields.is_some());
    let sockstat = NetKind::Sockstat.schema();
    assert!(sockstat.field("TCP_inuse").is_some());
    assert!(
        sockstat.field("sockets_used").is_some(),
        "sockets in use are counted per network namespace"
    );
    for host_only in ["TCP_mem", "tcp_mem_limit_pages", "page_size"] {
        assert!(
            sockstat.field(host_only).is_none(),
            "{host_only} is host-wide"
        );
    }

    let names: Vec<String> = cgroup_readers_with(
        discovery(),
        ReaderOptions {
            proc_root: fixture("proc"),
            ..ReaderOptions::default()
        },
    )
    .iter()
    .map(|r| r.schema().name)
    .filter(|n| n.starts_with("container."))
    .collect();
    assert_eq!(
        names,
        [
            "container.net_dev",
            "container.netstat",
            "container.arp",
            "container.sockstat"
        ]
    );
}

#[test]
fn net_dev_one_sample_per_container_and_device_host_network_skipped() {
    let mut r = reader(NetKind::NetDev);
    let samples = r
        .read(77)
        .expect("read never fails for per-container problems");
    assert_eq!(
        keys(&samples),
        [
            key(A, Some("eth0")),
            key(A, Some("lo")),
            key(C, Some("eth0")),
            key(C, Some("lo")),
        ]
    );
    let eth0 = &samples[0];
    assert_eq!(eth0.source, "container.net_dev");
    assert_eq!(eth0.time_ns, 77);
    assert_eq!(
        eth0.labels,
        BTreeMap::from([
            ("container_id".to_string(), A.to_string()),
            ("device".to_string(), "eth0".to_string()),
        ])
    );
    assert_eq!(
        eth0.fields,
        ints(&[
            ("receive_bytes", 64_400_018),
            ("receive_packets", 693_155),
            ("receive_errs", 1),
            ("receive_drop", 2),
            ("receive_fifo", 0),
            ("receive_frame", 0),
            ("receive_compressed", 0),
            ("receive_multicast", 3),
            ("transmit_bytes", 62_347_911),
            ("transmit_packets", 660_218),
            ("transmit_errs", 0),
            ("transmit_drop", 4),
            ("transmit_fifo", 0),
            ("transmit_colls", 0),
            ("transmit_carrier", 0),
            ("transmit_compressed", 0),
        ])
    );
    assert_eq!(samples[1].fields["receive_packets"], Value::Int(10));
    assert_eq!(samples[1].fields["transmit_bytes"], Value::Int(840));
    // c shares a's namespace: the same counters under its own id.
    assert_eq!(samples[2].fields, samples[0].fields);
    assert_eq!(samples[3].fields, samples[1].fields);
    assert_eq!(r.stats(), expected_stats());

    r.read(78).expect("second read");
    let stats = r.stats();
    assert_eq!(
        (stats.reads, stats.namespaces_read, stats.errors),
        (2, 2, 2)
    );
}

/// a's eth0 in the recorded link dump: different from its `/proc/4001/net/dev` line.
fn a_eth0_by_netlink() -> BTreeMap<String, Value> {
    ints(&[
        ("receive_bytes", 64_400_118),
        ("receive_packets", 693_156),
        ("receive_errs", 1),
        ("receive_drop", 7),
        ("receive_fifo", 5),
        ("receive_frame", 6),
        ("receive_compressed", 0),
        ("receive_multicast", 3),
        ("transmit_bytes", 62_348_011),
        ("transmit_packets", 660_219),
        ("transmit_errs", 8),
        ("transmit_drop", 4),
        ("transmit_fifo", 9),
        ("transmit_colls", 10),
        ("transmit_carrier", 11),
        ("transmit_compressed", 0),
    ])
}

#[test]
fn net_dev_through_netlink_has_the_procfs_labels_and_fields() {
    let mut procfs = reader(NetKind::NetDev);
    let mut netlink = reader(NetKind::NetDev)
        .net_dev_via(NetDevVia::Netlink)
        .netlink_recorded(Some(fixture("netlink")));
    let by_procfs = procfs.read(77).expect("procfs");
    let by_netlink = netlink.read(77).expect("netlink");
    // The same series: tunl0, recorded without IFLA_STATS64, has no sample.
    assert_eq!(keys(&by_netlink), keys(&by_procfs));
    for (n, p) in by_netlink.iter().zip(&by_procfs) {
        assert_eq!(n.source, "container.net_dev");
        assert_eq!(n.labels, p.labels);
        assert_eq!(n.time_ns, 77);
        assert_eq!(
            n.fields.keys().collect::<Vec<_>>(),
            p.fields.keys().collect::<Vec<_>>()
        );
    }
    // The values are the recorded dump's, for a and for c sharing a's namespace.
    assert_eq!(by_netlink[0].fields, a_eth0_by_netlink());
    assert_eq!(by_netlink[1].fields["receive_packets"], Value::Int(11));
    assert_eq!(by_netlink[2].fields, by_netlink[0].fields);
    // f (pid 4005) has no recording: counted as an error like its malformed net/dev.
    assert_eq!(netlink.stats(), expected_stats());
}

#[test]
fn reader_options_send_only_net_dev_through_netlink() {
    let read = |options: ReaderOptions, source: &str| {
        cgroup_readers_with(discovery(), options)
            .into_iter()
            .find(|r| r.schema().name == source)
            .unwrap_or_else(|| panic!("{source} registered"))
            .read(1)
            .expect("read")
    };
    let netlink = || ReaderOptions {
        proc_root: fixture("proc"),
        net_dev_via: NetDevVia::Netlink,
        netlink_recorded: Some(fixture("netlink")),
        ..ReaderOptions::default()
    };
    let procfs = ReaderOptions {
        proc_root: fixture("proc"),
        netlink_recorded: Some(fixture("netlink")),
        ..ReaderOptions::default()
    };
    assert_eq!(ReaderOptions::default().net_dev_via, NetDevVia::Procfs);
    assert_eq!(
        read(netlink(), "container.net_dev")[0].fields,
        a_eth0_by_netlink()
    );
    assert_eq!(
        read(procfs, "container.net_dev")[0].fields["receive_bytes"],
        Value::Int(64_400_018)
    );
    // netstat has no netlink path: still /proc/<pid>/net/netstat.
    assert_eq!(
        read(netlink(), "container.netstat")[0].fields["TcpExt_ListenDrops"],
        Value::Int(9)
    );
}

#[test]
fn netstat_reuses_the_host_parser_per_namespace() {
    let mut r = reader(NetKind::Netstat);
    let samples = r.read(5).expect("read");
    assert_eq!(keys(&samples), [key(A, None), key(C, None)]);
    let a = &samples[0];
    assert_eq!(a.source, "container.netstat");
    for (field, value) in [
        ("TcpExt_DelayedACKs", 4650),
        ("TcpExt_ListenOverflows", 7),
        ("TcpExt_ListenDrops", 9),
        ("IpExt_InOctets", 123_456),
        ("Tcp_ActiveOpens", 31),
        ("Tcp_PassiveOpens", 12),
        ("Tcp_RetransSegs", 5),
        ("Udp_InDatagrams", 77),
        ("TcpExt_SyncookiesSent", 0),
    ] {
        assert_eq!(a.fields.get(field), Some(&Value::Int(value)), "{field}");
    }
    // Exactly the host source's view of that namespace, relabelled.
    let host_view = NetnsView::for_pid_in(&fixture("proc"), 4001)
        .netstat()
        .read(5)
        .expect("host parser reads the fixture");
    assert_eq!(host_view.len(), 1);
    assert_eq!(a.fields, host_view[0].fields);
    assert_eq!(samples[1].fields, a.fields);
    assert_eq!(r.stats(), expected_stats());
}

#[test]
fn arp_counts_entries_of_the_container_namespace_only() {
    let mut r = reader(NetKind::Arp);
    let samples = r.read(9).expect("read");
    assert_eq!(keys(&samples), [key(A, None), key(C, None)]);
    assert_eq!(samples[0].source, "container.arp");
    assert_eq!(samples[0].fields, ints(&[("entries", 2)]));
    assert_eq!(samples[1].fields, ints(&[("entries", 2)]));
    assert_eq!(r.stats(), expected_stats());
}

#[test]
fn sockstat_keeps_namespace_counts_and_drops_host_wide_values() {
    let mut r = reader(NetKind::Sockstat);
    let samples = r.read(3).expect("read");
    assert_eq!(keys(&samples), [key(A, None), key(C, None)]);
    assert_eq!(samples[0].source, "container.sockstat");
    assert_eq!(
        samples[0].fields,
        ints(&[
            ("sockets_used", 17),
            ("TCP_inuse", 3),
            ("TCP_orphan", 1),
            ("TCP_tw", 4),
            ("TCP_alloc", 40),
            ("UDP_inuse", 2),
            ("UDPLITE_inuse", 0),
            ("RAW_inuse", 0),
            ("FRAG_inuse", 0),
            ("FRAG_memory", 0),
        ])
    );
    assert_eq!(r.stats(), expected_stats());
}

#[test]
fn namespaces_per_read_are_capped_and_the_rest_counted() {
    let mut r = reader(NetKind::NetDev).max_namespaces(1);
    let samples = r.read(1).expect("read");
    // a is read, c shares a's namespace (no second read), f is over the cap.
    assert_eq!(samples.len(), 4);
    let stats = r.stats();
    assert_eq!(stats.namespaces_read, 1);
    assert_eq!(stats.capped, 1);
    assert_eq!(stats.errors, 0);

    let mut none = reader(NetKind::NetDev).max_namespaces(0);
    assert!(none.read(1).expect("read").is_empty());
    assert_eq!(none.stats().capped, 3, "a, c and f are over a cap of 0");
}

#[test]
fn no_containers_is_no_samples_even_without_namespace_files() {
    // A cgroup tree without containers (its root only): nothing to compare, nothing read.
    let dir = std::env::temp_dir().join(format!("huatuo-netns-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch root");
    std::fs::write(dir.join("cgroup.controllers"), "cpu\n").expect("controllers");
    let discovery = Arc::new(Discovery::new(DiscoveryOptions {
        root: dir.clone(),
        docker_root: None,
        ..DiscoveryOptions::default()
    }));
    let mut r = NetnsReader::new(NetKind::NetDev, discovery, dir.join("no-proc"));
    let result = r.read(0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(result.expect("no error without containers").is_empty());
}

#[test]
fn unidentifiable_host_namespace_is_an_error_naming_the_file() {
    // A proc root without `1/ns/net` or `self/ns/net`: host-network containers cannot be
    // told apart.
    let mut r = NetnsReader::new(NetKind::NetDev, discovery(), fixture("cgroup"));
    let err = r.read(0).expect_err("no host namespace");
    assert_eq!(err.source_name, "container.net_dev");
    assert!(err.path.ends_with("cgroup/1/ns/net"), "{}", err.path);
    assert!(err.message.contains("host network namespace"), "{err}");
}

/// Real kernel tests (root, cgroup v1): a process in its own network namespace behind a veth
/// pair, placed in a docker-shaped cgroup, and a second one in the host namespace; and a
/// container namespace read through procfs and netlink side by side.
mod real {
    use super::*;
    use std::fs;
    use std::net::UdpSocket;
    use std::os::unix::fs::MetadataExt;
    use std::process::{Child, Command, Stdio};
    use std::sync::{Mutex, MutexGuard};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// The tests share `/sys/fs/cgroup/*/docker` (created and removed by whichever needs it)
    /// and scan every container: one at a time.
    static HOST_STATE: Mutex<()> = Mutex::new(());

    use crate::cgroup_v1::{self, CONTROLLERS, ROOT as CGROUP_ROOT};
    const DATAGRAMS: i64 = 25;
    const PAYLOAD: usize = 200;

    /// Everything the test created, removed in reverse order even when an assertion fails.
    #[derive(Default)]
    struct Cleanup {
        children: Vec<Child>,
        dirs: Vec<PathBuf>,
        netns: Vec<String>,
        link: Option<String>,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
            for dir in self.dirs.iter().rev() {
                for _ in 0..50 {
                    if fs::remove_dir(dir).is_ok() || !dir.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if let Some(link) = &self.link {
                let _ = ip(&["link", "del", link]);
            }
            for ns in &self.netns {
                let _ = ip(&["netns", "del", ns]);
            }
        }
    }

    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("ip {args:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn must_run() -> bool {
        std::env::var("CI").is_ok_and(|v| v == "true")
    }

    fn is_root() -> bool {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
            })
            .unwrap_or(false)
    }

    fn netns_inode(pid: u32) -> Option<u64> {
        fs::metadata(format!("/proc/{pid}/ns/net"))
            .ok()
            .map(|m| m.ino())
    }

    /// A 64-hex container id unique to this run.
    fn container_id(salt: u64) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        format!("{nanos:032x}{:016x}{salt:016x}", std::process::id())
    }

    /// Creates `docker/<id>` in each v1 controller and moves `pid` into it.
    fn fake_docker_cgroup(cleanup: &mut Cleanup, id: &str, pid: u32) {
        for dir in cgroup_v1::docker_cgroups(&CONTROLLERS, id, &mut cleanup.dirs) {
            fs::write(dir.join("cgroup.procs"), pid.to_string()).expect("move pid into cgroup");
        }
    }

    /// Starts `sleep secs` in the namespace `ns` (killed by `cleanup`) and returns its pid
    /// once it is in that namespace.
    fn sleeper_in(cleanup: &mut Cleanup, ns: &str, secs: u32) -> u32 {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "sleep", &secs.to_string()])
            .spawn()
            .expect("spawn sleeper in the netns");
        let pid = child.id();
        cleanup.children.push(child);
        // pid 1's namespace may be unreadable (no CAP_SYS_PTRACE over it); ours is the host's.
        let host_ns = netns_inode(1)
            .or_else(|| netns_inode(std::process::id()))
            .expect("host netns inode");
        let mut entered = false;
        for _ in 0..200 {
            if netns_inode(pid).is_some_and(|i| i != host_ns) {
                entered = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(entered, "the sleeper entered the test namespace");
        pid
    }

    /// Discovery over the host's cgroup v1 tree, as the daemon's.
    fn host_discovery() -> Arc<Discovery> {
        Arc::new(Discovery::new(DiscoveryOptions {
            root: PathBuf::from(CGROUP_ROOT),
            refresh_interval: Duration::from_secs(60),
            docker_root: None,
            ..DiscoveryOptions::default()
        }))
    }

    fn sample_of<'a>(samples: &'a [Sample], id: &str, device: Option<&str>) -> &'a Sample {
        samples
            .iter()
            .find(|s| {
                s.labels["container_id"] == id
                    && s.labels.get("device").map(String::as_str) == device
            })
            .unwrap_or_else(|| panic!("no sample for {id} {device:?} in {samples:#?}"))
    }

    fn int(sample: &Sample, field: &str) -> i64 {
        match sample.fields.get(field) {
            Some(Value::Int(v)) => *v,
            other => panic!("{field}: {other:?}"),
        }
    }

    #[test]
    fn container_netns_counters_show_the_veth_traffic() {
        let Some(_serial) = host_ready() else {
            return;
        };
        let tag = std::process::id() % 1_000_000;
        let ns = format!("huatuo-test-{tag}");
        let (host_if, cont_if) = (format!("htv{tag}h"), format!("htv{tag}c"));
        let subnet = 16 + tag % 200;
        let (host_ip, cont_ip) = (format!("10.231.{subnet}.1"), format!("10.231.{subnet}.2"));
        let mut cleanup = Cleanup::default();

        ip(&["netns", "add", &ns]).expect("netns add");
        cleanup.netns.push(ns.clone());
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &cont_if,
        ])
        .expect("veth add");
        cleanup.link = Some(host_if.clone());
        ip(&["link", "set", &cont_if, "netns", &ns]).expect("veth into netns");
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]).expect("host addr");
        ip(&["link", "set", &host_if, "up"]).expect("host link up");
        in_ns(
            &ns,
            &["addr", "add", &format!("{cont_ip}/30"), "dev", &cont_if],
        )
        .expect("ns addr");
        in_ns(&ns, &["link", "set", &cont_if, "up"]).expect("ns link up");
        in_ns(&ns, &["link", "set", "lo", "up"]).expect("ns lo up");

        let netns_pid = sleeper_in(&mut cleanup, &ns, 30);
        let host_child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleeper in the host netns");
        let host_pid = host_child.id();
        cleanup.children.push(host_child);

        let id = container_id(1);
        let host_net_id = container_id(2);
        fake_docker_cgroup(&mut cleanup, &id, netns_pid);
        fake_docker_cgroup(&mut cleanup, &host_net_id, host_pid);

        let discovery = host_discovery();
        let mut net_dev = NetnsReader::new(NetKind::NetDev, discovery.clone(), "/proc");
        let mut netstat = NetnsReader::new(NetKind::Netstat, discovery.clone(), "/proc");
        let mut arp = NetnsReader::new(NetKind::Arp, discovery, "/proc");

        let before = net_dev.read(1).expect("read net_dev");
        let rx_packets0 = int(sample_of(&before, &id, Some(&cont_if)), "receive_packets");
        let rx_bytes0 = int(sample_of(&before, &id, Some(&cont_if)), "receive_bytes");
        sample_of(&before, &id, Some("lo"));
        assert!(
            before
                .iter()
                .all(|s| s.labels["container_id"] != host_net_id),
            "the host-network container has no samples"
        );
        assert!(net_dev.stats().host_network_skipped >= 1);
        let no_ports0 = int(
            sample_of(&netstat.read(1).expect("netstat"), &id, None),
            "Udp_NoPorts",
        );

        let socket = UdpSocket::bind((host_ip.as_str(), 0)).expect("bind on the host veth");
        for _ in 0..DATAGRAMS {
            socket
                .send_to(&[0x5a; PAYLOAD], (cont_ip.as_str(), 9))
                .expect("send a datagram to the container");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(200));

        let after = net_dev.read(2).expect("read net_dev again");
        let eth = sample_of(&after, &id, Some(&cont_if));
        let rx_packets = int(eth, "receive_packets") - rx_packets0;
        let rx_bytes = int(eth, "receive_bytes") - rx_bytes0;
        assert!(
            rx_packets >= DATAGRAMS,
            "{cont_if} received {rx_packets} packets, sent {DATAGRAMS}"
        );
        // Ethernet + IPv4 + UDP headers around each payload.
        let min_bytes = DATAGRAMS * (PAYLOAD as i64 + 14 + 20 + 8);
        assert!(
            rx_bytes >= min_bytes,
            "received {rx_bytes} bytes, expected >= {min_bytes}"
        );
        assert!(
            int(eth, "transmit_packets") >= 1,
            "ARP reply and ICMP errors went out"
        );

        let no_ports = int(
            sample_of(&netstat.read(2).expect("netstat"), &id, None),
            "Udp_NoPorts",
        );
        assert!(
            no_ports - no_ports0 >= DATAGRAMS,
            "the container's namespace counted the datagrams to a closed port: {no_ports0} -> {no_ports}"
        );
        let arp_samples = arp.read(2).expect("arp");
        assert!(
            int(sample_of(&arp_samples, &id, None), "entries") >= 1,
            "the container resolved or learned the host side's address"
        );
        assert_eq!(net_dev.stats().errors, 0);
    }

    /// The lock on the host state shared by the real tests, when this host can run them
    /// (`None` after a SKIPPED message otherwise; a failure under CI=true). Hold it until
    /// after the test's `Cleanup` is dropped: declare it first, it is dropped last.
    fn host_ready() -> Option<MutexGuard<'static, ()>> {
        can_run().then(|| HOST_STATE.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether this host can run the real tests; panics under CI=true when it cannot.
    fn can_run() -> bool {
        let v1 = PathBuf::from(CGROUP_ROOT)
            .join("cpu/cgroup.procs")
            .is_file();
        let has_ip = Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if is_root() && v1 && has_ip {
            return true;
        }
        assert!(
            !must_run(),
            "CI=true but not root on a cgroup v1 host with ip(8)"
        );
        eprintln!("SKIPPED: needs root, cgroup v1 cpu/cpuacct/memory and ip(8)");
        false
    }

    /// Runs `args` in the namespace `ns` (best effort).
    fn in_ns(ns: &str, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// The samples of container `id`, by device.
    fn devices_of(samples: &[Sample], id: &str) -> BTreeMap<String, Sample> {
        samples
            .iter()
            .filter(|s| s.labels["container_id"] == id)
            .map(|s| (s.labels["device"].clone(), s.clone()))
            .collect()
    }

    /// Reads procfs, netlink, procfs until nothing moved between the two procfs reads (at
    /// most 20 tries): the netlink read must then equal procfs exactly. Every try checks
    /// the same devices and labels, every counter between the two procfs values.
    fn netlink_equals_procfs(
        procfs: &mut NetnsReader,
        netlink: &mut dyn Reader,
        id: &str,
        devices: &[&str],
    ) -> BTreeMap<String, Sample> {
        for _ in 0..20 {
            let before = devices_of(&procfs.read(1).expect("procfs"), id);
            let through = devices_of(&netlink.read(1).expect("netlink"), id);
            let after = devices_of(&procfs.read(1).expect("procfs"), id);
            assert_eq!(
                through.keys().map(String::as_str).collect::<Vec<_>>(),
                devices,
                "netlink devices of the container"
            );
            assert_eq!(
                before.keys().collect::<Vec<_>>(),
                through.keys().collect::<Vec<_>>(),
                "procfs and netlink list the same devices"
            );
            for (device, n) in &through {
                let (b, a) = (&before[device], &after[device]);
                assert_eq!(n.labels, b.labels, "{device}: same labels");
                assert_eq!(n.source, "container.net_dev");
                assert_eq!(
                    n.fields.keys().collect::<Vec<_>>(),
                    b.fields.keys().collect::<Vec<_>>(),
                    "{device}: same fields"
                );
                for field in n.fields.keys() {
                    let (lo, v, hi) = (int(b, field), int(n, field), int(a, field));
                    assert!(lo <= v && v <= hi, "{device} {field}: {lo} <= {v} <= {hi}");
                }
            }
            let quiet = before
                .iter()
                .all(|(device, b)| b.fields == after[device].fields);
            if quiet {
                for (device, n) in &through {
                    assert_eq!(
                        n.fields, before[device].fields,
                        "{device}: netlink equals /proc/<pid>/net/dev"
                    );
                }
                return through;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the namespace never stayed quiet between two procfs reads");
    }

    #[test]
    fn container_net_dev_through_netlink_equals_procfs_and_moves_with_traffic() {
        let Some(_serial) = host_ready() else {
            return;
        };
        // Two namespaces of ours joined by a veth pair: the container's and its peer's.
        // Nothing is created or addressed in the host's namespace.
        let tag = std::process::id() % 100_000;
        let (ns, peer_ns) = (format!("htnl-{tag}c"), format!("htnl-{tag}p"));
        let (cont_if, peer_if) = (format!("htn{tag}c"), format!("htn{tag}p"));
        let subnet = 16 + tag % 200;
        let (peer_ip, cont_ip) = (format!("10.232.{subnet}.1"), format!("10.232.{subnet}.2"));
        let mut cleanup = Cleanup::default();
        for name in [&ns, &peer_ns] {
            ip(&["netns", "add", name]).expect("netns add");
            cleanup.netns.push(name.clone());
            // Quiet namespaces: no IPv6 autoconfiguration chatter on the new links.
            let _ = Command::new("ip")
                .args(["netns", "exec", name.as_str(), "sh", "-c"])
                .arg("echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
                .status();
        }
        in_ns(
            &ns,
            &[
                "link", "add", &cont_if, "type", "veth", "peer", "name", &peer_if, "netns",
                &peer_ns,
            ],
        )
        .expect("veth between the namespaces");
        in_ns(
            &ns,
            &["addr", "add", &format!("{cont_ip}/30"), "dev", &cont_if],
        )
        .expect("addr");
        in_ns(
            &peer_ns,
            &["addr", "add", &format!("{peer_ip}/30"), "dev", &peer_if],
        )
        .expect("peer addr");
        for (name, link) in [
            (&ns, &cont_if),
            (&ns, &"lo".to_string()),
            (&peer_ns, &peer_if),
        ] {
            in_ns(name, &["link", "set", link, "up"]).expect("link up");
        }

        let pid = sleeper_in(&mut cleanup, &ns, 60);
        let id = container_id(3);
        fake_docker_cgroup(&mut cleanup, &id, pid);

        let discovery = host_discovery();
        let mut procfs = NetnsReader::new(NetKind::NetDev, discovery.clone(), "/proc");
        // What the daemon builds when EnableNetlink is set.
        let mut netlink = cgroup_readers_with(
            discovery.clone(),
            ReaderOptions {
                net_dev_via: NetDevVia::Netlink,
                ..ReaderOptions::default()
            },
        )
        .into_iter()
        .find(|r| r.schema().name == "container.net_dev")
        .expect("container.net_dev registered");
        let mut devices = vec![cont_if.as_str(), "lo"];
        devices.sort_unstable();

        let before = netlink_equals_procfs(&mut procfs, netlink.as_mut(), &id, &devices);

        // Traffic made inside the namespaces: the container sends to its peer and to its own
        // loopback, the peer sends to the container; every datagram is received.
        let netns_file = |name: &str| PathBuf::from("/run/netns").join(name);
        let udp = |name: &str, addr: String| {
            huatuo_sources::netns::run_in(&netns_file(name), move || {
                let socket = UdpSocket::bind((addr.as_str(), 0)).map_err(|e| e.to_string())?;
                socket
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .map_err(|e| e.to_string())?;
                Ok(socket)
            })
            .expect("a UDP socket inside the namespace")
        };
        let cont = udp(&ns, cont_ip.clone());
        let cont_lo = udp(&ns, "127.0.0.1".to_string());
        let peer = udp(&peer_ns, peer_ip.clone());
        let mut buf = [0u8; 2048];
        for (from, to) in [(&cont, &peer), (&peer, &cont), (&cont_lo, &cont_lo)] {
            let target = to.local_addr().expect("bound address");
            for _ in 0..DATAGRAMS {
                from.send_to(&[0x5a; PAYLOAD], target).expect("send");
                let (n, _) = to.recv_from(&mut buf).expect("the datagram arrives");
                assert_eq!(n, PAYLOAD);
            }
        }

        let after = netlink_equals_procfs(&mut procfs, netlink.as_mut(), &id, &devices);
        let delta =
            |device: &str, field: &str| int(&after[device], field) - int(&before[device], field);
        // Ethernet + IPv4 + UDP headers around each payload on the veth; lo has no FCS
        // either, at least IPv4 + UDP.
        let veth_bytes = DATAGRAMS * (PAYLOAD as i64 + 14 + 20 + 8);
        let lo_bytes = DATAGRAMS * (PAYLOAD as i64 + 20 + 8);
        for (device, field, at_least) in [
            (cont_if.as_str(), "transmit_packets", DATAGRAMS),
            (cont_if.as_str(), "transmit_bytes", veth_bytes),
            (cont_if.as_str(), "receive_packets", DATAGRAMS),
            (cont_if.as_str(), "receive_bytes", veth_bytes),
            ("lo", "transmit_packets", DATAGRAMS),
            ("lo", "receive_packets", DATAGRAMS),
            ("lo", "receive_bytes", lo_bytes),
        ] {
            let moved = delta(device, field);
            assert!(
                moved >= at_least,
                "{device} {field} moved by {moved} through netlink, expected >= {at_least}"
            );
        }
        assert_eq!(procfs.stats().errors, 0);
    }
}
