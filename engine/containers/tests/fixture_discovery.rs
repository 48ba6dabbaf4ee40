//! Discovery on the fixture cgroup trees (v1 hybrid and pure v2).

use huatuo_containers::{
    container_labels, CgroupIds, Container, Discovery, DiscoveryOptions, QosClass, Runtime,
    Snapshot,
};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn discover(rel: &str, max_containers: usize) -> (Discovery, Vec<Container>) {
    let d = Discovery::new(DiscoveryOptions {
        root: fixture(rel),
        max_containers,
        docker_root: Some(fixture("docker")),
        ..DiscoveryOptions::default()
    });
    let found = d.scan().expect("fixture scan");
    (d, found)
}

fn ino(rel: &str) -> u64 {
    std::fs::metadata(fixture(rel)).expect("fixture dir").ino()
}

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const D: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
const E: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const F: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
const G: &str = "1234567890123456789012345678901234567890123456789012345678901234";
const UID1: &str = "11111111-2222-3333-4444-555555555555";
const UID2: &str = "66666666-7777-8888-9999-000000000000";
const UID3: &str = "abcdefab-cdef-abcd-efab-cdefabcdefab";

type Row<'a> = (&'a str, &'a str, Runtime, Option<&'a str>, Option<QosClass>);
type Expected<'a> = (String, &'a str, Runtime, Option<&'a str>, Option<QosClass>);

/// Asserts path, id, runtime, pod UID and QoS of every container, in order.
fn assert_rows(found: &[Container], expected: &[Expected<'_>]) {
    let expected: Vec<Row<'_>> = expected
        .iter()
        .map(|(p, id, r, u, q)| (p.as_str(), *id, *r, *u, *q))
        .collect();
    assert_eq!(rows(found), expected);
}

fn rows(found: &[Container]) -> Vec<Row<'_>> {
    found
        .iter()
        .map(|c| {
            (
                c.cgroup_path.as_str(),
                c.id.as_str(),
                c.runtime,
                c.pod_uid.as_deref(),
                c.qos_class,
            )
        })
        .collect()
}

#[test]
fn v1_hybrid_tree() {
    let (d, found) = discover("v1", 100);
    let expected: Vec<Expected<'_>> = vec![
        (format!("docker/{A}"), A, Runtime::Docker, None, None),
        (
            format!("kubepods/besteffort/pod{UID2}/{D}"),
            D,
            Runtime::Unknown,
            Some(UID2),
            Some(QosClass::BestEffort),
        ),
        (
            format!("kubepods/burstable/pod{UID1}/{C}"),
            C,
            Runtime::Unknown,
            Some(UID1),
            Some(QosClass::Burstable),
        ),
        (
            format!("kubepods/pod{UID3}/{E}"),
            E,
            Runtime::Unknown,
            Some(UID3),
            Some(QosClass::Guaranteed),
        ),
        (
            format!("machine.slice/libpod-{F}.scope"),
            F,
            Runtime::Podman,
            None,
            None,
        ),
        (
            format!("system.slice/docker-{B}.scope"),
            B,
            Runtime::Docker,
            None,
            None,
        ),
    ];
    assert_rows(&found, &expected);

    let docker = &found[0];
    assert_eq!(docker.name, "web-frontend", "from Docker's config.v2.json");
    assert_eq!(docker.hostname.as_deref(), Some("web-frontend.docker"));
    assert_eq!(
        docker.labels.get("com.example.team").map(String::as_str),
        Some("shop")
    );
    assert_eq!(docker.init_pid, Some(1234));
    assert_eq!(
        docker.cgroup_ids.v1_cpu,
        Some(ino(&format!("v1/cpu/docker/{A}")))
    );
    assert_eq!(
        docker.cgroup_ids.v2, None,
        "no unified directory for this one"
    );
    let scope = &found[5];
    assert_eq!(scope.init_pid, Some(2001));
    assert_eq!(
        scope.name, "bbbbbbbbbbbb",
        "malformed config.v2.json: short id"
    );
    assert_eq!(d.stats().docker_config_errors, 1);
    assert_eq!(
        scope.cgroup_ids.v2,
        Some(ino(&format!("v1/unified/system.slice/docker-{B}.scope")))
    );
    assert_eq!(found[1].init_pid, None, "empty cgroup.procs");

    let labels = container_labels(docker);
    let expected: Vec<(&str, &str)> = vec![
        ("container_host", "web-frontend.docker"),
        ("container_hostnamespace", ""),
        ("container_id", A),
        ("container_level", ""),
        ("container_name", "web-frontend"),
        ("container_type", "normal"),
    ];
    let got: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(container_labels(&found[2])["container_level"], "burstable");
}

#[test]
fn v2_tree() {
    let (_, found) = discover("v2", 100);
    let b = UID1.replace('-', "_");
    let e = UID2.replace('-', "_");
    let g = UID3.replace('-', "_");
    let expected: Vec<Expected<'_>> = vec![
        (
            format!("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{e}.slice/crio-{D}.scope"),
            D,
            Runtime::CriO,
            Some(UID2),
            Some(QosClass::BestEffort),
        ),
        (
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{b}.slice/cri-containerd-{G}.scope"),
            G,
            Runtime::Containerd,
            Some(UID1),
            Some(QosClass::Burstable),
        ),
        (
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{b}.slice/cri-containerd-{C}.scope"),
            C,
            Runtime::Containerd,
            Some(UID1),
            Some(QosClass::Burstable),
        ),
        (
            format!("kubepods.slice/kubepods-pod{g}.slice/cri-containerd-{E}.scope"),
            E,
            Runtime::Containerd,
            Some(UID3),
            Some(QosClass::Guaranteed),
        ),
        (format!("machine.slice/libpod-{F}.scope"), F, Runtime::Podman, None, None),
        (
            "system.slice/cri-containerd-redis-cache-primary-0.scope".to_string(),
            "redis-cache-primary-0",
            Runtime::Containerd,
            None,
            None,
        ),
        (format!("system.slice/docker-{B}.scope"), B, Runtime::Docker, None, None),
    ];
    assert_rows(&found, &expected);
    let docker = &found[6];
    assert_eq!(docker.init_pid, Some(3001));
    assert_eq!(
        docker.cgroup_ids.v2,
        Some(ino(&format!("v2/system.slice/docker-{B}.scope")))
    );
    assert_eq!(docker.cgroup_ids.v1_cpu, None);
    assert_eq!(found[5].name, "redis-cache-");
}

#[test]
fn container_cap_counts_dropped() {
    let (d, found) = discover("v2", 3);
    assert_eq!(found.len(), 3);
    assert_eq!(d.stats().dropped_containers, 4);
    d.scan().expect("second scan");
    assert_eq!(d.stats().dropped_containers, 8);
    assert_eq!(d.stats().scans, 2);
}

#[test]
fn snapshot_is_cached_and_lookup_by_cgroup_id_works() {
    let (d, found) = discover("v1", 100);
    let snap = d.snapshot().expect("snapshot");
    assert_eq!(snap.containers, found);
    assert_eq!(
        d.stats().scans,
        1,
        "a fresh snapshot is served from the cache"
    );
    let id = found[0].cgroup_ids.v1_cpu.expect("id");
    assert_eq!(snap.by_cgroup_id(id).map(|c| c.id.as_str()), Some(A));
    assert_eq!(snap.by_cgroup_id(1), None);
    // Pre-5.5 kernels put the kernfs generation in the high 32 bits of the id.
    let mut c = found[0].clone();
    c.cgroup_ids = CgroupIds {
        v1_cpu: Some(4242),
        v2: None,
    };
    let old = Snapshot::new(snap.layout.clone(), vec![c]);
    assert_eq!(
        old.by_cgroup_id((7u64 << 32) | 4242).map(|c| c.id.as_str()),
        Some(A)
    );
    assert_eq!(old.by_cgroup_id(4243), None);
    assert_eq!(snap.by_id(B).map(|c| c.init_pid), Some(Some(2001)));
}

#[test]
fn missing_root_is_a_clear_error_and_never_panics() {
    let d = Discovery::new(DiscoveryOptions {
        root: fixture("does-not-exist"),
        ..DiscoveryOptions::default()
    });
    let err = d.scan().expect_err("no such root").to_string();
    assert!(err.contains("does-not-exist"), "{err}");
    assert!(d.snapshot().is_err());
    assert_eq!(d.stats().scan_errors, 2);
}
