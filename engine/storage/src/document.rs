//! The stored shape of a record: HUATUO's common fields around `tracer_data`.

use chrono::{DateTime, Local, TimeZone};
use huatuo_dsl::catalog::{CONTAINER_LABELS, CONTAINER_RECORD_FIELDS};
use huatuo_dsl::output::{Record, TracerType};
use huatuo_dsl::tracer_names;
use serde_json::{json, Map, Value as Json};

/// Where the agent runs (the fields every stored record carries) and how records are named.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// The node's hostname.
    pub hostname: String,
    /// The region (`--region`).
    pub region: String,
    /// `[Storage] LegacyTracerNames`: write renamed tracers under HUATUO's older names
    /// (`softirq`, `netrecvlat`, `directreclaim`, `netdev_event`, `lacp`).
    pub legacy_tracer_names: bool,
}

/// The stored field a container label becomes: HUATUO's record name where it differs.
fn record_field(label: &str) -> &str {
    CONTAINER_RECORD_FIELDS
        .iter()
        .find(|(_, l)| *l == label)
        .map_or(label, |(field, _)| field)
}

/// Formats a time as HUATUO's `tracer_time`: `2025-06-11 16:05:16.251 +0800`.
pub fn tracer_time(time: &DateTime<Local>) -> String {
    time.format("%Y-%m-%d %H:%M:%S%.3f %z").to_string()
}

/// Converts nanoseconds since the epoch into local time (the epoch when out of range).
pub fn local_time(time_ns: i64) -> DateTime<Local> {
    Local.timestamp_nanos(time_ns)
}

/// A record ready to store: the JSON document and the pieces sinks index by.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The tracer name (file name for local storage).
    pub tracer_name: String,
    /// The unique id of this record.
    pub tracer_id: String,
    /// The full JSON document.
    pub body: Json,
}

impl Document {
    /// Builds the stored document for `record`, uploaded at `uploaded`.
    pub fn new(record: &Record, host: &HostInfo, uploaded: DateTime<Local>) -> Document {
        let tracer_id = uuid::Uuid::new_v4().simple().to_string();
        let tracer_name =
            tracer_names::written_name(&record.tracer_name, host.legacy_tracer_names).to_string();
        let when = tracer_time(&local_time(record.time_ns));
        let mut body = Map::new();
        body.insert("hostname".into(), json!(host.hostname));
        body.insert("region".into(), json!(host.region));
        body.insert(
            "uploaded_time".into(),
            json!(uploaded.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false)),
        );
        body.insert("time".into(), json!(when));
        body.insert("tracer_name".into(), json!(tracer_name));
        body.insert("tracer_id".into(), json!(tracer_id));
        body.insert("tracer_time".into(), json!(when));
        let tracer_type = match record.tracer_type {
            TracerType::Auto => "auto",
            TracerType::Manual => "manual",
        };
        body.insert("tracer_type".into(), json!(tracer_type));
        for label in CONTAINER_LABELS {
            if let Some(value) = record.labels.get(*label) {
                body.insert(record_field(label).into(), json!(value));
            }
        }
        let data = serde_json::to_value(&record.data)
            .unwrap_or_else(|e| json!({ "encode_error": e.to_string() }));
        body.insert("tracer_data".into(), data);
        Document {
            tracer_name,
            tracer_id,
            body: Json::Object(body),
        }
    }

    /// The string value of a top-level field (for filters), empty when absent.
    pub fn field(&self, name: &str) -> &str {
        self.body.get(name).and_then(Json::as_str).unwrap_or("")
    }
}
