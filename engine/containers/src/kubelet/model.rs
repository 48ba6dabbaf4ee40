//! The part of the kubelet's `/pods` answer (a Kubernetes `PodList`) that enrichment uses,
//! and the index built from it.

use crate::classify::{QosClass, Runtime};
use crate::container::{Container, ContainerType, PodInfo};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Deserialize)]
struct PodList {
    items: Vec<Pod>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Pod {
    metadata: Metadata,
    spec: Spec,
    status: Status,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Metadata {
    name: String,
    namespace: String,
    uid: String,
    labels: BTreeMap<String, String>,
    owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OwnerReference {
    kind: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    host_network: bool,
    init_containers: Vec<SpecContainer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SpecContainer {
    name: String,
    restart_policy: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Status {
    qos_class: Option<String>,
    container_statuses: Vec<ContainerStatus>,
    init_container_statuses: Vec<ContainerStatus>,
    ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContainerStatus {
    name: String,
    #[serde(rename = "containerID")]
    container_id: Option<String>,
}

/// Pod-level facts shared by a pod's containers.
#[derive(Debug, Clone)]
struct PodMeta {
    uid: String,
    qos: Option<QosClass>,
    labels: BTreeMap<String, String>,
    /// Init containers with `restartPolicy: Always` (native sidecars).
    sidecars: Vec<String>,
    info: PodInfo,
}

/// Pods known to the kubelet, indexed by container id and pod UID.
#[derive(Debug, Default)]
pub struct PodSnapshot {
    pods: Vec<PodMeta>,
    by_container: HashMap<String, (usize, String, Runtime)>,
    by_uid: HashMap<String, usize>,
}

impl PodSnapshot {
    /// Parses a `PodList` JSON document.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        let list: PodList = serde_json::from_slice(body)?;
        let mut snap = PodSnapshot::default();
        for pod in list.items {
            snap.add(pod);
        }
        Ok(snap)
    }

    fn add(&mut self, pod: Pod) {
        let daemonset = pod
            .metadata
            .owner_references
            .iter()
            .any(|o| o.kind == "DaemonSet");
        let sidecars = pod
            .spec
            .init_containers
            .iter()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .map(|c| c.name.clone())
            .collect();
        let index = self.pods.len();
        let statuses = pod
            .status
            .container_statuses
            .iter()
            .chain(&pod.status.init_container_statuses)
            .chain(&pod.status.ephemeral_container_statuses);
        for status in statuses {
            let Some((runtime, id)) = status.container_id.as_deref().and_then(split_container_id)
            else {
                continue;
            };
            self.by_container
                .insert(id.to_string(), (index, status.name.clone(), runtime));
        }
        let container_type = if daemonset {
            ContainerType::DaemonSet
        } else {
            ContainerType::Normal
        };
        self.pods.push(PodMeta {
            uid: pod.metadata.uid.clone(),
            qos: pod.status.qos_class.as_deref().and_then(QosClass::parse),
            labels: pod.metadata.labels,
            sidecars,
            info: PodInfo {
                pod_name: pod.metadata.name,
                namespace: pod.metadata.namespace,
                container_name: String::new(),
                container_type,
                host_network: pod.spec.host_network,
            },
        });
        if !pod.metadata.uid.is_empty() {
            self.by_uid.insert(pod.metadata.uid, index);
        }
    }

    /// Number of pods.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether the kubelet reported no pods.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Fills a container's pod details: by container id when the kubelet lists it, else
    /// pod-level details only (sandbox or a container newer than this snapshot) by pod UID.
    pub fn enrich(&self, container: &mut Container) {
        let by_id = self.by_container.get(&container.id);
        let index = by_id.map(|(i, _, _)| *i).or_else(|| {
            container
                .pod_uid
                .as_ref()
                .and_then(|u| self.by_uid.get(u).copied())
        });
        let Some(pod) = index.and_then(|i| self.pods.get(i)) else {
            return;
        };
        let mut info = pod.info.clone();
        if let Some((_, name, runtime)) = by_id {
            // A DaemonSet pod's containers stay `daemonset`; elsewhere a native sidecar
            // (init container that keeps running) is `sidecar`.
            if info.container_type == ContainerType::Normal && pod.sidecars.contains(name) {
                info.container_type = ContainerType::Sidecar;
            }
            info.container_name = name.clone();
            container.name = name.clone();
            if container.runtime == Runtime::Unknown {
                container.runtime = *runtime;
            }
        }
        if pod.qos.is_some() {
            container.qos_class = pod.qos;
        }
        if !pod.uid.is_empty() {
            container.pod_uid = Some(pod.uid.clone());
        }
        container.labels = pod.labels.clone();
        container.pod = Some(info);
    }
}

/// Splits a kubelet `containerID` (`containerd://<id>`) into runtime and id.
fn split_container_id(text: &str) -> Option<(Runtime, &str)> {
    let (scheme, id) = text.split_once("://")?;
    let runtime = match scheme {
        "docker" => Runtime::Docker,
        "containerd" => Runtime::Containerd,
        "cri-o" => Runtime::CriO,
        "podman" => Runtime::Podman,
        _ => Runtime::Unknown,
    };
    (!id.is_empty()).then_some((runtime, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn missing_optional_parts_are_tolerated() {
        let snap = PodSnapshot::from_json(
            br#"{"items":[{"metadata":{"name":"p"}},{"status":{"containerStatuses":[{"name":"c"}]}}]}"#,
        )
        .expect("valid");
        assert_eq!(snap.len(), 2);
        assert!(PodSnapshot::from_json(br#"{"items":{}}"#).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn pod_list_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = PodSnapshot::from_json(&body);
        }
    }
}
