//! Network device counters over the fixture node with and without `MetricCollector.NetdevStats.EnableNetlink`:
//! the same rules (`netdev`, `netdev_container`) give the same families and labels, with the
//! values of `proc/net/dev` and `proc/3001/net/dev` (procfs) or of the recorded link dumps
//! `netlink/link.json` and `netlink/netns/3001/link.json` (netlink). pid 3001 is the init
//! pid of container `bbbb…` (cgroup v2 tree), in a namespace of its own (`proc/3001/ns/net`
//! is not `proc/1/ns/net`). The two sources hold different numbers on purpose, so each line
//! says which path produced it.

mod scrape_common;

use scrape_common::*;
use std::time::Duration;

/// The container labels of `bbbb…` (labels are rendered sorted: these, `device`, `host`...).
const B: &str = r#"container_host="",container_hostnamespace="",container_id="bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",container_level="",container_name="bbbbbbbbbbbb",container_type="normal""#;
const HOST: &str = r#"host="fixture-host",region="""#;

/// The rules' families, in `net_dev::FIELDS` order.
const FAMILIES: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errors",
    "receive_dropped",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errors",
    "transmit_dropped",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

fn config(enable_netlink: bool) -> String {
    format!(
        r#"
[Storage.ES]
    Address = ""
[MetricCollector.NetdevStats]
    EnableNetlink = {enable_netlink}
    DeviceExcluded = "^lo$"
[Pod]
    KubeletReadOnlyPort = 0
    KubeletAuthorizedPort = 0
"#
    )
}

/// Every family of one device: `netdev[_container]_<family>_total{labels} value`, labels
/// sorted as rendered.
fn lines(container: bool, device: &str, values: [u64; 16]) -> Vec<String> {
    let (prefix, labels) = if container {
        (
            "netdev_container",
            format!(r#"{B},device="{device}",{HOST}"#),
        )
    } else {
        ("netdev", format!(r#"device="{device}",{HOST}"#))
    };
    FAMILIES
        .iter()
        .zip(values)
        .map(|(family, value)| format!("huatuo_bamai_{prefix}_{family}_total{{{labels}}} {value}"))
        .collect()
}

/// `(container, device, procfs values, netlink values)`.
type Device = (bool, &'static str, Option<[u64; 16]>, Option<[u64; 16]>);

/// Each device's values in proc/net/dev and proc/3001/net/dev (procfs), and in
/// netlink/link.json and netlink/netns/3001/link.json (netlink; eth1 is in link.json only).
const DEVICES: [Device; 3] = [
    (
        false,
        "eth0",
        Some([
            1000000, 2000, 1, 2, 0, 0, 0, 3, 500000, 1500, 0, 4, 0, 0, 0, 0,
        ]),
        Some([
            1000100, 2001, 1, 2, 0, 0, 0, 3, 500100, 1501, 0, 4, 0, 0, 0, 0,
        ]),
    ),
    (
        false,
        "eth1",
        None,
        Some([4200, 42, 0, 0, 0, 0, 0, 0, 2100, 21, 0, 0, 0, 0, 0, 0]),
    ),
    (
        true,
        "eth0",
        Some([70000, 700, 0, 1, 0, 0, 0, 0, 60000, 600, 0, 2, 0, 0, 0, 0]),
        Some([70070, 701, 0, 1, 0, 0, 0, 0, 60060, 601, 0, 2, 0, 0, 0, 0]),
    ),
];

/// The lines of every device of `DEVICES` that the netlink (or the procfs) path reads.
fn expected(netlink: bool) -> Vec<String> {
    DEVICES
        .iter()
        .flat_map(|(container, device, procfs, by_netlink)| {
            let values = if netlink { by_netlink } else { procfs };
            values
                .map(|values| lines(*container, device, values))
                .unwrap_or_default()
        })
        .collect()
}

/// Runs the agent over the fixture node and returns the first scrape holding every `wanted`
/// line (or the last one).
fn scrape(enable_netlink: bool, wanted: &[String]) -> String {
    let config = TempConfig::new(
        &format!("metrics-netdev-{enable_netlink}"),
        &config(enable_netlink),
    );
    let port = free_port();
    let _agent = start_fixture_agent(port, &config.path, "cgroup", 30, &[]);
    scrape_until(port, Duration::from_secs(25), |body| {
        missing_lines(body, wanted).is_empty()
    })
}

/// The `netdev*` series of a scrape (no HELP/TYPE lines), without the other collectors
/// whose families share the prefix (`netdev_hw_*`, `netdev_qdisc_*`).
fn netdev_series(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| {
            l.starts_with("huatuo_bamai_netdev_")
                && !l.starts_with("huatuo_bamai_netdev_hw")
                && !l.starts_with("huatuo_bamai_netdev_qdisc")
        })
        .collect()
}

fn check(enable_netlink: bool, wanted: Vec<String>, other: Vec<String>) {
    let body = scrape(enable_netlink, &wanted);
    let missing = missing_lines(&body, &wanted);
    assert!(missing.is_empty(), "missing: {missing:#?}\n---\n{body}");
    // Exactly these series: the other path's values, lo (DeviceExcluded) and devices the
    // other path lists are absent.
    let mut series = netdev_series(&body);
    series.sort_unstable();
    let mut expected: Vec<&str> = wanted.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(series, expected, "\n---\n{body}");
    for line in &other {
        if !wanted.contains(line) {
            assert!(!body.contains(line.as_str()), "`{line}` exported");
        }
    }
}

#[test]
fn netdev_families_read_procfs_without_enable_netlink() {
    check(false, expected(false), expected(true));
}

#[test]
fn netdev_families_read_netlink_with_enable_netlink() {
    check(true, expected(true), expected(false));
}
