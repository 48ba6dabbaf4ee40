//! On-demand operations: the state machine (pending → running → stopping → terminal), the
//! bounded in-memory table behind `/v1/operations`, and the [`Executor`] seam through which
//! the agent runs them on the kernel.

use super::error::ApiError;
use super::request::{OperationKind, OperationRequest};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use warp::http::StatusCode;

/// Where an operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted, the executor is setting up.
    Pending,
    /// Collecting.
    Running,
    /// A stop was asked for; results are being gathered.
    Stopping,
    /// Finished; `terminal` says how.
    Terminal,
}

/// How a terminal operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ran its full duration.
    Completed,
    /// The executor failed.
    Failed,
    /// Stopped early on request (results up to the stop are kept).
    Stopped,
}

/// How a terminal operation ended, with the reason code and message of a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Terminal {
    /// Completed, failed or stopped.
    pub outcome: Outcome,
    /// Stable code of why (`execution_failed`, `stop_requested`, `agent_shutdown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An operation as `GET /v1/operations/{request_id}` shows it (the `data` of the reply).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// The client's id.
    pub request_id: String,
    /// Profiling or tracing.
    pub kind: OperationKind,
    /// Where it is.
    pub status: Status,
    /// How it ended, once terminal.
    pub terminal: Option<Terminal>,
    /// When it was accepted (RFC 3339).
    pub created_at: String,
    /// When collection began.
    pub started_at: Option<String>,
    /// When it became terminal.
    pub finished_at: Option<String>,
    /// What it found, once terminal: the stored record's tracer name and a summary.
    pub result: Option<Json>,
}

/// What an executor hands back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    /// A summary shown in the operation's `result` (the full record goes to storage).
    pub summary: Json,
    /// The flame graph of a profile, served at `/v1/operations/{id}/flamegraph.svg`.
    pub svg: Option<String>,
}

/// Runs operations on this node; implemented by the agent over its kernel templates.
pub trait Executor: Send + Sync + 'static {
    /// Whether this node can run `request`: `Ok`, or the 404/422/501 saying why not.
    fn admit(&self, request: &OperationRequest) -> Result<(), ApiError>;
    /// Runs `request` (blocking) until its duration passes or `control` is stopped, stores
    /// its record and returns the summary; calls `control.started()` once collecting.
    fn run(&self, request: &OperationRequest, control: &Control) -> Result<Finished, String>;
}

/// Bounds of the operations table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations allowed to be pending/running/stopping at once; more get 429.
    pub max_concurrent: usize,
    /// Longest `duration_seconds` accepted.
    pub max_duration_s: u64,
    /// Operations kept in memory; the oldest terminal ones are evicted past it.
    pub retained: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: 4,
            max_duration_s: 600,
            retained: 256,
        }
    }
}

/// The stop signal and progress reporting of one running operation.
pub struct Control {
    table: Arc<Operations>,
    request_id: String,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Control {
    /// Marks the operation running (collection has begun).
    pub fn started(&self) {
        let mut inner = self.table.lock();
        if let Some(entry) = inner.entries.get_mut(&self.request_id) {
            if entry.op.status == Status::Pending {
                entry.op.status = Status::Running;
            }
            entry.op.started_at.get_or_insert_with(now);
        }
    }

    /// Whether a stop was asked for.
    pub fn stopped(&self) -> bool {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `duration` passes or a stop is asked for; true when stopped.
    pub fn wait(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut stopped = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stopped = match self.wake.wait_timeout(stopped, left) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
        *stopped
    }

    fn request_stop(&self) {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }
}

struct Entry {
    op: Operation,
    control: Option<Arc<Control>>,
    svg: Option<Arc<String>>,
    shutdown: bool,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<String, Entry>,
    /// Request ids, oldest first.
    order: VecDeque<String>,
}

/// The operations of this agent, bounded by [`Limits`].
pub struct Operations {
    inner: Mutex<Inner>,
    executor: Arc<dyn Executor>,
    limits: Limits,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn active(entry: &Entry) -> bool {
    entry.op.status != Status::Terminal
}

impl Operations {
    /// An empty table running operations with `executor`.
    pub fn new(executor: Arc<dyn Executor>, limits: Limits) -> Arc<Self> {
        Arc::new(Operations {
            inner: Mutex::default(),
            executor,
            limits,
        })
    }

    /// The table's bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The same request id again: 200 with the operation for the same kind, 409 otherwise.
    fn existing(
        inner: &Inner,
        request: &OperationRequest,
    ) -> Option<Result<(StatusCode, Operation), ApiError>> {
        let entry = inner.entries.get(&request.request_id)?;
        Some(if entry.op.kind == request.kind {
            Ok((StatusCode::OK, entry.op.clone()))
        } else {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_id_conflict",
                format!(
                    "request_id `{}` belongs to a {} operation",
                    request.request_id,
                    serde_json::to_value(entry.op.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
            ))
        })
    }

    /// Starts `request` (202), or answers for the operation it repeats (200/409); refuses
    /// past the concurrency limit (429) or where the executor cannot run it.
    pub fn start(
        self: &Arc<Self>,
        request: OperationRequest,
    ) -> Result<(StatusCode, Operation), ApiError> {
        if let Some(answer) = Self::existing(&self.lock(), &request) {
            return answer;
        }
        self.executor.admit(&request)?;
        let mut inner = self.lock();
        if let Some(answer) = Self::existing(&inner, &request) {
            return answer;
        }
        let running = inner.entries.values().filter(|e| active(e)).count();
        if running >= self.limits.max_concurrent {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "operation_limit_exceeded",
                format!(
                    "{running} operations are running, the limit is {} (Operations.MaxConcurrent)",
                    self.limits.max_concurrent
                ),
            ));
        }
        let op = Operation {
            request_id: request.request_id.clone(),
            kind: request.kind,
            status: Status::Pending,
            terminal: None,
            created_at: now(),
            started_at: None,
            finished_at: None,
            result: None,
        };
        let control = Arc::new(Control {
            table: self.clone(),
            request_id: request.request_id.clone(),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        inner.entries.insert(
            request.request_id.clone(),
            Entry {
                op: op.clone(),
                control: Some(control.clone()),
                svg: None,
                shutdown: false,
            },
        );
        inner.order.push_back(request.request_id.clone());
        self.evict(&mut inner);
        drop(inner);
        let table = self.clone();
        let thread_control = control.clone();
        let request_id = request.request_id.clone();
        let spawned = std::thread::Builder::new()
            .name("huatuo-op".into())
            .spawn(move || {
                let result = table.executor.run(&request, &thread_control);
                table.finish(&request.request_id, &thread_control, result);
            });
        if let Err(e) = spawned {
            let message = format!("starting the operation thread: {e}");
            self.finish(&request_id, &control, Err(message.clone()));
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "execution_start_failed",
                message,
            ));
        }
        Ok((StatusCode::ACCEPTED, op))
    }

    /// Drops the oldest terminal operations beyond the retained count.
    fn evict(&self, inner: &mut Inner) {
        let mut index = 0;
        while inner.entries.len() > self.limits.retained && index < inner.order.len() {
            let id = &inner.order[index];
            if inner.entries.get(id).is_some_and(active) {
                index += 1;
                continue;
            }
            if let Some(id) = inner.order.remove(index) {
                inner.entries.remove(&id);
            }
        }
    }

    fn finish(&self, request_id: &str, control: &Control, result: Result<Finished, String>) {
        let stopped = control.stopped();
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(request_id) else {
            return;
        };
        let (outcome, reason, message) = match &result {
            Err(e) => (Outcome::Failed, Some("execution_failed"), Some(e.clone())),
            Ok(_) if entry.shutdown => (
                Outcome::Stopped,
                Some("agent_shutdown"),
                Some("the agent stopped".to_string()),
            ),
            Ok(_) if stopped => (Outcome::Stopped, Some("stop_requested"), None),
            Ok(_) => (Outcome::Completed, None, None),
        };
        entry.op.status = Status::Terminal;
        entry.op.terminal = Some(Terminal {
            outcome,
            reason: reason.map(str::to_string),
            message,
        });
        entry.op.finished_at = Some(now());
        entry.control = None;
        if let Ok(finished) = result {
            entry.op.result = Some(finished.summary);
            entry.svg = finished.svg.map(Arc::new);
        }
    }

    /// The operation named `request_id`.
    pub fn get(&self, request_id: &str) -> Result<Operation, ApiError> {
        self.lock()
            .entries
            .get(request_id)
            .map(|e| e.op.clone())
            .ok_or_else(|| ApiError::operation_not_found(request_id))
    }

    /// Asks a pending or running operation to stop (202); 200 when it is already stopping
    /// or terminal.
    pub fn stop(&self, request_id: &str) -> Result<(StatusCode, Operation), ApiError> {
        let mut inner = self.lock();
        let entry = inner
            .entries
            .get_mut(request_id)
            .ok_or_else(|| ApiError::operation_not_found(request_id))?;
        match entry.op.status {
            Status::Stopping | Status::Terminal => Ok((StatusCode::OK, entry.op.clone())),
            Status::Pending | Status::Running => {
                entry.op.status = Status::Stopping;
                if let Some(control) = &entry.control {
                    control.request_stop();
                }
                Ok((StatusCode::ACCEPTED, entry.op.clone()))
            }
        }
    }

    /// Stops every operation (agent shutdown); they end `stopped` with reason
    /// `agent_shutdown`.
    pub fn stop_all(&self) {
        let mut inner = self.lock();
        for entry in inner.entries.values_mut().filter(|e| active(e)) {
            entry.shutdown = true;
            entry.op.status = Status::Stopping;
            if let Some(control) = &entry.control {
                control.request_stop();
            }
        }
    }

    /// The flame graph of a finished profile.
    pub fn flamegraph(&self, request_id: &str) -> Result<Arc<String>, ApiError> {
        let inner = self.lock();
        let entry = inner
            .entries
            .get(request_id)
            .ok_or_else(|| ApiError::operation_not_found(request_id))?;
        entry.svg.clone().ok_or_else(|| {
            let why = if active(entry) {
                "has not finished yet"
            } else {
                "has no flame graph (only CPU profiles make one)"
            };
            ApiError::new(
                StatusCode::NOT_FOUND,
                "flamegraph_not_found",
                format!("operation `{request_id}` {why}"),
            )
        })
    }
}
