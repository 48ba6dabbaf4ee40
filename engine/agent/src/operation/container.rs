//! `GET /v1/containers/{container_id}`: what the agent knows about one container.

use huatuo_containers::{Container, Discovery};
use serde_json::{json, Value as Json};

/// The metadata document of `container`.
pub fn metadata(container: &Container) -> Json {
    let pod = container.pod.as_ref();
    json!({
        "id": container.id,
        "name": container.name,
        "runtime": container.runtime.as_str(),
        "hostname": container.hostname,
        "pod_name": pod.map(|p| p.pod_name.clone()),
        "namespace": pod.map(|p| p.namespace.clone()),
        "pod_uid": container.pod_uid,
        "container_type": pod.map_or("normal", |p| p.container_type.label()),
        "qos": container.qos_class.map(|q| q.label()),
        "labels": container.labels,
        "init_pid": container.init_pid,
        "cgroup_path": container.cgroup_path,
        "cgroup_ids": {
            "v1_cpu": container.cgroup_ids.v1_cpu,
            "v2": container.cgroup_ids.v2,
        },
    })
}

/// Looks `id` up in the current discovery snapshot (a rescan when it is stale).
pub fn lookup(discovery: Option<&Discovery>, id: &str) -> Option<Json> {
    let snapshot = discovery?.snapshot().ok()?;
    snapshot.by_id(id).map(metadata)
}
