//! Netlink sources on recorded JSON and recorded DCB messages, and live on this machine.

use huatuo_dsl::source::Reader;
use huatuo_dsl::value::{Sample, Value};
use huatuo_sources::net_dev::{self, NetDevVia};
use huatuo_sources::netlink::{dcb, link, qdisc};
use huatuo_sources::{NetnsView, ReaderConfig, Roots};
use std::path::{Path, PathBuf};
use std::time::Duration;

const NOW: i64 = 1_700_000_000_000_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/netlink")
        .join(name)
}

fn sys_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sys")
}

fn int(sample: &Sample, field: &str) -> i64 {
    match sample.fields.get(field) {
        Some(Value::Int(v)) => *v,
        other => panic!("{field}: {other:?}"),
    }
}

fn find<'a>(samples: &'a [Sample], labels: &[(&str, &str)]) -> &'a Sample {
    samples
        .iter()
        .find(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {labels:?}"))
}

fn hex_fixture(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn qdisc_recorded_sums_children_per_device_and_kind() {
    let mut reader = qdisc::QdiscReader::recorded(fixture("qdisc.json"));
    let samples = reader.read(NOW).unwrap();
    assert_eq!(samples.len(), 4);
    let eth0 = find(&samples, &[("device", "eth0"), ("kind", "pfifo_fast")]);
    assert_eq!(int(eth0, "bytes"), 1182056);
    assert_eq!(int(eth0, "packets"), 13033);
    let codel = find(&samples, &[("device", "eth1"), ("kind", "fq_codel")]);
    assert_eq!(int(codel, "backlog"), 300);
    assert_eq!(int(codel, "qlen"), 2);
    assert_eq!(int(codel, "overlimits"), 7);
    assert_eq!(int(codel, "requeues"), 1);
    assert_eq!(int(codel, "drops"), 5);
    assert_eq!(int(codel, "bytes"), 90000);
    assert_eq!(int(codel, "packets"), 700);
    let mq = find(&samples, &[("device", "eth1"), ("kind", "mq")]);
    assert_eq!(int(mq, "drops"), 5);
}

#[test]
fn link_recorded_state_and_counters() {
    let samples = link::LinkReader::recorded(fixture("link.json"))
        .read(NOW)
        .unwrap();
    assert_eq!(samples.len(), 4);
    let eth0 = find(&samples, &[("device", "eth0")]);
    assert_eq!(int(eth0, "index"), 4);
    assert_eq!(int(eth0, "mtu"), 1400);
    assert_eq!(eth0.fields["oper_state"], Value::Str("UP".into()));
    assert_eq!(eth0.fields["mac"], Value::Str("02:fc:00:00:00:01".into()));
    assert_eq!(
        eth0.fields["linkstatus"],
        Value::Str("linkstatus_adminup, linkstatus_carrierup".into())
    );
    assert_eq!(int(eth0, "receive_bytes"), 238561780);
    assert_eq!(int(eth0, "receive_packets"), 15101);
    let ifb0 = find(&samples, &[("device", "ifb0")]);
    assert_eq!(ifb0.fields["oper_state"], Value::Str("DOWN".into()));
    // Recorded as the kernel reports it: ifb keeps IFLA_CARRIER=1 while admin down.
    assert_eq!(
        ifb0.fields["linkstatus"],
        Value::Str("linkstatus_admindown, linkstatus_carrierup".into())
    );
}

#[test]
fn stats64_summed_as_proc_net_dev_prints_them() {
    let mut s = netlink_packet_route::link::Stats64::default();
    // Distinct powers of two: every sum below names exactly which counters it holds.
    s.rx_bytes = 1;
    s.rx_packets = 2;
    s.rx_errors = 4;
    s.rx_dropped = 8;
    s.rx_missed_errors = 16;
    s.rx_fifo_errors = 32;
    s.rx_length_errors = 64;
    s.rx_over_errors = 128;
    s.rx_crc_errors = 256;
    s.rx_frame_errors = 512;
    s.rx_compressed = 1 << 10;
    s.multicast = 1 << 11;
    s.tx_bytes = 1 << 12;
    s.tx_packets = 1 << 13;
    s.tx_errors = 1 << 14;
    s.tx_dropped = 1 << 15;
    s.tx_fifo_errors = 1 << 16;
    s.collisions = 1 << 17;
    s.tx_carrier_errors = 1 << 18;
    s.tx_aborted_errors = 1 << 19;
    s.tx_window_errors = 1 << 20;
    s.tx_heartbeat_errors = 1 << 21;
    s.tx_compressed = 1 << 22;
    // In neither /proc/net/dev nor the sums.
    s.rx_nohandler = 1 << 23;
    s.rx_otherhost_dropped = 1 << 24;
    assert_eq!(
        link::proc_net_dev_counters(&s),
        [
            1,
            2,
            4,
            8 + 16,
            32,
            64 + 128 + 256 + 512,
            1 << 10,
            1 << 11,
            1 << 12,
            1 << 13,
            1 << 14,
            1 << 15,
            1 << 16,
            1 << 17,
            (1 << 18) + (1 << 19) + (1 << 20) + (1 << 21),
            1 << 22,
        ]
    );
    assert_eq!(link::COUNTERS, net_dev::FIELDS);
}

/// The proc.net_dev reader of `host_readers` for `config`.
fn host_net_dev(config: &ReaderConfig) -> Box<dyn Reader> {
    let roots = Roots::fixture(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    huatuo_sources::host_readers(&roots, config)
        .into_iter()
        .find(|r| r.schema().name == net_dev::NAME)
        .expect("proc.net_dev is registered")
}

#[test]
fn net_dev_via_netlink_reads_the_recorded_link_dump_as_proc_net_dev() {
    let recorded = Some(fixture(""));
    let mut netlink = host_net_dev(&ReaderConfig {
        netlink_recorded: recorded.clone(),
        net_dev_via: NetDevVia::Netlink,
        ..Default::default()
    });
    assert_eq!(netlink.schema(), net_dev::schema());
    let samples = netlink.read(NOW).expect("link.json");
    let devices: Vec<&str> = samples
        .iter()
        .map(|s| s.labels["device"].as_str())
        .collect();
    assert_eq!(
        devices,
        ["eth0", "ifb0", "ifb1", "lo"],
        "sorted like procfs"
    );
    let eth0 = &samples[0];
    assert_eq!(eth0.source, net_dev::NAME);
    assert_eq!(eth0.labels.len(), 1, "only `device`, like procfs");
    assert_eq!(
        eth0.fields.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut names = net_dev::FIELDS.to_vec();
            names.sort();
            names
        }
    );
    // link.json's eth0, not proc/net/dev's (213495487 bytes there).
    assert_eq!(int(eth0, "receive_bytes"), 238561780);
    assert_eq!(int(eth0, "receive_packets"), 15101);
    assert_eq!(int(eth0, "transmit_bytes"), 1177964);
    assert_eq!(int(eth0, "transmit_packets"), 12971);
    assert_eq!(int(&samples[3], "receive_packets"), 89);

    // Without EnableNetlink the same recorded directory does not change proc.net_dev.
    let mut procfs = host_net_dev(&ReaderConfig {
        netlink_recorded: recorded,
        ..Default::default()
    });
    let eth0 = &procfs.read(NOW).expect("proc/net/dev")[0];
    assert_eq!(int(eth0, "receive_bytes"), 213495487);
}

#[test]
fn net_dev_via_netlink_of_a_pid_reads_its_own_recorded_namespace() {
    let dir = fixture("");
    let view =
        NetnsView::for_pid_in(Path::new("/nonexistent"), 4001).with_netlink_recorded(Some(&dir));
    let err = view
        .net_dev_via(NetDevVia::Netlink)
        .read(NOW)
        .expect_err("no netns/4001 recording here");
    assert!(err.path.ends_with("netns/4001/link.json"), "{err}");
    assert_eq!(err.source_name, net_dev::NAME);
}

#[test]
fn live_net_dev_via_netlink_matches_procfs_in_the_agent_namespace() {
    let view = NetnsView::host(Path::new("/proc"));
    let mut procfs = view.net_dev_via(NetDevVia::Procfs);
    let mut netlink = view.net_dev_via(NetDevVia::Netlink);
    let by_device = |samples: Vec<Sample>| {
        samples
            .into_iter()
            .map(|s| (s.labels["device"].clone(), s.fields))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = by_device(procfs.read(NOW).expect("/proc/net/dev"));
    let through = by_device(netlink.read(NOW).expect("RTM_GETLINK"));
    let after = by_device(procfs.read(NOW).expect("/proc/net/dev"));
    // Tests beside this one add and delete veth pairs, so a link may come or go between
    // the reads: netlink must list every link both procfs reads saw, and none that
    // neither saw.
    for device in before.keys().filter(|d| after.contains_key(*d)) {
        assert!(
            through.contains_key(device),
            "{device} missing from RTM_GETLINK"
        );
    }
    for device in through.keys() {
        assert!(
            before.contains_key(device) || after.contains_key(device),
            "{device} from RTM_GETLINK is in neither /proc/net/dev read"
        );
    }
    assert!(through.contains_key("lo"));
    // Counters only grow: the netlink read sits between the two procfs reads.
    for (device, fields) in &through {
        if !(before.contains_key(device) && after.contains_key(device)) {
            continue;
        }
        for (name, value) in fields {
            let (Value::Int(lo), Value::Int(v), Value::Int(hi)) =
                (&before[device][name], value, &after[device][name])
            else {
                panic!("{device} {name} is not an integer");
            };
            assert!(lo <= v && v <= hi, "{device} {name}: {lo} <= {v} <= {hi}");
        }
    }
}

#[test]
fn link_events_recorded_baseline_then_change() {
    let stream = link::spawn_recorded_events(&fixture("link_events.json"), &sys_root()).unwrap();
    let first = stream.recv_timeout(Duration::from_secs(5)).unwrap();
    let second = stream.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(stream.recv_timeout(Duration::from_secs(5)).is_none());
    assert_eq!(first.source, link::EVENTS);
    assert_eq!(first.labels["device"], "eth0");
    assert_eq!(first.fields["start"], Value::Bool(true));
    assert_eq!(first.fields["driver"], Value::Str("virtio_net".into()));
    assert_eq!(first.fields["driver_version"], Value::Str(String::new()));
    assert_eq!(second.fields["start"], Value::Bool(false));
    assert_eq!(second.fields["driver_version"], Value::Str("1.0.0".into()));
    assert_eq!(
        second.fields["linkstatus"],
        Value::Str("linkstatus_admindown, linkstatus_carrierdown".into())
    );
    assert_eq!(stream.dropped(), 0);
    assert_eq!(stream.error(), None);
}

#[test]
fn dcb_reply_parsed_per_kernel_layout() {
    let reply = hex_fixture("dcb_ieee_reply.hex");
    let counters = dcb::parse_reply("eth1", &reply).unwrap().unwrap();
    assert_eq!(counters.sent, [0, 0, 0, 5, 0, 0, 0, 0]);
    assert_eq!(counters.received, [0, 0, 0, 42, 0, 0, 0, 7]);
    let unsupported = hex_fixture("dcb_eopnotsupp_reply.hex");
    assert_eq!(dcb::parse_reply("eth0", &unsupported).unwrap(), None);
    let truncated = &reply[..reply.len() - 20];
    assert!(dcb::parse_reply("eth1", truncated).is_err());
}

#[test]
fn dcb_request_encodes_ifname() {
    let request = dcb::encode_request("eth1", 7);
    assert_eq!(request.len(), 16 + 4 + 12);
    assert_eq!(u32::from_ne_bytes(request[0..4].try_into().unwrap()), 32);
    assert_eq!(u16::from_ne_bytes(request[4..6].try_into().unwrap()), 78);
    assert_eq!(request[17], 21, "DCB_CMD_IEEE_GET");
    assert_eq!(&request[24..29], b"eth1\0");
}

#[test]
fn dcb_recorded_per_device_and_prio() {
    let samples = dcb::DcbReader::recorded(fixture("dcb.json"))
        .read(NOW)
        .unwrap();
    assert_eq!(samples.len(), 8);
    let prio3 = find(&samples, &[("device", "eth1"), ("prio", "3")]);
    assert_eq!(int(prio3, "pfc_received"), 42);
    assert_eq!(int(prio3, "pfc_send"), 5);
    assert_eq!(int(find(&samples, &[("prio", "7")]), "pfc_received"), 7);
}

#[test]
fn recorded_file_missing_names_it() {
    let err = qdisc::QdiscReader::recorded(fixture("nope.json"))
        .read(NOW)
        .unwrap_err();
    assert!(err.path.ends_with("nope.json"));
    let err = link::LinkReader::recorded(fixture("dcb_ieee_reply.hex"))
        .read(NOW)
        .unwrap_err();
    assert!(err.path.ends_with("dcb_ieee_reply.hex"), "{err}");
}

#[test]
fn live_netlink_on_this_machine() {
    let links = link::LinkReader::live().read(NOW).expect("RTM_GETLINK");
    let lo = find(&links, &[("device", "lo")]);
    assert_eq!(int(lo, "index"), 1);
    let qdiscs = qdisc::QdiscReader::live().read(NOW).expect("RTM_GETQDISC");
    assert!(!qdiscs.is_empty(), "every up device has a root qdisc");
    // No DCB-capable device here: the live reader answers with nothing, not an error.
    let pfc = dcb::DcbReader::live(Vec::new())
        .read(NOW)
        .expect("RTM_GETDCB");
    // Asking a device by name that has no DCB answers with nothing as well.
    let named = dcb::DcbReader::live(vec!["lo".to_string()])
        .read(NOW)
        .expect("RTM_GETDCB lo");
    assert!(named.is_empty());
    assert!(pfc.iter().all(|s| s.labels.contains_key("prio")));
}

#[test]
fn live_link_events_start_with_a_baseline() {
    let stream = link::spawn_events(Path::new("/sys")).expect("RTNLGRP_LINK");
    let first = stream
        .recv_timeout(Duration::from_secs(5))
        .expect("baseline");
    assert_eq!(first.fields["start"], Value::Bool(true));
    assert!(first.labels.contains_key("device"));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Removes what an earlier, interrupted run may have left; failure is expected.
fn ip_cleanup(args: &[&str]) {
    let _ = std::process::Command::new("ip")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status();
}

/// Waits for a non-baseline event of `device` matching `check`.
fn wait_for(
    stream: &huatuo_sources::stream::SampleStream,
    device: &str,
    check: fn(&Sample) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(s) = stream.recv_timeout(Duration::from_millis(500)) {
            if s.labels["device"] == device && s.fields["start"] == Value::Bool(false) && check(&s)
            {
                return;
            }
        }
    }
    panic!("no matching event for {device}");
}

#[test]
fn live_link_events_see_a_new_and_a_deleted_link() {
    if !is_root() && std::env::var("CI").as_deref() != Ok("true") {
        println!("skipping: creating a veth pair needs root");
        return;
    }
    let stream = link::spawn_events(Path::new("/sys")).expect("RTNLGRP_LINK");
    ip_cleanup(&["link", "del", "htosrc0"]);
    assert!(ip(&[
        "link", "add", "htosrc0", "type", "veth", "peer", "name", "htosrc1"
    ]));
    wait_for(&stream, "htosrc0", |s| {
        s.fields["removed"] == Value::Bool(false)
    });
    assert!(ip(&["link", "del", "htosrc0"]));
    wait_for(&stream, "htosrc0", |s| {
        s.fields["removed"] == Value::Bool(true)
    });
}

#[test]
fn live_netlink_inside_another_network_namespace() {
    if !is_root() && std::env::var("CI").as_deref() != Ok("true") {
        println!("skipping: creating a network namespace needs root");
        return;
    }
    let ns = "htosrc-ns";
    ip_cleanup(&["netns", "del", ns]);
    assert!(ip(&["netns", "add", ns]));
    assert!(ip(&[
        "-n", ns, "link", "add", "htons0", "type", "veth", "peer", "name", "htons1"
    ]));
    assert!(ip(&["-n", ns, "link", "set", "htons0", "up"]));
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sleep", "30"])
        .spawn()
        .expect("spawn a process in the namespace");
    // Wait until the child has entered the namespace (`ip netns exec` does setns, then exec).
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let child_ns = format!("/proc/{}/ns/net", child.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(&child_ns).map_or(true, |l| l == own) {
        assert!(
            std::time::Instant::now() < deadline,
            "child never entered {ns}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let view = huatuo_sources::NetnsView::for_pid(child.id());
    let links = view.link().read(NOW);
    let qdiscs = view.qdisc().read(NOW);
    let net_dev = view.net_dev().read(NOW);
    let net_dev_netlink = view.net_dev_via(NetDevVia::Netlink).read(NOW);
    let _ = child.kill();
    let _ = child.wait();
    let _ = ip(&["netns", "del", ns]);

    let names = |samples: &[Sample]| {
        let mut n: Vec<String> = samples.iter().map(|s| s.labels["device"].clone()).collect();
        n.sort();
        n
    };
    let links = links.expect("RTM_GETLINK in the namespace");
    assert_eq!(names(&links), ["htons0", "htons1", "lo"]);
    let net_dev = net_dev.expect("/proc/<pid>/net/dev");
    assert_eq!(names(&net_dev), ["htons0", "htons1", "lo"]);
    let net_dev_netlink = net_dev_netlink.expect("proc.net_dev over RTM_GETLINK in the namespace");
    assert_eq!(names(&net_dev_netlink), ["htons0", "htons1", "lo"]);
    assert!(net_dev_netlink.iter().all(|s| s.source == "proc.net_dev"));
    let qdiscs = qdiscs.expect("RTM_GETQDISC in the namespace");
    assert!(qdiscs.iter().any(|s| s.labels["device"] == "htons0"));
    assert!(qdiscs.iter().all(|s| s.labels["device"] != "eth0"));
}
