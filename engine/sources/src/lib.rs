//! Host readers: procfs, sysfs, netlink and statfs sources.
//!
//! Every reader implements [`huatuo_dsl::source::Reader`] and can be rooted at a fixture
//! tree ([`Roots`]), so the agent runs on recorded files as well as on the live kernel.
//! Netlink sources read recorded JSON instead when [`ReaderConfig::netlink_recorded`] is
//! set. Stream sources (`kmsg`, `netlink.link_events`) are started with [`kmsg::spawn`] and
//! [`netlink::link::spawn_events`] (or their recorded variants) and deliver samples through
//! a bounded [`stream::SampleStream`]. GPU sources ([`gpu`]) read a vendor library, or
//! recorded JSON when [`ReaderConfig::gpu_recorded`] is set.

pub mod arp;
pub mod bonding;
pub mod buddyinfo;
pub mod common;
pub mod diskstats;
pub mod ethtool;
pub mod file_reader;
pub mod gpu;
pub mod kmsg;
pub mod loadavg;
pub mod memory;
pub mod mounts;
pub mod net_dev;
pub mod netdev_hw;
pub mod netlink;
pub mod netns;
pub mod netstat;
pub mod sockstat;
pub mod stat;
pub mod stream;
pub mod taskstats;
pub mod xfs;
pub mod xfs_log;

pub use netns::NetnsView;

use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::source::Reader;
use std::path::PathBuf;

/// Where procfs and sysfs are mounted (or a fixture tree recorded from them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// procfs, `/proc` by default.
    pub proc: PathBuf,
    /// sysfs, `/sys` by default.
    pub sys: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
        }
    }
}

impl Roots {
    /// Both roots under one fixture directory: `<dir>/proc` and `<dir>/sys`.
    pub fn fixture(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            proc: dir.join("proc"),
            sys: dir.join("sys"),
        }
    }
}

/// Options of the host readers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Include virtual network devices (no `device` link in sysfs) in `sys.netdev_hw`.
    pub include_virtual_netdev: bool,
    /// Devices `sys.netdev_hw` reads; when not empty, replaces the physical-device rule.
    pub netdev_hw_devices: Vec<String>,
    /// Devices `netlink.dcb` asks; empty means every link.
    pub dcb_devices: Vec<String>,
    /// Mount points `statfs.mounts` reports; empty means every real filesystem.
    pub mount_points: Vec<PathBuf>,
    /// Read netlink sources from recorded JSON in this directory (`qdisc.json`,
    /// `link.json`, `dcb.json`) instead of the kernel; for fixture trees and replay.
    pub netlink_recorded: Option<PathBuf>,
    /// Read GPU sources from recorded JSON in this directory (`metax.json`, `nvidia.json`)
    /// instead of the vendor libraries; a vendor without its file is absent.
    pub gpu_recorded: Option<PathBuf>,
    /// Read XFS log sizes from this recorded JSON (`{"<device>": <bytes>}`) instead of the
    /// `XFS_IOC_FSGEOMETRY` ioctl on each mount point; for fixture trees and replay.
    pub xfs_recorded: Option<PathBuf>,
    /// How `proc.net_dev` reads the host's counters (`MetricCollector.NetdevStats.EnableNetlink`);
    /// over netlink it reads `link.json` of `netlink_recorded` when that is set.
    pub net_dev_via: net_dev::NetDevVia,
}

/// The netlink readers, live or from recorded JSON.
fn netlink_readers(config: &ReaderConfig) -> Vec<Box<dyn Reader>> {
    match &config.netlink_recorded {
        Some(dir) => vec![
            Box::new(netlink::qdisc::QdiscReader::recorded(
                dir.join("qdisc.json"),
            )),
            Box::new(netlink::link::LinkReader::recorded(dir.join("link.json"))),
            Box::new(netlink::dcb::DcbReader::recorded(dir.join("dcb.json"))),
        ],
        None => vec![
            Box::new(netlink::qdisc::QdiscReader::live()),
            Box::new(netlink::link::LinkReader::live()),
            Box::new(netlink::dcb::DcbReader::live(config.dcb_devices.clone())),
        ],
    }
}

/// Every polled host reader, rooted at `roots`.
pub fn host_readers(roots: &Roots, config: &ReaderConfig) -> Vec<Box<dyn Reader>> {
    let host_net =
        NetnsView::host(&roots.proc).with_netlink_recorded(config.netlink_recorded.as_deref());
    let mut readers: Vec<Box<dyn Reader>> = vec![
        Box::new(stat::reader(&roots.proc)),
        Box::new(stat::cpu_reader(&roots.proc)),
        Box::new(loadavg::reader(&roots.proc)),
        Box::new(memory::vmstat_reader(&roots.proc)),
        Box::new(memory::meminfo_reader(&roots.proc)),
        Box::new(buddyinfo::reader(&roots.proc)),
        Box::new(diskstats::reader(&roots.proc)),
        host_net.net_dev_via(config.net_dev_via),
        Box::new(host_net.netstat()),
        Box::new(host_net.sockstat()),
        Box::new(host_net.arp()),
        Box::new(host_net.arp_devices()),
        Box::new(bonding::BondingReader::new(&roots.proc)),
        Box::new(
            netdev_hw::NetdevHwReader::new(&roots.sys, config.include_virtual_netdev)
                .only(config.netdev_hw_devices.clone()),
        ),
        Box::new(match &config.xfs_recorded {
            Some(file) => xfs::XfsReader::recorded(&roots.sys, file),
            None => xfs::XfsReader::new(&roots.sys, &roots.proc),
        }),
        Box::new(mounts::MountsReader::new(
            &roots.proc,
            config.mount_points.clone(),
            Box::new(mounts::statvfs),
        )),
    ];
    readers.extend(netlink_readers(config));
    readers.extend(gpu::readers(config.gpu_recorded.as_deref()));
    readers
}

/// The schemas of every source of this crate (polled and stream), for the catalog.
pub fn schemas() -> Vec<SourceSchema> {
    vec![
        stat::schema(),
        stat::cpu_schema(),
        loadavg::schema(),
        memory::vmstat_schema(),
        memory::meminfo_schema(),
        buddyinfo::schema(),
        diskstats::schema(),
        net_dev::schema(),
        netstat::schema(),
        sockstat::schema(),
        arp::schema(),
        arp::devices_schema(),
        bonding::schema(),
        netdev_hw::schema(),
        mounts::schema(),
        xfs::schema(),
        netlink::qdisc::schema(),
        netlink::link::schema(),
        netlink::dcb::schema(),
        netlink::link::events_schema(),
        kmsg::schema(),
        gpu::schema(&gpu::METAX),
        gpu::schema(&gpu::NVIDIA),
    ]
}
