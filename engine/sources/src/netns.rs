//! Readers of one network namespace, seen through `/proc/<pid>/net` of a process in it
//! (procfs readers) or entered through `/proc/<pid>/ns/net` (netlink readers).

use crate::file_reader::FileReader;
use crate::netlink::link::{LinkReader, Origin};
use crate::netlink::qdisc::QdiscReader;
use crate::{arp, net_dev, netstat, sockstat};
use std::path::{Path, PathBuf};

/// The network namespace of a process: its `/proc/<pid>/net` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsView {
    proc: PathBuf,
    net: PathBuf,
    ns: Option<PathBuf>,
}

impl NetnsView {
    /// The netns of `pid` under the real `/proc`.
    pub fn for_pid(pid: u32) -> Self {
        Self::for_pid_in(Path::new("/proc"), pid)
    }

    /// The netns of `pid` under a proc root (a fixture tree or `/proc`).
    pub fn for_pid_in(proc: &Path, pid: u32) -> Self {
        Self {
            proc: proc.to_path_buf(),
            net: proc.join(pid.to_string()).join("net"),
            ns: Some(proc.join(pid.to_string()).join("ns/net")),
        }
    }

    /// The host's namespace: `<proc>/net`.
    pub fn host(proc: &Path) -> Self {
        Self {
            proc: proc.to_path_buf(),
            net: proc.join("net"),
            ns: None,
        }
    }

    /// The `net` directory this view reads.
    pub fn net_dir(&self) -> &Path {
        &self.net
    }

    /// `proc.net_dev` of this namespace.
    pub fn net_dev(&self) -> FileReader {
        net_dev::reader(&self.net)
    }

    /// `proc.netstat` of this namespace.
    pub fn netstat(&self) -> FileReader {
        netstat::reader(&self.net)
    }

    /// `proc.sockstat` of this namespace (the TCP memory limit is host-wide).
    pub fn sockstat(&self) -> FileReader {
        sockstat::reader(&self.net, &self.proc)
    }

    /// `proc.arp` of this namespace.
    pub fn arp(&self) -> FileReader {
        arp::reader(&self.net)
    }

    /// `netlink.link` of this namespace (entering another namespace needs CAP_SYS_ADMIN).
    pub fn link(&self) -> LinkReader {
        LinkReader::new(self.origin())
    }

    /// `netlink.qdisc` of this namespace (entering another namespace needs CAP_SYS_ADMIN).
    pub fn qdisc(&self) -> QdiscReader {
        QdiscReader::new(self.origin())
    }

    fn origin(&self) -> Origin {
        self.ns.clone().map_or(Origin::Live, Origin::Netns)
    }

    /// `proc.arp_devices` of this namespace.
    pub fn arp_devices(&self) -> FileReader {
        arp::devices_reader(&self.net)
    }
}
