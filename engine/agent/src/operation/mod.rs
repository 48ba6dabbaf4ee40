//! The agent's side of `/v1/operations`: which requests this node can run, and running them
//! on the kernel templates; a finished operation becomes a `manual` record stored and
//! published like an autotracing record.

pub mod blockwin;
pub mod container;
pub mod flamegraph;
pub mod iotrace;
pub mod profile;
pub mod trace;

use huatuo_containers::Discovery;
use huatuo_dsl::output::{Record, TracerType};
use huatuo_dsl::value::Value;
use huatuo_http::api::error::ApiError;
use huatuo_http::api::operations::{Control, Executor, Finished};
use huatuo_http::api::request::{
    Language, OperationRequest, ProfilingType, Scope, Spec, TracingType,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a finished operation waits for room in the record queue before it gives up.
const RECORD_WAIT: Duration = Duration::from_secs(5);

/// Runs operations with this agent's templates and container discovery.
pub struct NodeExecutor {
    /// Container lookup (scope `container`).
    pub discovery: Option<Arc<Discovery>>,
    /// The record sink's queue: stored in local files and Elasticsearch, published to watchers.
    pub records: mpsc::Sender<Record>,
    /// Kernel templates may be loaded (not `--no-bpf`, not a recorded run).
    pub bpf: bool,
    /// Where process IO counters are read (`io_tracing`).
    pub proc_root: crate::capture::procscan::ProcRoot,
}

/// The stored tracer name of an operation: `<kind>_<spec type>` (`profiling_cpu`).
pub fn tracer_name(request: &OperationRequest) -> String {
    let kind = match request.kind {
        huatuo_http::api::request::OperationKind::Profiling => "profiling",
        huatuo_http::api::request::OperationKind::Tracing => "tracing",
    };
    format!("{kind}_{}", request.spec.type_name())
}

impl NodeExecutor {
    fn container(&self, id: &str) -> Option<huatuo_containers::Container> {
        let snapshot = self.discovery.as_ref()?.snapshot().ok()?;
        snapshot.by_id(id).cloned()
    }

    /// The block side of an `io_tracing` operation: `blockio` attached, or why not.
    fn block_window(&self) -> Result<blockwin::BlockWindow, String> {
        blockwin::BlockWindow::start(self.bpf, resolver(self.discovery.as_ref()))
    }

    /// Hands a finished operation's record to the sink, waiting a bounded time for room.
    fn store(&self, record: Record) -> Result<(), String> {
        let deadline = std::time::Instant::now() + RECORD_WAIT;
        let mut record = record;
        loop {
            match self.records.try_send(record) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err("the record sink has stopped".into())
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if std::time::Instant::now() > deadline {
                        return Err(
                            "the record queue stayed full; the record was not stored".into()
                        );
                    }
                    record = back;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// Maps a template's cgroup ids to container ids through `discovery` (none without it).
fn resolver(discovery: Option<&Arc<Discovery>>) -> Arc<dyn huatuo_bpf::CgroupResolver> {
    match discovery {
        Some(d) => Arc::new(crate::daemon::enrich::DiscoveryResolver(d.clone())),
        None => Arc::new(huatuo_bpf::NoContainers),
    }
}

/// The fields every operation record carries: what was asked.
fn request_fields(request: &OperationRequest) -> BTreeMap<String, Value> {
    let mut data = BTreeMap::new();
    data.insert("request_id".into(), Value::Str(request.request_id.clone()));
    let scope = match request.scope {
        Scope::Host => "host",
        Scope::Container => "container",
    };
    data.insert("scope".into(), Value::Str(scope.into()));
    data.insert(
        "duration_seconds".into(),
        Value::Int(request.duration_seconds as i64),
    );
    data.insert(
        "spec".into(),
        Value::Json(serde_json::to_value(&request.spec).unwrap_or_default()),
    );
    data
}

impl Executor for NodeExecutor {
    fn admit(&self, request: &OperationRequest) -> Result<(), ApiError> {
        if let Some(id) = &request.container_id {
            if self.container(id).is_none() {
                return Err(ApiError::container_not_found(id));
            }
        }
        match &request.spec {
            Spec::Profiling(p) if p.kind == ProfilingType::Memory => Err(
                ApiError::not_implemented("memory profiling has no executor in this agent"),
            ),
            Spec::Profiling(p) if matches!(p.language, Some(Language::Java | Language::Python)) => {
                Err(ApiError::not_implemented(
                    "interpreted-language profiling (java, python) has no executor in this agent; \
                     omit `language` for native stacks",
                ))
            }
            Spec::Profiling(p) => profile::admit(self.bpf, p),
            Spec::Tracing(t) if t.kind == TracingType::IoTracing => Ok(()),
            Spec::Tracing(t) => match trace::template_of(t.kind) {
                Some(template) => admit_template(self.bpf, template),
                None => Err(ApiError::not_implemented(format!(
                    "tracing type {} has no executor in this agent yet",
                    request.spec.type_name()
                ))),
            },
        }
    }

    fn run(&self, request: &OperationRequest, control: &Control) -> Result<Finished, String> {
        let container = match &request.container_id {
            Some(id) => Some(
                self.container(id)
                    .ok_or_else(|| format!("container {id} went away before the operation ran"))?,
            ),
            None => None,
        };
        let mut data = request_fields(request);
        let finished = match &request.spec {
            Spec::Profiling(spec) => {
                profile::run(request, spec, container.as_ref(), control, &mut data)?
            }
            Spec::Tracing(t) if t.kind == TracingType::IoTracing => iotrace::run(
                request,
                &self.proc_root,
                self.block_window(),
                request.container_id.as_deref(),
                control,
                &mut data,
            )?,
            Spec::Tracing(t) => {
                let template =
                    trace::template_of(t.kind).ok_or("no executor for this tracing type")?;
                trace::run(
                    request,
                    template,
                    self.discovery.as_ref(),
                    container.as_ref(),
                    control,
                    &mut data,
                )?
            }
        };
        let labels = container
            .as_ref()
            .map(huatuo_containers::container::container_labels)
            .unwrap_or_default();
        let tracer_name = tracer_name(request);
        self.store(Record {
            tracer_name: tracer_name.clone(),
            tracer_type: TracerType::Manual,
            time_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            labels,
            data,
        })?;
        let mut summary = finished.summary;
        summary["tracer_name"] = serde_json::json!(tracer_name);
        Ok(Finished {
            summary,
            svg: finished.svg,
        })
    }
}

/// Whether this agent can run an operation on `template`: templates allowed and it is embedded.
fn admit_template(bpf: bool, template: &str) -> Result<(), ApiError> {
    if !bpf {
        return Err(ApiError::unsupported(format!(
            "kernel templates are turned off in this agent (--no-bpf or recorded maps): \
             template `{template}` unavailable"
        )));
    }
    if huatuo_bpf::embedded::find(template).is_none() {
        return Err(ApiError::unsupported(format!(
            "template `{template}` is not embedded in this build"
        )));
    }
    Ok(())
}
