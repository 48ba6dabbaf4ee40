//! Rules read config keys through `ConfigValues` in base units, listed by `key_schemas()`.

use huatuo_config::{key_schemas, load_str, Config};
use huatuo_dsl::catalog::FieldType;
use huatuo_dsl::source::ConfigValues;
use huatuo_dsl::units::Dim;
use huatuo_dsl::value::Value;

fn value(c: &Config, path: &str) -> Value {
    c.value(path)
        .unwrap_or_else(|| panic!("`{path}` does not resolve"))
}

#[test]
fn durations_are_nanoseconds() {
    let c = Config::default();
    // seconds
    assert_eq!(
        value(&c, "AutoTracing.CPUSys.Interval"),
        Value::Int(10_000_000_000)
    );
    assert_eq!(
        value(&c, "AutoTracing.CPUIdle.IntervalTracing"),
        Value::Int(1_800_000_000_000)
    );
    assert_eq!(
        value(&c, "EventsWatch.KeepAliveInterval"),
        Value::Int(30_000_000_000)
    );
    // nanoseconds already
    assert_eq!(
        value(&c, "EventTracing.Softirq.DisabledThreshold"),
        Value::Int(10_000_000)
    );
    // milliseconds
    assert_eq!(
        value(&c, "EventTracing.NetRxLatency.Driver2TCP"),
        Value::Int(10_000_000)
    );
    assert_eq!(
        value(&c, "AutoTracing.IOTracing.AwaitThreshold"),
        Value::Int(100_000_000)
    );
}

#[test]
fn a_changed_value_converts_too() {
    let c = load_str(
        "t.conf",
        "[AutoTracing.CPUSys]\nInterval = 3\nSysThreshold = 12.5\n",
    )
    .unwrap();
    assert_eq!(
        value(&c, "AutoTracing.CPUSys.Interval"),
        Value::Int(3_000_000_000)
    );
    assert_eq!(
        value(&c, "AutoTracing.CPUSys.SysThreshold"),
        Value::Float(12.5)
    );
}

#[test]
fn percent_bytes_counts_and_lists() {
    let c = Config::default();
    assert_eq!(
        value(&c, "AutoTracing.CPUIdle.UserThreshold"),
        Value::Float(75.0)
    );
    assert_eq!(
        value(&c, "Storage.LocalFile.RotationSize"),
        Value::Int(100 * 1024 * 1024)
    );
    assert_eq!(
        value(&c, "RuntimeCgroup.LimitMem"),
        Value::Int(2048 * 1024 * 1024)
    );
    assert_eq!(
        value(&c, "AutoTracing.IOTracing.WbpsThreshold"),
        Value::Int(1500 * 1024 * 1024)
    );
    assert_eq!(value(&c, "Storage.LocalFile.MaxRotation"), Value::Int(10));
    assert_eq!(value(&c, "RuntimeCgroup.LimitCPU"), Value::Float(2.0));
    assert_eq!(
        value(&c, "BlackList"),
        Value::List(vec![
            Value::Str("netdev_hw".into()),
            Value::Str("metax_gpu".into())
        ])
    );
    assert_eq!(value(&c, "Log.Level"), Value::Str("Info".into()));
    assert_eq!(
        value(&c, "EventTracing.Dropwatch.ExcludedNeighInvalidate"),
        Value::Bool(true)
    );
}

#[test]
fn structured_keys_convert() {
    let text = "[AutoTracing]\nIssuesList = [[\"k1\", \"softlockup\"]]\n[[AutoTracing.CPUIdle.Filter.Excluded]]\nField = \"container_qos\"\nPattern = \"besteffort\"\n";
    let c = load_str("t.conf", text).unwrap();
    assert_eq!(
        value(&c, "AutoTracing.IssuesList"),
        Value::List(vec![Value::List(vec![
            Value::Str("k1".into()),
            Value::Str("softlockup".into())
        ])])
    );
    assert_eq!(
        value(&c, "AutoTracing.CPUIdle.Filter.Excluded"),
        Value::Json(serde_json::json!([{"Field": "container_qos", "Pattern": "besteffort"}]))
    );
}

#[test]
fn unknown_paths_and_sections_are_none() {
    let c = Config::default();
    assert_eq!(c.value("AutoTracing.CPUSys.Nope"), None);
    assert_eq!(c.value("AutoTracing.CPUSys"), None);
    assert_eq!(c.value("AutoTracing"), None);
    assert_eq!(c.value(""), None);
    assert_eq!(c.value("BlackList.x"), None);
}

#[test]
fn every_schema_key_resolves_with_a_value_of_its_type() {
    let c = Config::default();
    let keys = key_schemas();
    for section in [
        "BlackList",
        "Log.",
        "RuntimeCgroup.",
        "Storage.ES.",
        "Storage.LocalFile.",
        "AutoTracing.IssuesList",
        "AutoTracing.CPUIdle.",
        "AutoTracing.CPUIdle.Filter.",
        "AutoTracing.CPUSys.",
        "AutoTracing.Dload.",
        "AutoTracing.IOTracing.",
        "AutoTracing.MemoryBurst.",
        "EventTracing.IssuesList",
        "EventTracing.Softirq.",
        "EventTracing.MemoryReclaim.",
        "EventTracing.NetRxLatency.",
        "EventTracing.Netdev.",
        "EventTracing.Dropwatch.",
        "EventTracing.Ras.",
        "MetricCollector.NetdevStats.",
        "MetricCollector.NetdevDCB.",
        "MetricCollector.NetdevHW.",
        "MetricCollector.Qdisc.",
        "MetricCollector.Vmstat.",
        "MetricCollector.MemoryEvents.",
        "MetricCollector.Netstat.",
        "MetricCollector.MountPointStat.",
        "Pod.",
        "EventsWatch.",
    ] {
        assert!(
            keys.iter().any(|k| k.path.starts_with(section)),
            "no key under `{section}`"
        );
    }
    for key in &keys {
        let v = value(&c, &key.path);
        let matches = match key.ty {
            FieldType::Int => matches!(v, Value::Int(_)),
            FieldType::Float => matches!(v, Value::Float(_)),
            FieldType::Str => matches!(v, Value::Str(_)),
            FieldType::Bool => matches!(v, Value::Bool(_)),
            FieldType::List => matches!(v, Value::List(_)),
            FieldType::Json => matches!(v, Value::Json(_)),
            FieldType::Hist => false,
        };
        assert!(matches, "`{}` is {:?} but yields {v:?}", key.path, key.ty);
        assert!(
            !key.description.is_empty(),
            "`{}` has no description",
            key.path
        );
    }
}

#[test]
fn schema_dims_follow_the_documented_units() {
    let dim = |path: &str| {
        key_schemas()
            .into_iter()
            .find(|k| k.path == path)
            .unwrap_or_else(|| panic!("no key `{path}`"))
            .dim
    };
    assert_eq!(dim("AutoTracing.CPUIdle.Interval"), Dim::Time);
    assert_eq!(dim("AutoTracing.CPUIdle.RunTracingToolTimeout"), Dim::Time);
    assert_eq!(dim("AutoTracing.Dload.IntervalTracing"), Dim::Time);
    assert_eq!(dim("EventTracing.Softirq.DisabledThreshold"), Dim::Time);
    assert_eq!(dim("AutoTracing.CPUSys.SysThreshold"), Dim::Percent);
    assert_eq!(dim("AutoTracing.IOTracing.UtilThreshold"), Dim::Percent);
    assert_eq!(dim("Storage.LocalFile.RotationSize"), Dim::Bytes);
    assert_eq!(dim("AutoTracing.IOTracing.RbpsThreshold"), Dim::BytesPerSec);
    assert_eq!(dim("AutoTracing.IOTracing.MaxProcDump"), Dim::Count);
    let blacklist = key_schemas()
        .into_iter()
        .find(|k| k.path == "BlackList")
        .unwrap();
    assert_eq!(blacklist.ty, FieldType::List);
    assert!(key_schemas()
        .iter()
        .any(|k| k.path == "AutoTracing.CPUSys.Interval" && k.description.contains("seconds")));
}

#[test]
fn the_config_serializes_with_huatuo_key_names() {
    let json = serde_json::to_value(Config::default()).unwrap();
    assert_eq!(json["AutoTracing"]["CPUSys"]["SysThreshold"], 45.0);
    assert_eq!(json["Storage"]["ES"]["Index"], "huatuo_bamai");
}
