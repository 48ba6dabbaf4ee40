//! Capture requests: the evaluator asks, the daemon (or a replay recorder) runs them.

use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;

/// One capture a triggered rule asks for, with its arguments evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureRequest {
    /// The capture action (`stack`, `profile`, `tasks`).
    pub name: String,
    /// Positional arguments in order.
    pub positional: Vec<Value>,
    /// Named arguments (`scope: host`).
    pub named: BTreeMap<String, Value>,
    /// Record field to store the result under, when the rule gave one.
    pub alias: Option<String>,
}

impl CaptureRequest {
    /// The record field the result goes under when the runner names none: alias, else name.
    pub fn field_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// All arguments as one map: named ones by name, positional ones by index ("0", "1").
    pub fn args_map(&self) -> BTreeMap<String, Value> {
        let mut args: BTreeMap<String, Value> = self
            .positional
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.clone()))
            .collect();
        args.extend(self.named.iter().map(|(k, v)| (k.clone(), v.clone())));
        args
    }
}

/// Runs captures for triggered rules: returns the record fields the capture adds.
pub trait CaptureRunner {
    /// Runs one capture for the sample that triggered it.
    fn run(
        &mut self,
        req: &CaptureRequest,
        sample: &Sample,
    ) -> Result<BTreeMap<String, Value>, String>;
}

/// A runner for replays and tests: touches nothing, records what would have been captured as
/// `{<alias or name>: {"capture": name, "args": {...}}}`.
#[derive(Debug, Default, Clone)]
pub struct RecordingCaptureRunner {
    /// Every request seen, in order.
    pub requests: Vec<CaptureRequest>,
}

impl CaptureRunner for RecordingCaptureRunner {
    fn run(
        &mut self,
        req: &CaptureRequest,
        _sample: &Sample,
    ) -> Result<BTreeMap<String, Value>, String> {
        self.requests.push(req.clone());
        let args = serde_json::to_value(req.args_map()).map_err(|e| e.to_string())?;
        let json = serde_json::json!({ "capture": req.name, "args": args });
        Ok(BTreeMap::from([(
            req.field_name().to_string(),
            Value::Json(json),
        )]))
    }
}
