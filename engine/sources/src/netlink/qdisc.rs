//! `netlink.qdisc`: queueing discipline statistics per (device, kind) from rtnetlink, or
//! from a recorded JSON file (a list of [`QdiscStats`]) on fixture trees.

use super::link::{self, NetlinkTable, TableReader};
use super::socket;
use crate::common::{int, polled, SampleBuilder};
use huatuo_dsl::catalog::SourceSchema;

use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Sample;
use netlink_packet_route::tc::{TcAttribute, TcMessage, TcStats2};
use netlink_packet_route::RouteNetlinkMessage;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Catalog name.
pub const NAME: &str = "netlink.qdisc";

/// The statistics of one qdisc, as read from netlink and as recorded in fixture JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QdiscStats {
    /// Interface name.
    pub device: String,
    /// Qdisc kind (`fq_codel`, `mq`, `noqueue`).
    pub kind: String,
    /// Bytes queued.
    pub backlog: u64,
    /// Packets queued.
    pub qlen: u64,
    /// Times the qdisc was over its limit.
    pub overlimits: u64,
    /// Packets requeued.
    pub requeues: u64,
    /// Packets dropped.
    pub drops: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Packets sent.
    pub packets: u64,
}

const FIELDS: [(&str, Dim, &str); 7] = [
    ("backlog", Dim::Bytes, "bytes currently queued"),
    ("qlen", Dim::Count, "packets currently queued"),
    ("overlimits", Dim::Count, "times over the limit"),
    (
        "requeues",
        Dim::Count,
        "packets dequeued, not sent, requeued",
    ),
    ("drops", Dim::Count, "packets dropped"),
    ("bytes", Dim::Bytes, "bytes sent"),
    ("packets", Dim::Count, "packets sent"),
];

/// The schema of `netlink.qdisc`.
pub fn schema() -> SourceSchema {
    polled(
        NAME,
        "qdisc statistics per device and kind (rtnetlink RTM_GETQDISC)",
        &["device", "kind"],
        FIELDS.iter().map(|(n, d, doc)| int(n, *d, doc)).collect(),
    )
}

/// Converts one RTM_NEWQDISC message; `names` maps interface indexes to names.
pub fn from_message(message: &TcMessage, names: &HashMap<u32, String>) -> QdiscStats {
    let index = u32::try_from(message.header.index).unwrap_or_default();
    let mut stats = QdiscStats {
        device: names
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("if{index}")),
        ..QdiscStats::default()
    };
    let mut have_stats2 = false;
    for attribute in &message.attributes {
        match attribute {
            TcAttribute::Kind(kind) => stats.kind = kind.clone(),
            TcAttribute::Stats2(list) => {
                have_stats2 = true;
                for item in list {
                    match item {
                        TcStats2::Basic(basic) => {
                            stats.bytes = basic.bytes;
                            stats.packets = basic.packets.into();
                        }
                        TcStats2::Queue(queue) => {
                            stats.qlen = queue.qlen.into();
                            stats.backlog = queue.backlog.into();
                            stats.drops = queue.drops.into();
                            stats.requeues = queue.requeues.into();
                            stats.overlimits = queue.overlimits.into();
                        }
                        _ => {}
                    }
                }
            }
            TcAttribute::Stats(old) if !have_stats2 => {
                stats.bytes = old.bytes;
                stats.packets = old.packets.into();
                stats.drops = old.drops.into();
                stats.overlimits = old.overlimits.into();
                stats.qlen = old.qlen.into();
            }
            _ => {}
        }
    }
    stats
}

/// Dumps every qdisc of the host through rtnetlink.
pub fn dump_live() -> Result<Vec<QdiscStats>, String> {
    dump_live_in(None)
}

/// Dumps every qdisc of the namespace at `netns` (the caller's when `None`).
pub fn dump_live_in(netns: Option<&Path>) -> Result<Vec<QdiscStats>, String> {
    let names = link::index_names(netns)?;
    let replies = socket::dump(
        netns,
        RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
    )?;
    Ok(replies
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewQueueDiscipline(tc) => Some(from_message(tc, &names)),
            _ => None,
        })
        .collect())
}

/// Sums qdiscs of the same (device, kind) (children of `mq`) into one sample each.
pub fn to_samples(stats: &[QdiscStats], now_ns: i64) -> Vec<Sample> {
    let mut sums: BTreeMap<(&str, &str), [u64; 7]> = BTreeMap::new();
    for q in stats {
        let values = [
            q.backlog,
            q.qlen,
            q.overlimits,
            q.requeues,
            q.drops,
            q.bytes,
            q.packets,
        ];
        let sum = sums.entry((&q.device, &q.kind)).or_default();
        for (total, value) in sum.iter_mut().zip(values) {
            *total = total.saturating_add(value);
        }
    }
    sums.into_iter()
        .map(|((device, kind), values)| {
            FIELDS
                .iter()
                .zip(values)
                .fold(
                    SampleBuilder::new()
                        .label("device", device)
                        .label("kind", kind),
                    |b, ((name, _, _), v)| b.uint(name, v),
                )
                .build(NAME, now_ns)
        })
        .collect()
}

/// The qdisc table (`netlink.qdisc`).
pub struct Qdiscs;

impl NetlinkTable for Qdiscs {
    type Row = QdiscStats;
    const NAME: &'static str = NAME;
    const REQUEST: &'static str = "RTM_GETQDISC";
    fn schema() -> SourceSchema {
        schema()
    }
    fn dump(netns: Option<&Path>) -> Result<Vec<QdiscStats>, String> {
        dump_live_in(netns)
    }
    fn samples(rows: &[QdiscStats], now_ns: i64) -> Vec<Sample> {
        to_samples(rows, now_ns)
    }
}

/// Reads qdisc statistics live, or from a recorded JSON list of [`QdiscStats`].
pub type QdiscReader = TableReader<Qdiscs>;
