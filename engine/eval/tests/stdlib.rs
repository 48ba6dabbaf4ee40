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

fn nums(v: &[f64]) -> Value {
    Value::List(v.iter().map(|f| Value::Float(*f)).collect())
}

fn flags(v: &[bool]) -> Value {
    Value::List(v.iter().map(|b| Value::Bool(*b)).collect())
}

#[test]
fn iotracing_reason_snapshot_names_the_trigger_as_huatuo_does() {
    let host = stdlib();
    let snapshot = |device: &str, hot: &[bool], read_await: Value| {
        let figures = Value::List(vec![
            Value::Float(0.0),
            Value::Float(0.0),
            read_await,
            Value::Float(20_971_520.0),
            Value::Float(200.0),
            Value::Float(1.0),
            Value::Float(95.5),
            Value::Int(4),
        ]);
        let args = [
            s(device),
            Value::Int(8),
            Value::Int(0),
            figures,
            flags(hot),
            nums(&[2000.0, 10.0, 90.0, 100.0]),
        ];
        match host.call("iotracing::reason_snapshot", &args).unwrap() {
            Value::Json(json) => json,
            other => panic!("not a map: {other:?}"),
        }
    };
    let write = snapshot("sda", &[false, false, true, false, false], Value::Null);
    assert_eq!(
        write,
        serde_json::json!({
            "type": "write_bps", "device": "sda", "major_num": 8, "minor_num": 0,
            "iostatus": {"read_bps": 0, "read_iops": 0, "read_await": 0, "write_bps": 20971520,
                "write_iops": 200, "write_await": 1, "io_util": 95, "queue_size": 4},
            "summary": "write_bps=20MB/s (threshold=10MB/s) on sda(8:0), aqu-sz=4, r_await=0ms w_await=1ms"
        })
    );
    // A busy disk that is not NVMe is reported as ioutil before throughput; NVMe by throughput.
    let busy = [true, false, true, false, false];
    assert_eq!(snapshot("sda", &busy, Value::Null)["type"], "ioutil");
    assert_eq!(snapshot("nvme0n1", &busy, Value::Null)["type"], "write_bps");
    let slow = snapshot(
        "sda",
        &[false, false, false, true, false],
        Value::Float(150.7),
    );
    assert_eq!(slow["type"], "read_await");
    assert_eq!(slow["iostatus"]["read_await"], 150);
    assert_eq!(
        slow["summary"],
        "r_await=150ms (threshold=100ms) on sda(8:0), aqu-sz=4"
    );
}
