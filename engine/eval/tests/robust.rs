//! Any value in any field: the evaluator never panics; a bad value disables only its rule.

mod common;

use common::*;
use huatuo_dsl::value::{Histogram, Value};
use huatuo_eval::RecordingCaptureRunner;
use proptest::prelude::*;

const RULES: &str = r#"
event arith { source s  let d = delta(x)  let r = rate(x)  when d / 2 > 1 or -x < 0  emit d, r }
event lists { source s  let w = window(x, 4)  when max(w) > avg(w) and len(w) >= 2  emit w, y }
event text  { source s  where y =~ "^a" or contains(y, "b")  emit y }
event keep  { source s  emit x }
metric m    { source s  histogram x zones [1, 10, 100]  emit * include "^x", r = ema(x, 3) }
"#;

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        "[a-c]{0,4}".prop_map(Value::Str),
        prop::collection::vec(any::<i64>().prop_map(Value::Int), 0..4).prop_map(Value::List),
        prop::collection::vec((any::<u64>(), any::<u32>().prop_map(u64::from)), 0..4)
            .prop_map(|buckets| Value::Hist(Histogram { buckets })),
    ]
}

proptest! {
    #[test]
    fn arbitrary_samples_never_panic(values in prop::collection::vec((any_value(), any_value(), -5i64..5), 1..20)) {
        let mut ev = evaluator(RULES);
        let mut runner = RecordingCaptureRunner::default();
        let mut keep = 0;
        for (i, (x, y, dt)) in values.iter().enumerate() {
            let s = sample("s", i as i64 * SEC + dt, &[], &[("x", x.clone()), ("y", y.clone())]);
            keep += records(&ev.push(&s, &mut runner)).iter().filter(|r| r.tracer_name == "keep").count();
        }
        // The rule that only copies a field never fails, whatever the others do.
        prop_assert_eq!(keep, values.len());
        let stats = ev.stats();
        for (name, rule) in &stats.rules {
            prop_assert_eq!(rule.errors > 0, rule.disabled.is_some(), "{}", name);
        }
    }
}
