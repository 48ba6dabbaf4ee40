//! `huatuo replay`: the daemon's evaluator over recorded samples, deterministic.

use super::inputs::{compile_inputs, InputArgs, Inputs};
use clap::Args;
use huatuo_dsl::diag::Diagnostic;
use huatuo_dsl::value::Sample;
use huatuo_eval::{Evaluator, Output, RecordingCaptureRunner};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `huatuo replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Recorded samples, one JSON object per line (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Also print metric points.
    #[arg(long)]
    metrics: bool,
    /// A source to treat as unavailable on the recorded node (repeatable): of every
    /// `fallback for` pair whose preferred rule reads it, the fallback runs. Every source is
    /// available otherwise.
    #[arg(long, value_name = "SOURCE")]
    unavailable: Vec<String>,
}

/// Outputs of a replay and the rules disabled on the way (`(rule, reason)`).
pub type Replayed = (Vec<Output>, Vec<(String, String)>);

/// The outputs of replaying `samples` through the checked and compiled rules of `inputs`
/// with the sources in `unavailable` treated as unavailable (which settles the `fallback for`
/// pairs), and the rules disabled on the way; diagnostics when the rules do not check or
/// compile.
pub fn replay_samples(
    inputs: Inputs,
    samples: impl IntoIterator<Item = Sample>,
    unavailable: &[String],
) -> Result<Replayed, Vec<Diagnostic>> {
    let mut compiled = compile_inputs(inputs)?;
    select_fallbacks(&mut compiled.plan, unavailable);
    Ok(evaluate(compiled.plan, samples))
}

/// Settles the `fallback for` pairs as the daemon does, with every source available except
/// those named; returns the rules left out.
pub fn select_fallbacks(
    plan: &mut huatuo_eval::Plan,
    unavailable: &[String],
) -> Vec<huatuo_eval::Inactive> {
    plan.select_fallbacks(&|source| !unavailable.iter().any(|u| u == source))
}

/// Runs samples through a compiled plan with a capture runner that only records requests.
fn evaluate(plan: huatuo_eval::Plan, samples: impl IntoIterator<Item = Sample>) -> Replayed {
    let mut evaluator = Evaluator::new(plan);
    let mut captures = RecordingCaptureRunner::default();
    let mut outputs = Vec::new();
    for sample in samples {
        outputs.extend(evaluator.push(&sample, &mut captures));
    }
    (outputs, evaluator.disabled_rules())
}

/// Reads samples from JSON lines; the error names the line and column.
pub fn read_samples(path: &str, reader: impl BufRead) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|e| format!("{path}:{line_no}: {e}"))?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let sample: Sample = serde_json::from_str(trimmed)
            .map_err(|e| format!("{path}:{line_no}:{}: {e}", e.column()))?;
        samples.push(sample);
    }
    Ok(samples)
}

/// One output as a JSON line: records as they are stored in `tracer_data` terms, metric
/// points with their family.
pub fn output_json(output: &Output) -> serde_json::Result<String> {
    match output {
        Output::Record(record) => serde_json::to_string(record),
        Output::Metric(point) => serde_json::to_string(point),
    }
}

/// Runs the subcommand: prints records (and metric points) as JSON lines.
pub fn run(args: ReplayArgs) -> ExitCode {
    let compiled = match args.inputs.compile() {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let shown = args.input.display().to_string();
    let samples = if args.input.as_os_str() == "-" {
        read_samples(&shown, std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.input) {
            Ok(file) => read_samples(&shown, std::io::BufReader::new(file)),
            Err(e) => Err(format!("{shown}: {e}")),
        }
    };
    let samples = match samples {
        Ok(samples) => samples,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    for rule in &compiled.blacklisted {
        eprintln!(
            "note: rule `{}` not run: {}",
            rule.name,
            crate::daemon::blacklist::REASON
        );
    }
    let mut plan = compiled.plan;
    for rule in select_fallbacks(&mut plan, &args.unavailable) {
        let hint = if rule.is_fallback {
            format!(" (pass --unavailable {} to run it)", rule.active_source)
        } else {
            String::new()
        };
        eprintln!("note: rule `{}` not run: {}{hint}", rule.name, rule.reason);
    }
    let (outputs, disabled) = evaluate(plan, samples);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for output in outputs {
        if matches!(output, Output::Metric(_)) && !args.metrics {
            continue;
        }
        match output_json(&output) {
            Ok(text) => {
                if writeln!(out, "{text}").is_err() {
                    return ExitCode::from(1);
                }
            }
            Err(e) => eprintln!("error: encoding output: {e}"),
        }
    }
    for (rule, reason) in disabled {
        eprintln!("warning: rule `{rule}` was disabled: {reason}");
    }
    ExitCode::SUCCESS
}
