//! HUATUO's autotracing triggers written as rules, run over sample streams (the autotracing section of
//! HUATUO's manual).

mod common;

use common::*;
use huatuo_dsl::value::{Sample, Value};
use huatuo_eval::{CaptureRequest, CaptureRunner, Evaluator, RecordingCaptureRunner};
use std::collections::BTreeMap;

const CPUSYS: &str = r#"
autotrace cpusys {
    source   proc.stat every config("AutoTracing.CPUSys.Interval", 10s)
    param    sys_threshold = config("AutoTracing.CPUSys.SysThreshold", 45%)
    param    deltasys_threshold = config("AutoTracing.CPUSys.DeltaSysThreshold", 20%)
    let      sys = percent(delta(system), delta(total))
    when     sys > sys_threshold and delta(sys) > deltasys_threshold
    capture  profile(scope: host, duration: config("AutoTracing.CPUSys.RunTracingToolTimeout", 10s)) as flamedata
    cooldown none
    emit     now_sys = sys, sys_threshold, deltasys = delta(sys), deltasys_threshold, flamedata
}
"#;

/// /proc/stat-like cumulative ticks producing the given sys% per 10 s interval.
fn cpu_stream(sys_percents: &[i64]) -> Vec<Sample> {
    let (mut system, mut total) = (0, 0);
    let mut out = vec![sample(
        "proc.stat",
        0,
        &[],
        &[("system", Value::Int(0)), ("total", Value::Int(0))],
    )];
    for (i, pct) in sys_percents.iter().enumerate() {
        system += pct;
        total += 100;
        out.push(sample(
            "proc.stat",
            (i as i64 + 1) * 10 * SEC,
            &[],
            &[("system", Value::Int(system)), ("total", Value::Int(total))],
        ));
    }
    out
}

fn run(
    ev: &mut Evaluator,
    samples: &[Sample],
    runner: &mut dyn CaptureRunner,
) -> Vec<huatuo_eval::Output> {
    samples.iter().flat_map(|s| ev.push(s, runner)).collect()
}

#[test]
fn cpusys_needs_both_sys_and_its_rise() {
    let mut ev = evaluator(CPUSYS);
    let mut runner = RecordingCaptureRunner::default();
    // 10 → 50 (both: fires) → 55 (high, small rise) → 20 → 44 (rise 24, below 45) → 70 (both)
    let out = run(&mut ev, &cpu_stream(&[10, 50, 55, 20, 44, 70]), &mut runner);
    let recs = records(&out);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let first = recs[0];
    assert_eq!(first.tracer_name, "cpusys");
    assert_eq!(first.time_ns, 20 * SEC);
    assert_eq!(num(&first.data["now_sys"]), 50.0);
    assert_eq!(num(&first.data["deltasys"]), 40.0);
    assert_eq!(num(&first.data["sys_threshold"]), 45.0);
    assert_eq!(num(&first.data["deltasys_threshold"]), 20.0);
    assert_eq!(
        first.data["flamedata"],
        Value::Json(
            serde_json::json!({"capture": "profile", "args": {"scope": "host", "duration": 10_000_000_000i64}})
        )
    );
    assert_eq!(recs[1].time_ns, 60 * SEC);
    assert_eq!(num(&recs[1].data["deltasys"]), 26.0);
    assert_eq!(runner.requests.len(), 2);
}

#[test]
fn cpusys_thresholds_come_from_config() {
    let config = MapConfig::default()
        .with("AutoTracing.CPUSys.SysThreshold", Value::Int(60))
        .with("AutoTracing.CPUSys.DeltaSysThreshold", Value::Int(5));
    let mut ev = Evaluator::new(plan_with(CPUSYS, &config, None));
    let out = run(
        &mut ev,
        &cpu_stream(&[10, 50, 55, 70]),
        &mut RecordingCaptureRunner::default(),
    );
    let recs = records(&out);
    // 50 is below 60 now; 70 with a rise of 15 fires.
    assert_eq!(recs.len(), 1);
    assert_eq!(num(&recs[0].data["now_sys"]), 70.0);
    assert_eq!(num(&recs[0].data["sys_threshold"]), 60.0);
}

const CPUIDLE: &str = r#"
autotrace cpuidle {
    source   cgroup.cpu every 10s
    param    user_threshold = config("AutoTracing.CPUIdle.UserThreshold", 75%)
    param    sys_threshold = config("AutoTracing.CPUIdle.SysThreshold", 45%)
    param    usage_threshold = config("AutoTracing.CPUIdle.UsageThreshold", 90%)
    param    deltauser_threshold = config("AutoTracing.CPUIdle.DeltaUserThreshold", 45%)
    param    deltasys_threshold = config("AutoTracing.CPUIdle.DeltaSysThreshold", 20%)
    param    deltausage_threshold = config("AutoTracing.CPUIdle.DeltaUsageThreshold", 55%)
    let      deltauser = delta(user)
    let      deltasys = delta(sys)
    let      deltausage = delta(usage)
    when     (user > user_threshold and deltauser > deltauser_threshold)
             or (sys > sys_threshold and deltasys > deltasys_threshold)
             or (usage > usage_threshold and deltausage > deltausage_threshold)
    capture  profile(scope: container, duration: 10s) as flamedata
    cooldown config("AutoTracing.CPUIdle.IntervalTracing", 1800s) per container_id
    emit     user, user_threshold, deltauser, sys, deltasys, usage, deltausage, flamedata
}
"#;

fn cg(t_min: i64, id: &str, user: i64, sys: i64) -> Sample {
    sample(
        "cgroup.cpu",
        t_min * MIN,
        &[("container_id", id)],
        &[
            ("user", Value::Int(user)),
            ("sys", Value::Int(sys)),
            ("usage", Value::Int(user + sys)),
        ],
    )
}

#[test]
fn cpuidle_three_pairs_with_per_container_cooldown() {
    let mut ev = evaluator(CPUIDLE);
    let mut runner = RecordingCaptureRunner::default();
    let samples = [
        cg(0, "a", 10, 5),
        cg(0, "b", 10, 5),
        cg(0, "c", 10, 5),
        // a: user 80 (+70) → user pair. b: sys 50 (+45) → sys pair. c: user 74, sys 20 → usage 94 (+79) → usage pair.
        cg(1, "a", 80, 5),
        cg(1, "b", 10, 50),
        cg(1, "c", 74, 20),
        // Ten minutes later a spikes again: inside its 30 min cooldown.
        cg(10, "a", 10, 5),
        cg(11, "a", 90, 5),
        // A high user share without the rise does not fire.
        cg(12, "d", 80, 5),
        cg(13, "d", 85, 5),
        // After the cooldown a fires again.
        cg(40, "a", 10, 5),
        cg(41, "a", 90, 5),
    ];
    let out = run(&mut ev, &samples, &mut runner);
    let fired: Vec<(i64, &str)> = records(&out)
        .iter()
        .map(|r| (r.time_ns / MIN, r.labels["container_id"].as_str()))
        .collect();
    assert_eq!(fired, vec![(1, "a"), (1, "b"), (1, "c"), (41, "a")]);
    let stats = &ev.stats().rules["cpuidle"];
    assert_eq!(stats.suppressed_by_cooldown, 1);
    assert_eq!(stats.fired, 4);
    let recs = records(&out);
    assert_eq!(num(&recs[0].data["deltauser"]), 70.0);
    assert_eq!(num(&recs[1].data["deltasys"]), 45.0);
    assert_eq!(num(&recs[2].data["deltausage"]), 79.0);
    assert_eq!(
        recs[0].data["flamedata"],
        Value::Json(
            serde_json::json!({"capture": "profile", "args": {"scope": "container", "duration": 10_000_000_000i64}})
        )
    );
}

/// A capture runner that returns the D-state stacks of a container.
struct Stacks;

impl CaptureRunner for Stacks {
    fn run(
        &mut self,
        req: &CaptureRequest,
        _sample: &Sample,
    ) -> Result<BTreeMap<String, Value>, String> {
        assert_eq!(req.name, "tasks");
        Ok(BTreeMap::from([(
            "stack".to_string(),
            Value::List(vec![
                Value::Str("task:java state:D pid:12345".into()),
                Value::Str("  rpc_wait_bit_killable+0x1e/0xa0".into()),
                Value::Str("  nfs_wait_on_request+0x2c/0x40".into()),
            ]),
        )]))
    }
}

const DLOAD: &str = r#"
autotrace dload {
    source   cgroup.tasks every 10s
    param    threshold = config("AutoTracing.Dload.ThresholdLoad", 5)
    let      dload_avg = ema(nr_uninterruptible, 5)
    when     dload_avg > threshold
    capture  tasks(state: "D")
    cooldown config("AutoTracing.Dload.IntervalTracing", 1800s)
    issues   config("AutoTracing.IssuesList", [])
    emit     threshold, nr_uninterruptible, dload_avg
}
"#;

#[test]
fn dload_ema_crossing_threshold_tags_known_issue() {
    let issues = Value::List(vec![
        Value::List(vec![
            Value::Str("softlockup_issue".into()),
            Value::Str("softlockup".into()),
        ]),
        Value::List(vec![
            Value::Str("nfs_hang".into()),
            Value::Str("nfs_wait_on_\\w+".into()),
        ]),
    ]);
    let config = MapConfig::default().with("AutoTracing.IssuesList", issues);
    let mut ev = Evaluator::new(plan_with(DLOAD, &config, None));
    let counts = [0, 10, 10, 10, 10, 10, 10];
    let samples: Vec<Sample> = counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            sample(
                "cgroup.tasks",
                i as i64 * 10 * SEC,
                &[("container_id", "db")],
                &[("nr_uninterruptible", Value::Int(*n))],
            )
        })
        .collect();
    let out = run(&mut ev, &samples, &mut Stacks);
    let recs = records(&out);
    // EMA: 0, 2, 3.6, 4.88, 5.904 → first above 5 at the fifth sample; then cooldown.
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].time_ns, 40 * SEC);
    assert!((num(&recs[0].data["dload_avg"]) - 5.904).abs() < 1e-9);
    assert_eq!(recs[0].data["known_issue"], Value::Str("nfs_hang".into()));
    assert_eq!(ev.stats().rules["dload"].suppressed_by_cooldown, 2);
}

#[test]
fn dload_without_matching_issue_writes_empty_known_issue() {
    let mut ev = evaluator(DLOAD);
    let samples: Vec<Sample> = (0..3)
        .map(|i| {
            sample(
                "cgroup.tasks",
                i * 10 * SEC,
                &[("container_id", "db")],
                &[("nr_uninterruptible", Value::Int(50))],
            )
        })
        .collect();
    let out = run(&mut ev, &samples, &mut Stacks);
    assert_eq!(
        records(&out)[0].data["known_issue"],
        Value::Str(String::new())
    );
}

const MEMBURST: &str = r#"
autotrace memburst {
    source   proc.meminfo every 10s
    param    growth = config("AutoTracing.MemoryBurst.DeltaMemoryBurst", 100%)
    param    anon_share = config("AutoTracing.MemoryBurst.DeltaAnonThreshold", 70%)
    let      oldest = first(window(anon, config("AutoTracing.MemoryBurst.SlidingWindowLength", 60)))
    when     anon >= oldest * (100% + growth) / 100% and percent(anon, total) >= anon_share
    capture  top(by: rss, n: config("AutoTracing.MemoryBurst.DumpProcessMaxNum", 10)) as processes
    cooldown 1800s
    emit     anon, oldest, total, processes
}
"#;

fn mem(i: i64, anon: i64, total: i64) -> Sample {
    sample(
        "proc.meminfo",
        i * 10 * SEC,
        &[],
        &[("anon", Value::Int(anon)), ("total", Value::Int(total))],
    )
}

#[test]
fn memburst_needs_doubling_against_the_oldest_and_seventy_percent() {
    let gib = 1 << 30;
    // Doubling but only 25% of RAM: nothing.
    let mut ev = evaluator(MEMBURST);
    let small: Vec<Sample> = vec![
        mem(0, gib, 10 * gib),
        mem(1, gib, 10 * gib),
        mem(2, 5 * gib / 2, 10 * gib),
    ];
    assert!(records(&run(
        &mut ev,
        &small,
        &mut RecordingCaptureRunner::default()
    ))
    .is_empty());

    // 75% of RAM but only 1.5× the oldest: nothing; then 2× and 80%: fires once.
    let mut ev = evaluator(MEMBURST);
    let stream = vec![
        mem(0, 4 * gib, 10 * gib),
        mem(1, 6 * gib, 8 * gib),
        mem(2, 8 * gib, 10 * gib),
    ];
    let out = run(&mut ev, &stream, &mut RecordingCaptureRunner::default());
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].time_ns, 20 * SEC);
    assert_eq!(recs[0].data["oldest"], Value::Int(4 * gib));
    assert_eq!(
        recs[0].data["processes"],
        Value::Json(serde_json::json!({"capture": "top", "args": {"by": "rss", "n": 10}}))
    );
}

#[test]
fn memburst_window_forgets_samples_older_than_its_length() {
    let gib = 1 << 30;
    let config =
        MapConfig::default().with("AutoTracing.MemoryBurst.SlidingWindowLength", Value::Int(3));
    let mut ev = Evaluator::new(plan_with(MEMBURST, &config, None));
    // anon grows 1 → 1.5 → 1.8 → 2.1 GiB of 2.5: 2.1 ≥ 2×1 only if 1 is still in the window
    // of 3 (it is not: the window holds 1.5, 1.8, 2.1).
    let stream: Vec<Sample> = [10, 15, 18, 21]
        .iter()
        .enumerate()
        .map(|(i, a)| mem(i as i64, a * gib / 10, 25 * gib / 10))
        .collect();
    assert!(records(&run(
        &mut ev,
        &stream,
        &mut RecordingCaptureRunner::default()
    ))
    .is_empty());
}
