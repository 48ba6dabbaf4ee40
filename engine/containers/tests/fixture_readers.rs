//! The cgroup readers on the fixture trees: exact values per container.

use huatuo_containers::{cgroup_readers_with, schemas, Discovery, DiscoveryOptions, ReaderOptions};
use huatuo_dsl::source::Reader;
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn readers(tree: &str) -> BTreeMap<String, Box<dyn Reader>> {
    let discovery = Arc::new(Discovery::new(DiscoveryOptions {
        root: fixture(tree),
        ..DiscoveryOptions::default()
    }));
    let options = ReaderOptions {
        proc_root: fixture("proc"),
        host_cpus: 8.0,
        max_tasks: 1000,
        ..ReaderOptions::default()
    };
    cgroup_readers_with(discovery, options)
        .into_iter()
        .map(|r| (r.schema().name, r))
        .collect()
}

/// Reads `source` and returns the fields of the sample for `id` (and `device`, if given).
fn fields(
    readers: &mut BTreeMap<String, Box<dyn Reader>>,
    source: &str,
    id: &str,
    device: Option<&str>,
) -> Vec<(String, Value)> {
    let reader = readers.get_mut(source).expect("reader exists");
    let samples: Vec<Sample> = reader.read(42).expect("read succeeds");
    let sample = samples
        .into_iter()
        .find(|s| {
            s.labels.get("container_id").map(String::as_str) == Some(id)
                && s.labels.get("device").map(String::as_str) == device
        })
        .unwrap_or_else(|| panic!("{source}: no sample for {id} {device:?}"));
    assert_eq!(sample.source, source);
    assert_eq!(sample.time_ns, 42);
    sample.fields.into_iter().collect()
}

/// Integer fields in the order a sample lists them (sorted by name).
fn ints(pairs: &[(&str, i64)]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::Int(*v)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_reader_is_registered_with_its_schema() {
    let names: Vec<String> = schemas().into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "cgroup.cpu",
            "cgroup.cpu_stat",
            "cgroup.memory_stat",
            "cgroup.memory_events",
            "cgroup.load",
            "cgroup.pids",
            "cgroup.io",
            "container.net_dev",
            "container.netstat",
            "container.arp",
            "container.sockstat"
        ]
    );
    assert!(schemas().iter().all(|s| s.per_container));
    let mem = schemas()
        .into_iter()
        .find(|s| s.name == "cgroup.memory_stat")
        .unwrap();
    assert_eq!(
        mem.field("pgfault").unwrap().dim,
        huatuo_dsl::units::Dim::Count
    );
    assert_eq!(
        mem.field("active_anon").unwrap().dim,
        huatuo_dsl::units::Dim::Bytes
    );
}

#[test]
fn v1_cpu_usage_user_system_cores() {
    let mut r = readers("v1");
    let mut expected = ints(&[
        ("system", 1_900_000_000),
        ("usage", 5_000_000_000),
        ("user", 3_000_000_000),
    ]);
    expected.insert(0, ("cores".to_string(), Value::Float(2.5)));
    assert_eq!(fields(&mut r, "cgroup.cpu", A, None), expected);
    // No usage_user/usage_sys: cpuacct.stat ticks (10 ms each); unlimited: the host's CPUs.
    let mut expected = ints(&[("system", 20_000_000), ("usage", 100), ("user", 70_000_000)]);
    expected.insert(0, ("cores".to_string(), Value::Float(8.0)));
    assert_eq!(fields(&mut r, "cgroup.cpu", B, None), expected);
}

#[test]
fn v2_cpu_usage_user_system_cores() {
    let mut r = readers("v2");
    let mut expected = ints(&[
        ("system", 1_000_000_000),
        ("usage", 2_500_000_000),
        ("user", 1_500_000_000),
    ]);
    expected.insert(0, ("cores".to_string(), Value::Float(1.5)));
    assert_eq!(fields(&mut r, "cgroup.cpu", B, None), expected);
    // cpu.max "max": unlimited.
    let got = fields(&mut r, "cgroup.cpu", C, None);
    assert_eq!(got[0], ("cores".to_string(), Value::Float(8.0)));
}

#[test]
fn cpu_stat_v1_and_v2() {
    let mut r = readers("v1");
    assert_eq!(
        fields(&mut r, "cgroup.cpu_stat", A, None),
        ints(&[
            ("burst_time", 900_000),
            ("nr_bursts", 2),
            ("nr_periods", 40),
            ("nr_throttled", 3),
            ("throttled_time", 7_000_000),
        ])
    );
    // Kernels without burst accounting: the burst fields are absent.
    assert_eq!(
        fields(&mut r, "cgroup.cpu_stat", B, None),
        ints(&[
            ("nr_periods", 0),
            ("nr_throttled", 0),
            ("throttled_time", 0)
        ])
    );
    let mut r = readers("v2");
    assert_eq!(
        fields(&mut r, "cgroup.cpu_stat", B, None),
        ints(&[
            ("burst_time", 0),
            ("nr_bursts", 0),
            ("nr_periods", 12),
            ("nr_throttled", 4),
            ("throttled_time", 800_000),
        ])
    );
}

#[test]
fn memory_stat_and_events() {
    let mut r = readers("v1");
    assert_eq!(
        fields(&mut r, "cgroup.memory_stat", A, None),
        ints(&[
            ("active_anon", 8192),
            ("cache", 4096),
            ("pgfault", 77),
            ("rss", 8192),
            ("total_pgfault", 78),
        ])
    );
    assert_eq!(
        fields(&mut r, "cgroup.memory_events", A, None),
        ints(&[("max", 5), ("oom_kill", 2)])
    );
    let mut r = readers("v2");
    assert_eq!(
        fields(&mut r, "cgroup.memory_events", B, None),
        ints(&[
            ("high", 7),
            ("low", 0),
            ("max", 3),
            ("oom", 1),
            ("oom_group_kill", 0),
            ("oom_kill", 1),
            // a kernel with memcg watermark reclaim adds these two
            ("watermark_dec", 2),
            ("watermark_inc", 4),
        ])
    );
    assert_eq!(
        fields(&mut r, "cgroup.memory_stat", B, None),
        ints(&[
            ("anon", 1_048_576),
            ("file", 2_097_152),
            ("pgfault", 10),
            ("workingset_refault_file", 3),
        ])
    );
}

#[test]
fn load_counts_running_and_d_state_tasks() {
    let mut r = readers("v1");
    // tasks 1234 R, 1235 D (comm with parentheses), 1236 S, 1237 exited; a recorded tree is no
    // cgroupfs the kernel's cgroupstats answers for, so the states come from the task scan.
    let scanned = |pairs: &[(&str, i64)]| {
        let mut expected = ints(pairs);
        expected.push(("states_from".into(), Value::Str("scan".into())));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        expected
    };
    assert_eq!(
        fields(&mut r, "cgroup.load", A, None),
        scanned(&[
            ("nr_running", 1),
            ("nr_sleeping", 1),
            ("nr_stopped", 0),
            ("nr_tasks", 3),
            ("nr_unscanned", 0),
            ("nr_uninterruptible", 1),
        ])
    );
    let mut r = readers("v2");
    assert_eq!(
        fields(&mut r, "cgroup.load", B, None),
        scanned(&[
            ("nr_running", 2),
            ("nr_sleeping", 0),
            ("nr_stopped", 0),
            ("nr_tasks", 3),
            ("nr_unscanned", 0),
            ("nr_uninterruptible", 1),
        ])
    );
}

#[test]
fn pids_limit_absent_when_unlimited() {
    let mut r = readers("v1");
    assert_eq!(
        fields(&mut r, "cgroup.pids", A, None),
        ints(&[("current", 4), ("limit", 1024)])
    );
    assert_eq!(
        fields(&mut r, "cgroup.pids", B, None),
        ints(&[("current", 4)])
    );
    let mut r = readers("v2");
    assert_eq!(
        fields(&mut r, "cgroup.pids", B, None),
        ints(&[("current", 3), ("limit", 512)])
    );
}

#[test]
fn io_per_device() {
    let mut r = readers("v1");
    assert_eq!(
        fields(&mut r, "cgroup.io", A, Some("8:0")),
        ints(&[
            ("read_bytes", 4096),
            ("read_ios", 1),
            ("write_bytes", 8192),
            ("write_ios", 2),
        ])
    );
    assert_eq!(
        fields(&mut r, "cgroup.io", A, Some("253:1")),
        ints(&[
            ("read_bytes", 512),
            ("read_ios", 1),
            ("write_bytes", 0),
            ("write_ios", 0),
        ])
    );
    let mut r = readers("v2");
    assert_eq!(
        fields(&mut r, "cgroup.io", B, Some("8:0")),
        ints(&[
            ("read_bytes", 1024),
            ("read_ios", 1),
            ("write_bytes", 2048),
            ("write_ios", 2),
        ])
    );
}

#[test]
fn one_sample_per_container() {
    let mut r = readers("v2");
    let samples = r.get_mut("cgroup.cpu").unwrap().read(1).unwrap();
    assert_eq!(samples.len(), 7);
    let mut r = readers("v1");
    let samples = r.get_mut("cgroup.memory_events").unwrap().read(1).unwrap();
    assert_eq!(samples.len(), 6);
}

#[test]
fn task_scan_is_capped_and_counts_what_it_skipped() {
    let discovery = Arc::new(Discovery::new(DiscoveryOptions {
        root: fixture("v1"),
        ..DiscoveryOptions::default()
    }));
    let options = ReaderOptions {
        proc_root: fixture("proc"),
        host_cpus: 8.0,
        max_tasks: 1,
        ..ReaderOptions::default()
    };
    let mut load = cgroup_readers_with(discovery, options)
        .into_iter()
        .find(|r| r.schema().name == "cgroup.load")
        .expect("load reader");
    let samples = load.read(0).expect("read");
    let sample = samples
        .iter()
        .find(|s| s.labels["container_id"] == A)
        .expect("sample");
    assert_eq!(sample.fields["nr_tasks"], Value::Int(1));
    assert_eq!(sample.fields["nr_unscanned"], Value::Int(3));
    assert_eq!(sample.fields["nr_running"], Value::Int(1));
}
