//! `huatuo check`: validate rule files and the config together.

use super::inputs::{InputArgs, Inputs};
use crate::catalog::build_catalog;
use crate::rules::parse_all;
use clap::{Args, ValueEnum};
use huatuo_dsl::diag::{Diagnostic, Severity};
use huatuo_dsl::render::{render_human, render_json};
use std::path::PathBuf;
use std::process::ExitCode;

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: location, source line, caret, hint.
    Human,
    /// For tools: one JSON array.
    Json,
}

/// Flags of `huatuo check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Rule files or directories to check (the built-in rules when absent).
    paths: Vec<PathBuf>,
}

/// Every diagnostic for the given inputs: config, parse, check and compile problems.
pub fn diagnose(inputs: &Inputs) -> (usize, Vec<Diagnostic>) {
    let catalog = build_catalog(&inputs.script_host);
    let (files, mut diags) = parse_all(&inputs.rule_files);
    diags.extend(huatuo_dsl::check::check(&files, &catalog));
    if !diags.iter().any(|d| d.severity == Severity::Error) {
        let scripts = Some(inputs.script_host.clone());
        if let Err(errors) = huatuo_eval::compile_with_scripts(&files, &inputs.config, scripts) {
            diags.extend(errors);
        }
    }
    let rules = files.iter().map(|f| f.rules.len()).sum();
    (rules, diags)
}

/// Runs the subcommand; exit 0 when clean, 1 on errors (clap exits 2 on usage errors).
pub fn run(args: CheckArgs) -> ExitCode {
    let (inputs, loaded_texts, rules, diags) = match args.inputs.load(&args.paths) {
        Ok(inputs) => {
            let (rules, diags) = diagnose(&inputs);
            (Some(inputs), Vec::new(), rules, diags)
        }
        Err((diags, texts)) => (None, texts, 0, diags),
    };
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    match args.format {
        Format::Json => println!("{}", render_json(&diags)),
        Format::Human => {
            // Only texts already read (within their size caps) are shown, never a file read
            // again here.
            let text_of = |path: &str| {
                inputs.as_ref().and_then(|i| i.text_of(path)).or_else(|| {
                    loaded_texts
                        .iter()
                        .find(|t| t.path == path)
                        .map(|t| t.text.clone())
                })
            };
            if !diags.is_empty() {
                eprint!("{}", render_human(&diags, &text_of));
            }
            let files = inputs.as_ref().map_or(0, |i| i.rule_files.len());
            eprintln!(
                "checked {rules} rules in {files} files: {errors} errors, {warnings} warnings"
            );
        }
    }
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
