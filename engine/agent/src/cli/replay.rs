//! `huatuo replay`: the daemon's evaluator over recorded samples, deterministic.

use super::check::diagnose;
use super::inputs::InputArgs;
use clap::Args;
use huatuo_dsl::diag::Severity;
use huatuo_dsl::render::render_human;
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
}

/// Runs the subcommand: prints records (and metric points) as JSON lines.
pub fn run(args: ReplayArgs) -> ExitCode {
    let inputs = match args.inputs.load(&[]) {
        Ok(inputs) => inputs,
        Err((diags, texts)) => {
            let text_of = |p: &str| texts.iter().find(|t| t.path == p).map(|t| t.text.clone());
            eprint!("{}", render_human(&diags, &text_of));
            return ExitCode::from(1);
        }
    };
    let (_, diags) = diagnose(&inputs);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        eprint!("{}", render_human(&diags, &|p| inputs.text_of(p)));
        return ExitCode::from(1);
    }
    let (files, _) = crate::rules::parse_all(&inputs.rule_files);
    let plan = match huatuo_eval::compile(&files, &inputs.config, Some(&inputs.stdlib_dir)) {
        Ok(plan) => plan,
        Err(diags) => {
            eprint!("{}", render_human(&diags, &|p| inputs.text_of(p)));
            return ExitCode::from(1);
        }
    };
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.input) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(e) => {
                eprintln!("error: {}: {e}", args.input.display());
                return ExitCode::from(1);
            }
        }
    };
    let mut evaluator = Evaluator::new(plan);
    let mut captures = RecordingCaptureRunner::default();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("error: {}:{line_no}: {e}", args.input.display());
                return ExitCode::from(1);
            }
        };
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let sample: Sample = match serde_json::from_str(&line) {
            Ok(sample) => sample,
            Err(e) => {
                eprintln!(
                    "error: {}:{line_no}:{}: {e}",
                    args.input.display(),
                    e.column()
                );
                return ExitCode::from(1);
            }
        };
        for output in evaluator.push(&sample, &mut captures) {
            let json = match output {
                Output::Record(record) => serde_json::to_string(&record),
                Output::Metric(point) if args.metrics => serde_json::to_string(&point),
                Output::Metric(_) => continue,
            };
            match json {
                Ok(text) => {
                    if writeln!(out, "{text}").is_err() {
                        return ExitCode::from(1);
                    }
                }
                Err(e) => eprintln!("error: encoding output: {e}"),
            }
        }
    }
    for (rule, reason) in evaluator.disabled_rules() {
        eprintln!("warning: rule `{rule}` was disabled: {reason}");
    }
    ExitCode::SUCCESS
}
