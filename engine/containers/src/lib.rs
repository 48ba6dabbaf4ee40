//! Container discovery from cgroupfs and the kubelet, and cgroup readers.
//!
//! - [`Discovery`] walks the cgroup hierarchy (v1 `cpu`, or the v2 root), recognises
//!   container cgroups by path ([`classify`]) and keeps a bounded snapshot refreshed on an
//!   interval; [`Snapshot::by_cgroup_id`] maps a BPF-reported cgroup id to its container.
//! - [`kubelet`] fetches `/pods` in the background ([`kubelet::KubeletWatcher`]) into a
//!   [`kubelet::PodStore`]; discovery enriches containers from the last good pod list.
//! - [`readers`] are the per-container `cgroup.*` sources; [`container_labels`] gives the
//!   Prometheus labels of a container.
//!
//! Typical wiring:
//! ```no_run
//! use huatuo_containers::{cgroup_readers, start, DiscoveryOptions};
//! use huatuo_containers::kubelet::{KubeletConfig, RefreshPolicy};
//! let (discovery, _watcher) =
//!     start(DiscoveryOptions::default(), KubeletConfig::default(), RefreshPolicy::default())
//!         .expect("refresher thread");
//! let readers = cgroup_readers(discovery.clone());
//! # let _ = readers;
//! ```

pub mod cgroupfs;
pub mod classify;
pub mod container;
pub mod discovery;
pub mod docker;
pub mod kubelet;
pub mod readers;

pub use classify::{classify, QosClass, Runtime};
pub use container::{container_labels, CgroupIds, Container, ContainerType, PodInfo};
pub use discovery::{Discovery, DiscoveryError, DiscoveryOptions, DiscoveryStats, Snapshot};
pub use readers::{cgroup_readers, cgroup_readers_with, schemas, ReaderOptions};

use kubelet::{KubeletConfig, KubeletError, KubeletWatcher, PodStore, RefreshPolicy};
use std::sync::Arc;

/// Starts discovery with kubelet enrichment: the watcher is `None` when the kubelet is
/// disabled (both ports 0). Keep the watcher alive as long as enrichment is wanted; dropping
/// it stops the refresher thread. Fails only when the refresher thread cannot be started.
pub fn start(
    options: DiscoveryOptions,
    kubelet: KubeletConfig,
    policy: RefreshPolicy,
) -> Result<(Arc<Discovery>, Option<KubeletWatcher>), KubeletError> {
    let store = Arc::new(PodStore::new());
    let watcher = KubeletWatcher::spawn(kubelet, policy, store.clone())?;
    let discovery = Discovery::new(options);
    let discovery = if watcher.is_some() {
        discovery.with_pods(store)
    } else {
        discovery
    };
    Ok((Arc::new(discovery), watcher))
}
