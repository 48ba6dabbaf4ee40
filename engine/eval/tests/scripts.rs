//! rhai scripts in rules: results used in triggers, runaway scripts stopped and isolated.

mod common;

use common::*;
use huatuo_dsl::value::Value;
use huatuo_eval::{compile, compile_with_scripts, Evaluator, RecordingCaptureRunner, ScriptHost};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn script_result_drives_the_trigger() {
    let text = r#"
event slow_p90 {
    source bpf.latency
    script p90 = stats::percentile(window(latency, 5), 90)
    when   p90 > 50ms
    emit   p90
}
"#;
    let dir = stdlib_dir();
    let mut ev = Evaluator::new(plan_with(text, &MapConfig::default(), Some(&dir)));
    let mut runner = RecordingCaptureRunner::default();
    let mut fired = Vec::new();
    for (i, ms) in [10, 20, 30, 40, 45, 90, 95].iter().enumerate() {
        let s = sample(
            "bpf.latency",
            i as i64 * SEC,
            &[],
            &[("latency", Value::Int(ms * 1_000_000))],
        );
        for r in records(&ev.push(&s, &mut runner)) {
            fired.push((i, num(&r.data["p90"])));
        }
    }
    // Window [20,30,40,45,90]: p90 = 90ms at index 5; [30,40,45,90,95]: 95ms.
    assert_eq!(fired, vec![(5, 90e6), (6, 95e6)]);
}

/// A stdlib directory holding `files`, removed when the returned guard drops.
fn temp_stdlib(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in files {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    dir
}

/// Asserts `rule` is the one disabled rule, its reason naming the rule's place (`test.hto:4:16`)
/// and line 1 of `script` with `function`; returns the reason.
fn only_disabled_rule(
    ev: &Evaluator,
    rule: &str,
    script: &std::path::Path,
    function: &str,
) -> String {
    let disabled = ev.disabled_rules();
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    let (name, reason) = &disabled[0];
    assert_eq!(name, rule);
    assert!(
        reason.starts_with(&format!("test.hto:4:16: rule `{rule}`: ")),
        "{reason}"
    );
    let file = script.display().to_string();
    assert!(
        reason.contains(&format!("{file}:1: {function}: ")),
        "{reason}"
    );
    reason.clone()
}

#[test]
fn runaway_script_is_stopped_and_disables_only_its_rule() {
    let dir = temp_stdlib(&[(
        "spin.rhai",
        "fn forever(x) {\n    let n = 0;\n    loop {\n        n += x;\n    }\n}\n",
    )]);
    let text = r#"
event spinning {
    source s
    script v = spin::forever(x)
    when   v > 0
    emit   v
}
event steady {
    source s
    emit   x
}
"#;
    // A time limit no debug build reaches first: the operations limit stops this one.
    let mut host = ScriptHost::load(dir.path()).unwrap();
    host.set_time_limit(Duration::from_secs(60));
    let plan =
        compile_with_scripts(&[parse(text)], &MapConfig::default(), Some(Arc::new(host))).unwrap();
    let mut ev = Evaluator::new(plan);
    let mut runner = RecordingCaptureRunner::default();
    let s = sample("s", 0, &[], &[("x", Value::Int(1))]);
    let out = ev.push(&s, &mut runner);
    assert_eq!(
        records(&out)
            .iter()
            .map(|r| r.tracer_name.as_str())
            .collect::<Vec<_>>(),
        ["steady"]
    );
    let reason = only_disabled_rule(
        &ev,
        "spinning",
        &dir.path().join("spin.rhai"),
        "spin::forever",
    );
    assert!(
        reason.to_lowercase().contains("too many operations"),
        "{reason}"
    );
    // Later samples: the steady rule still runs.
    assert_eq!(records(&ev.push(&s, &mut runner)).len(), 1);
    assert_eq!(ev.stats().rules["steady"].fired, 2);
}

/// 15 000 `contains` on a 9 000-item array: within every operation and size limit, yet
/// seconds of work per call.
const SLOW_SCRIPT: &str = "\
fn scan(x) {
    let a = [];
    for i in 0..9000 { a.push(i); }
    for j in 0..15000 { a.contains(-1); }
    x
}
";

#[test]
fn slow_script_is_cut_at_the_time_limit_and_disables_its_rule() {
    let dir = temp_stdlib(&[("slow.rhai", SLOW_SCRIPT)]);
    let text = r#"
event slow {
    source s
    script v = slow::scan(x)
    emit   v
}
event steady {
    source s
    emit   x
}
"#;
    let mut host = ScriptHost::load(dir.path()).unwrap();
    let limit = Duration::from_millis(100);
    host.set_time_limit(limit);
    let plan =
        compile_with_scripts(&[parse(text)], &MapConfig::default(), Some(Arc::new(host))).unwrap();
    let mut ev = Evaluator::new(plan);
    let mut runner = RecordingCaptureRunner::default();
    let s = sample("s", 0, &[], &[("x", Value::Int(1))]);
    let started = Instant::now();
    let out = ev.push(&s, &mut runner);
    let took = started.elapsed();
    // The call is cut at the limit of CPU time (or ten times it in wall time on a busy
    // machine), not after seconds of work.
    assert!(took < limit * 11, "one sample took {took:?}");
    let names: Vec<_> = records(&out)
        .iter()
        .map(|r| r.tracer_name.as_str())
        .collect();
    assert_eq!(names, ["steady"]);
    // rhai reports no position for a stopped call: the place is the function's definition.
    let reason = only_disabled_rule(&ev, "slow", &dir.path().join("slow.rhai"), "slow::scan");
    assert!(reason.contains("script time limit of 100ms"), "{reason}");
    let stats = ev.stats();
    assert_eq!(stats.rules["slow"].script_timeouts, 1);
    assert_eq!(stats.rules["slow"].errors, 1);
    assert_eq!(stats.rules["steady"].script_timeouts, 0);
    // Disabled for good: later samples cost nothing and the other rule keeps running.
    let started = Instant::now();
    assert_eq!(records(&ev.push(&s, &mut runner)).len(), 1);
    assert!(started.elapsed() < limit, "a disabled rule still ran");
    assert_eq!(ev.stats().rules["slow"].script_timeouts, 1);
}

#[test]
fn unknown_script_or_wrong_arity_is_a_compile_error() {
    let dir = stdlib_dir();
    let text = "event e {\n    source s\n    script v = stats::percentile(x)\n    emit v\n}\n";
    let diags = compile(&[parse(text)], &MapConfig::default(), Some(&dir)).unwrap_err();
    assert_eq!(diags[0].code, "unknown-script");
    assert_eq!(diags[0].location(), "test.hto:3:16");
    let no_lib = compile(&[parse(text)], &MapConfig::default(), None).unwrap_err();
    assert_eq!(no_lib[0].code, "unknown-script");
}
