//! Metric rules: family naming, scopes, labels, histogram zones, `emit *`.

mod common;

use common::*;
use huatuo_dsl::output::{MetricKind, MetricPoint};
use huatuo_dsl::value::{Histogram, Value};
use huatuo_eval::RecordingCaptureRunner;
use std::collections::BTreeMap;

const MS: u64 = 1_000_000;

const RUNQLAT: &str = r#"
metric runqlat {
    source    bpf.runqlat
    help      "cpu run queue latency"
    scope     host, container
    histogram latency zones [10ms, 20ms, 50ms] label zone
}
"#;

fn zones(points: &[&MetricPoint], family: &str) -> Vec<(String, f64)> {
    points
        .iter()
        .filter(|p| p.family == family)
        .map(|p| (p.labels["zone"].clone(), p.value))
        .collect()
}

#[test]
fn histogram_zones_from_a_kernel_histogram() {
    let mut ev = evaluator(RUNQLAT);
    let hist = Histogram {
        buckets: vec![
            (MS, 5),
            (8 * MS, 2),
            (16 * MS, 3),
            (32 * MS, 4),
            (64 * MS, 1),
            (u64::MAX, 7),
        ],
    };
    let host = sample(
        "bpf.runqlat",
        0,
        &[],
        &[("latency", Value::Hist(hist.clone()))],
    );
    let cont = sample(
        "bpf.runqlat",
        0,
        &[("container_id", "c1")],
        &[("latency", Value::Hist(hist))],
    );
    let mut runner = RecordingCaptureRunner::default();
    let mut out = ev.push(&host, &mut runner);
    out.extend(ev.push(&cont, &mut runner));
    let points = metrics(&out);
    // ≤10ms: 5+2; (10,20]: 3; (20,50]: 4; >50ms: 1+7
    let expected: Vec<(String, f64)> = [("0", 7.0), ("1", 3.0), ("2", 4.0), ("3", 8.0)]
        .iter()
        .map(|(z, v)| (z.to_string(), *v))
        .collect();
    assert_eq!(zones(&points, "runqlat_latency"), expected);
    assert_eq!(zones(&points, "runqlat_container_latency"), expected);
    let p = points[0];
    assert_eq!(p.kind, MetricKind::Counter);
    assert_eq!(p.help, "cpu run queue latency");
    assert_eq!(
        points[4].labels.get("container_id").map(String::as_str),
        Some("c1")
    );
}

#[test]
fn histogram_zones_accumulate_from_a_stream() {
    let mut ev = evaluator(RUNQLAT);
    let mut runner = RecordingCaptureRunner::default();
    let mut last = Vec::new();
    for ms in [5, 15, 15, 100, 10] {
        let s = sample(
            "bpf.runqlat",
            0,
            &[],
            &[("latency", Value::Int(ms * 1_000_000))],
        );
        last = ev.push(&s, &mut runner);
    }
    let points = metrics(&last);
    // 10ms is "≤ 10ms": zone 0.
    let expected: Vec<(String, f64)> = [("0", 2.0), ("1", 2.0), ("2", 0.0), ("3", 1.0)]
        .iter()
        .map(|(z, v)| (z.to_string(), *v))
        .collect();
    assert_eq!(zones(&points, "runqlat_latency"), expected);
}

#[test]
fn emit_all_fields_with_include_and_exclude() {
    let mut ev = evaluator(
        r#"
metric memory_vmstat {
    source proc.vmstat
    emit * include ["^pg", "^nr_"] exclude "maj" counter
}
"#,
    );
    let s = sample(
        "proc.vmstat",
        0,
        &[],
        &[
            ("pgfault", Value::Int(10)),
            ("pgmajfault", Value::Int(2)),
            ("nr_dirty", Value::Float(3.5)),
            ("total_cache", Value::Int(99)),
            ("pgname", Value::Str("not a number".into())),
        ],
    );
    let out = ev.push(&s, &mut RecordingCaptureRunner::default());
    let got: BTreeMap<String, f64> = metrics(&out)
        .iter()
        .map(|p| (p.family.clone(), p.value))
        .collect();
    let want = BTreeMap::from([
        ("memory_vmstat_nr_dirty".to_string(), 3.5),
        ("memory_vmstat_pgfault".to_string(), 10.0),
    ]);
    assert_eq!(got, want);
    assert!(metrics(&out).iter().all(|p| p.kind == MetricKind::Counter));
}

const CPU_UTIL: &str = r#"
metric cpu_util {
    source cgroup.cpuacct every 10s
    labels cpu
    emit   sys = percent(delta(system), delta(wall)) help "sys share", usr = percent(delta(user), delta(wall))
}
"#;

#[test]
fn default_scope_follows_the_sample_and_labels_are_restricted() {
    let mut ev = evaluator(CPU_UTIL);
    let mut runner = RecordingCaptureRunner::default();
    let s = |t: i64, id: Option<&str>, sys: i64, user: i64| {
        let mut labels = vec![("cpu", "all"), ("qos", "burstable")];
        if let Some(id) = id {
            labels.push(("container_id", id));
        }
        sample(
            "cgroup.cpuacct",
            t * 10 * SEC,
            &labels,
            &[
                ("system", Value::Int(sys)),
                ("user", Value::Int(user)),
                ("wall", Value::Int(t * 1000)),
            ],
        )
    };
    // First samples: delta undefined, no points.
    assert!(ev.push(&s(0, None, 0, 0), &mut runner).is_empty());
    assert!(ev.push(&s(0, Some("c1"), 0, 0), &mut runner).is_empty());
    let host = ev.push(&s(1, None, 250, 500), &mut runner);
    let cont = ev.push(&s(1, Some("c1"), 100, 50), &mut runner);
    let host = metrics(&host);
    let cont = metrics(&cont);
    assert_eq!(
        host.iter()
            .map(|p| (p.family.as_str(), p.value))
            .collect::<Vec<_>>(),
        [("cpu_util_sys", 25.0), ("cpu_util_usr", 50.0)]
    );
    assert_eq!(host[0].help, "sys share");
    assert_eq!(
        host[0].labels,
        BTreeMap::from([("cpu".to_string(), "all".to_string())])
    );
    assert_eq!(
        cont.iter()
            .map(|p| (p.family.as_str(), p.value))
            .collect::<Vec<_>>(),
        [
            ("cpu_util_container_sys", 10.0),
            ("cpu_util_container_usr", 5.0)
        ]
    );
    assert_eq!(
        cont[0].labels,
        BTreeMap::from([
            ("container_id".to_string(), "c1".to_string()),
            ("cpu".to_string(), "all".to_string())
        ])
    );
}

#[test]
fn explicit_scope_drops_the_other_kind_of_sample() {
    let mut ev = evaluator("metric loadavg {\n source proc.loadavg\n scope host\n emit load1\n}\n");
    let mut runner = RecordingCaptureRunner::default();
    let host = sample("proc.loadavg", 0, &[], &[("load1", Value::Float(0.5))]);
    let cont = sample(
        "proc.loadavg",
        0,
        &[("container_id", "c")],
        &[("load1", Value::Float(0.7))],
    );
    assert_eq!(metrics(&ev.push(&host, &mut runner)).len(), 1);
    assert!(ev.push(&cont, &mut runner).is_empty());
}

#[test]
fn interval_keeps_a_rule_at_its_own_pace_on_a_faster_source() {
    let mut ev = evaluator("metric slow {\n source proc.stat every 30s\n emit d = delta(x)\n}\n");
    let mut runner = RecordingCaptureRunner::default();
    let mut points = Vec::new();
    for t in 0..7 {
        let s = sample("proc.stat", t * 10 * SEC, &[], &[("x", Value::Int(t * 10))]);
        points.extend(ev.push(&s, &mut runner));
    }
    // Accepted at 0, 30, 60 s: deltas of 30 each.
    assert_eq!(
        metrics(&points).iter().map(|p| p.value).collect::<Vec<_>>(),
        [30.0, 30.0]
    );
}

#[test]
fn a_metric_counts_the_events_of_an_event_rule_of_the_same_name() {
    let text = r#"
event hungtask {
    source bpf.hungtask
    emit   pid
}
metric hungtask {
    source bpf.hungtask
    help   "hungtask counter"
    emit   total = total(1) counter
}
"#;
    let mut ev = evaluator(text);
    let mut runner = RecordingCaptureRunner::default();
    let mut out = Vec::new();
    for (i, pid) in [11, 12, 13].into_iter().enumerate() {
        let s = sample(
            "bpf.hungtask",
            i as i64 * SEC,
            &[],
            &[("pid", Value::Int(pid))],
        );
        out.extend(ev.push(&s, &mut runner));
    }
    let points = metrics(&out);
    let totals: Vec<(String, f64, MetricKind)> = points
        .iter()
        .map(|p| (p.family.clone(), p.value, p.kind))
        .collect();
    let expected: Vec<(String, f64, MetricKind)> = [1.0, 2.0, 3.0]
        .into_iter()
        .map(|v| ("hungtask_total".to_string(), v, MetricKind::Counter))
        .collect();
    assert_eq!(totals, expected);
    let records = out
        .iter()
        .filter(|o| matches!(o, huatuo_eval::Output::Record(_)))
        .count();
    assert_eq!(records, 3);
    let stats = ev.stats();
    assert_eq!(stats.rules["hungtask"].fired, 3);
    assert_eq!(stats.rules["hungtask/metric"].fired, 3);
}

fn stream_source(
    name: &str,
    per_container: bool,
    labels: &[&str],
) -> huatuo_dsl::catalog::SourceSchema {
    huatuo_dsl::catalog::SourceSchema {
        name: name.to_string(),
        description: String::new(),
        mode: huatuo_dsl::catalog::SourceMode::Stream,
        default_interval_s: None,
        per_container,
        container_only: false,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        fields: Vec::new(),
        open_fields: None,
        captures: Vec::new(),
        tunables: Vec::new(),
    }
}

#[test]
fn unlabelled_running_total_counters_start_at_zero() {
    let mut catalog = huatuo_dsl::catalog::Catalog::new();
    catalog.add_source(stream_source("kmsg", false, &[]));
    catalog.add_source(stream_source("bpf.oom", true, &["container_id"]));
    catalog.add_source(stream_source("bpf.ras", false, &["event"]));
    let plan = plan_with(
        r#"
metric softlockup {
    source kmsg
    help   "softlockup counter"
    where  message =~ "soft lockup"
    emit   total = total(1) counter
}
metric oom {
    source bpf.oom
    help   "oom kill counter"
    labels container_id
    let    n = total(1)
    emit   total = n counter, kills = n counter help "kills", last = n
}
metric ras_labelled {
    source bpf.ras
    help   "by event"
    emit   total = total(1) counter
}
metric ras_unlabelled {
    source bpf.ras
    help   "all events"
    labels container_id
    emit   total = total(1) counter
}
metric container_only {
    source bpf.oom
    help   "containers"
    scope  container
    emit   total = total(1) counter
}
metric absolute {
    source kmsg
    help   "a kernel counter, not a running total"
    emit   seq = seq counter
}
"#,
        &MapConfig::default(),
        None,
    );
    let points = huatuo_eval::metrics::zero_points(&plan, &catalog);
    let got: Vec<(&str, &str, f64, bool)> = points
        .iter()
        .map(|p| {
            (
                p.family.as_str(),
                p.help.as_str(),
                p.value,
                p.labels.is_empty() && p.kind == MetricKind::Counter,
            )
        })
        .collect();
    // ras_labelled keeps the source's `event` label (values unknown before the first event);
    // container_only has no host series; `absolute` and the gauge `last` are not running totals.
    assert_eq!(
        got,
        vec![
            ("softlockup_total", "softlockup counter", 0.0, true),
            ("oom_total", "oom kill counter", 0.0, true),
            ("oom_kills", "kills", 0.0, true),
            ("ras_unlabelled_total", "all events", 0.0, true),
        ]
    );
    // The first event then counts from there: the same series goes to 1.
    let mut ev = huatuo_eval::Evaluator::new(plan);
    let mut runner = RecordingCaptureRunner::default();
    let out = ev.push(
        &sample(
            "kmsg",
            SEC,
            &[],
            &[(
                "message",
                Value::Str("watchdog: BUG: soft lockup - CPU#1".into()),
            )],
        ),
        &mut runner,
    );
    let first = metrics(&out);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].family, "softlockup_total");
    assert_eq!(first[0].labels, BTreeMap::new());
    assert_eq!(first[0].value, 1.0);
}
