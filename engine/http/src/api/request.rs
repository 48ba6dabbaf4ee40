//! The body of `POST /v1/operations`: parsed strictly (unknown fields are errors, every
//! error names its field) into an [`OperationRequest`].

use super::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Longest accepted `request_id`.
pub const MAX_REQUEST_ID: usize = 128;

/// What an operation does: sample CPU stacks, or trace a kernel event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// A profile (`spec.type` cpu or memory).
    Profiling,
    /// A trace (`spec.type` networking_drop, io_tracing, tcp_retransmit).
    Tracing,
}

/// What an operation observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The whole node.
    Host,
    /// One container (`container_id`).
    Container,
}

/// `spec.type` of a profiling operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfilingType {
    /// CPU stacks.
    Cpu,
    /// Memory allocations.
    Memory,
}

/// `spec.mode` of a profiling operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfilingMode {
    /// Where tasks run on a CPU.
    Oncpu,
    /// Where tasks wait off a CPU.
    Offcpu,
    /// Memory: objects allocated.
    ObjectAlloc,
    /// Memory: objects in use.
    ObjectUsage,
    /// Memory: virtual allocations.
    VirtualAlloc,
    /// Memory: physical allocations.
    PhysicalAlloc,
    /// Memory: physical memory in use.
    PhysicalUsage,
}

/// `spec.language` of a profiling operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Language {
    /// C.
    #[serde(rename = "c")]
    C,
    /// C++.
    #[serde(rename = "c++")]
    Cpp,
    /// Go.
    #[serde(rename = "go")]
    Go,
    /// Java.
    #[serde(rename = "java")]
    Java,
    /// Python.
    #[serde(rename = "python")]
    Python,
}

/// `spec` of a profiling operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilingSpec {
    /// cpu or memory.
    #[serde(rename = "type")]
    pub kind: ProfilingType,
    /// oncpu, offcpu or a memory mode.
    pub mode: ProfilingMode,
    /// Language of the profiled program (native stacks when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// Only processes whose executable path matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_match_path: Option<String>,
}

/// `spec.type` of a tracing operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracingType {
    /// Packets the kernel dropped, with where.
    NetworkingDrop,
    /// Block IO latency and the processes doing IO.
    IoTracing,
    /// TCP segments retransmitted.
    TcpRetransmit,
}

/// `spec` of a tracing operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSpec {
    /// What to trace.
    #[serde(rename = "type")]
    pub kind: TracingType,
}

/// A checked `spec`, matching the request's kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    /// A profile.
    Profiling(ProfilingSpec),
    /// A trace.
    Tracing(TracingSpec),
}

impl Spec {
    /// `spec.type` as written (`cpu`, `tcp_retransmit`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Spec::Profiling(p) => match p.kind {
                ProfilingType::Cpu => "cpu",
                ProfilingType::Memory => "memory",
            },
            Spec::Tracing(t) => match t.kind {
                TracingType::NetworkingDrop => "networking_drop",
                TracingType::IoTracing => "io_tracing",
                TracingType::TcpRetransmit => "tcp_retransmit",
            },
        }
    }
}

/// The body as sent, before `spec` is read against `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    request_id: String,
    kind: OperationKind,
    scope: Scope,
    #[serde(default)]
    container_id: Option<String>,
    duration_seconds: i64,
    spec: Json,
}

/// A checked start request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationRequest {
    /// The client's id of the operation: the idempotency key.
    pub request_id: String,
    /// Profiling or tracing.
    pub kind: OperationKind,
    /// Host or container.
    pub scope: Scope,
    /// The container, for container scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// How long it runs unless stopped.
    pub duration_seconds: u64,
    /// What it does.
    pub spec: Spec,
}

/// Whether `id` is a usable request id: 1 to 128 characters of `A-Z a-z 0-9 . _ : -`.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Whether `id` has the form of a full container id (64 hex digits).
pub fn valid_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses and checks a start request; `max_duration` caps `duration_seconds`.
pub fn parse(body: &[u8], max_duration: u64) -> Result<OperationRequest, ApiError> {
    let raw: RawRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body: {e}")))?;
    if !valid_request_id(&raw.request_id) {
        return Err(ApiError::invalid(format!(
            "request_id: must be 1 to {MAX_REQUEST_ID} characters of A-Z a-z 0-9 . _ : -"
        )));
    }
    if raw.duration_seconds < 1 || raw.duration_seconds as u64 > max_duration {
        return Err(ApiError::invalid(format!(
            "duration_seconds: {} is outside 1..={max_duration} (Operations.MaxDuration)",
            raw.duration_seconds
        )));
    }
    match (raw.scope, raw.container_id.as_deref()) {
        (Scope::Container, None) => {
            return Err(ApiError::invalid(
                "container_id: required when scope is container",
            ))
        }
        (Scope::Host, Some(_)) => {
            return Err(ApiError::invalid(
                "container_id: only allowed when scope is container",
            ))
        }
        (Scope::Container, Some(id)) if !valid_container_id(id) => {
            return Err(ApiError::invalid(
                "container_id: must be a full container id of 64 hex digits",
            ))
        }
        _ => {}
    }
    let spec = match raw.kind {
        OperationKind::Profiling => Spec::Profiling(
            serde_json::from_value(raw.spec)
                .map_err(|e| ApiError::invalid(format!("spec: {e}")))?,
        ),
        OperationKind::Tracing => Spec::Tracing(
            serde_json::from_value(raw.spec)
                .map_err(|e| ApiError::invalid(format!("spec: {e}")))?,
        ),
    };
    if let Spec::Profiling(p) = &spec {
        let memory_mode = !matches!(p.mode, ProfilingMode::Oncpu | ProfilingMode::Offcpu);
        if memory_mode != (p.kind == ProfilingType::Memory) {
            return Err(ApiError::invalid(format!(
                "spec.mode: {} is not a mode of {} profiling",
                serde_json::to_string(&p.mode).unwrap_or_default(),
                spec.type_name()
            )));
        }
        if p.binary_match_path.as_deref() == Some("") {
            return Err(ApiError::invalid("spec.binary_match_path: empty"));
        }
    }
    Ok(OperationRequest {
        request_id: raw.request_id,
        kind: raw.kind,
        scope: raw.scope,
        container_id: raw.container_id,
        duration_seconds: raw.duration_seconds as u64,
        spec,
    })
}
