//! State carried across a reload: unchanged rules keep theirs, changed and new rules start
//! fresh.

mod common;

use common::*;
use huatuo_dsl::value::Value;
use huatuo_eval::{Evaluator, Output, RecordingCaptureRunner};

const A: &str = "event a { source proc.loadavg where load1 > 1 cooldown 60s emit load1 }\n";
const B1: &str = "event b { source proc.loadavg where load1 > 1 cooldown 60s emit load1 }\n";
const B2: &str = "event b { source proc.loadavg where load1 > 2 cooldown 60s emit load1 }\n";

fn fired(e: &mut Evaluator, t_s: i64) -> Vec<String> {
    let s = sample(
        "proc.loadavg",
        t_s * SEC,
        &[],
        &[("load1", Value::Float(5.0))],
    );
    e.push(&s, &mut RecordingCaptureRunner::default())
        .into_iter()
        .filter_map(|o| match o {
            Output::Record(r) => Some(r.tracer_name),
            Output::Metric(_) => None,
        })
        .collect()
}

#[test]
fn an_unchanged_rule_keeps_its_cooldown_and_a_changed_one_starts_fresh() {
    let mut e = evaluator(&format!("{A}{B1}"));
    assert_eq!(fired(&mut e, 0), vec!["a", "b"]);
    assert!(fired(&mut e, 1).is_empty(), "both in their cooldown");
    // b changes and a moves down two lines: a keeps its cooldown, b starts over.
    let next = plan_with(&format!("# edited\n\n{A}{B2}"), &MapConfig::default(), None);
    let (mut e, carried) = Evaluator::carry_over(next, e, false);
    assert_eq!(carried.kept, vec!["a"]);
    assert_eq!(carried.fresh, vec!["b"]);
    assert_eq!(carried.dropped, vec!["b"]);
    assert_eq!(fired(&mut e, 2), vec!["b"], "a still quiet, b fresh");
    assert_eq!(
        e.stats().rules["a"].suppressed_by_cooldown,
        2,
        "a's counters kept"
    );
    assert_eq!(e.stats().rules["b"].suppressed_by_cooldown, 0);
}

#[test]
fn a_rule_calling_scripts_starts_fresh_when_the_scripts_changed() {
    let text = "event s { source proc.loadavg where loadavg::exp_1() > 1 and load1 > 1 cooldown 60s emit load1 }\n";
    let stdlib = stdlib_dir();
    let plan = || plan_with(&format!("{A}{text}"), &MapConfig::default(), Some(&stdlib));
    let mut e = Evaluator::new(plan());
    assert_eq!(fired(&mut e, 0), vec!["a", "s"]);
    let (e, carried) = Evaluator::carry_over(plan(), e, false);
    assert_eq!(carried.kept, vec!["a", "s"]);
    let (_, carried) = Evaluator::carry_over(plan(), e, true);
    assert_eq!(carried.kept, vec!["a"]);
    assert_eq!(carried.fresh, vec!["s"]);
}
