//! Host readers: procfs, sysfs, netlink and statfs sources.
//!
//! Every reader implements [`huatuo_dsl::source::Reader`] and can be rooted at a fixture
//! tree ([`Roots`]), so the agent runs on recorded files as well as on the live kernel.

pub mod arp;
pub mod buddyinfo;
pub mod common;
pub mod diskstats;
pub mod file_reader;
pub mod loadavg;
pub mod memory;
pub mod mounts;
pub mod net_dev;
pub mod netdev_hw;
pub mod netns;
pub mod netstat;
pub mod sockstat;
pub mod stat;

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
    /// Emit per-CPU `proc.stat` samples (label `cpu`) besides the host sample.
    pub per_cpu_stat: bool,
    /// Include virtual network devices (no `device` link in sysfs) in `sys.netdev_hw`.
    pub include_virtual_netdev: bool,
    /// Mount points `statfs.mounts` reports; empty means every real filesystem.
    pub mount_points: Vec<PathBuf>,
}

/// Every polled host reader, rooted at `roots`.
pub fn host_readers(roots: &Roots, config: &ReaderConfig) -> Vec<Box<dyn Reader>> {
    let host_net = NetnsView::host(&roots.proc);
    vec![
        Box::new(stat::reader(&roots.proc, config.per_cpu_stat)),
        Box::new(loadavg::reader(&roots.proc)),
        Box::new(memory::vmstat_reader(&roots.proc)),
        Box::new(memory::meminfo_reader(&roots.proc)),
        Box::new(buddyinfo::reader(&roots.proc)),
        Box::new(diskstats::reader(&roots.proc)),
        Box::new(host_net.net_dev()),
        Box::new(host_net.netstat()),
        Box::new(host_net.sockstat()),
        Box::new(host_net.arp()),
        Box::new(netdev_hw::NetdevHwReader::new(
            &roots.sys,
            config.include_virtual_netdev,
        )),
        Box::new(mounts::MountsReader::new(
            &roots.proc,
            config.mount_points.clone(),
            Box::new(mounts::statvfs),
        )),
    ]
}

/// The schemas of every source of this crate, for the catalog.
pub fn schemas() -> Vec<SourceSchema> {
    vec![
        stat::schema(),
        loadavg::schema(),
        memory::vmstat_schema(),
        memory::meminfo_schema(),
        buddyinfo::schema(),
        diskstats::schema(),
        net_dev::schema(),
        netstat::schema(),
        sockstat::schema(),
        arp::schema(),
        netdev_hw::schema(),
        mounts::schema(),
    ]
}
