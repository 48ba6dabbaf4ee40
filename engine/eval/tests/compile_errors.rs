//! What `compile` rejects even after the checker, with file:line:col, and what the plan tells.

mod common;

use common::*;
use huatuo_dsl::value::Value;
use huatuo_eval::{compile, SourceNeed};

fn first_error(text: &str) -> huatuo_dsl::diag::Diagnostic {
    match compile(&[parse(text)], &MapConfig::default(), None) {
        Ok(_) => panic!("expected a compile error"),
        Err(diags) => diags[0].clone(),
    }
}

#[test]
fn bad_regex_names_its_place() {
    let d =
        first_error("event e {\n    source s\n    where comm =~ \"(unclosed\"\n    emit comm\n}\n");
    assert_eq!(d.code, "bad-regex");
    assert_eq!(d.location(), "test.hto:3:19");
    assert!(d.message.contains("(unclosed"));
}

#[test]
fn regex_from_a_field_is_rejected() {
    let d = first_error("event e {\n    source s\n    where comm =~ pattern\n    emit comm\n}\n");
    assert_eq!(d.code, "not-constant");
}

#[test]
fn stateful_function_in_where_is_rejected() {
    let d = first_error("event e {\n    source s\n    where delta(x) > 0\n    emit x\n}\n");
    assert_eq!(d.code, "stateful-not-allowed");
    assert_eq!(d.location(), "test.hto:3:11");
}

#[test]
fn param_must_be_constant() {
    let d = first_error("event e {\n    source s\n    param t = x + 1\n    emit x\n}\n");
    assert_eq!(d.code, "not-constant");
}

#[test]
fn backoff_and_limit_are_validated() {
    let d = first_error(
        "event e {\n    source s\n    cooldown backoff(10m, factor: 0.5)\n    emit x\n}\n",
    );
    assert_eq!(d.code, "bad-backoff");
    let d = first_error("event e {\n    source s\n    limit 0 per 1s\n    emit x\n}\n");
    assert_eq!(d.code, "bad-limit");
}

#[test]
fn duplicate_rule_names_are_rejected() {
    let d = first_error("event e {\n source s\n emit x\n}\nevent e {\n source t\n emit x\n}\n");
    assert_eq!(d.code, "duplicate-rule");
    assert_eq!(d.location(), "test.hto:5:7");
}

#[test]
fn plan_lists_sources_with_the_shortest_interval() {
    let config = MapConfig::default().with("AutoTracing.CPUSys.Interval", Value::Int(5 * SEC));
    let plan = plan_with(
        r#"
metric a { source proc.stat every 10s emit x }
autotrace b { source proc.stat every config("AutoTracing.CPUSys.Interval", 10s) emit x }
event c { source kmsg emit x }
"#,
        &config,
        None,
    );
    assert_eq!(plan.rule_names(), ["a", "b", "c"]);
    assert_eq!(
        plan.sources(),
        vec![
            SourceNeed {
                source: "kmsg".into(),
                interval_ns: None,
                rules: vec!["c".into()]
            },
            SourceNeed {
                source: "proc.stat".into(),
                interval_ns: Some(5 * SEC),
                rules: vec!["a".into(), "b".into()]
            },
        ]
    );
}

#[test]
fn replay_runs_the_whole_path() {
    let file = parse("event e {\n source s\n when x > 1\n capture stack(kernel)\n emit x\n}\n");
    let samples = (0..4).map(|i| sample("s", i * SEC, &[], &[("x", Value::Int(i))]));
    let (outputs, stats) =
        huatuo_eval::replay(&[file], &MapConfig::default(), None, samples).unwrap();
    let recs = records(&outputs);
    assert_eq!(recs.len(), 2);
    assert_eq!(
        recs[0].data["stack"],
        Value::Json(serde_json::json!({"capture": "stack", "args": {"0": "kernel"}}))
    );
    assert_eq!(stats.rules["e"].samples, 4);
}

#[test]
fn a_bad_count_names_the_range_in_words() {
    let d = first_error("event e {\n    source s\n    let a = ema(x, 0)\n    emit a\n}\n");
    assert_eq!(d.code, "bad-count");
    assert_eq!(d.location(), "test.hto:3:20");
    assert_eq!(d.message, "`ema` needs a count of at least 1, found 0");
    let d = first_error("event e {\n    source s\n    let w = window(x, 0)\n    emit w\n}\n");
    assert!(
        d.message
            .starts_with("`window` needs a count between 1 and "),
        "{}",
        d.message
    );
}

#[test]
fn durations_that_cannot_mean_anything_are_errors_showing_the_value() {
    let d = first_error("event e {\n    source s\n    cooldown -5s\n    emit x\n}\n");
    assert_eq!(
        (d.code, d.location()),
        ("bad-duration", "test.hto:3:14".to_string())
    );
    assert_eq!(d.message, "a cooldown must be 0 or more, found -5s");
    let d = first_error("metric m {\n    source s every 0s\n    emit x\n}\n");
    assert_eq!(
        d.message,
        "the poll interval must be greater than 0, found 0ns"
    );
    let d =
        first_error("event e {\n    source s\n    cooldown backoff(10m, max: 1m)\n    emit x\n}\n");
    assert_eq!(
        (d.code, d.location()),
        ("bad-backoff", "test.hto:3:32".to_string())
    );
    assert_eq!(
        d.message,
        "the longest backoff (1m) is shorter than the initial one (10m)"
    );
    // `cooldown 0s` stays allowed: it means "no quiet time".
    plan_with(
        "event e {\n    source s\n    cooldown 0s\n    emit x\n}\n",
        &MapConfig::default(),
        None,
    );
}
