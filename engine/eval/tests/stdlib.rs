//! The shipped rhai library loads in the sandbox and computes what its comments promise.

use huatuo_dsl::value::Value;
use huatuo_eval::script::ScriptHost;
use std::path::PathBuf;

fn stdlib() -> ScriptHost {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../stdlib");
    match ScriptHost::load(&dir) {
        Ok(host) => host,
        Err(d) => panic!("{}: {}", d.location(), d.message),
    }
}

fn ints(v: &[i64]) -> Value {
    Value::List(v.iter().map(|i| Value::Int(*i)).collect())
}

fn float(v: Value) -> f64 {
    match v {
        Value::Float(f) => f,
        Value::Int(i) => i as f64,
        other => panic!("not a number: {other:?}"),
    }
}

#[test]
fn exported_functions_have_their_arity() {
    let fns = huatuo_eval::script_functions(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../stdlib"),
    )
    .unwrap();
    for (name, arity) in [
        ("ema::decay", 2),
        ("ema::ema", 2),
        ("loadavg::load1", 1),
        ("stats::percentile", 2),
        ("stats::stddev", 1),
    ] {
        assert!(
            fns.contains(&(name.to_string(), arity)),
            "{name}/{arity} missing from {fns:?}"
        );
    }
    assert!(
        !fns.iter().any(|(n, _)| n == "stats::sorted"),
        "private helpers are not exported"
    );
}

#[test]
fn stats_percentile_median_stddev() {
    let host = stdlib();
    let values = ints(&[15, 20, 35, 40, 50]);
    assert_eq!(
        float(
            host.call("stats::percentile", &[values.clone(), Value::Int(40)])
                .unwrap()
        ),
        20.0
    );
    assert_eq!(
        float(
            host.call("stats::median", std::slice::from_ref(&values))
                .unwrap()
        ),
        35.0
    );
    let sd = float(
        host.call("stats::stddev", &[ints(&[2, 4, 4, 4, 5, 5, 7, 9])])
            .unwrap(),
    );
    assert!((sd - 2.0).abs() < 1e-9, "{sd}");
    assert_eq!(host.call("stats::mean", &[ints(&[])]).unwrap(), Value::Null);
}

#[test]
fn ema_matches_the_builtin_formula() {
    let host = stdlib();
    // seeded by 10, then 10·4/5 + 0/5 = 8
    let e = float(
        host.call("ema::ema", &[ints(&[10, 0]), Value::Int(5)])
            .unwrap(),
    );
    assert!((e - 8.0).abs() < 1e-9, "{e}");
    assert_eq!(
        float(
            host.call("ema::decay", &[Value::Int(7), Value::Float(0.9)])
                .unwrap()
        ),
        7.0
    );
}

#[test]
fn loadavg_follows_the_kernel_fixed_point() {
    let host = stdlib();
    // One tick with 1 active task from 0: (0·1884 + 2048·164 + 2047) / 2048 = 164 → 0.080078125
    let one = float(host.call("loadavg::load1", &[ints(&[1])]).unwrap());
    assert_eq!(one, 164.0 / 2048.0);
    // A steady count converges to it.
    let steady = float(host.call("loadavg::load1", &[ints(&[4; 200])]).unwrap());
    assert!((steady - 4.0).abs() < 0.01, "{steady}");
}

fn s(text: &str) -> Value {
    Value::Str(text.into())
}

#[test]
fn text_number_reads_a_cpu_label_and_refuses_other_text() {
    let host = stdlib();
    assert_eq!(
        host.call("text::number", &[s("17")]).unwrap(),
        Value::Int(17)
    );
    assert_eq!(host.call("text::number", &[s("0")]).unwrap(), Value::Int(0));
    for bad in ["", "cpu1", "1.5", "-", "1-2"] {
        assert_eq!(
            host.call("text::number", &[s(bad)]).unwrap(),
            Value::Null,
            "{bad:?}"
        );
    }
}

#[test]
fn ras_info_is_one_json_text_keyed_as_huatuo_keys_each_kind() {
    let host = stdlib();
    let info = |event: &str| {
        let args = [
            s(event),
            s("Corrected"),
            s("DIMM#0"),
            s("memory read error"),
            s("driver detail"),
            Value::Int(4096),
            Value::Int(8),
            Value::Int(2),
            Value::Int(3),
        ];
        match host.call("ras::info", &args).unwrap() {
            Value::Str(text) => serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            other => panic!("info is not text: {other:?}"),
        }
    };
    assert_eq!(
        info("EDAC"),
        serde_json::json!({"err_count": 2, "err_type": "Corrected", "err_msg": "memory read error",
            "label": "DIMM#0", "addr": 4096, "syndrome": 8, "driver": "driver detail"})
    );
    assert_eq!(
        info("MCE"),
        serde_json::json!({"banks_msr_status": 8, "banks_msr_addr": 4096, "cpu": 3})
    );
    assert_eq!(
        info("AER"),
        serde_json::json!({"dev_name": "DIMM#0", "err_type": "Corrected", "status": 8})
    );
}
