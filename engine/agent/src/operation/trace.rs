//! Tracing operations: a stream template (`drops` for networking_drop, `tcp_retransmit`) is
//! loaded for the operation alone, its events are collected for the duration (or until
//! stopped), bounded in number, and the record lists them with their count.

use huatuo_bpf::{LoadOptions, Templates};
use huatuo_containers::{Container, Discovery};
use huatuo_dsl::value::Value;
use huatuo_http::api::operations::{Control, Finished};
use huatuo_http::api::request::{OperationRequest, TracingType};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events a trace keeps in its record; more are counted, not kept.
pub const MAX_EVENTS: usize = 10_000;
/// How often the event queue is drained while waiting.
const POLL: Duration = Duration::from_millis(100);

/// The template a tracing type runs on; `None` for one that needs no template
/// (`io_tracing` reads process IO counters).
pub fn template_of(kind: TracingType) -> Option<&'static str> {
    match kind {
        TracingType::NetworkingDrop => Some("drops"),
        TracingType::TcpRetransmit => Some("tcp_retransmit"),
        TracingType::IoTracing => None,
    }
}

/// Why `template` did not attach, from its status.
pub(super) fn attach_failure(templates: &Templates, template: &str) -> String {
    let reasons: Vec<String> = templates
        .status()
        .iter()
        .flat_map(|t| t.programs.iter())
        .flat_map(|p| p.tried.iter())
        .map(|t| format!("{:?}: {}", t.kind, t.error.as_deref().unwrap_or("?")))
        .collect();
    format!(
        "template `{template}` did not attach on this kernel ({})",
        reasons.join("; ")
    )
}

/// Traces for the request's duration or until stopped; fills the record `data`.
pub fn run(
    request: &OperationRequest,
    template: &str,
    discovery: Option<&Arc<Discovery>>,
    container: Option<&Container>,
    control: &Control,
    data: &mut BTreeMap<String, Value>,
) -> Result<Finished, String> {
    let mut templates = Templates::load_with(
        &[template],
        &BTreeMap::new(),
        LoadOptions {
            resolver: super::resolver(discovery),
            ..LoadOptions::default()
        },
    );
    if !templates.loaded().contains(&template) {
        return Err(attach_failure(&templates, template));
    }
    let mut events = templates
        .take_events()
        .ok_or_else(|| format!("template `{template}` has no event stream"))?;
    control.started();
    let deadline = Instant::now() + Duration::from_secs(request.duration_seconds);
    let mut kept = Vec::new();
    let mut seen = 0u64;
    let mut stopped = false;
    loop {
        while let Ok(sample) = events.try_recv() {
            if let Some(c) = container {
                if sample.labels.get("container_id") != Some(&c.id) {
                    continue;
                }
            }
            seen += 1;
            if kept.len() < MAX_EVENTS {
                kept.push(json!({
                    "time_ns": sample.time_ns,
                    "labels": sample.labels,
                    "fields": sample.fields,
                }));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if stopped || left.is_zero() {
            break;
        }
        stopped = control.wait(left.min(POLL));
    }
    drop(templates);
    let kept_count = kept.len();
    data.insert("template".into(), Value::Str(template.to_string()));
    data.insert("event_count".into(), Value::Int(seen as i64));
    data.insert(
        "events_not_kept".into(),
        Value::Int(seen.saturating_sub(kept_count as u64) as i64),
    );
    data.insert("events".into(), Value::Json(json!(kept)));
    data.insert("stopped_early".into(), Value::Bool(stopped));
    Ok(Finished {
        summary: json!({
            "event_count": seen,
            "events_kept": kept_count,
            "stopped_early": stopped,
        }),
        svg: None,
    })
}
