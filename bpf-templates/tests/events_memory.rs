//! Kernel tests of the oom and reclaim templates, in a memory cgroup with a small limit
//! (the v1 memory controller on hybrid hosts, the unified hierarchy on pure v2 hosts).

mod common;
mod events_util;

use common::{kernel_ready, OneContainer, TestCgroup};
use events_util::{int, text, wait_for, ChildGuard};
use huatuo_bpf::schema::AttachKind;
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

/// A shell that moves itself into the cgroups, then execs `command`.
fn spawn_in(cgroups: &[&TestCgroup], command: &str) -> ChildGuard {
    let moves: Vec<String> = cgroups
        .iter()
        .map(|c| format!("echo $$ > {} && ", c.dir.join("cgroup.procs").display()))
        .collect();
    ChildGuard::shell(&format!("{}exec {command}", moves.concat()))
}

fn load(
    name: &str,
    tunables: BTreeMap<String, BTreeMap<String, u64>>,
    cgroup: &TestCgroup,
    container: &'static str,
) -> Templates {
    load_kind(name, tunables, cgroup, container, None)
}

/// `load`, with every program attached as `kind` when given (the others excluded).
fn load_kind(
    name: &str,
    tunables: BTreeMap<String, BTreeMap<String, u64>>,
    cgroup: &TestCgroup,
    container: &'static str,
    kind: Option<AttachKind>,
) -> Templates {
    let excluded_kinds = match kind {
        Some(AttachKind::RawTp) => vec![AttachKind::TpBtf],
        _ => vec![],
    };
    let options = LoadOptions {
        resolver: Arc::new(OneContainer(cgroup.id(), container)),
        excluded_kinds,
        ..LoadOptions::default()
    };
    let templates = Templates::load_with(&[name], &tunables, options);
    let status = templates.status();
    assert!(status[0].loaded, "{name} did not load: {status:#?}");
    if let Some(kind) = kind {
        for program in &status[0].programs {
            let attached = program.attached_variant().map(|v| v.kind);
            assert_eq!(attached, Some(kind), "{name}: {program:#?}");
        }
    }
    templates
}

#[test]
fn oom_kill_in_a_limited_cgroup_is_reported() {
    if !kernel_ready("oom_kill_in_a_limited_cgroup_is_reported") {
        return;
    }
    let cgroup = limited_cgroup("huatuo-oom", 20 << 20);
    // Containers are found by the cgroup of the v1 cpu controller (the same one on pure v2).
    let cpu = (!huatuo_bpf::cgroup::unified_hierarchy())
        .then(|| TestCgroup::create("cpu", "huatuo-oom-cpu"));
    let container = cpu.as_ref().unwrap_or(&cgroup);
    let mut templates = load("oom", BTreeMap::new(), container, "oom-test");
    let mut rx = templates.take_events().expect("event stream");
    {
        // `tail` keeps a newline-free input in memory: it grows until the OOM killer stops it
        let mut child = spawn_in(&[container, &cgroup], "tail /dev/zero");
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
        // both tasks' containers, as HUATUO's record names them
        for whose in ["victim", "trigger"] {
            let field =
                |f: &str| text(&event, &format!("{whose}_container_{f}")).map(str::to_string);
            assert_eq!(field("id").as_deref(), Some("oom-test"), "{event:#?}");
            assert_eq!(
                field("hostname").as_deref(),
                Some("oom-test-host"),
                "{event:#?}"
            );
        }
    }
}

/// The sum of the `/proc/vmstat` counters whose name starts with one of `prefixes`.
fn vmstat(prefixes: &[&str]) -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .expect("/proc/vmstat")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p)))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

/// The `Int` field `field` of the first sample `pick` accepts.
fn map_int(
    samples: &[huatuo_dsl::value::Sample],
    pick: impl Fn(&huatuo_dsl::value::Sample) -> bool,
    field: &str,
) -> Option<i64> {
    samples
        .iter()
        .filter(|s| pick(s))
        .find_map(|s| int(s, field))
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
    memcg_reclaim_with(AttachKind::TpBtf);
}

#[test]
fn memcg_limit_reclaim_with_raw_tracepoints() {
    if !kernel_ready("memcg_limit_reclaim_with_raw_tracepoints") {
        return;
    }
    memcg_reclaim_with(AttachKind::RawTp);
}

/// A 32 MiB memory cgroup writing 200 MiB of page cache, with the reclaim template's
/// programs attached as `kind`: memcg reclaim events, the container's stall histogram and
/// directstall count, and the host stall sums against /proc/vmstat.
fn memcg_reclaim_with(kind: AttachKind) {
    let cgroup = limited_cgroup(&format!("huatuo-reclaim-{kind:?}"), 32 << 20);
    // report every stall (threshold 0) so one reclaim pass is enough
    let tunables = BTreeMap::from([(
        "reclaim".to_string(),
        BTreeMap::from([("threshold_ns".to_string(), 0u64)]),
    )]);
    // the kernel's own counts of direct reclaims and direct compactions (ALLOCSTALL is
    // counted in every begin/end pair of mm_vmscan_direct_reclaim, COMPACTSTALL before every
    // direct compaction), read before the template attaches
    let allocstall_before = vmstat(&["allocstall_"]);
    let compactstall_before = vmstat(&["compact_stall"]);
    let mut templates = load_kind("reclaim", tunables, &cgroup, "reclaim-test", Some(kind));
    let mut rx = templates.take_events().expect("event stream");
    let is_test = |s: &huatuo_dsl::value::Sample| {
        s.labels.get("container_id").map(String::as_str) == Some("reclaim-test")
    };
    // the test cgroup has not reclaimed yet: no directstall count for it
    let before = templates.read_histograms();
    assert_eq!(
        map_int(&before, is_test, "directstall"),
        None,
        "{before:#?}"
    );
    let file = TempFile(
        std::env::temp_dir().join(format!("huatuo-reclaim-{kind:?}-{}", std::process::id())),
    );
    {
        // 200 MiB of page cache through a 32 MiB cgroup: charging must reclaim
        let mut child = spawn_in(
            &[&cgroup],
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
    // the per-container stall histogram counted the same stalls, and directstall (HUATUO's
    // memory_reclaim_container_directstall) is its number of observations
    let samples = templates.read_histograms();
    let container = samples
        .iter()
        .find(|s| is_test(s))
        .unwrap_or_else(|| panic!("no container histogram: {samples:#?}"));
    let observed = match container.fields.get("directstall_latency") {
        Some(Value::Hist(h)) => h.count_between(0, u64::MAX),
        other => panic!("directstall_latency: {other:?}"),
    };
    let directstall = map_int(&samples, is_test, "directstall");
    assert!(observed > 0, "{container:#?}");
    assert_eq!(directstall, Some(observed as i64), "{container:#?}");
    // a later read never goes back (a counter)
    let later = templates.read_histograms();
    assert!(map_int(&later, is_test, "directstall") >= directstall);
    // Host sums (memory_free_allocpages_stall, memory_free_compaction_stall): published on
    // the host sample (no labels) as ns. A memcg limit reclaims through try_charge, not the
    // page allocator's direct reclaim, so they move only when the kernel's own counters
    // moved: unchanged ALLOCSTALL / COMPACTSTALL over the whole test mean a sum of 0.
    let host = |s: &huatuo_dsl::value::Sample| s.labels.is_empty();
    let alloc_ns = map_int(&later, host, "allocpages_stall")
        .unwrap_or_else(|| panic!("no allocpages_stall on the host: {later:#?}"));
    let compaction_ns = map_int(&later, host, "compaction_stall")
        .unwrap_or_else(|| panic!("no compaction_stall on the host: {later:#?}"));
    assert!(alloc_ns >= 0 && compaction_ns >= 0);
    let allocstall = vmstat(&["allocstall_"]) - allocstall_before;
    let compactstall = vmstat(&["compact_stall"]) - compactstall_before;
    if allocstall == 0 {
        assert_eq!(alloc_ns, 0, "no direct reclaim per /proc/vmstat");
    }
    if compactstall == 0 {
        assert_eq!(compaction_ns, 0, "no direct compaction per /proc/vmstat");
    }
    eprintln!(
        "{kind:?}: directstall {observed}; host: {allocstall} direct reclaims ({alloc_ns} ns), \
         {compactstall} direct compactions ({compaction_ns} ns)"
    );
}
