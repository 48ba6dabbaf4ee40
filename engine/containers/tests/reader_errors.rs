//! Bad input for the readers and discovery: malformed files, vanished containers, refresh.

use huatuo_containers::kubelet::KubeletConfig;
use huatuo_containers::{cgroup_readers_with, Discovery, DiscoveryOptions, ReaderOptions};
use huatuo_dsl::source::{ConfigValues, Reader};
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

/// A scratch pure-v2 tree removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Self {
        let root = std::env::temp_dir().join(format!("huatuo-cg-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("root");
        fs::write(root.join("cgroup.controllers"), "cpu memory\n").expect("controllers");
        Tree(root)
    }

    fn container(&self, id: &str, cpu_stat: &str) -> PathBuf {
        let dir = self.0.join(format!("system.slice/docker-{id}.scope"));
        fs::create_dir_all(&dir).expect("container dir");
        fs::write(dir.join("cpu.stat"), cpu_stat).expect("cpu.stat");
        dir
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn reader(root: &Path, name: &str, refresh: Duration) -> Box<dyn Reader> {
    let discovery = Arc::new(Discovery::new(DiscoveryOptions {
        root: root.to_path_buf(),
        refresh_interval: refresh,
        ..DiscoveryOptions::default()
    }));
    cgroup_readers_with(discovery, ReaderOptions::default())
        .into_iter()
        .find(|r| r.schema().name == name)
        .expect("reader")
}

const GOOD: &str = "usage_usec 1\nuser_usec 1\nsystem_usec 0\n";

#[test]
fn malformed_file_is_an_error_naming_file_and_line() {
    let tree = Tree::new("bad");
    tree.container(B, "usage_usec 1\nuser_usec one\n");
    let err = reader(&tree.0, "cgroup.cpu", Duration::ZERO)
        .read(0)
        .expect_err("malformed cpu.stat");
    assert_eq!(err.source_name, "cgroup.cpu");
    assert!(
        err.path.ends_with(&format!("docker-{B}.scope/cpu.stat")),
        "{}",
        err.path
    );
    assert!(err.message.contains("line 2"), "{}", err.message);
}

#[test]
fn one_bad_container_does_not_hide_the_others() {
    let tree = Tree::new("mixed");
    tree.container(B, "garbage\n");
    tree.container(C, GOOD);
    let samples = reader(&tree.0, "cgroup.cpu", Duration::ZERO)
        .read(0)
        .expect("partial read");
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels["container_id"], C);
    assert_eq!(samples[0].fields["usage"], Value::Int(1000));
}

#[test]
fn vanished_container_is_skipped_and_new_one_found_after_refresh() {
    let tree = Tree::new("vanish");
    let dir = tree.container(B, GOOD);
    let mut r = reader(&tree.0, "cgroup.cpu", Duration::from_secs(3600));
    assert_eq!(r.read(0).expect("read").len(), 1);
    // Removed between scan and read: the cached snapshot still lists it, the read skips it.
    fs::remove_dir_all(&dir).expect("remove");
    assert_eq!(r.read(0).expect("read").len(), 0);

    // With a zero refresh interval every read rescans and sees new containers.
    tree.container(C, GOOD);
    let mut fresh = reader(&tree.0, "cgroup.cpu", Duration::ZERO);
    let samples = fresh.read(0).expect("read");
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels["container_id"], C);
}

#[test]
fn unreadable_root_fails_the_read_with_its_path() {
    let err = reader(
        Path::new("/nonexistent-cgroup-root"),
        "cgroup.pids",
        Duration::ZERO,
    )
    .read(0)
    .expect_err("no root");
    assert_eq!(err.path, "/nonexistent-cgroup-root");
}

struct Values(BTreeMap<&'static str, Value>);

impl ConfigValues for Values {
    fn value(&self, path: &str) -> Option<Value> {
        self.0.get(path).cloned()
    }
}

#[test]
fn pod_section_from_config_values() {
    let values = Values(BTreeMap::from([
        ("Pod.KubeletReadOnlyPort", Value::Int(0)),
        ("Pod.KubeletAuthorizedPort", Value::Int(10250)),
        (
            "Pod.KubeletClientCertPath",
            Value::Str("/etc/k/client.pem".into()),
        ),
    ]));
    let cfg = KubeletConfig::from_values(&values).expect("valid");
    assert_eq!(cfg.read_only_port, 0);
    assert_eq!(cfg.authorized_port, 10250);
    assert_eq!(cfg.client_cert, Some(PathBuf::from("/etc/k/client.pem")));
    assert_eq!(cfg.client_key, Some(PathBuf::from("/etc/k/client.pem")));
    assert!(!cfg.insecure_skip_verify);

    let defaults = KubeletConfig::from_values(&Values(BTreeMap::new())).expect("defaults");
    assert_eq!(
        (defaults.read_only_port, defaults.authorized_port),
        (10255, 10250)
    );
    assert_eq!(
        defaults.client_key,
        Some(PathBuf::from(
            "/etc/kubernetes/pki/apiserver-kubelet-client.key"
        ))
    );

    let bad = Values(BTreeMap::from([(
        "Pod.KubeletReadOnlyPort",
        Value::Int(70000),
    )]));
    let err = KubeletConfig::from_values(&bad).expect_err("out of range");
    assert!(err.starts_with("Pod.KubeletReadOnlyPort"), "{err}");
    let bad = Values(BTreeMap::from([(
        "Pod.KubeletClientCertPath",
        Value::Int(1),
    )]));
    let err = KubeletConfig::from_values(&bad).expect_err("wrong type");
    assert!(err.starts_with("Pod.KubeletClientCertPath"), "{err}");
}

#[test]
fn failed_rescan_serves_the_last_good_snapshot() {
    let tree = Tree::new("stale");
    tree.container(B, GOOD);
    let discovery = Discovery::new(DiscoveryOptions {
        root: tree.0.clone(),
        refresh_interval: Duration::ZERO,
        ..DiscoveryOptions::default()
    });
    assert_eq!(discovery.snapshot().expect("first").containers.len(), 1);
    // The whole root disappears: the rescan fails, the last snapshot is served.
    fs::remove_dir_all(&tree.0).expect("remove root");
    let snap = discovery.snapshot().expect("stale snapshot served");
    assert_eq!(snap.containers[0].id, B);
    assert_eq!(discovery.stats().scan_errors, 1);
}

#[test]
fn start_without_kubelet_discovers_cgroup_only() {
    let tree = Tree::new("start");
    tree.container(B, GOOD);
    let kubelet = KubeletConfig {
        read_only_port: 0,
        authorized_port: 0,
        ..KubeletConfig::default()
    };
    let options = DiscoveryOptions {
        root: tree.0.clone(),
        ..DiscoveryOptions::default()
    };
    let (discovery, watcher) =
        huatuo_containers::start(options, kubelet, Default::default()).expect("start");
    assert!(watcher.is_none());
    let found = discovery.scan().expect("scan");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "bbbbbbbbbbbb");
}
