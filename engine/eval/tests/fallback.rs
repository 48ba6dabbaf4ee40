//! `fallback for`: of a preferred rule and its fallback exactly one runs — the preferred one
//! where its source is available, else the fallback — and the fallback's records and families
//! carry the preferred rule's name, so the output is the same either way.

mod common;

use common::{plan_with, records, sample, MapConfig, SEC};
use huatuo_dsl::output::{MetricPoint, TracerType};
use huatuo_dsl::value::Value;
use huatuo_eval::{Evaluator, Inactive, Output, Plan, RecordingCaptureRunner};

const RULES: &str = r#"
event lockup {
    source bpf.lockup
    emit cpu, pid
}
event lockup_log {
    fallback for lockup
    source kmsg
    where message =~ "lockup"
    emit cpu = 1, pid = 2
}
metric lockup {
    source bpf.lockup
    emit total = total(1) counter
}
metric lockup_log {
    fallback for lockup
    source kmsg
    where message =~ "lockup"
    emit total = total(1) counter
}
metric unrelated {
    source kmsg
    emit lines = total(1) counter
}
"#;

fn plan() -> Plan {
    plan_with(RULES, &MapConfig::default(), None)
}

/// (family, value) of each metric point.
fn totals(points: &[MetricPoint]) -> Vec<(&str, f64)> {
    points
        .iter()
        .map(|p| (p.family.as_str(), p.value))
        .collect()
}

fn names(plan: &Plan) -> Vec<(String, String)> {
    plan.rules
        .iter()
        .map(|r| (r.name.clone(), r.output().to_string()))
        .collect()
}

/// One lockup from each source; returns the records and metric points.
fn run(plan: Plan) -> (Vec<huatuo_dsl::output::Record>, Vec<MetricPoint>) {
    let mut evaluator = Evaluator::new(plan);
    let mut captures = RecordingCaptureRunner::default();
    let mut out = evaluator.push(
        &sample(
            "bpf.lockup",
            SEC,
            &[],
            &[("cpu", Value::Int(1)), ("pid", Value::Int(2))],
        ),
        &mut captures,
    );
    out.extend(evaluator.push(
        &sample(
            "kmsg",
            2 * SEC,
            &[],
            &[("message", Value::Str("BUG: soft lockup".into()))],
        ),
        &mut captures,
    ));
    let recs = records(&out).into_iter().cloned().collect();
    let points = out
        .into_iter()
        .filter_map(|o| match o {
            Output::Metric(p) => Some(p),
            Output::Record(_) => None,
        })
        .collect();
    (recs, points)
}

#[test]
fn an_available_source_keeps_the_preferred_rules_and_drops_the_fallbacks() {
    let mut plan = plan();
    let inactive = plan.select_fallbacks(&|_| true);
    assert_eq!(
        names(&plan),
        [
            ("lockup".into(), "lockup".into()),
            ("lockup".into(), "lockup".into()),
            ("unrelated".into(), "unrelated".into())
        ]
    );
    assert_eq!(
        inactive,
        [
            Inactive {
                name: "lockup_log".into(),
                kind: huatuo_dsl::ast::RuleKind::Event,
                source: "kmsg".into(),
                active: "lockup".into(),
                active_source: "bpf.lockup".into(),
                is_fallback: true,
                reason: "fallback for `lockup`, whose source bpf.lockup is available".into(),
            },
            Inactive {
                name: "lockup_log".into(),
                kind: huatuo_dsl::ast::RuleKind::Metric,
                source: "kmsg".into(),
                active: "lockup".into(),
                active_source: "bpf.lockup".into(),
                is_fallback: true,
                reason: "fallback for `lockup`, whose source bpf.lockup is available".into(),
            },
        ]
    );
    let (recs, points) = run(plan);
    // The kernel log line is not reported a second time.
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].tracer_name, "lockup");
    assert_eq!(recs[0].tracer_type, TracerType::Auto);
    assert_eq!(recs[0].time_ns, SEC);
    assert_eq!(
        totals(&points),
        [("lockup_total", 1.0), ("unrelated_lines", 1.0)]
    );
}

#[test]
fn an_unavailable_source_runs_the_fallbacks_under_the_preferred_name() {
    let mut plan = plan();
    let inactive = plan.select_fallbacks(&|source| source != "bpf.lockup");
    assert_eq!(
        names(&plan),
        [
            ("lockup_log".into(), "lockup".into()),
            ("lockup_log".into(), "lockup".into()),
            ("unrelated".into(), "unrelated".into())
        ]
    );
    assert!(inactive.iter().all(|i| !i.is_fallback));
    let left_out: Vec<(&str, &str, &str)> = inactive
        .iter()
        .map(|i| (i.name.as_str(), i.active.as_str(), i.reason.as_str()))
        .collect();
    let reason = "source bpf.lockup is unavailable: its fallback `lockup_log` (kmsg) runs instead";
    assert_eq!(
        left_out,
        [
            ("lockup", "lockup_log", reason),
            ("lockup", "lockup_log", reason)
        ]
    );
    let (recs, points) = run(plan);
    // The template's sample has no rule any more; the log line gives the same record.
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].tracer_name, "lockup");
    assert_eq!(recs[0].time_ns, 2 * SEC);
    assert_eq!(
        recs[0].data,
        [
            ("cpu".to_string(), Value::Int(1)),
            ("pid".to_string(), Value::Int(2))
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        totals(&points),
        [("lockup_total", 1.0), ("unrelated_lines", 1.0)]
    );
}

#[test]
fn without_selection_both_would_report() {
    // What the selection prevents: the same lockup recorded twice under one tracer name.
    let (recs, _) = run(plan());
    let tracers: Vec<&str> = recs.iter().map(|r| r.tracer_name.as_str()).collect();
    assert_eq!(tracers, ["lockup", "lockup"]);
}

#[test]
fn a_fallback_whose_preferred_rule_is_gone_stays() {
    // The BlackList removes both rules of a pair; if only the preferred one were missing,
    // the fallback would still run rather than silently nothing.
    let text = r#"
event lockup_log {
    fallback for lockup
    source kmsg
    emit message
}
"#;
    let mut plan = plan_with(text, &MapConfig::default(), None);
    assert!(plan.select_fallbacks(&|_| true).is_empty());
    assert_eq!(names(&plan), [("lockup_log".into(), "lockup".into())]);
}
