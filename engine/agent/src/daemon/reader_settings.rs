//! What the config file and the command line tell the polled readers.

use huatuo_config::Config;
use huatuo_containers::readers::ReaderOptions;
use huatuo_sources::net_dev::NetDevVia;
use huatuo_sources::ReaderConfig;
use std::path::{Path, PathBuf};

/// How `proc.net_dev` and `container.net_dev` read device counters: netlink when
/// `MetricCollector.NetdevStats.EnableNetlink` is set, else procfs.
pub fn net_dev_via(config: &Config) -> NetDevVia {
    NetDevVia::from_enable_netlink(config.metric_collector.netdev_stats.enable_netlink)
}

/// Options of the host readers; `netlink_recorded` and `gpu_recorded` are the recorded
/// directories of the command line.
pub fn host_reader_config(
    config: &Config,
    netlink_recorded: Option<&Path>,
    gpu_recorded: Option<&Path>,
) -> ReaderConfig {
    let collector = &config.metric_collector;
    ReaderConfig {
        netlink_recorded: netlink_recorded.map(Path::to_path_buf),
        gpu_recorded: gpu_recorded.map(Path::to_path_buf),
        netdev_hw_devices: collector.netdev_hw.device_list.clone(),
        dcb_devices: collector.netdev_dcb.device_list.clone(),
        net_dev_via: net_dev_via(config),
        ..Default::default()
    }
}

/// Options of the cgroup and container network readers, with procfs at `proc_root`.
pub fn container_reader_options(
    config: &Config,
    proc_root: &Path,
    netlink_recorded: Option<&Path>,
) -> ReaderOptions {
    ReaderOptions {
        proc_root: PathBuf::from(proc_root),
        net_dev_via: net_dev_via(config),
        netlink_recorded: netlink_recorded.map(Path::to_path_buf),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        huatuo_config::load_str("t.conf", text).expect("config loads")
    }

    const ON: &str = "[MetricCollector.NetdevStats]\n    EnableNetlink = true\n";

    #[test]
    fn enable_netlink_switches_host_and_container_net_dev_to_netlink() {
        let on = config(ON);
        assert_eq!(
            host_reader_config(&on, None, None).net_dev_via,
            NetDevVia::Netlink
        );
        let containers = container_reader_options(&on, Path::new("/fixture/proc"), None);
        assert_eq!(containers.net_dev_via, NetDevVia::Netlink);
        assert_eq!(containers.proc_root, PathBuf::from("/fixture/proc"));
        assert_eq!(containers.netlink_recorded, None);
    }

    #[test]
    fn procfs_by_default_and_when_disabled() {
        for text in [
            "",
            "[MetricCollector.NetdevStats]\n    EnableNetlink = false\n",
        ] {
            let c = config(text);
            assert_eq!(
                host_reader_config(&c, None, None).net_dev_via,
                NetDevVia::Procfs
            );
            assert_eq!(
                container_reader_options(&c, Path::new("/proc"), None).net_dev_via,
                NetDevVia::Procfs
            );
        }
    }

    #[test]
    fn recorded_netlink_reaches_host_and_container_readers() {
        let on = config(ON);
        let dir = Path::new("/fixture/netlink");
        assert_eq!(
            host_reader_config(&on, Some(dir), None).netlink_recorded,
            Some(dir.to_path_buf())
        );
        assert_eq!(
            container_reader_options(&on, Path::new("/proc"), Some(dir)).netlink_recorded,
            Some(dir.to_path_buf())
        );
    }
}
