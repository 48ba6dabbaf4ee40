//! On a real cgroup v1 host as root: a docker-shaped cgroup with a busy child is discovered
//! and its CPU usage grows in `cgroup.cpu`. Skipped (with a message) when not root, unless
//! `CI=true`.

use huatuo_containers::{cgroup_readers, Discovery, DiscoveryOptions, Runtime};
use huatuo_dsl::value::Value;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ROOT: &str = "/sys/fs/cgroup";
const CONTROLLERS: [&str; 3] = ["cpu", "cpuacct", "memory"];

/// Removes everything the test created, in reverse order, even when an assertion fails.
struct Cleanup {
    child: Option<Child>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in self.dirs.iter().rev() {
            // rmdir of a cgroup may fail briefly while the killed task is being reaped.
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn must_run() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn usage_of(readers: &mut [Box<dyn huatuo_dsl::source::Reader>], id: &str) -> i64 {
    let reader = readers
        .iter_mut()
        .find(|r| r.schema().name == "cgroup.cpu")
        .expect("cgroup.cpu reader");
    let samples = reader.read(0).expect("read cgroup.cpu");
    let sample = samples
        .iter()
        .find(|s| s.labels.get("container_id").map(String::as_str) == Some(id))
        .expect("sample for the test container");
    match sample.fields.get("usage") {
        Some(Value::Int(ns)) => *ns,
        other => panic!("usage field: {other:?}"),
    }
}

#[test]
fn docker_shaped_v1_cgroup_is_discovered_and_its_usage_grows() {
    let is_root = is_root();
    let v1 = PathBuf::from(ROOT).join("cpu/cgroup.procs").is_file();
    if !(is_root && v1) {
        assert!(!must_run(), "CI=true but not root on a cgroup v1 host");
        eprintln!("SKIPPED: needs root and cgroup v1 cpu/cpuacct/memory hierarchies");
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let id = format!(
        "{:032x}{:016x}{:016x}",
        nanos,
        std::process::id(),
        0xfeed_u64
    );
    assert_eq!(id.len(), 64);

    let mut cleanup = Cleanup {
        child: None,
        dirs: Vec::new(),
    };
    for ctl in CONTROLLERS {
        let parent = PathBuf::from(ROOT).join(ctl).join("docker");
        if !parent.exists() {
            fs::create_dir(&parent).expect("create docker parent");
            cleanup.dirs.push(parent.clone());
        }
        let dir = parent.join(&id);
        fs::create_dir(&dir).expect("create container cgroup");
        cleanup.dirs.push(dir);
    }
    let child = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("spawn busy child");
    let pid = child.id();
    cleanup.child = Some(child);
    for ctl in CONTROLLERS {
        let procs = PathBuf::from(ROOT)
            .join(ctl)
            .join("docker")
            .join(&id)
            .join("cgroup.procs");
        fs::write(&procs, pid.to_string()).expect("move child into cgroup");
    }

    let discovery = Arc::new(Discovery::new(DiscoveryOptions {
        root: PathBuf::from(ROOT),
        refresh_interval: Duration::from_secs(60),
        ..DiscoveryOptions::default()
    }));
    let found = discovery.scan().expect("scan");
    let container = found
        .iter()
        .find(|c| c.id == id)
        .expect("test container discovered");
    assert_eq!(container.runtime, Runtime::Docker);
    assert_eq!(container.cgroup_path, format!("docker/{id}"));
    assert_eq!(container.init_pid, Some(pid));
    assert!(container.cgroup_ids.v1_cpu.is_some());

    let mut readers = cgroup_readers(discovery.clone());
    let first = usage_of(&mut readers, &id);
    std::thread::sleep(Duration::from_millis(500));
    let second = usage_of(&mut readers, &id);
    assert!(
        second - first > 100_000_000,
        "busy child used at least 100 ms of CPU in 500 ms: {first} -> {second}"
    );

    let load = readers
        .iter_mut()
        .find(|r| r.schema().name == "cgroup.load")
        .expect("load reader")
        .read(0)
        .expect("read load");
    let sample = load
        .iter()
        .find(|s| s.labels.get("container_id") == Some(&id))
        .expect("load sample");
    assert_eq!(sample.fields.get("nr_tasks"), Some(&Value::Int(1)));
    assert_eq!(sample.fields.get("nr_running"), Some(&Value::Int(1)));
}

/// Root check without libc: the effective uid from /proc/self/status.
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
