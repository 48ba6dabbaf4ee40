//! Container attribution: cgroup ids to container ids for templates, and container labels
//! for samples that name a container.

use huatuo_bpf::CgroupResolver;
use huatuo_containers::{container_labels, Discovery};
use huatuo_dsl::value::Sample;
use std::sync::Arc;

/// Adds the container labels of FEATURES.md to samples carrying a `container_id`.
pub struct Enricher {
    discovery: Option<Arc<Discovery>>,
}

impl Enricher {
    /// An enricher over `discovery` (none: samples pass unchanged).
    pub fn new(discovery: Option<Arc<Discovery>>) -> Self {
        Enricher { discovery }
    }

    /// Adds `container_host`, `container_level`, ... to a container's sample.
    pub fn enrich(&self, sample: &mut Sample) {
        let (Some(discovery), Some(id)) = (&self.discovery, sample.labels.get("container_id"))
        else {
            return;
        };
        let Ok(snapshot) = discovery.snapshot() else {
            return;
        };
        let Some(container) = snapshot.by_id(id) else {
            return;
        };
        for (key, value) in container_labels(container) {
            sample.labels.entry(key).or_insert(value);
        }
    }
}

/// Resolves kernel cgroup ids through container discovery.
pub struct DiscoveryResolver(pub Arc<Discovery>);

impl CgroupResolver for DiscoveryResolver {
    fn container_id(&self, cgroup_id: u64) -> Option<String> {
        let snapshot = self.0.snapshot().ok()?;
        snapshot.by_cgroup_id(cgroup_id).map(|c| c.id.clone())
    }

    fn container_hostname(&self, cgroup_id: u64) -> Option<String> {
        let snapshot = self.0.snapshot().ok()?;
        let container = snapshot.by_cgroup_id(cgroup_id)?;
        container_labels(container).remove("container_host")
    }
}
