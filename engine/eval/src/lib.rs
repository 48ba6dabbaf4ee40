//! The rule evaluator: compiles checked rules into a [`Plan`] and runs samples through it.
//!
//! Semantics in brief (the language reference is `dsl/src/ast.rs`):
//! - `Null` is "undefined": a missing field, `delta` without history, `x / 0`. It propagates
//!   through arithmetic; a trigger that is undefined does not fire; a record whose stateful
//!   functions are still warming up (first sample of `delta`/`rate`) is not produced.
//! - `and`/`or` evaluate both sides, so that every stateful call sees every sample.
//! - `ema(x, n)` is the load-average form `ema·(n−1)/n + x/n`, seeded by the first x.
//! - Stateful state is kept per (rule, call site, entity), bounded per rule.
//! - A runtime error (type error, script failure) disables only its rule.

// `Diagnostic` (huatuo-dsl) is the shared error type of the rule language and is returned
// as is on the cold compile path; boxing it here would only differ from every other user.
#![allow(clippy::result_large_err)]

pub mod bounded;
pub mod capture;
pub mod carry;
pub mod compile;
pub mod cooldown;
pub mod evaluator;
pub mod expr;
pub mod filter;
pub mod funcs;
pub mod issues;
pub mod limit;
pub mod metrics;
pub mod ops;
pub mod patterns;
pub mod plan;
pub mod rdns;
pub mod script;
pub mod thread_cpu;

pub use capture::{CaptureRequest, CaptureRunner, RecordingCaptureRunner};
pub use evaluator::{EvalStats, Evaluator, Output, RuleStats};
pub use plan::{compile, compile_with_scripts, Inactive, Plan, SourceNeed};
pub use script::script_functions;
pub use script::ScriptHost;

use huatuo_dsl::ast::RuleFile;
use huatuo_dsl::diag::Diagnostic;
use huatuo_dsl::source::ConfigValues;
use huatuo_dsl::value::Sample;
use std::path::Path;

/// Runs rules offline over recorded samples with a [`RecordingCaptureRunner`], every source
/// available (of each `fallback for` pair the preferred rule runs). Returns the outputs and
/// the final counters.
pub fn replay(
    files: &[RuleFile],
    config: &dyn ConfigValues,
    stdlib_dir: Option<&Path>,
    samples: impl IntoIterator<Item = Sample>,
) -> Result<(Vec<Output>, EvalStats), Vec<Diagnostic>> {
    let mut plan = compile(files, config, stdlib_dir)?;
    plan.select_fallbacks(&|_| true);
    let mut evaluator = Evaluator::new(plan);
    let mut runner = RecordingCaptureRunner::default();
    let mut outputs = Vec::new();
    for sample in samples {
        outputs.extend(evaluator.push(&sample, &mut runner));
    }
    Ok((outputs, evaluator.stats()))
}
