//! Every host reader on this machine's real /proc and /sys returns samples.

use huatuo_sources::{host_readers, NetnsView, ReaderConfig, Roots};

#[test]
fn every_host_reader_returns_samples_on_this_machine() {
    let config = ReaderConfig::default();
    for mut reader in host_readers(&Roots::default(), &config) {
        let name = reader.schema().name;
        let samples = reader
            .read(1)
            .unwrap_or_else(|e| panic!("{name} failed on the live system: {e}"));
        // No DCB-capable NIC exists on this VM: an empty answer is the right one; likewise
        // for bonds when no bonding driver is loaded.
        let no_bonds = !std::path::Path::new("/proc/net/bonding").exists();
        // Without a mounted XFS filesystem, /sys/fs/xfs has no device directory to read.
        let no_xfs = std::fs::read_dir("/sys/fs/xfs").map_or(true, |dir| {
            !dir.flatten()
                .any(|e| e.file_name() != "stats" && e.path().join("stats/stats").exists())
        });
        // A source absent here (GPU sources without a vendor library) returns nothing.
        let absent = reader.unavailable().is_some();
        let may_be_empty = name == "netlink.dcb"
            || (name == "proc.bonding" && no_bonds)
            || (name == "sys.xfs" && no_xfs)
            || absent;
        if !may_be_empty {
            assert!(!samples.is_empty(), "{name} returned no samples");
        }
    }
}

#[test]
fn own_netns_through_proc_self() {
    let view = NetnsView::for_pid(std::process::id());
    let mut net_dev = view.net_dev();
    let samples = huatuo_dsl::source::Reader::read(&mut net_dev, 1).unwrap();
    assert!(samples.iter().any(|s| s.labels["device"] == "lo"));
}

#[test]
fn statvfs_of_root_is_consistent() {
    let usage = huatuo_sources::mounts::statvfs(std::path::Path::new("/")).unwrap();
    assert!(usage.blocks > 0);
    assert!(usage.blocks_avail <= usage.blocks_free);
    assert!(usage.blocks_free <= usage.blocks);
}

#[test]
fn ethtool_driver_info_of_this_machine() {
    use huatuo_sources::ethtool::driver_info;
    // Every physical device here has a driver that answers; loopback has none.
    let sys = std::path::Path::new("/sys/class/net");
    let mut asked = 0;
    for entry in std::fs::read_dir(sys).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(link) = std::fs::read_link(entry.path().join("device/driver")) else {
            continue;
        };
        let info = driver_info(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.driver, link.file_name().unwrap().to_string_lossy());
        asked += 1;
    }
    assert!(asked > 0, "no physical network device to ask");
    assert!(driver_info("lo").is_err());
    assert!(driver_info("no-such-dev0").is_err());
    assert!(driver_info("a-name-longer-than-ifnamsiz").is_err());
}
