//! Event rules: backoff cooldowns, rate limits, filters, and runtime errors.

mod common;

use common::*;
use huatuo_dsl::value::Value;
use huatuo_eval::{Evaluator, RecordingCaptureRunner};

const SOFTLOCKUP: &str = r#"
event softlockup {
    source   kmsg
    where    kind == "softlockup"
    capture  stack(all_cpus) as cpus_stack
    cooldown backoff(10m, factor: 2, max: 3h, reset: 3h)
    emit     cpu, pid, comm, cpus_stack
}
"#;

fn lockup(minute: i64) -> huatuo_dsl::value::Sample {
    sample(
        "kmsg",
        minute * MIN,
        &[],
        &[
            ("kind", Value::Str("softlockup".into())),
            ("cpu", Value::Int(3)),
            ("pid", Value::Int(42)),
            ("comm", Value::Str("stress".into())),
        ],
    )
}

fn fired_minutes(ev: &mut Evaluator, minutes: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut runner = RecordingCaptureRunner::default();
    minutes
        .into_iter()
        .flat_map(|m| ev.push(&lockup(m), &mut runner))
        .filter_map(|o| match o {
            huatuo_eval::Output::Record(r) => Some(r.time_ns / MIN),
            huatuo_eval::Output::Metric(_) => None,
        })
        .collect()
}

#[test]
fn softlockup_backoff_doubles_to_three_hours() {
    let mut ev = evaluator(SOFTLOCKUP);
    // A lockup every minute for ten hours: quiet periods 10, 20, 40, 80, 160, then 180 min.
    let fired = fired_minutes(&mut ev, 0..600);
    assert_eq!(fired, vec![0, 10, 30, 70, 150, 310, 490]);
    let stats = &ev.stats().rules["softlockup"];
    assert_eq!(stats.fired, 7);
    assert_eq!(stats.suppressed_by_cooldown, 593);
}

#[test]
fn softlockup_backoff_resets_after_three_quiet_hours() {
    let mut ev = evaluator(SOFTLOCKUP);
    let mut minutes: Vec<i64> = (0..35).collect(); // fires 0, 10, 30; next period 40 min
    minutes.extend(34 + 180..34 + 200); // 3 h after the last lockup: back to 10 min
    assert_eq!(fired_minutes(&mut ev, minutes), vec![0, 10, 30, 214, 224]);
}

#[test]
fn where_filters_before_anything_else() {
    let mut ev = evaluator(SOFTLOCKUP);
    let other = sample("kmsg", 0, &[], &[("kind", Value::Str("hungtask".into()))]);
    assert!(ev
        .push(&other, &mut RecordingCaptureRunner::default())
        .is_empty());
    let stats = &ev.stats().rules["softlockup"];
    assert_eq!((stats.samples, stats.fired), (1, 0));
}

#[test]
fn limit_sheds_and_counts() {
    let mut ev = evaluator(
        r#"
event drops {
    source   bpf.drops
    cooldown none
    limit    2 per 1s burst 3
    emit     reason
}
"#,
    );
    let mut runner = RecordingCaptureRunner::default();
    let mut fired = 0;
    // 10 drops in the same instant: the burst of 3 passes; 1.5 s later 3 more tokens.
    for t in [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1500, 1500, 1500, 1500] {
        let s = sample(
            "bpf.drops",
            t * 1_000_000,
            &[],
            &[("reason", Value::Str("NO_SOCKET".into()))],
        );
        fired += records(&ev.push(&s, &mut runner)).len();
    }
    assert_eq!(fired, 6);
    let stats = &ev.stats().rules["drops"];
    assert_eq!(stats.shed_by_limit, 8);
    assert_eq!(stats.fired, 6);
}

#[test]
fn cooldown_per_label_keys_on_that_label() {
    let mut ev = evaluator(
        r#"
event oom {
    source   bpf.oom
    cooldown 10m per memcg
    emit     comm
}
"#,
    );
    let mut runner = RecordingCaptureRunner::default();
    let oom = |t: i64, pid: &str, memcg: &str| {
        sample(
            "bpf.oom",
            t * MIN,
            &[("pid", pid)],
            &[
                ("memcg", Value::Str(memcg.into())),
                ("comm", Value::Str("x".into())),
            ],
        )
    };
    let mut n = 0;
    // Different entities (pid labels) in the same memcg share one cooldown.
    for s in [
        oom(0, "1", "/a"),
        oom(1, "2", "/a"),
        oom(2, "3", "/b"),
        oom(11, "4", "/a"),
    ] {
        n += records(&ev.push(&s, &mut runner)).len();
    }
    assert_eq!(n, 3);
    assert_eq!(ev.stats().rules["oom"].suppressed_by_cooldown, 1);
}

#[test]
fn first_sample_of_delta_produces_no_record() {
    let mut ev = evaluator(
        r#"
event growth {
    source proc.vmstat
    emit   grown = delta(pgfault)
}
"#,
    );
    let mut runner = RecordingCaptureRunner::default();
    let s = |t: i64, v: i64| sample("proc.vmstat", t * SEC, &[], &[("pgfault", Value::Int(v))]);
    assert!(ev.push(&s(0, 100), &mut runner).is_empty());
    let out = ev.push(&s(1, 130), &mut runner);
    assert_eq!(records(&out)[0].data["grown"], Value::Int(30));
}

#[test]
fn runtime_error_disables_only_that_rule_and_names_the_place() {
    let text = "event bad {\n    source s\n    when   comm > 3\n    emit   comm\n}\nevent good {\n    source s\n    emit   comm\n}\n";
    let mut ev = evaluator(text);
    let mut runner = RecordingCaptureRunner::default();
    let s = sample("s", 0, &[], &[("comm", Value::Str("java".into()))]);
    let out = ev.push(&s, &mut runner);
    assert_eq!(records(&out).len(), 1);
    assert_eq!(records(&out)[0].tracer_name, "good");
    let disabled = ev.disabled_rules();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].0, "bad");
    assert!(
        disabled[0]
            .1
            .starts_with("test.hto:3:12: rule `bad`: cannot compare string with int"),
        "{}",
        disabled[0].1
    );
    // The disabled rule no longer sees samples; the other keeps running.
    ev.push(&s, &mut runner);
    let stats = ev.stats();
    assert_eq!(stats.rules["bad"].samples, 1);
    assert_eq!(stats.rules["bad"].errors, 1);
    assert_eq!(stats.rules["good"].fired, 2);
}

#[test]
fn entity_state_is_bounded_and_evictions_counted() {
    let mut ev = evaluator("event e {\n source s\n when delta(x) > 0\n emit x\n}\n");
    let mut runner = RecordingCaptureRunner::default();
    let n = huatuo_eval::evaluator::MAX_ENTITIES_PER_RULE + 5;
    for i in 0..n {
        let id = i.to_string();
        ev.push(
            &sample("s", 0, &[("cpu", id.as_str())], &[("x", Value::Int(1))]),
            &mut runner,
        );
    }
    assert_eq!(ev.stats().rules["e"].evicted, 5);
}

#[test]
fn named_arguments_follow_the_parameter_names() {
    let mut ev =
        evaluator("event e {\n source s\n let a = ema(n: 4, x: v)\n when a < 10\n emit a\n}\n");
    let mut runner = RecordingCaptureRunner::default();
    let mut values = Vec::new();
    for (t, v) in [(0, 8), (1, 0)] {
        let s = sample("s", t * SEC, &[], &[("v", Value::Int(v))]);
        values.extend(
            records(&ev.push(&s, &mut runner))
                .iter()
                .map(|r| num(&r.data["a"])),
        );
    }
    // seeded 8, then 8·3/4 + 0/4 = 6
    assert_eq!(values, [8.0, 6.0]);
}

#[test]
fn a_long_and_chain_fires_only_when_every_term_holds() {
    let terms: Vec<String> = (0..128).map(|i| format!("x > {i}")).collect();
    let text = format!(
        "event e {{\n    source s\n    when {}\n    emit x\n}}\n",
        terms.join(" and ")
    );
    let mut ev = evaluator(&text);
    let mut runner = huatuo_eval::RecordingCaptureRunner::default();
    let fired: Vec<usize> = [127, 128, 5, 500]
        .iter()
        .enumerate()
        .filter(|(i, x)| {
            let s = sample("s", *i as i64 * SEC, &[], &[("x", Value::Int(**x))]);
            !records(&ev.push(&s, &mut runner)).is_empty()
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(fired, [1, 3]);
}
