//! The per-container network readers (`container.net_dev`, `container.netstat`,
//! `container.arp`) on the fixture tree `fixtures/net`:
//!
//! | container | init pid | network namespace |
//! |---|---|---|
//! | a… | 4001 | its own (`proc/4001/net/*`) |
//! | b… | 4002 | the host's (`ns/net` links to `proc/1/ns/net`): skipped |
//! | c… | 4003 | a's (`ns/net` links to `proc/4001/ns/net`, no `net/` of its own) |
//! | d… | 4004 | process gone (no `proc/4004`): vanished |
//! | e… | none | empty `cgroup.procs`: no pid |
//! | f… | 4005 | its own, with a malformed `net/dev` and no netstat/arp: error |

use huatuo_containers::readers::net::{NetKind, NetnsReader, NetnsStats};
use huatuo_containers::{cgroup_readers_with, schemas, Discovery, DiscoveryOptions, ReaderOptions};
use huatuo_dsl::source::Reader;
use huatuo_dsl::value::{Sample, Value};
use huatuo_sources::NetnsView;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

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
    for name in ["container.net_dev", "container.netstat", "container.arp"] {
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
        ["container.net_dev", "container.netstat", "container.arp"]
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
fn unidentifiable_host_namespace_is_an_error_naming_the_file() {
    // A proc root without `1/ns/net`: host-network containers cannot be told apart.
    let mut r = NetnsReader::new(NetKind::NetDev, discovery(), fixture("cgroup"));
    let err = r.read(0).expect_err("no host namespace");
    assert_eq!(err.source_name, "container.net_dev");
    assert!(err.path.ends_with("cgroup/1/ns/net"), "{}", err.path);
    assert!(err.message.contains("host network namespace"), "{err}");
}
