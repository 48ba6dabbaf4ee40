//! CPU profiling operations: the `profiler` template samples on-CPU stacks (mode `oncpu`),
//! the `offcpu` template sums the microseconds threads spend switched out (mode `offcpu`),
//! for the operation's duration (or until it is stopped), optionally limited to one
//! container's cgroup or to processes of one executable; the record carries folded stacks,
//! HUATUO's `flamedata` and the SVG flame graph.

use super::flamegraph;
use huatuo_bpf::profiler::{flame::CountedStack, ProfileMode, ProfileOptions, Profiler};
use huatuo_containers::Container;
use huatuo_dsl::value::Value;
use huatuo_http::api::error::ApiError;
use huatuo_http::api::operations::{Control, Finished};
use huatuo_http::api::request::{OperationRequest, ProfilingMode, ProfilingSpec};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The profiler mode of a request's `spec.mode` (memory modes never get here).
fn mode_of(spec: &ProfilingSpec) -> ProfileMode {
    match spec.mode {
        ProfilingMode::Offcpu => ProfileMode::OffCpu,
        _ => ProfileMode::OnCpu,
    }
}

/// Whether this agent can run this profile: templates allowed and the mode's embedded.
pub fn admit(bpf: bool, spec: &ProfilingSpec) -> Result<(), ApiError> {
    super::admit_template(bpf, mode_of(spec).template())
}

/// Whether the process of `stack` runs an executable whose path contains `pattern`.
fn runs_binary(stack: &CountedStack, pattern: &str) -> bool {
    std::fs::read_link(format!("/proc/{}/exe", stack.pid))
        .is_ok_and(|exe| exe.to_string_lossy().contains(pattern))
}

/// Profiles for the request's duration or until stopped; fills the record `data`.
pub fn run(
    request: &OperationRequest,
    spec: &ProfilingSpec,
    container: Option<&Container>,
    control: &Control,
    data: &mut BTreeMap<String, Value>,
) -> Result<Finished, String> {
    let cgroup = container.and_then(|c| {
        let ids = c.cgroup_ids;
        ids.v2
            .map(|v2| (v2, true))
            .or(ids.v1_cpu.map(|v1| (v1, false)))
    });
    if container.is_some() && cgroup.is_none() {
        return Err("the container's cgroup id is unknown: cannot limit sampling to it".into());
    }
    let mode = mode_of(spec);
    let options = ProfileOptions {
        mode,
        duration: Duration::from_secs(request.duration_seconds),
        cgroup_id: cgroup.map_or(0, |c| c.0),
        cgroup_v2: cgroup.is_some_and(|c| c.1),
        ..ProfileOptions::default()
    };
    let profiler = Profiler::start(&options)?;
    control.started();
    let stopped = control.wait(options.duration);
    let mut profile = profiler.stop()?;
    if let Some(pattern) = &spec.binary_match_path {
        profile.stacks.retain(|s| runs_binary(s, pattern));
        profile.samples = profile.stacks.iter().map(|s| s.count).sum();
    }
    let folded = profile.folded();
    let kind = match mode {
        ProfileMode::OnCpu => "CPU",
        ProfileMode::OffCpu => "Off-CPU",
    };
    let title = format!(
        "{kind} profile {} ({} {})",
        request.request_id,
        profile.samples,
        mode.unit()
    );
    let svg = flamegraph::svg(&folded, &title, mode.unit())?;
    data.insert("samples".into(), Value::Int(profile.samples as i64));
    data.insert("lost_samples".into(), Value::Int(profile.lost as i64));
    if mode == ProfileMode::OnCpu {
        data.insert(
            "frequency_hz".into(),
            Value::Int(options.frequency_hz as i64),
        );
    }
    data.insert("unit".into(), Value::Str(mode.unit().into()));
    data.insert("stopped_early".into(), Value::Bool(stopped));
    data.insert("flamedata".into(), Value::Json(json!(profile.flamedata())));
    data.insert(
        "folded_stacks".into(),
        Value::List(folded.iter().cloned().map(Value::Str).collect()),
    );
    data.insert("flamegraph_svg".into(), Value::Str(svg.clone()));
    Ok(Finished {
        summary: json!({
            "samples": profile.samples,
            "lost_samples": profile.lost,
            "stacks": profile.stacks.len(),
            "stopped_early": stopped,
            "flamegraph": format!("/v1/operations/{}/flamegraph.svg", request.request_id),
        }),
        svg: Some(svg),
    })
}
