//! Shared helpers of the checker tests: the fixture catalog and text-to-diagnostics.

#![allow(dead_code)]

use huatuo_dsl::catalog::{CaptureSchema, Catalog, ConfigKeySchema, SourceSchema};
use huatuo_dsl::check::check;
use huatuo_dsl::diag::{Diagnostic, Severity};
use huatuo_dsl::parser::parse_file;
use serde::Deserialize;

#[derive(Deserialize)]
struct ScriptEntry {
    name: String,
    arity: usize,
}

#[derive(Deserialize)]
struct CatalogFile {
    source: Vec<SourceSchema>,
    capture: Vec<CaptureSchema>,
    config: Vec<ConfigKeySchema>,
    script: Vec<ScriptEntry>,
}

/// The catalog of `tests/fixtures/catalog.toml`.
pub fn catalog() -> Catalog {
    let text = include_str!("../fixtures/catalog.toml");
    let file: CatalogFile = toml::from_str(text).expect("fixture catalog parses");
    let mut catalog = Catalog::new();
    file.source.into_iter().for_each(|s| catalog.add_source(s));
    file.capture
        .into_iter()
        .for_each(|c| catalog.add_capture(c));
    file.config
        .into_iter()
        .for_each(|k| catalog.add_config_key(k));
    for s in file.script {
        catalog.add_script_fn(&s.name, s.arity);
    }
    catalog
}

/// Parses `text` as `rules/test.hto` (which must be syntactically valid) and checks it.
pub fn check_text(text: &str) -> Vec<Diagnostic> {
    check_files(&[("rules/test.hto", text)])
}

/// Parses and checks several files together.
pub fn check_files(files: &[(&str, &str)]) -> Vec<Diagnostic> {
    let parsed: Vec<_> = files
        .iter()
        .map(|(path, text)| match parse_file(path, text) {
            Ok(file) => file,
            Err(diags) => panic!("test rule does not parse: {diags:#?}\n{text}"),
        })
        .collect();
    check(&parsed, &catalog())
}

/// The errors among `diags`.
pub fn errors(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

/// Asserts that checking `text` gives no diagnostic at all.
pub fn assert_clean(text: &str) {
    let diags = check_text(text);
    assert!(diags.is_empty(), "unexpected diagnostics: {diags:#?}");
}

/// Asserts that checking `text` gives exactly one diagnostic, with `code`, at `line:col`, and
/// returns it.
pub fn single(text: &str, code: &str, line: usize, col: usize) -> Diagnostic {
    let diags = check_text(text);
    assert_eq!(diags.len(), 1, "expected one `{code}`, got: {diags:#?}");
    let d = diags.into_iter().next().expect("one diagnostic");
    assert_eq!(d.code, code, "{d:#?}");
    assert_eq!(
        (d.span.line, d.span.col),
        (line, col),
        "wrong place: {d:#?}"
    );
    assert_eq!(d.path, "rules/test.hto");
    d
}

/// The help text of a diagnostic, or an empty string.
pub fn help(d: &Diagnostic) -> &str {
    d.help.as_deref().unwrap_or("")
}
