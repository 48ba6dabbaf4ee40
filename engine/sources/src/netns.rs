//! Readers of one network namespace, seen through `/proc/<pid>/net` of a process in it
//! (procfs readers) or entered through `/proc/<pid>/ns/net` (netlink readers).

use crate::file_reader::FileReader;
use crate::net_dev::{NetDevVia, NetlinkNetDevReader};
use crate::netlink::link::{LinkReader, Origin};
use crate::netlink::qdisc::QdiscReader;
use crate::{arp, net_dev, netstat, sockstat};
use huatuo_dsl::source::Reader;
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The network namespace of a process: its `/proc/<pid>/net` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsView {
    proc: PathBuf,
    net: PathBuf,
    ns: Option<PathBuf>,
    pid: Option<u32>,
    recorded: Option<PathBuf>,
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
            pid: Some(pid),
            recorded: None,
        }
    }

    /// The host's namespace: `<proc>/net`.
    pub fn host(proc: &Path) -> Self {
        Self {
            proc: proc.to_path_buf(),
            net: proc.join("net"),
            ns: None,
            pid: None,
            recorded: None,
        }
    }

    /// Netlink readers of this view read recorded JSON under `dir` instead of the kernel:
    /// `dir/<table>.json` for the host, `dir/netns/<pid>/<table>.json` for the namespace of
    /// `pid` (fixture trees and replay; `None` keeps the kernel).
    pub fn with_netlink_recorded(mut self, dir: Option<&Path>) -> Self {
        self.recorded = dir.map(|dir| match self.pid {
            Some(pid) => dir.join("netns").join(pid.to_string()),
            None => dir.to_path_buf(),
        });
        self
    }

    /// The `net` directory this view reads.
    pub fn net_dir(&self) -> &Path {
        &self.net
    }

    /// `proc.net_dev` of this namespace from `<net>/dev`.
    pub fn net_dev(&self) -> FileReader {
        net_dev::reader(&self.net)
    }

    /// `proc.net_dev` of this namespace read `via` procfs or netlink; both give the same
    /// labels and fields.
    pub fn net_dev_via(&self, via: NetDevVia) -> Box<dyn Reader> {
        match via {
            NetDevVia::Procfs => Box::new(self.net_dev()),
            NetDevVia::Netlink => Box::new(NetlinkNetDevReader::new(self.origin("link.json"))),
        }
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
        LinkReader::new(self.origin("link.json"))
    }

    /// `netlink.qdisc` of this namespace (entering another namespace needs CAP_SYS_ADMIN).
    pub fn qdisc(&self) -> QdiscReader {
        QdiscReader::new(self.origin("qdisc.json"))
    }

    /// Where a netlink table of this namespace comes from: recorded `file`, the namespace
    /// file of the pid, or the agent's own namespace.
    fn origin(&self, file: &str) -> Origin {
        if let Some(dir) = &self.recorded {
            return Origin::Recorded(dir.join(file));
        }
        self.ns.clone().map_or(Origin::Live, Origin::Netns)
    }

    /// `proc.arp_devices` of this namespace.
    pub fn arp_devices(&self) -> FileReader {
        arp::devices_reader(&self.net)
    }
}

/// Runs `f` on a short-lived thread inside the network namespace at `netns`
/// (`/proc/<pid>/ns/net`, `/run/netns/NAME`); sockets `f` opens stay in that namespace.
/// Entering a namespace needs CAP_SYS_ADMIN. The caller's thread never changes namespace.
pub fn run_in<T: Send>(
    netns: &Path,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    let file = std::fs::File::open(netns).map_err(|e| format!("{}: {e}", netns.display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(|e| format!("setns {}: {e}", netns.display()))?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err("netns thread panicked".to_string()))
    })
}
