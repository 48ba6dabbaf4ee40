//! Kernel tests of the oom and reclaim templates, in a memory cgroup with a small limit
//! (the v1 memory controller on hybrid hosts, the unified hierarchy on pure v2 hosts).

mod common;
mod events_util;

use common::{kernel_ready, OneContainer, TestCgroup};
use events_util::{int, text, wait_for, ChildGuard};
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Creates a memory cgroup limited to `bytes` (no swap either).
fn limited_cgroup(name: &str, bytes: u64) -> TestCgroup {
    let cgroup = TestCgroup::create("memory", name);
    let limit = bytes.to_string();
    if huatuo_bpf::cgroup::unified_hierarchy() {
        std::fs::write(cgroup.dir.join("memory.max"), &limit).expect("memory.max");
        let _ = std::fs::write(cgroup.dir.join("memory.swap.max"), "0");
    } else {
        std::fs::write(cgroup.dir.join("memory.limit_in_bytes"), &limit)
            .expect("memory.limit_in_bytes");
        let _ = std::fs::write(cgroup.dir.join("memory.memsw.limit_in_bytes"), &limit);
    }
    cgroup
}

/// A shell that moves itself into the cgroup, then execs `command`.
fn spawn_in(cgroup: &TestCgroup, command: &str) -> ChildGuard {
    let procs = cgroup.dir.join("cgroup.procs");
    ChildGuard::shell(&format!("echo $$ > {} && exec {command}", procs.display()))
}

fn load(
    name: &str,
    tunables: BTreeMap<String, BTreeMap<String, u64>>,
    cgroup: &TestCgroup,
    container: &'static str,
) -> Templates {
    let options = LoadOptions {
        resolver: Arc::new(OneContainer(cgroup.id(), container)),
        ..LoadOptions::default()
    };
    let templates = Templates::load_with(&[name], &tunables, options);
    let status = templates.status();
    assert!(status[0].loaded, "{name} did not load: {status:#?}");
    templates
}

#[test]
fn oom_kill_in_a_limited_cgroup_is_reported() {
    if !kernel_ready("oom_kill_in_a_limited_cgroup_is_reported") {
        return;
    }
    let cgroup = limited_cgroup("huatuo-oom", 20 << 20);
    let mut templates = load("oom", BTreeMap::new(), &cgroup, "oom-test");
    let mut rx = templates.take_events().expect("event stream");
    {
        // `tail` keeps a newline-free input in memory: it grows until the OOM killer stops it
        let mut child = spawn_in(&cgroup, "tail /dev/zero");
        let pid = child.pid() as i64;
        let (event, seen) = wait_for(&mut rx, Duration::from_secs(15), |s| {
            int(s, "victim_pid") == Some(pid)
        });
        let event = event.unwrap_or_else(|| panic!("no oom event for pid {pid}; saw {seen:#?}"));
        assert!(
            child.wait_exit(Duration::from_secs(5)),
            "the victim did not die"
        );
        assert_eq!(text(&event, "victim_process_name"), Some("tail"));
        assert_eq!(int(&event, "victim_cgroup_id"), Some(cgroup.id() as i64));
        assert_eq!(
            event.labels.get("container_id").map(String::as_str),
            Some("oom-test")
        );
        // the victim's own allocation ran the OOM killer
        assert_eq!(int(&event, "trigger_pid"), Some(pid));
        assert_eq!(int(&event, "trigger_cgroup_id"), Some(cgroup.id() as i64));
    }
}

/// A file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn memcg_limit_below_the_working_set_reports_reclaim() {
    if !kernel_ready("memcg_limit_below_the_working_set_reports_reclaim") {
        return;
    }
    let cgroup = limited_cgroup("huatuo-reclaim", 32 << 20);
    // report every stall (threshold 0) so one reclaim pass is enough
    let tunables = BTreeMap::from([(
        "reclaim".to_string(),
        BTreeMap::from([("threshold_ns".to_string(), 0u64)]),
    )]);
    let mut templates = load("reclaim", tunables, &cgroup, "reclaim-test");
    let mut rx = templates.take_events().expect("event stream");
    let file =
        TempFile(std::env::temp_dir().join(format!("huatuo-reclaim-{}", std::process::id())));
    {
        // 200 MiB of page cache through a 32 MiB cgroup: charging must reclaim
        let mut child = spawn_in(
            &cgroup,
            &format!(
                "dd if=/dev/zero of={} bs=1M count=200 status=none",
                file.0.display()
            ),
        );
        let pid = child.pid() as i64;
        let (event, seen) = wait_for(&mut rx, Duration::from_secs(20), |s| {
            int(s, "pid") == Some(pid) && text(s, "kind") == Some("memcg_reclaim")
        });
        let event = event.unwrap_or_else(|| {
            panic!(
                "no memcg reclaim event for pid {pid}; saw {} samples",
                seen.len()
            )
        });
        assert!(
            child.wait_exit(Duration::from_secs(30)),
            "dd did not finish"
        );
        assert_eq!(text(&event, "comm"), Some("dd"));
        assert!(int(&event, "deltatime").unwrap_or(0) > 0, "{event:#?}");
        assert_eq!(int(&event, "cgroup_id"), Some(cgroup.id() as i64));
        assert_eq!(
            event.labels.get("container_id").map(String::as_str),
            Some("reclaim-test")
        );
    }
    // the per-container stall histogram counted the same stalls
    let samples = templates.read_histograms();
    let container = samples
        .iter()
        .find(|s| s.labels.get("container_id").map(String::as_str) == Some("reclaim-test"))
        .unwrap_or_else(|| panic!("no container histogram: {samples:#?}"));
    match container.fields.get("directstall") {
        Some(Value::Hist(h)) => assert!(h.count_between(0, u64::MAX) > 0, "{h:?}"),
        other => panic!("directstall: {other:?}"),
    }
}
