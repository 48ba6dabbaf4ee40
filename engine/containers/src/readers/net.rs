//! `container.net_dev`, `container.netstat`, `container.arp` and `container.sockstat`
//! (container variants of the host's network sources): the network counters of each
//! container's own network namespace, read through
//! `/proc/<init pid>/net/*` with the host parsers of `huatuo-sources` ([`NetnsView`]).
//! `container.net_dev` reads RTM_GETLINK inside the namespace instead when
//! [`NetnsReader::net_dev_via`] is [`NetDevVia::Netlink`] (`EnableNetlink`): the host's
//! netlink reader of the same view, with the same labels and fields (entering a namespace
//! needs CAP_SYS_ADMIN).
//!
//! Containers sharing the host's network namespace (pod `hostNetwork`, or a `/proc/<pid>/ns/net`
//! inode equal to `/proc/1/ns/net`'s, or the agent's own when pid 1's is not readable) are
//! skipped, as HUATUO does. Containers sharing one
//! namespace (the containers of a pod) cost one read per namespace, and every container gets
//! the samples. At most `max_namespaces` namespaces are read per call; whatever is skipped,
//! vanished or failed is counted in [`NetnsStats`] and never fails the whole read.

use crate::container::Container;
use crate::discovery::Discovery;
use huatuo_dsl::catalog::SourceSchema;
use huatuo_dsl::source::{ReadError, Reader};
use huatuo_dsl::value::Sample;
use huatuo_sources::net_dev::NetDevVia;
use huatuo_sources::{arp, net_dev, netstat, sockstat, NetnsView};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Namespaces read per call unless [`NetnsReader::max_namespaces`] says otherwise.
pub const DEFAULT_MAX_NAMESPACES: usize = 1024;

/// Which per-namespace view a [`NetnsReader`] publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKind {
    /// `container.net_dev`: `/proc/<pid>/net/dev` (or RTM_GETLINK in the namespace), one
    /// sample per device.
    NetDev,
    /// `container.netstat`: `/proc/<pid>/net/{netstat,snmp}` as `Group_Key` fields.
    Netstat,
    /// `container.arp`: the entries of `/proc/<pid>/net/arp`.
    Arp,
    /// `container.sockstat`: the per-namespace socket counts of `/proc/<pid>/net/sockstat`.
    Sockstat,
}

impl NetKind {
    /// Every kind, in catalog order.
    pub const ALL: [NetKind; 4] = [
        NetKind::NetDev,
        NetKind::Netstat,
        NetKind::Arp,
        NetKind::Sockstat,
    ];

    /// Catalog name of the source.
    pub fn name(self) -> &'static str {
        match self {
            NetKind::NetDev => "container.net_dev",
            NetKind::Netstat => "container.netstat",
            NetKind::Arp => "container.arp",
            NetKind::Sockstat => "container.sockstat",
        }
    }

    /// Fields of the host source that mean nothing per namespace and stay host values: the
    /// kernel's ARP table (`stat/arp_cache`) is shared by every namespace; socket memory
    /// pools, their `tcp_mem` limit and the page size are global. `sockets: used` is counted
    /// per namespace (since Linux 4.16), so it stays a container value.
    fn host_only_fields(self) -> &'static [&'static str] {
        match self {
            NetKind::Arp => &["arp_total"],
            NetKind::Sockstat => &["TCP_mem", "UDP_mem", "tcp_mem_limit_pages", "page_size"],
            NetKind::NetDev | NetKind::Netstat => &[],
        }
    }

    /// The schema: the host source's fields and labels under the container source's name.
    pub fn schema(self) -> SourceSchema {
        let mut schema = match self {
            NetKind::NetDev => net_dev::schema(),
            NetKind::Netstat => netstat::schema(),
            NetKind::Arp => arp::schema(),
            NetKind::Sockstat => sockstat::schema(),
        };
        schema.description = format!(
            "{}; per container network namespace (host-network containers skipped)",
            schema.description
        );
        schema.name = self.name().to_string();
        schema.per_container = true;
        schema.container_only = true;
        let drop = self.host_only_fields();
        if !drop.is_empty() {
            // Closed, so that a rule naming a dropped field is an `unknown-name` error.
            schema.open_fields = None;
        }
        schema.fields.retain(|f| !drop.contains(&f.name.as_str()));
        schema
    }

    /// The host reader over one namespace; `via` chooses procfs or netlink for `NetDev`.
    fn open(self, view: &NetnsView, via: NetDevVia) -> Box<dyn Reader> {
        match self {
            NetKind::NetDev => view.net_dev_via(via),
            NetKind::Netstat => Box::new(view.netstat()),
            NetKind::Arp => Box::new(view.arp()),
            NetKind::Sockstat => Box::new(view.sockstat()),
        }
    }
}

/// What a [`NetnsReader`] did and skipped, summed over its reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetnsStats {
    /// Calls of `read`.
    pub reads: u64,
    /// Namespaces read (one per distinct namespace per call).
    pub namespaces_read: u64,
    /// Containers in the host's network namespace, not read.
    pub host_network_skipped: u64,
    /// Containers without an init pid (empty cgroup), not read.
    pub no_pid_skipped: u64,
    /// Containers whose init process exited since discovery.
    pub vanished: u64,
    /// Containers not read because `max_namespaces` was reached.
    pub capped: u64,
    /// Containers whose namespace could not be read or parsed.
    pub errors: u64,
}

/// A per-container network source over discovery's containers.
pub struct NetnsReader {
    kind: NetKind,
    schema: SourceSchema,
    discovery: Arc<Discovery>,
    proc_root: PathBuf,
    max_namespaces: usize,
    net_dev_via: NetDevVia,
    netlink_recorded: Option<PathBuf>,
    stats: NetnsStats,
}

/// The outcome of one container: samples of its namespace, or why there are none.
#[derive(Clone)]
enum Outcome {
    Samples(Arc<Vec<Sample>>),
    HostNetwork,
    NoPid,
    Vanished,
    Capped,
    Failed,
}

impl NetnsReader {
    /// A reader of `kind` for the containers of `discovery`, with procfs at `proc_root`.
    pub fn new(kind: NetKind, discovery: Arc<Discovery>, proc_root: impl Into<PathBuf>) -> Self {
        Self {
            kind,
            schema: kind.schema(),
            discovery,
            proc_root: proc_root.into(),
            max_namespaces: DEFAULT_MAX_NAMESPACES,
            net_dev_via: NetDevVia::Procfs,
            netlink_recorded: None,
            stats: NetnsStats::default(),
        }
    }

    /// How `container.net_dev` reads a namespace: `/proc/<pid>/net/dev` (the default) or
    /// RTM_GETLINK inside it. Other kinds always read procfs.
    pub fn net_dev_via(mut self, via: NetDevVia) -> Self {
        self.net_dev_via = via;
        self
    }

    /// Netlink reads take `<dir>/netns/<pid>/link.json` instead of entering the namespace
    /// (fixture trees; see [`NetnsView::with_netlink_recorded`]).
    pub fn netlink_recorded(mut self, dir: Option<PathBuf>) -> Self {
        self.netlink_recorded = dir;
        self
    }

    /// Reads at most `n` namespaces per call; further containers are counted as capped.
    pub fn max_namespaces(mut self, n: usize) -> Self {
        self.max_namespaces = n;
        self
    }

    /// Counters since creation.
    pub fn stats(&self) -> NetnsStats {
        self.stats
    }

    fn error(&self, path: &Path, message: String) -> ReadError {
        ReadError {
            source_name: self.schema.name.clone(),
            path: path.display().to_string(),
            message,
        }
    }

    /// Reads the namespace of `pid` with the host reader.
    fn read_namespace(&mut self, pid: u32, now_ns: i64) -> Outcome {
        let view = NetnsView::for_pid_in(&self.proc_root, pid)
            .with_netlink_recorded(self.netlink_recorded.as_deref());
        match self.kind.open(&view, self.net_dev_via).read(now_ns) {
            Ok(samples) => {
                self.stats.namespaces_read += 1;
                Outcome::Samples(Arc::new(samples))
            }
            Err(_) if !self.proc_root.join(pid.to_string()).exists() => Outcome::Vanished,
            Err(e) => {
                log::warn!("{}: pid {pid}: {e}", self.schema.name);
                Outcome::Failed
            }
        }
    }

    /// Decides and, when needed, reads one container; `seen` keeps this call's outcome per
    /// namespace inode, so a namespace is read (or fails) once per call.
    fn outcome(
        &mut self,
        container: &Container,
        host: u64,
        seen: &mut HashMap<u64, Outcome>,
        now_ns: i64,
    ) -> Outcome {
        if container.pod.as_ref().is_some_and(|p| p.host_network) {
            return Outcome::HostNetwork;
        }
        let Some(pid) = container.init_pid else {
            return Outcome::NoPid;
        };
        let inode = match netns_inode(&self.proc_root, pid) {
            Ok(inode) => inode,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Outcome::Vanished,
            Err(e) => {
                log::warn!("{}: container {}: {e}", self.schema.name, container.id);
                return Outcome::Failed;
            }
        };
        if inode == host {
            return Outcome::HostNetwork;
        }
        if let Some(outcome) = seen.get(&inode) {
            return outcome.clone();
        }
        if seen.len() >= self.max_namespaces {
            return Outcome::Capped;
        }
        let outcome = self.read_namespace(pid, now_ns);
        seen.insert(inode, outcome.clone());
        outcome
    }

    /// The namespace's samples relabelled for one container.
    fn relabel(&self, samples: &[Sample], container: &Container) -> Vec<Sample> {
        let drop = self.kind.host_only_fields();
        samples
            .iter()
            .map(|s| {
                let mut sample = s.clone();
                sample.source = self.schema.name.clone();
                sample
                    .labels
                    .insert("container_id".into(), container.id.clone());
                sample.fields.retain(|k, _| !drop.contains(&k.as_str()));
                sample
            })
            .collect()
    }
}

/// The inode of `<proc>/<pid>/ns/net`: the identity of the process's network namespace.
fn netns_inode(proc_root: &Path, pid: u32) -> io::Result<u64> {
    let path = proc_root.join(pid.to_string()).join("ns/net");
    std::fs::metadata(&path).map(|m| m.ino())
}

/// The host's network namespace: pid 1's, else the agent's own (it runs in the host
/// network, as HUATUO requires) when pid 1's cannot be read, e.g. without CAP_SYS_PTRACE.
fn host_netns_inode(proc_root: &Path) -> Result<u64, String> {
    let pid1 = proc_root.join("1/ns/net");
    std::fs::metadata(&pid1)
        .or_else(|e1| {
            std::fs::metadata(proc_root.join("self/ns/net")).map_err(|e2| {
                format!("cannot identify the host network namespace: {e1}; self/ns/net: {e2}")
            })
        })
        .map(|m| m.ino())
}

impl Reader for NetnsReader {
    fn schema(&self) -> SourceSchema {
        self.schema.clone()
    }

    /// Fails only when discovery has no snapshot or, with containers to read, the host
    /// namespace (`/proc/1/ns/net`, else `/proc/self/ns/net`) cannot be identified;
    /// per-container problems are counted and logged.
    fn read(&mut self, now_ns: i64) -> Result<Vec<Sample>, ReadError> {
        self.stats.reads += 1;
        let snapshot = self
            .discovery
            .snapshot()
            .map_err(|e| self.error(&self.discovery.root, e.to_string()))?;
        if snapshot.containers.is_empty() {
            return Ok(Vec::new());
        }
        let host = host_netns_inode(&self.proc_root)
            .map_err(|e| self.error(&self.proc_root.join("1/ns/net"), e))?;
        let mut seen = HashMap::new();
        let mut out = Vec::new();
        for container in &snapshot.containers {
            match self.outcome(container, host, &mut seen, now_ns) {
                Outcome::Samples(samples) => out.extend(self.relabel(&samples, container)),
                Outcome::HostNetwork => self.stats.host_network_skipped += 1,
                Outcome::NoPid => self.stats.no_pid_skipped += 1,
                Outcome::Vanished => self.stats.vanished += 1,
                Outcome::Capped => self.stats.capped += 1,
                Outcome::Failed => self.stats.errors += 1,
            }
        }
        Ok(out)
    }
}

/// The schemas of the per-container network sources.
pub(crate) fn schemas() -> Vec<SourceSchema> {
    NetKind::ALL.iter().map(|k| k.schema()).collect()
}

/// One reader per kind over `discovery`'s containers, with procfs at `options.proc_root`
/// and `container.net_dev` read as `options.net_dev_via` says.
pub(crate) fn readers(
    discovery: &Arc<Discovery>,
    options: &super::ReaderOptions,
) -> Vec<Box<dyn Reader>> {
    NetKind::ALL
        .iter()
        .map(|k| {
            Box::new(
                NetnsReader::new(*k, discovery.clone(), &options.proc_root)
                    .net_dev_via(options.net_dev_via)
                    .netlink_recorded(options.netlink_recorded.clone()),
            ) as Box<dyn Reader>
        })
        .collect()
}
