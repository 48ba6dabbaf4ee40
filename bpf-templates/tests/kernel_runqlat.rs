//! Kernel test: runqlat loads and attaches, and its histograms move under CPU contention,
//! for the host and for a container cgroup.

mod common;

use common::{kernel_ready, Busy, OneContainer, TestCgroup, TracefsGuard};
use huatuo_bpf::requires::Requirement;
use huatuo_bpf::schema::AttachKind;
use huatuo_bpf::{LoadOptions, NoContainers, Templates};
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

/// How the template is loaded: which object, whether sched_info may be used, and the attach
/// kind the sched_switch program is expected to get (the kinds preferred to it are excluded).
#[derive(Clone, Copy)]
struct Mode {
    force_hashmap: bool,
    no_sched_info: bool,
    /// With sched_info: the queue-stamp variant (no per-task state) rather than run_delay.
    queued: bool,
    kind: AttachKind,
}

impl Mode {
    fn new(force_hashmap: bool, no_sched_info: bool, kind: AttachKind) -> Mode {
        Mode {
            force_hashmap,
            no_sched_info,
            queued: !no_sched_info,
            kind,
        }
    }

    /// The run_delay variant (per-task state) instead of the queue stamp.
    fn run_delay(self) -> Mode {
        Mode {
            queued: false,
            ..self
        }
    }

    fn options(self, resolver: Arc<dyn huatuo_bpf::CgroupResolver>) -> LoadOptions {
        let order = [AttachKind::TpBtf, AttachKind::RawTp, AttachKind::Tracepoint];
        let preferred = order.iter().position(|k| *k == self.kind).unwrap_or(0);
        LoadOptions {
            resolver,
            force_hashmap: self.force_hashmap,
            unmet: if self.no_sched_info {
                vec![Requirement::SchedInfo]
            } else if !self.queued {
                vec![Requirement::GroupSched]
            } else {
                vec![]
            },
            excluded_kinds: order[..preferred].to_vec(),
            ..LoadOptions::default()
        }
    }

    /// The sched_switch program this mode should attach.
    fn switch_prog(self) -> String {
        let prefix = match self.kind {
            AttachKind::TpBtf => "tp_btf",
            AttachKind::RawTp => "raw_tp",
            _ => "tp",
        };
        let suffix = if self.no_sched_info {
            ""
        } else if self.queued {
            "_queued"
        } else {
            "_schedinfo"
        };
        format!("{prefix}_sched_switch{suffix}")
    }

    fn cgroup_name(self) -> String {
        format!(
            "huatuo-runqlat-{}-{}-{:?}",
            if self.force_hashmap {
                "hash"
            } else {
                "storage"
            },
            if self.no_sched_info {
                "wakeup"
            } else if self.queued {
                "queued"
            } else {
                "schedinfo"
            },
            self.kind
        )
    }
}

#[test]
fn runqlat_attaches_and_counts_contention() {
    if !kernel_ready("runqlat_attaches_and_counts_contention") {
        return;
    }
    counts_contention(Mode::new(false, false, AttachKind::TpBtf));
    counts_contention(Mode::new(false, false, AttachKind::RawTp));
}

/// The run_delay variant (where the run queue clock is out of reach) counts the same way.
#[test]
fn runqlat_run_delay_variant_counts_contention() {
    if !kernel_ready("runqlat_run_delay_variant_counts_contention") {
        return;
    }
    counts_contention(Mode::new(false, false, AttachKind::TpBtf).run_delay());
}

/// The hash-map object (kernels without task storage) counts the same way, on each kind.
#[test]
fn runqlat_hashmap_object_counts_contention() {
    if !kernel_ready("runqlat_hashmap_object_counts_contention") {
        return;
    }
    let _tracefs = TracefsGuard::new();
    for kind in [AttachKind::TpBtf, AttachKind::RawTp, AttachKind::Tracepoint] {
        counts_contention(Mode::new(true, false, kind).run_delay());
    }
}

/// Without sched_info the wakeup-timestamp variant and its two companions attach instead.
#[test]
fn runqlat_wakeup_variant_counts_contention() {
    if !kernel_ready("runqlat_wakeup_variant_counts_contention") {
        return;
    }
    for force_hashmap in [false, true] {
        counts_contention(Mode::new(force_hashmap, true, AttachKind::TpBtf));
    }
}

/// Both ways of measuring, attached side by side under the same load, agree on how many
/// waits there were and how many were long.
#[test]
fn runqlat_sched_info_agrees_with_wakeup_timestamps() {
    if !kernel_ready("runqlat_sched_info_agrees_with_wakeup_timestamps") {
        return;
    }
    let load = |no_sched_info| {
        let mode = Mode::new(false, no_sched_info, AttachKind::TpBtf);
        let templates = Templates::load_with(
            &["bpf.runqlat"],
            &BTreeMap::new(),
            mode.options(Arc::new(NoContainers)),
        );
        assert!(templates.status()[0].loaded, "{:#?}", templates.status());
        templates
    };
    let sched_info = load(false);
    let wakeups = load(true);
    let before = (
        total(&sched_info.read_histograms(), None),
        total(&wakeups.read_histograms(), None),
    );
    {
        let _busy = Busy::start(4);
        std::thread::sleep(Duration::from_millis(1500));
    }
    // Waits are counted when the task leaves the CPU: let the last ones end.
    std::thread::sleep(Duration::from_millis(200));
    let after = (
        total(&sched_info.read_histograms(), None),
        total(&wakeups.read_histograms(), None),
    );
    let counts = (after.0 .0 - before.0 .0, after.1 .0 - before.1 .0);
    let slow = (after.0 .1 - before.0 .1, after.1 .1 - before.1 .1);
    eprintln!("waits (sched_info, wakeups): {counts:?}, >= 1ms: {slow:?}");
    let close = |a: u64, b: u64| (a as f64) >= 0.9 * b as f64 && (b as f64) >= 0.9 * a as f64;
    assert!(counts.1 > 100, "wakeup variant saw {counts:?}");
    assert!(
        close(counts.0, counts.1),
        "waits (sched_info, wakeups): {counts:?}"
    );
    assert!(slow.1 > 10, "long waits {slow:?}");
    assert!(
        close(slow.0, slow.1),
        "waits >= 1ms (sched_info, wakeups): {slow:?}"
    );
}

fn counts_contention(mode: Mode) {
    let cgroup = TestCgroup::create("cpu", &mode.cgroup_name());
    let options = mode.options(Arc::new(OneContainer(cgroup.id(), "runqlat-test")));
    let templates = Templates::load_with(&["bpf.runqlat"], &BTreeMap::new(), options);
    let status = templates.status();
    assert_eq!(status.len(), 1);
    let st = &status[0];
    assert!(st.loaded, "runqlat did not load: {st:#?}");
    // This kernel has task storage: the main object is used unless the hash maps are forced.
    let hashmap_note = st.notes.iter().any(|n| n.contains("hash-map object"));
    assert_eq!(hashmap_note, mode.force_hashmap, "{:?}", st.notes);
    assert_eq!(st.programs.len(), 3);
    let switch = st.programs[0]
        .attached_variant()
        .expect("sched_switch attached");
    assert_eq!(
        (switch.kind, switch.prog.as_str()),
        (mode.kind, mode.switch_prog().as_str()),
        "{st:#?}"
    );
    for companion in &st.programs[1..] {
        if mode.no_sched_info {
            let variant = companion.attached_variant().expect("companion attached");
            assert_eq!(variant.kind, mode.kind, "{companion:#?}");
        } else {
            assert!(companion.not_needed.is_some(), "{companion:#?}");
            assert!(companion.tried.is_empty(), "{companion:#?}");
        }
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
