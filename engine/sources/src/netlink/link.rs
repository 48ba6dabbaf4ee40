//! `netlink.link`: link state and counters per device from rtnetlink (or recorded JSON),
//! and `netlink.link_events`: a stream of link changes (RTNLGRP_LINK) after a baseline
//! flagged `start: true`.

use super::socket;
use crate::common::{field, int, polled, read_error, read_text, SampleBuilder};
use crate::stream::{SampleStream, Sink, DEFAULT_CAPACITY};
use huatuo_dsl::catalog::{FieldType, SourceMode, SourceSchema};
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::{Sample, Value};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, Stats64};
use netlink_packet_route::RouteNetlinkMessage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Catalog name of the polled link source.
pub const NAME: &str = "netlink.link";
/// Catalog name of the link change stream.
pub const EVENTS: &str = "netlink.link_events";

/// rtnetlink multicast group of link changes (`RTNLGRP_LINK`).
const RTNLGRP_LINK: u32 = 1;

/// Counters of a link, named and summed as in `proc.net_dev` ([`proc_net_dev_counters`]).
pub const COUNTERS: [&str; 16] = crate::net_dev::FIELDS;

/// IFLA_STATS64 as `/proc/net/dev` prints it, in [`COUNTERS`] order. Both come from the
/// same `dev_get_stats()`; the kernel's `dev_seq_printf_stats()` (net/core/net-procfs.c)
/// folds some counters together, and so does this:
/// - `receive_drop` = `rx_dropped + rx_missed_errors`;
/// - `receive_frame` = `rx_length_errors + rx_over_errors + rx_crc_errors + rx_frame_errors`;
/// - `transmit_carrier` = `tx_carrier_errors + tx_aborted_errors + tx_window_errors +
///   tx_heartbeat_errors`;
/// - `receive_fifo`, `transmit_fifo` are `rx_fifo_errors`, `tx_fifo_errors`, `transmit_colls`
///   is `collisions`, `receive_multicast` is `multicast`; the rest map by name.
///
/// `rx_nohandler` and `rx_otherhost_dropped` are in neither `/proc/net/dev` nor here.
pub fn proc_net_dev_counters(s: &Stats64) -> [u64; 16] {
    [
        s.rx_bytes,
        s.rx_packets,
        s.rx_errors,
        s.rx_dropped.wrapping_add(s.rx_missed_errors),
        s.rx_fifo_errors,
        s.rx_length_errors
            .wrapping_add(s.rx_over_errors)
            .wrapping_add(s.rx_crc_errors)
            .wrapping_add(s.rx_frame_errors),
        s.rx_compressed,
        s.multicast,
        s.tx_bytes,
        s.tx_packets,
        s.tx_errors,
        s.tx_dropped,
        s.tx_fifo_errors,
        s.collisions,
        s.tx_carrier_errors
            .wrapping_add(s.tx_aborted_errors)
            .wrapping_add(s.tx_window_errors)
            .wrapping_add(s.tx_heartbeat_errors),
        s.tx_compressed,
    ]
}

/// One link as read from netlink and as recorded in fixture JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Interface name.
    pub ifname: String,
    /// Interface index.
    pub index: u32,
    /// RFC 2863 operational state (`UP`, `DOWN`, `UNKNOWN`).
    pub oper_state: String,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Carrier present.
    pub carrier: bool,
    /// Hardware address, `aa:bb:..`.
    pub mac: String,
    /// MTU in bytes.
    pub mtu: u32,
    /// Counters in [`COUNTERS`] order, empty when the kernel sent none.
    #[serde(default)]
    pub counters: Vec<u64>,
}

impl LinkInfo {
    /// HUATUO's link status words, lower case as its current records and its dashboards'
    /// queries (`tracer_data.linkstatus:*admindown*`) have them:
    /// `linkstatus_adminup, linkstatus_carrierdown`.
    pub fn linkstatus(&self) -> String {
        let admin = if self.admin_up { "up" } else { "down" };
        let carrier = if self.carrier { "up" } else { "down" };
        format!("linkstatus_admin{admin}, linkstatus_carrier{carrier}")
    }

    fn state_fields(&self, builder: SampleBuilder) -> SampleBuilder {
        let mut b = builder
            .label("device", self.ifname.clone())
            .uint("index", self.index.into())
            .uint("mtu", self.mtu.into());
        b.set("oper_state", Value::Str(self.oper_state.clone()));
        b.set("admin_up", Value::Bool(self.admin_up));
        b.set("carrier", Value::Bool(self.carrier));
        b.set("mac", Value::Str(self.mac.clone()));
        b.set("linkstatus", Value::Str(self.linkstatus()));
        b
    }
}

/// Converts one RTM_NEWLINK message.
pub fn from_message(message: &LinkMessage) -> LinkInfo {
    let flags = message.header.flags;
    let mut link = LinkInfo {
        index: message.header.index,
        admin_up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        ..LinkInfo::default()
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.ifname = name.clone(),
            LinkAttribute::Address(bytes) => {
                link.mac = bytes
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            }
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::OperState(state) => link.oper_state = state.to_string(),
            LinkAttribute::Carrier(carrier) => link.carrier = *carrier != 0,
            LinkAttribute::Stats64(s) => link.counters = proc_net_dev_counters(s).to_vec(),
            _ => {}
        }
    }
    link
}

fn links_of(messages: &[RouteNetlinkMessage]) -> Vec<LinkInfo> {
    messages
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => Some(from_message(link)),
            _ => None,
        })
        .collect()
}

/// Dumps every link of the caller's network namespace.
pub fn dump_live() -> Result<Vec<LinkInfo>, String> {
    dump_live_in(None)
}

/// Dumps every link of the namespace at `netns` (the caller's when `None`).
pub fn dump_live_in(netns: Option<&Path>) -> Result<Vec<LinkInfo>, String> {
    let replies = socket::dump(netns, RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(links_of(&replies))
}

/// Interface index to name, from a link dump of `netns` (the caller's when `None`).
pub fn index_names(netns: Option<&Path>) -> Result<HashMap<u32, String>, String> {
    Ok(dump_live_in(netns)?
        .into_iter()
        .map(|l| (l.index, l.ifname))
        .collect())
}

fn state_schema_fields() -> Vec<huatuo_dsl::catalog::FieldSchema> {
    vec![
        int("index", Dim::Count, "interface index"),
        int("mtu", Dim::Bytes, "MTU"),
        field(
            "oper_state",
            FieldType::Str,
            Dim::Count,
            "operational state",
        ),
        field(
            "admin_up",
            FieldType::Bool,
            Dim::Count,
            "administratively up",
        ),
        field("carrier", FieldType::Bool, Dim::Count, "carrier present"),
        field("mac", FieldType::Str, Dim::Count, "hardware address"),
        field(
            "linkstatus",
            FieldType::Str,
            Dim::Count,
            "`linkstatus_adminup|admindown, linkstatus_carrierup|carrierdown`",
        ),
    ]
}

/// The schema of `netlink.link`.
pub fn schema() -> SourceSchema {
    let mut fields = state_schema_fields();
    fields.extend(COUNTERS.iter().map(|name| {
        let dim = if name.ends_with("_bytes") {
            Dim::Bytes
        } else {
            Dim::Count
        };
        int(name, dim, "a link counter (IFLA_STATS64)")
    }));
    polled(
        NAME,
        "link state and counters per device from rtnetlink",
        &["device"],
        fields,
    )
}

/// The schema of `netlink.link_events`.
pub fn events_schema() -> SourceSchema {
    let mut fields = state_schema_fields();
    fields.push(field(
        "driver",
        FieldType::Str,
        Dim::Count,
        "driver of the device (empty when none answers)",
    ));
    fields.push(field(
        "driver_version",
        FieldType::Str,
        Dim::Count,
        "driver version (ethtool)",
    ));
    fields.push(field(
        "firmware_version",
        FieldType::Str,
        Dim::Count,
        "firmware version (ethtool)",
    ));
    fields.push(field(
        "start",
        FieldType::Bool,
        Dim::Count,
        "true for the baseline sent when the stream starts",
    ));
    fields.push(field(
        "removed",
        FieldType::Bool,
        Dim::Count,
        "true when the link was deleted",
    ));
    let mut schema = polled(
        EVENTS,
        "link changes from rtnetlink (RTNLGRP_LINK), after a baseline of every link",
        &["device"],
        fields,
    );
    schema.mode = SourceMode::Stream;
    schema.default_interval_s = None;
    schema
}

/// One `netlink.link` sample per link.
pub fn to_samples(links: &[LinkInfo], now_ns: i64) -> Vec<Sample> {
    links
        .iter()
        .map(|link| {
            COUNTERS
                .iter()
                .zip(&link.counters)
                .fold(link.state_fields(SampleBuilder::new()), |b, (n, v)| {
                    b.uint(n, *v)
                })
                .build(NAME, now_ns)
        })
        .collect()
}

/// Where a netlink reader gets its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The kernel, in the agent's network namespace.
    Live,
    /// The kernel, in the network namespace at this path (`/proc/<pid>/ns/net`).
    Netns(PathBuf),
    /// A recorded JSON file.
    Recorded(PathBuf),
}

impl Origin {
    /// The namespace path of a live origin in another namespace.
    pub fn netns(&self) -> Option<&Path> {
        match self {
            Origin::Netns(path) => Some(path),
            _ => None,
        }
    }
}

/// One netlink dump: its source, request, row type, and how rows become samples.
pub trait NetlinkTable {
    /// Row of the dump, as recorded in JSON.
    type Row: serde::de::DeserializeOwned;
    /// Catalog name of the source.
    const NAME: &'static str;
    /// The netlink request, for error messages (`RTM_GETLINK`).
    const REQUEST: &'static str;
    /// The source's schema.
    fn schema() -> SourceSchema;
    /// Dumps the table from the kernel, in the namespace at `netns` (the agent's when `None`).
    fn dump(netns: Option<&Path>) -> Result<Vec<Self::Row>, String>;
    /// Rows to samples.
    fn samples(rows: &[Self::Row], now_ns: i64) -> Vec<Sample>;
}

/// Reads a netlink table live, in a namespace, or from a recorded JSON list of rows.
pub struct TableReader<T> {
    origin: Origin,
    table: std::marker::PhantomData<T>,
}

impl<T: NetlinkTable> TableReader<T> {
    /// A reader of the live kernel.
    pub fn live() -> Self {
        Self::new(Origin::Live)
    }

    /// A reader of a recorded JSON list of rows.
    pub fn recorded(path: PathBuf) -> Self {
        Self::new(Origin::Recorded(path))
    }

    /// A reader of the given origin.
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            table: std::marker::PhantomData,
        }
    }
}

impl<T: NetlinkTable + Send> Reader for TableReader<T> {
    fn schema(&self) -> SourceSchema {
        T::schema()
    }

    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        let rows = match &self.origin {
            Origin::Recorded(path) => read_recorded(T::NAME, path)?,
            live => T::dump(live.netns()).map_err(|m| netlink_error(T::NAME, T::REQUEST, m))?,
        };
        Ok(T::samples(&rows, now_ns))
    }
}

/// The link table (`netlink.link`).
pub struct Links;

impl NetlinkTable for Links {
    type Row = LinkInfo;
    const NAME: &'static str = NAME;
    const REQUEST: &'static str = "RTM_GETLINK";
    fn schema() -> SourceSchema {
        schema()
    }
    fn dump(netns: Option<&Path>) -> Result<Vec<LinkInfo>, String> {
        dump_live_in(netns)
    }
    fn samples(rows: &[LinkInfo], now_ns: i64) -> Vec<Sample> {
        to_samples(rows, now_ns)
    }
}

/// Reads links live, or from a recorded JSON list of [`LinkInfo`].
pub type LinkReader = TableReader<Links>;

/// Reads a recorded JSON list of `T`, naming the file on error.
pub(crate) fn read_recorded<T: serde::de::DeserializeOwned>(
    source: &str,
    path: &Path,
) -> Result<Vec<T>, ReadError> {
    let text = read_text(source, path)?;
    serde_json::from_str(&text).map_err(|e| read_error(source, path, e.to_string()))
}

/// A `ReadError` for a netlink request.
pub(crate) fn netlink_error(source: &str, request: &str, message: String) -> ReadError {
    ReadError {
        source_name: source.to_string(),
        path: format!("rtnetlink {request}"),
        message,
    }
}

/// A link change: the link's state, whether it is part of the baseline, whether removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEvent {
    /// The link after the change.
    #[serde(flatten)]
    pub link: LinkInfo,
    /// Part of the baseline sent at start.
    #[serde(default)]
    pub start: bool,
    /// The link was deleted.
    #[serde(default)]
    pub removed: bool,
    /// Driver name (ethtool, else the sysfs `device/driver` link).
    #[serde(default)]
    pub driver: String,
    /// Driver version (ethtool).
    #[serde(default)]
    pub driver_version: String,
    /// Firmware version (ethtool).
    #[serde(default)]
    pub firmware_version: String,
}

impl LinkEvent {
    /// A change of `link`, without driver details yet.
    pub fn new(link: LinkInfo, start: bool, removed: bool) -> Self {
        Self {
            link,
            start,
            removed,
            ..Self::default()
        }
    }

    /// Fills driver details: from ethtool when `ask_driver`, else (or when it does not
    /// answer) the driver name from sysfs under `sys`.
    pub fn with_driver(mut self, sys: &Path, ask_driver: bool) -> Self {
        if ask_driver && !self.removed {
            if let Ok(info) = crate::ethtool::driver_info(&self.link.ifname) {
                self.driver = info.driver;
                self.driver_version = info.version;
                self.firmware_version = info.firmware_version;
            }
        }
        if self.driver.is_empty() {
            self.driver = driver_of(sys, &self.link.ifname);
        }
        self
    }
}

/// The driver of a device from `<sys>/class/net/<dev>/device/driver`, empty when none.
pub fn driver_of(sys: &Path, ifname: &str) -> String {
    std::fs::read_link(sys.join("class/net").join(ifname).join("device/driver"))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The `netlink.link_events` sample of one change.
pub fn event_sample(event: &LinkEvent, now_ns: i64) -> Sample {
    let mut b = event.link.state_fields(SampleBuilder::new());
    b.set("driver", Value::Str(event.driver.clone()));
    b.set("driver_version", Value::Str(event.driver_version.clone()));
    b.set(
        "firmware_version",
        Value::Str(event.firmware_version.clone()),
    );
    b.set("start", Value::Bool(event.start));
    b.set("removed", Value::Bool(event.removed));
    b.build(EVENTS, now_ns)
}

fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn push_event(sink: &Sink, event: &LinkEvent) -> bool {
    sink.push(event_sample(event, wall_clock_ns()))
}

/// Starts the live link event stream: a baseline of every link (`start: true`), then one
/// sample per RTM_NEWLINK/RTM_DELLINK. `sys` is where drivers are looked up.
pub fn spawn_events(sys: &Path) -> Result<SampleStream, ReadError> {
    let subscribed = socket::open()
        .and_then(|s| {
            s.add_membership(RTNLGRP_LINK)
                .map_err(|e| format!("join RTNLGRP_LINK: {e}"))?;
            Ok(s)
        })
        .map_err(|m| netlink_error(EVENTS, "RTNLGRP_LINK", m))?;
    let baseline = dump_live().map_err(|m| netlink_error(EVENTS, "RTM_GETLINK", m))?;
    let sys = sys.to_path_buf();
    SampleStream::spawn("huatuo-link-events", DEFAULT_CAPACITY, move |sink| {
        for link in baseline {
            let event = LinkEvent::new(link, true, false).with_driver(&sys, true);
            if !push_event(sink, &event) {
                return Ok(());
            }
        }
        loop {
            let bytes = match subscribed.recv_from_full() {
                Ok((bytes, _)) => bytes,
                // ENOBUFS: the kernel dropped notifications we were too slow for.
                Err(e) if e.raw_os_error() == Some(105) => {
                    sink.count_dropped(1);
                    continue;
                }
                Err(e) => return Err(netlink_error(EVENTS, "recv", e.to_string())),
            };
            let datagram = socket::parse_datagram(&bytes)
                .map_err(|m| netlink_error(EVENTS, "RTNLGRP_LINK", m))?;
            for message in datagram.messages {
                let (link, removed) = match &message {
                    RouteNetlinkMessage::NewLink(l) => (from_message(l), false),
                    RouteNetlinkMessage::DelLink(l) => (from_message(l), true),
                    _ => continue,
                };
                let event = LinkEvent::new(link, false, removed).with_driver(&sys, true);
                if !push_event(sink, &event) {
                    return Ok(());
                }
            }
        }
    })
    .map_err(|e| netlink_error(EVENTS, "thread", e.to_string()))
}

/// Replays a recorded JSON list of [`LinkEvent`] as a stream (fixture mode).
pub fn spawn_recorded_events(path: &Path, sys: &Path) -> Result<SampleStream, ReadError> {
    let events: Vec<LinkEvent> = read_recorded(EVENTS, path)?;
    let sys = sys.to_path_buf();
    SampleStream::spawn("huatuo-link-replay", DEFAULT_CAPACITY, move |sink| {
        for event in events {
            if !push_event(sink, &event.with_driver(&sys, false)) {
                break;
            }
        }
        Ok(())
    })
    .map_err(|e| read_error(EVENTS, path, e.to_string()))
}
