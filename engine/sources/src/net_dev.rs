//! `proc.net_dev`: per-interface counters from `<net>/dev` (host or a process's netns), or
//! the same counters from rtnetlink (RTM_GETLINK, IFLA_STATS64) when
//! `MetricCollector.NetdevStats.EnableNetlink` is set ([`NetDevVia::Netlink`]).

use crate::common::{int, polled, SampleBuilder};
use crate::file_reader::FileReader;
use crate::netlink::link::{self, LinkInfo, NetlinkTable, TableReader};
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Sample;
use procfs::net::InterfaceDeviceStatus;
use procfs::FromRead;
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "proc.net_dev";

/// Counters of a device, in the column order of `/proc/net/dev`.
pub const FIELDS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// The schema of `proc.net_dev`.
pub fn schema() -> SourceSchema {
    let fields = FIELDS
        .iter()
        .map(|name| {
            let dim = if name.ends_with("_bytes") {
                Dim::Bytes
            } else {
                Dim::Count
            };
            int(
                name,
                dim,
                "a /proc/net/dev counter (or its IFLA_STATS64 sum)",
            )
        })
        .collect();
    polled(
        NAME,
        "network interface counters of a network namespace: /proc/net/dev, or RTM_GETLINK \
         IFLA_STATS64 summed as /proc/net/dev prints them when \
         MetricCollector.NetdevStats.EnableNetlink is set",
        &["device"],
        fields,
    )
}

/// Parses `/proc/net/dev`; samples are sorted by device.
pub fn parse(text: &str, now_ns: i64) -> Result<Vec<Sample>, String> {
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(first), Some(second)) if first.contains('|') && second.contains('|') => {}
        _ => return Err("expected the two `Inter-|` header lines".to_string()),
    }
    let devices = InterfaceDeviceStatus::from_read(text.as_bytes()).map_err(|e| e.to_string())?;
    let mut devices: Vec<_> = devices.0.into_values().collect();
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(devices
        .into_iter()
        .map(|d| {
            let values = [
                d.recv_bytes,
                d.recv_packets,
                d.recv_errs,
                d.recv_drop,
                d.recv_fifo,
                d.recv_frame,
                d.recv_compressed,
                d.recv_multicast,
                d.sent_bytes,
                d.sent_packets,
                d.sent_errs,
                d.sent_drop,
                d.sent_fifo,
                d.sent_colls,
                d.sent_carrier,
                d.sent_compressed,
            ];
            FIELDS
                .iter()
                .zip(values)
                .fold(SampleBuilder::new().label("device", d.name), |b, (n, v)| {
                    b.uint(n, v)
                })
                .build(NAME, now_ns)
        })
        .collect())
}

/// A reader of `<net>/dev`, where `net` is `/proc/net` or `/proc/<pid>/net`.
pub fn reader(net: &Path) -> FileReader {
    FileReader::single(schema(), net.join("dev"), parse)
}

/// How a namespace's device counters are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetDevVia {
    /// `<net>/dev`: `/proc/net/dev`, or `/proc/<pid>/net/dev` for another namespace.
    #[default]
    Procfs,
    /// RTM_GETLINK in the namespace (entered through `/proc/<pid>/ns/net` for another one),
    /// IFLA_STATS64 summed as `/proc/net/dev` prints them
    /// ([`link::proc_net_dev_counters`]).
    Netlink,
}

impl NetDevVia {
    /// The method `MetricCollector.NetdevStats.EnableNetlink` selects.
    pub fn from_enable_netlink(enable_netlink: bool) -> Self {
        if enable_netlink {
            NetDevVia::Netlink
        } else {
            NetDevVia::Procfs
        }
    }
}

/// `proc.net_dev` samples of a link dump, sorted by device like [`parse`]; links the kernel
/// sent without IFLA_STATS64 (or recorded without counters) have no sample.
pub fn from_links(links: &[LinkInfo], now_ns: i64) -> Vec<Sample> {
    let mut links: Vec<&LinkInfo> = links
        .iter()
        .filter(|l| l.counters.len() == FIELDS.len())
        .collect();
    links.sort_by(|a, b| a.ifname.cmp(&b.ifname));
    links
        .into_iter()
        .map(|l| {
            FIELDS
                .iter()
                .zip(&l.counters)
                .fold(
                    SampleBuilder::new().label("device", l.ifname.clone()),
                    |b, (n, v)| b.uint(n, *v),
                )
                .build(NAME, now_ns)
        })
        .collect()
}

/// The link table read as `proc.net_dev`: same schema, labels and fields as the procfs path.
pub struct NetDevLinks;

impl NetlinkTable for NetDevLinks {
    type Row = LinkInfo;
    const NAME: &'static str = NAME;
    const REQUEST: &'static str = "RTM_GETLINK";
    fn schema() -> SourceSchema {
        schema()
    }
    fn dump(netns: Option<&Path>) -> Result<Vec<LinkInfo>, String> {
        link::dump_live_in(netns)
    }
    fn samples(rows: &[LinkInfo], now_ns: i64) -> Vec<Sample> {
        from_links(rows, now_ns)
    }
}

/// `proc.net_dev` over netlink: live, in a namespace, or a recorded `link.json`.
pub type NetlinkNetDevReader = TableReader<NetDevLinks>;
