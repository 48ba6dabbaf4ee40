//! What the evaluator produces: event records and metric points.

use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a record came from a rule firing or from an operator's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracerType {
    /// A rule fired.
    Auto,
    /// An operator triggered the tracer through the API.
    Manual,
}

/// One event or autotracing record, before storage adds host, region and upload time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The rule name (`softirq_tracing`, `cpusys`).
    pub tracer_name: String,
    /// Auto or manual.
    pub tracer_type: TracerType,
    /// When the triggering sample was observed, ns since the Unix epoch.
    pub time_ns: i64,
    /// Labels of the entity (container_id, device), used for container enrichment.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The emitted fields and capture results: HUATUO's `tracer_data`.
    pub data: BTreeMap<String, Value>,
}

/// Prometheus type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Goes up and down.
    Gauge,
    /// Monotonic cumulative count.
    Counter,
}

/// One value of one series, as the latest state of that series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// Family name without the `huatuo_bamai_` prefix (`runqlat_container_latency`).
    pub family: String,
    /// Help text of the family.
    pub help: String,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// Series labels, without `host`/`region` (the exporter adds those).
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}
