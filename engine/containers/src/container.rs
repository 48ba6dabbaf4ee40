//! The container model and its Prometheus labels.

use crate::classify::{QosClass, Runtime};
use huatuo_dsl::catalog::CONTAINER_LABELS;
use std::collections::BTreeMap;

/// Kernfs ids of a container's cgroup: the inode numbers of its cgroup directories, which
/// are the ids BPF programs report (`bpf_get_current_cgroup_id`, `kn->id`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CgroupIds {
    /// Id in the v1 `cpu` hierarchy (what a BPF program reads through the cpu subsystem).
    pub v1_cpu: Option<u64>,
    /// Id in the v2 hierarchy (pure v2, or the `unified` mount of a hybrid host).
    pub v2: Option<u64>,
}

/// What kind of workload a container is (`container_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ContainerType {
    /// An ordinary container.
    #[default]
    Normal,
    /// A sidecar: a native sidecar (init container with `restartPolicy: Always`).
    Sidecar,
    /// A container of a DaemonSet pod.
    DaemonSet,
}

impl ContainerType {
    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            ContainerType::Normal => "normal",
            ContainerType::Sidecar => "sidecar",
            ContainerType::DaemonSet => "daemonset",
        }
    }
}

/// What the kubelet tells about the pod a container belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Pod name (`container_host`).
    pub pod_name: String,
    /// Pod namespace (`container_hostnamespace`).
    pub namespace: String,
    /// Container name inside the pod (`container_name`); `POD` for the sandbox.
    pub container_name: String,
    /// Kind of workload.
    pub container_type: ContainerType,
    /// Whether the pod shares the host network namespace (`spec.hostNetwork`).
    pub host_network: bool,
}

/// A container found in cgroupfs, enriched from the kubelet when it is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Full container id.
    pub id: String,
    /// Display name: the pod's container name, else Docker's name, else the 12-char short id.
    pub name: String,
    /// Runtime named by the cgroup path (or the kubelet's containerID scheme).
    pub runtime: Runtime,
    /// Cgroup path relative to the hierarchy root, without a leading `/`.
    pub cgroup_path: String,
    /// Kernfs ids of the cgroup directories.
    pub cgroup_ids: CgroupIds,
    /// Pod UID for kubepods containers.
    pub pod_uid: Option<String>,
    /// QoS class (from the kubelet, else from the kubepods path).
    pub qos_class: Option<QosClass>,
    /// First pid in `cgroup.procs`, to enter the container's namespaces.
    pub init_pid: Option<u32>,
    /// Pod labels from the kubelet (`metadata.labels`), or Docker container labels.
    pub labels: BTreeMap<String, String>,
    /// The container's hostname, when Docker's state directory tells it.
    pub hostname: Option<String>,
    /// Pod details when the kubelet knows the container.
    pub pod: Option<PodInfo>,
}

/// The 12-character short form of a container id.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The value of one container label (a name of [`CONTAINER_LABELS`]): `container_id`,
/// `container_host` (pod name, else the Docker hostname), `container_hostnamespace` (pod
/// namespace, as in the seed's examples), `container_level` (QoS class), `container_name`,
/// `container_type`. Unknown values, and names that are not container labels, are empty.
fn label_value(container: &Container, label: &str) -> String {
    let pod = container.pod.as_ref();
    match label {
        "container_id" => container.id.clone(),
        "container_host" => pod
            .map(|p| p.pod_name.clone())
            .or_else(|| container.hostname.clone())
            .unwrap_or_default(),
        "container_hostnamespace" => pod.map(|p| p.namespace.clone()).unwrap_or_default(),
        "container_level" => container
            .qos_class
            .map(|q| q.label().to_string())
            .unwrap_or_default(),
        "container_name" => container.name.clone(),
        "container_type" => pod
            .map(|p| p.container_type)
            .unwrap_or_default()
            .label()
            .to_string(),
        _ => String::new(),
    }
}

/// The container labels of FEATURES.md, one per name of the catalog's [`CONTAINER_LABELS`]
/// (the list the rule checker lets rules read). Unknown values are empty strings so every
/// container series has the same label set.
pub fn container_labels(container: &Container) -> BTreeMap<String, String> {
    CONTAINER_LABELS
        .iter()
        .map(|label| (label.to_string(), label_value(container, label)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_label_has_a_value_source() {
        let container = Container {
            id: "abcdef0123456789".into(),
            name: "web".into(),
            runtime: Runtime::Docker,
            cgroup_path: String::new(),
            cgroup_ids: CgroupIds::default(),
            pod_uid: None,
            qos_class: Some(QosClass::Burstable),
            init_pid: None,
            labels: BTreeMap::new(),
            hostname: Some("web-host".into()),
            pod: None,
        };
        let labels = container_labels(&container);
        assert_eq!(labels.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut names = CONTAINER_LABELS.to_vec();
            names.sort_unstable();
            names
        });
        // Each label but the pod namespace is known for this container: a name added to the
        // catalog list without a value here would show up empty.
        let empty: Vec<&str> = labels
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(empty, ["container_hostnamespace"]);
        assert_eq!(labels["container_host"], "web-host");
        assert_eq!(labels["container_level"], "burstable");
    }
}
