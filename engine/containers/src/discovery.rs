//! Container discovery: walks the cgroup hierarchy, classifies each directory and keeps a
//! bounded, periodically refreshed snapshot that readers and enrichers share.

use crate::cgroupfs::{CgroupVersion, Layout};
use crate::classify::{classify, Runtime};
use crate::container::{short_id, CgroupIds, Container};
use crate::docker::docker_details;
use crate::kubelet::PodStore;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Tunables of a [`Discovery`].
#[derive(Debug, Clone)]
pub struct DiscoveryOptions {
    /// The cgroup root (`/sys/fs/cgroup`).
    pub root: PathBuf,
    /// How long a snapshot is served before [`Discovery::snapshot`] rescans.
    pub refresh_interval: Duration,
    /// At most this many containers are kept; the rest are counted as dropped.
    pub max_containers: usize,
    /// Directories deeper than this below the root are not visited.
    pub max_depth: usize,
    /// At most this many directories are visited per scan.
    pub max_dirs: usize,
    /// Docker's state directory for names of plain Docker containers; `None` disables it.
    pub docker_root: Option<PathBuf>,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/sys/fs/cgroup"),
            refresh_interval: Duration::from_secs(10),
            max_containers: 4096,
            max_depth: 10,
            max_dirs: 200_000,
            docker_root: Some(PathBuf::from("/var/lib/docker")),
        }
    }
}

/// Why a scan failed as a whole (a vanished or unreadable subdirectory only counts).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The root is not a cgroup filesystem or cannot be read.
    #[error("cgroup root {}: {source}", root.display())]
    Layout {
        /// The configured root.
        root: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No hierarchy to walk (v1 without cpu, cpuacct or memory).
    #[error("cgroup root {}: no cpu, cpuacct or memory hierarchy", .0.display())]
    NoHierarchy(PathBuf),
}

/// Counters of what discovery did and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Scans completed.
    pub scans: u64,
    /// Scans that failed as a whole.
    pub scan_errors: u64,
    /// Containers not kept because of `max_containers`, summed over scans.
    pub dropped_containers: u64,
    /// Directories not visited because of `max_dirs` or `max_depth`, summed over scans.
    pub skipped_dirs: u64,
    /// Directories that could not be listed (vanished, permission), summed over scans.
    pub unreadable_dirs: u64,
    /// Docker `config.v2.json` files that could not be read or parsed, summed over scans.
    pub docker_config_errors: u64,
}

/// One scan's result: the layout it saw and the containers, sorted by cgroup path, with
/// indexes for constant-time lookups by container id and cgroup id.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The cgroup layout of the scan.
    pub layout: Arc<Layout>,
    /// Containers found (at most `max_containers`).
    pub containers: Vec<Container>,
    by_id: HashMap<String, usize>,
    by_cgroup_id: HashMap<u64, usize>,
}

impl Snapshot {
    /// Builds a snapshot and its indexes.
    pub fn new(layout: Arc<Layout>, containers: Vec<Container>) -> Self {
        let mut by_id = HashMap::with_capacity(containers.len());
        let mut by_cgroup_id = HashMap::with_capacity(containers.len() * 2);
        for (i, c) in containers.iter().enumerate() {
            by_id.insert(c.id.clone(), i);
            for id in [c.cgroup_ids.v1_cpu, c.cgroup_ids.v2].into_iter().flatten() {
                by_cgroup_id.insert(id, i);
            }
        }
        Self {
            layout,
            containers,
            by_id,
            by_cgroup_id,
        }
    }

    /// The container whose v1 cpu or v2 cgroup has this kernfs id. Kernels before 5.5
    /// report `generation << 32 | inode`; the inode half is tried when the full id is unknown.
    pub fn by_cgroup_id(&self, id: u64) -> Option<&Container> {
        self.by_cgroup_id
            .get(&id)
            .or_else(|| self.by_cgroup_id.get(&(id & 0xffff_ffff)))
            .and_then(|i| self.containers.get(*i))
    }

    /// The container with this id.
    pub fn by_id(&self, id: &str) -> Option<&Container> {
        self.by_id.get(id).and_then(|i| self.containers.get(*i))
    }
}

struct State {
    snapshot: Option<(Arc<Snapshot>, Instant)>,
    /// A caller is rescanning a stale snapshot; others keep serving the stale one.
    refreshing: bool,
    stats: DiscoveryStats,
}

/// Finds containers in cgroupfs and caches them; shared by readers through an `Arc`.
pub struct Discovery {
    /// The cgroup root.
    pub root: PathBuf,
    options: DiscoveryOptions,
    pods: Option<Arc<PodStore>>,
    state: Mutex<State>,
}

impl Discovery {
    /// A discovery over `options.root`; nothing is read until the first scan.
    pub fn new(options: DiscoveryOptions) -> Self {
        Self {
            root: options.root.clone(),
            options,
            pods: None,
            state: Mutex::new(State {
                snapshot: None,
                refreshing: false,
                stats: DiscoveryStats::default(),
            }),
        }
    }

    /// Enriches containers from the kubelet's pods kept in `store` (see [`crate::kubelet`]).
    pub fn with_pods(mut self, store: Arc<PodStore>) -> Self {
        self.pods = Some(store);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent: recover it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scans now, replaces the cached snapshot and returns the containers.
    pub fn scan(&self) -> Result<Vec<Container>, DiscoveryError> {
        Ok(self.rescan()?.containers.clone())
    }

    fn rescan(&self) -> Result<Arc<Snapshot>, DiscoveryError> {
        let result = self.walk();
        let mut state = self.lock();
        match result {
            Ok((snapshot, walk)) => {
                state.stats.scans += 1;
                state.stats.dropped_containers += walk.dropped;
                state.stats.skipped_dirs += walk.skipped;
                state.stats.unreadable_dirs += walk.unreadable;
                state.stats.docker_config_errors += walk.docker_errors;
                let snapshot = Arc::new(snapshot);
                state.snapshot = Some((snapshot.clone(), Instant::now()));
                Ok(snapshot)
            }
            Err(e) => {
                state.stats.scan_errors += 1;
                Err(e)
            }
        }
    }

    /// The cached snapshot, rescanned when older than the refresh interval. While one caller
    /// rescans, concurrent callers get the stale snapshot instead of walking too. A failed
    /// rescan keeps serving the last good snapshot (counted) and is retried after another
    /// interval.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, DiscoveryError> {
        let stale = {
            let mut state = self.lock();
            match state.snapshot.clone() {
                Some((snap, at)) if at.elapsed() < self.options.refresh_interval => {
                    return Ok(snap)
                }
                Some((snap, _)) if state.refreshing => return Ok(snap),
                Some((snap, _)) => {
                    state.refreshing = true;
                    Some(snap)
                }
                None => None,
            }
        };
        let result = self.rescan();
        let mut state = self.lock();
        state.refreshing = false;
        match (result, stale) {
            (Ok(fresh), _) => Ok(fresh),
            (Err(e), Some(snap)) => {
                log::warn!("container discovery failed, serving last snapshot: {e}");
                state.snapshot = Some((snap.clone(), Instant::now()));
                Ok(snap)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> DiscoveryStats {
        self.lock().stats
    }

    fn walk(&self) -> Result<(Snapshot, WalkCounters), DiscoveryError> {
        let layout =
            Layout::detect(&self.options.root).map_err(|source| DiscoveryError::Layout {
                root: self.options.root.clone(),
                source,
            })?;
        let primary = layout
            .primary()
            .ok_or_else(|| DiscoveryError::NoHierarchy(self.options.root.clone()))?
            .to_path_buf();
        let mut counters = WalkCounters::default();
        let mut found = Vec::new();
        let mut stack = vec![(primary.clone(), String::new(), 0usize)];
        let mut visited = 0usize;
        while let Some((dir, rel, depth)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    log::debug!("cannot list {}: {e}", dir.display());
                    counters.unreadable += 1;
                    continue;
                }
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let child_rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if let Some(info) = classify(&child_rel) {
                    if found.len() < self.options.max_containers {
                        let mut c = self.build(&layout, &entry.path(), child_rel, info);
                        self.docker_names(&mut c, &mut counters);
                        found.push(c);
                    } else {
                        counters.dropped += 1;
                    }
                } else if depth + 1 >= self.options.max_depth || visited >= self.options.max_dirs {
                    counters.skipped += 1;
                } else {
                    visited += 1;
                    stack.push((entry.path(), child_rel, depth + 1));
                }
            }
        }
        found.sort_by(|a, b| a.cgroup_path.cmp(&b.cgroup_path));
        if let Some(pods) = self.pods.as_ref().and_then(|p| p.current()) {
            for container in &mut found {
                pods.enrich(container);
            }
        }
        Ok((Snapshot::new(Arc::new(layout), found), counters))
    }

    fn build(
        &self,
        layout: &Layout,
        dir: &Path,
        cgroup_path: String,
        info: crate::classify::PathInfo,
    ) -> Container {
        let inode = |p: Option<PathBuf>| p.and_then(|p| fs::metadata(p).ok()).map(|m| m.ino());
        let cgroup_ids = match layout.version {
            CgroupVersion::V2 => CgroupIds {
                v1_cpu: None,
                v2: inode(Some(dir.to_path_buf())),
            },
            CgroupVersion::V1 => CgroupIds {
                v1_cpu: inode(layout.dir("cpu", &cgroup_path)),
                v2: inode(layout.unified.as_ref().map(|u| u.join(&cgroup_path))),
            },
        };
        Container {
            name: short_id(&info.id).to_string(),
            id: info.id,
            runtime: info.runtime,
            cgroup_ids,
            pod_uid: info.pod_uid,
            qos_class: info.qos,
            init_pid: first_pid(dir),
            labels: BTreeMap::new(),
            hostname: None,
            pod: None,
            cgroup_path,
        }
    }

    /// Name, hostname and labels of a Docker container outside Kubernetes.
    fn docker_names(&self, c: &mut Container, counters: &mut WalkCounters) {
        let Some(docker_root) = &self.options.docker_root else {
            return;
        };
        if c.runtime != Runtime::Docker || c.pod_uid.is_some() {
            return;
        }
        match docker_details(docker_root, &c.id) {
            Ok(Some(details)) => {
                if !details.name.is_empty() {
                    c.name = details.name;
                }
                c.hostname = Some(details.hostname).filter(|h| !h.is_empty());
                c.labels = details.labels;
            }
            Ok(None) => {}
            Err(e) => {
                log::debug!("docker config: {e}");
                counters.docker_errors += 1;
            }
        }
    }
}

#[derive(Default)]
struct WalkCounters {
    dropped: u64,
    skipped: u64,
    unreadable: u64,
    docker_errors: u64,
}

/// The first pid listed in a cgroup's `cgroup.procs`.
fn first_pid(dir: &Path) -> Option<u32> {
    let file = fs::File::open(dir.join("cgroup.procs")).ok()?;
    let mut line = String::new();
    BufReader::new(file).read_line(&mut line).ok()?;
    line.trim().parse().ok()
}
