//! Recognises container cgroups from their path relative to the cgroup root.
//!
//! Shapes handled (cgroup v1 and v2 use the same relative paths):
//! - systemd scopes: `docker-<64hex>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
//!   `libpod-<64hex>.scope` (conmon scopes are not containers);
//! - cgroupfs drivers: `docker/<64hex>`, `libpod_parent/libpod-<64hex>`;
//! - kubepods with the systemd driver (`kubepods.slice/kubepods-burstable.slice/
//!   kubepods-burstable-pod<uid_with_underscores>.slice/<scope>`) and the cgroupfs driver
//!   (`kubepods/burstable/pod<uid>/<id>`); a pod directly under kubepods is Guaranteed.

use regex::Regex;
use std::sync::OnceLock;

/// The container runtime a cgroup path points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    /// Docker (moby).
    Docker,
    /// containerd through its CRI plugin or nerdctl.
    Containerd,
    /// CRI-O.
    CriO,
    /// Podman (libpod).
    Podman,
    /// A kubepods container whose runtime the path does not name (cgroupfs driver).
    Unknown,
}

impl Runtime {
    /// Lower-case name, as the kubelet's `containerID` scheme spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Unknown => "unknown",
        }
    }
}

/// Kubernetes QoS class of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QosClass {
    /// Requests equal limits for every resource.
    Guaranteed,
    /// Some requests set.
    Burstable,
    /// Nothing requested.
    BestEffort,
}

impl QosClass {
    /// Lower-case label value (`container_level`), as the seed's metric examples show it.
    pub fn label(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "guaranteed",
            QosClass::Burstable => "burstable",
            QosClass::BestEffort => "besteffort",
        }
    }

    /// Parses the kubelet's `status.qosClass` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "guaranteed" => Some(QosClass::Guaranteed),
            "burstable" => Some(QosClass::Burstable),
            "besteffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }
}

/// What the path of a container cgroup tells about the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// Runtime named by the path.
    pub runtime: Runtime,
    /// Container id (64 hex for docker/podman, the CRI id otherwise).
    pub id: String,
    /// Pod UID with dashes, for kubepods paths.
    pub pod_uid: Option<String>,
    /// QoS class, for kubepods paths.
    pub qos: Option<QosClass>,
}

struct Patterns {
    scope: Regex,
    hex64: Regex,
    generic_id: Regex,
    pod_systemd: Regex,
    pod_cgroupfs: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let build = |re: &str| match Regex::new(re) {
            Ok(r) => r,
            // The patterns are constants checked by the unit tests.
            Err(e) => unreachable!("invalid built-in pattern {re}: {e}"),
        };
        Patterns {
            scope: build(r"^(docker|cri-containerd|crio|libpod)-(.+)\.scope$"),
            hex64: build(r"^[0-9a-f]{64}$"),
            generic_id: build(r"^[0-9A-Za-z][0-9A-Za-z_.:-]{11,254}$"),
            pod_systemd: build(
                r"^kubepods(?:-(burstable|besteffort))?-pod([0-9A-Za-z_]{8,64})\.slice$",
            ),
            pod_cgroupfs: build(r"^pod([0-9A-Za-z-]{8,64})$"),
        }
    })
}

/// Classifies a cgroup path relative to the hierarchy root (leading `/` optional).
/// Returns `None` for anything that is not a container cgroup.
pub fn classify(rel_path: &str) -> Option<PathInfo> {
    let parts: Vec<&str> = rel_path.split('/').filter(|p| !p.is_empty()).collect();
    let (&leaf, parents) = parts.split_last()?;
    let pats = patterns();
    let mut info = classify_leaf(leaf, parents.last().copied(), pats)?;
    if let Some((uid, qos)) = kube_pod(parents, pats) {
        info.pod_uid = Some(uid);
        info.qos = Some(qos);
    } else if info.runtime == Runtime::Unknown {
        return None;
    }
    Some(info)
}

fn classify_leaf(leaf: &str, parent: Option<&str>, pats: &Patterns) -> Option<PathInfo> {
    let make = |runtime, id: &str| PathInfo {
        runtime,
        id: id.to_string(),
        pod_uid: None,
        qos: None,
    };
    if let Some(caps) = pats.scope.captures(leaf) {
        let id = caps.get(2)?.as_str();
        let runtime = match caps.get(1)?.as_str() {
            "docker" => Runtime::Docker,
            "cri-containerd" => Runtime::Containerd,
            "crio" => Runtime::CriO,
            _ => Runtime::Podman,
        };
        let valid = match runtime {
            Runtime::Docker | Runtime::Podman => pats.hex64.is_match(id),
            _ => pats.generic_id.is_match(id) && !id.starts_with("conmon-"),
        };
        return valid.then(|| make(runtime, id));
    }
    if let Some(id) = leaf.strip_prefix("libpod-") {
        return (parent == Some("libpod_parent") && pats.hex64.is_match(id))
            .then(|| make(Runtime::Podman, id));
    }
    if parent == Some("docker") && pats.hex64.is_match(leaf) {
        return Some(make(Runtime::Docker, leaf));
    }
    // A bare id directly inside a kubepods pod directory (cgroupfs driver); the caller
    // rejects it when the parents are not a pod.
    (pats.generic_id.is_match(leaf) && !leaf.starts_with("pod"))
        .then(|| make(Runtime::Unknown, leaf))
}

/// Finds the pod UID and QoS class when the container's direct parent is a kubepods pod.
fn kube_pod(parents: &[&str], pats: &Patterns) -> Option<(String, QosClass)> {
    let (&pod_dir, above) = parents.split_last()?;
    if !above
        .iter()
        .any(|p| *p == "kubepods" || p.starts_with("kubepods.slice"))
    {
        return None;
    }
    if let Some(caps) = pats.pod_systemd.captures(pod_dir) {
        let qos = qos_of(caps.get(1).map(|m| m.as_str()));
        return Some((caps.get(2)?.as_str().replace('_', "-"), qos));
    }
    let caps = pats.pod_cgroupfs.captures(pod_dir)?;
    let level = above.last().copied().filter(|p| *p != "kubepods");
    Some((caps.get(1)?.as_str().to_string(), qos_of(level)))
}

fn qos_of(level: Option<&str>) -> QosClass {
    match level {
        Some("burstable") => QosClass::Burstable,
        Some("besteffort") => QosClass::BestEffort,
        _ => QosClass::Guaranteed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "4c5a1b2e3d4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";

    #[test]
    fn docker_systemd_and_cgroupfs() {
        let a = classify(&format!("/system.slice/docker-{HEX}.scope")).unwrap();
        assert_eq!(
            (a.runtime, a.id.as_str(), a.pod_uid),
            (Runtime::Docker, HEX, None)
        );
        let b = classify(&format!("docker/{HEX}")).unwrap();
        assert_eq!((b.runtime, b.id.as_str()), (Runtime::Docker, HEX));
        assert_eq!(classify("docker/notanid"), None);
        assert_eq!(
            classify(&format!("/system.slice/docker-{}.scope", &HEX[..12])),
            None
        );
    }

    #[test]
    fn kubepods_systemd_driver() {
        let path = format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_0000_1111_2222_333344445555.slice/cri-containerd-{HEX}.scope"
        );
        let info = classify(&path).unwrap();
        assert_eq!(info.runtime, Runtime::Containerd);
        assert_eq!(
            info.pod_uid.as_deref(),
            Some("1a2b3c4d-0000-1111-2222-333344445555")
        );
        assert_eq!(info.qos, Some(QosClass::Burstable));
        let guaranteed = format!("kubepods.slice/kubepods-podabcdef12_3456.slice/crio-{HEX}.scope");
        let g = classify(&guaranteed).unwrap();
        assert_eq!(
            (g.runtime, g.qos),
            (Runtime::CriO, Some(QosClass::Guaranteed))
        );
        assert_eq!(
            classify(&format!(
                "kubepods.slice/kubepods-podabcdef12_3456.slice/crio-conmon-{HEX}.scope"
            )),
            None
        );
    }

    #[test]
    fn kubepods_cgroupfs_driver() {
        let info = classify(&format!("kubepods/besteffort/pod0f0e0d0c-1111/{HEX}")).unwrap();
        assert_eq!(info.runtime, Runtime::Unknown);
        assert_eq!(info.qos, Some(QosClass::BestEffort));
        assert_eq!(info.pod_uid.as_deref(), Some("0f0e0d0c-1111"));
        let g = classify(&format!("kubepods/pod0f0e0d0c-1111/{HEX}")).unwrap();
        assert_eq!(g.qos, Some(QosClass::Guaranteed));
        // The pod directory itself and the QoS directories are not containers.
        assert_eq!(classify("kubepods/besteffort/pod0f0e0d0c-1111"), None);
        assert_eq!(classify("kubepods/burstable"), None);
        // A bare id outside a pod is not recognised.
        assert_eq!(classify(&format!("user.slice/{HEX}")), None);
    }

    #[test]
    fn podman_shapes() {
        let a = classify(&format!("machine.slice/libpod-{HEX}.scope")).unwrap();
        assert_eq!(a.runtime, Runtime::Podman);
        let b = classify(&format!("libpod_parent/libpod-{HEX}")).unwrap();
        assert_eq!((b.runtime, b.id.as_str()), (Runtime::Podman, HEX));
        assert_eq!(
            classify(&format!("machine.slice/libpod-conmon-{HEX}.scope")),
            None
        );
    }

    #[test]
    fn long_containerd_names() {
        let id = "sandbox-nginx-web-7f9c-deployment.v2";
        let info = classify(&format!("system.slice/cri-containerd-{id}.scope")).unwrap();
        assert_eq!((info.runtime, info.id.as_str()), (Runtime::Containerd, id));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn classifier_never_panics(path in "[a-z0-9_./-]{0,200}") {
            let _ = classify(&path);
        }

        #[test]
        fn classifier_handles_structured_paths(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("kubepods".to_string()), Just("kubepods.slice".to_string()),
                    Just("burstable".to_string()), Just("docker".to_string()),
                    "pod[0-9a-f_-]{0,40}", "[a-z-]{0,20}\\.scope", "[0-9a-f]{60,66}",
                    "(docker|crio|libpod|cri-containerd)-[0-9a-z]{0,70}\\.scope",
                ],
                0..8,
            )
        ) {
            if let Some(info) = classify(&parts.join("/")) {
                prop_assert!(!info.id.is_empty());
            }
        }
    }
}
