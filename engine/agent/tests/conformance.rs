//! The conformance suite: every case under `conformance/` runs through the same check,
//! compile and evaluation path as `huatuo replay` and the daemon.
//!
//! A case is a folder with `rules/` (or `*.hto` files), optionally `huatuo-bamai.conf`, and
//! either `input.jsonl` + `expected.jsonl` (the outputs, one JSON value per line, compared as
//! JSON) or `expected-diagnostics.json` (a list of `{code, line, col}` that must all be
//! reported, and no other errors). An `unavailable` file lists sources (one a line) treated as
//! unavailable on the recorded node, which settles `fallback for` pairs as the daemon would;
//! every source is available otherwise. `HUATUO_BLESS=1` rewrites `expected.jsonl` from the
//! actual outputs; review such a diff line by line before committing it.

use huatuo::cli::check::diagnose;
use huatuo::cli::inputs::InputArgs;
use huatuo::cli::replay::{output_json, read_samples, replay_samples};
use huatuo_dsl::diag::Severity;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(repo().join("conformance"))
        .expect("conformance/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn inputs_for(case: &Path) -> InputArgs {
    let config = case.join("huatuo-bamai.conf");
    let rules = if case.join("rules").is_dir() {
        case.join("rules")
    } else {
        case.to_path_buf()
    };
    InputArgs {
        config: config.exists().then_some(config),
        config_dir: None,
        rules: vec![rules],
        stdlib: Some(repo().join("stdlib")),
    }
}

fn run_case(case: &Path) -> Result<(), String> {
    let args = inputs_for(case);
    let inputs = args.load(&[]).map_err(|(d, _)| format!("inputs: {d:?}"))?;
    let expected_diags = case.join("expected-diagnostics.json");
    if expected_diags.exists() {
        let text = std::fs::read_to_string(&expected_diags).map_err(|e| e.to_string())?;
        let expected: Vec<Json> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let (_, diags) = diagnose(&inputs);
        let found: Vec<(String, usize, usize)> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| (d.code.to_string(), d.span.line, d.span.col))
            .collect();
        let wanted: Vec<(String, usize, usize)> = expected
            .iter()
            .map(|e| {
                (
                    e["code"].as_str().unwrap_or_default().to_string(),
                    e["line"].as_u64().unwrap_or_default() as usize,
                    e["col"].as_u64().unwrap_or_default() as usize,
                )
            })
            .collect();
        let mut sorted_found = found.clone();
        sorted_found.sort();
        let mut sorted_wanted = wanted.clone();
        sorted_wanted.sort();
        if sorted_found != sorted_wanted {
            return Err(format!("diagnostics differ\n  wanted {sorted_wanted:?}\n  found  {sorted_found:?}\n  full: {diags:#?}"));
        }
        return Ok(());
    }
    let input = case.join("input.jsonl");
    let file = std::fs::File::open(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let samples = read_samples(&input.display().to_string(), std::io::BufReader::new(file))?;
    let unavailable: Vec<String> = std::fs::read_to_string(case.join("unavailable"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let (outputs, disabled) =
        replay_samples(inputs, samples, &unavailable).map_err(|d| format!("rules: {d:#?}"))?;
    if !disabled.is_empty() && !case.join("expect-disabled").exists() {
        return Err(format!("rules disabled at run time: {disabled:?}"));
    }
    let actual: Vec<String> = outputs
        .iter()
        .map(|o| output_json(o).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let expected_path = case.join("expected.jsonl");
    if std::env::var("HUATUO_BLESS").as_deref() == Ok("1") {
        let mut text = actual.join("\n");
        text.push('\n');
        std::fs::write(&expected_path, text).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected_text = std::fs::read_to_string(&expected_path)
        .map_err(|e| format!("{}: {e}", expected_path.display()))?;
    let expected: Vec<Json> = expected_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("expected.jsonl: {e}")))
        .collect::<Result<_, _>>()?;
    let actual: Vec<Json> = actual
        .iter()
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if expected != actual {
        let mut report = format!(
            "{} outputs expected, {} produced\n",
            expected.len(),
            actual.len()
        );
        for i in 0..expected.len().max(actual.len()) {
            let (e, a) = (expected.get(i), actual.get(i));
            if e != a {
                report.push_str(&format!(
                    "  first difference at output {}:\n    expected {}\n    actual   {}\n",
                    i + 1,
                    e.map_or("(none)".into(), |v| v.to_string()),
                    a.map_or("(none)".into(), |v| v.to_string())
                ));
                break;
            }
        }
        return Err(report);
    }
    Ok(())
}

#[test]
fn every_conformance_case_passes() {
    let cases = cases();
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = run_case(case) {
            failures.push(format!("{}: {e}", case.display()));
        }
    }
    println!(
        "{} conformance cases, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
