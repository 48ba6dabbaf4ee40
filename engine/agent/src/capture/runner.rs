//! The daemon's capture runner: quick captures inline, profiles deferred off the evaluator.

use super::procscan::{file_snapshot, tasks, top, ProcRoot, TopBy};
use super::task_text;
use huatuo_dsl::value::{Sample, Value};
use huatuo_eval::{CaptureRequest, CaptureRunner};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Key of the placeholder a deferred capture leaves in a record until it has run.
pub const DEFERRED: &str = "deferred_capture";

/// Runs captures for the daemon.
#[derive(Debug, Default)]
pub struct DaemonCaptures {
    /// Where process information is read.
    pub proc_root: ProcRoot,
    /// The last task scan, so that a rule asking for the same tasks as a list and as text for
    /// one sample scans once and gets the same tasks in both.
    last_scan: Option<(TaskScan, serde_json::Value)>,
}

/// What identifies one task scan: the sample's time and the scan's arguments.
#[derive(Debug, Clone, PartialEq)]
struct TaskScan {
    time_ns: i64,
    state: char,
    container: Option<String>,
    max: usize,
}

impl DaemonCaptures {
    /// Runs captures reading process information under `proc_root`.
    pub fn new(proc_root: ProcRoot) -> Self {
        DaemonCaptures {
            proc_root,
            last_scan: None,
        }
    }

    /// The tasks of `scan`, reusing the last scan when it was the same.
    fn scan(&mut self, scan: TaskScan) -> Result<serde_json::Value, String> {
        if let Some((last, listed)) = &self.last_scan {
            if *last == scan {
                return Ok(listed.clone());
            }
        }
        let listed = tasks(
            &self.proc_root,
            scan.state,
            scan.container.as_deref(),
            scan.max,
        )?;
        self.last_scan = Some((scan, listed.clone()));
        Ok(listed)
    }
}

fn word(req: &CaptureRequest, name: &str, index: usize) -> Option<String> {
    req.named
        .get(name)
        .or_else(|| req.positional.get(index))
        .and_then(|v| v.as_str().map(str::to_string))
}

fn number(req: &CaptureRequest, name: &str, index: usize) -> Option<f64> {
    req.named
        .get(name)
        .or_else(|| req.positional.get(index))
        .and_then(Value::as_f64)
}

impl CaptureRunner for DaemonCaptures {
    fn run(
        &mut self,
        req: &CaptureRequest,
        sample: &Sample,
    ) -> Result<BTreeMap<String, Value>, String> {
        let container = sample.labels.get("container_id").map(String::as_str);
        let scoped = |scope: Option<String>| match scope.as_deref() {
            Some("host") => None,
            _ => container,
        };
        let value = match req.name.as_str() {
            "tasks" => {
                let state = word(req, "state", 0).unwrap_or_else(|| "D".into());
                let state = state.chars().next().unwrap_or('D');
                let max = number(req, "max", 2).unwrap_or(64.0) as usize;
                let listed = self.scan(TaskScan {
                    time_ns: sample.time_ns,
                    state,
                    container: scoped(word(req, "scope", 1)).map(str::to_string),
                    max,
                })?;
                match word(req, "format", 3).as_deref() {
                    Some("text") => Value::Str(task_text::render(&listed)),
                    _ => Value::Json(listed),
                }
            }
            "top" => {
                let by = word(req, "by", 0)
                    .and_then(|w| TopBy::parse(&w))
                    .ok_or("top: `by` must be rss, cpu or io")?;
                let n = number(req, "n", 1).unwrap_or(10.0) as usize;
                let files = number(req, "files", 2).unwrap_or(0.0) as usize;
                let under = word(req, "under", 3).map(PathBuf::from);
                Value::Json(top(
                    &self.proc_root,
                    by,
                    n,
                    files,
                    under.as_deref(),
                    container,
                )?)
            }
            "file" => {
                let path = word(req, "path", 0).ok_or("file: `path` is required")?;
                Value::Str(file_snapshot(Path::new(&path))?)
            }
            "stack" => sample.fields.get("stack").cloned().unwrap_or(Value::Null),
            "profile" => {
                let scope = word(req, "scope", 0).unwrap_or_else(|| "host".into());
                let duration_ns = number(req, "duration", 1).unwrap_or(10e9);
                Value::Json(json!({ DEFERRED: {
                    "capture": "profile",
                    "scope": scope,
                    "duration_ns": duration_ns,
                    "container_id": container,
                }}))
            }
            "waitrate" => {
                let container = container.ok_or("waitrate: the sample names no container")?;
                let duration_ns = number(req, "duration", 0).unwrap_or(10e9);
                Value::Json(json!({ DEFERRED: {
                    "capture": "waitrate",
                    "scope": "container",
                    "duration_ns": duration_ns,
                    "container_id": container,
                }}))
            }
            other => return Err(format!("unknown capture `{other}`")),
        };
        Ok(BTreeMap::from([(req.field_name().to_string(), value)]))
    }
}

/// Which deferred capture a record waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    /// A CPU profile (`profile`).
    Profile,
    /// The cgroups that held the CPUs a container waited for (`waitrate`).
    WaitRate,
}

/// A deferred capture (a profile or a waitrate) a record is waiting for.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingProfile {
    /// What to run.
    pub kind: Deferred,
    /// The record field to fill.
    pub field: String,
    /// How long to sample.
    pub duration: Duration,
    /// The container to limit sampling to (a profile of scope `container`), or whose waits
    /// are attributed (a waitrate).
    pub container_id: Option<String>,
}

/// The deferred captures a record's placeholders ask for.
pub fn pending_profiles(data: &BTreeMap<String, Value>) -> Vec<PendingProfile> {
    data.iter()
        .filter_map(|(field, value)| {
            let Value::Json(json) = value else {
                return None;
            };
            let spec = json.get(DEFERRED)?;
            let duration_ns = spec
                .get("duration_ns")
                .and_then(|v| v.as_f64())
                .unwrap_or(10e9);
            let container_id = (spec.get("scope").and_then(|v| v.as_str()) == Some("container"))
                .then(|| {
                    spec.get("container_id")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                })
                .flatten();
            let kind = match spec.get("capture").and_then(|v| v.as_str()) {
                Some("waitrate") => Deferred::WaitRate,
                _ => Deferred::Profile,
            };
            Some(PendingProfile {
                kind,
                field: field.clone(),
                duration: Duration::from_nanos(duration_ns.clamp(1e8, 600e9) as u64),
                container_id,
            })
        })
        .collect()
}
