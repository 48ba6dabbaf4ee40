//! Kernel test: runqlat loads and attaches, and its histograms move under CPU contention,
//! for the host and for a container cgroup.

mod common;

use common::{kernel_ready, Busy, OneContainer, TestCgroup};
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::{LoadOptions, Templates};
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Turns `kernel.bpf_stats_enabled` on, restoring the previous value on drop.
struct BpfStats(String);

impl BpfStats {
    const PATH: &'static str = "/proc/sys/kernel/bpf_stats_enabled";

    fn enable() -> BpfStats {
        let previous = std::fs::read_to_string(Self::PATH).unwrap_or_else(|_| "0".into());
        std::fs::write(Self::PATH, "1").expect("enable bpf stats");
        BpfStats(previous.trim().to_string())
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}

fn total(samples: &[Sample], container: Option<&str>) -> (u64, u64) {
    let sample = samples
        .iter()
        .find(|s| s.labels.get("container_id").map(String::as_str) == container);
    match sample.and_then(|s| s.fields.get("latency")) {
        Some(Value::Hist(h)) => (
            h.count_between(0, u64::MAX),
            h.count_between(1_000_000, u64::MAX),
        ),
        _ => (0, 0),
    }
}

#[test]
fn runqlat_attaches_and_counts_contention() {
    if !kernel_ready("runqlat_attaches_and_counts_contention") {
        return;
    }
    counts_contention(false);
}

/// The hash-map object (kernels without task storage) counts the same way.
#[test]
fn runqlat_hashmap_object_counts_contention() {
    if !kernel_ready("runqlat_hashmap_object_counts_contention") {
        return;
    }
    counts_contention(true);
}

fn counts_contention(force_hashmap: bool) {
    let name = if force_hashmap {
        "huatuo-runqlat-hash"
    } else {
        "huatuo-runqlat"
    };
    let cgroup = TestCgroup::create("cpu", name);
    let options = LoadOptions {
        resolver: Arc::new(OneContainer(cgroup.id(), "runqlat-test")),
        force_hashmap,
        ..LoadOptions::default()
    };
    let templates = Templates::load_with(&["bpf.runqlat"], &BTreeMap::new(), options);
    let status = templates.status();
    assert_eq!(status.len(), 1);
    let st = &status[0];
    assert!(st.loaded, "runqlat did not load: {st:#?}");
    // This kernel has task storage: the main object is used unless the hash maps are forced.
    let hashmap_note = st.notes.iter().any(|n| n.contains("hash-map object"));
    assert_eq!(hashmap_note, force_hashmap, "{:?}", st.notes);
    assert_eq!(st.programs.len(), 3);
    for program in &st.programs {
        let variant = program.attached_variant().expect("attached");
        assert_eq!(variant.kind, AttachKind::TpBtf, "{program:#?}");
        assert!(variant.error.is_none());
    }

    let _stats = BpfStats::enable();
    let before = templates.read_histograms();
    let (host_before, slow_before) = total(&before, None);
    {
        let busy = Busy::start(4);
        for pid in busy.pids() {
            cgroup.add(pid);
        }
        std::thread::sleep(Duration::from_millis(1200));
        let after = templates.read_histograms();
        let (host_after, slow_after) = total(&after, None);
        let (container, container_slow) = total(&after, Some("runqlat-test"));
        assert!(
            host_after > host_before + 100,
            "host count {host_before} -> {host_after}"
        );
        // 4 busy loops on 2 CPUs wait whole time slices (ms) in the run queue.
        assert!(
            slow_after > slow_before,
            "no latency >= 1ms: {slow_before} -> {slow_after}"
        );
        assert!(container > 10, "container samples: {container}");
        assert!(
            container_slow > 0,
            "container latency >= 1ms: {container_slow}"
        );
        assert!(container <= host_after, "{container} > {host_after}");
    }
    let st = &templates.status()[0];
    assert_eq!(st.counters.map_full, 0, "{st:?}");
    let switch = st
        .programs
        .iter()
        .find(|p| p.program == "sched_switch")
        .expect("switch");
    assert!(
        switch.run_count > 100,
        "bpf stats run_count {}",
        switch.run_count
    );
    assert!(switch.run_time_ns > 0);
}
