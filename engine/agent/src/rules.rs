//! Finding, reading and parsing rule files, from disk or from the copy built into the binary.

use huatuo_dsl::ast::{RuleFile, Span};
use huatuo_dsl::diag::Diagnostic;
use huatuo_dsl::parser::parse_file;
use include_dir::{include_dir, Dir};
use std::path::{Path, PathBuf};

/// The shipped `rules/` tree, built into the binary.
static EMBEDDED_RULES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../rules");
/// The shipped `stdlib/` scripts, built into the binary.
static EMBEDDED_STDLIB: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../stdlib");

/// The text of one rule or script file and the path diagnostics name it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    /// Path as shown to the operator (`rules/events/oom.hto`, `<embedded>/...`).
    pub path: String,
    /// The file's content.
    pub text: String,
}

/// Reads every `.hto` file under `paths` (files or directories, recursively, sorted).
pub fn read_rule_files(paths: &[PathBuf]) -> Result<Vec<SourceText>, Vec<Diagnostic>> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, "hto", &mut files)?;
    }
    Ok(files)
}

/// Reads every `.rhai` file directly under `dir`, sorted.
pub fn read_script_files(dir: &Path) -> Result<Vec<SourceText>, Vec<Diagnostic>> {
    let mut files = Vec::new();
    collect(dir, "rhai", &mut files)?;
    Ok(files)
}

fn collect(path: &Path, extension: &str, out: &mut Vec<SourceText>) -> Result<(), Vec<Diagnostic>> {
    let io_error = |e: std::io::Error| {
        Diagnostic::error(
            "io",
            &path.display().to_string(),
            Span::default(),
            e.to_string(),
        )
        .with_label("cannot read")
    };
    let io_error = |e: std::io::Error| vec![io_error(e)];
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io_error)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.extension().is_some_and(|e| e == extension) {
                collect(&entry, extension, out)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(io_error)?;
    out.push(SourceText {
        path: path.display().to_string(),
        text,
    });
    Ok(())
}

/// The rule files built into the binary, sorted by path.
pub fn embedded_rule_files() -> Vec<SourceText> {
    embedded(&EMBEDDED_RULES, "rules", "hto")
}

/// The stdlib scripts built into the binary, sorted by path.
pub fn embedded_script_files() -> Vec<SourceText> {
    embedded(&EMBEDDED_STDLIB, "stdlib", "rhai")
}

fn embedded(dir: &Dir<'_>, prefix: &str, extension: &str) -> Vec<SourceText> {
    let mut out = Vec::new();
    walk(dir, prefix, extension, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn walk(dir: &Dir<'_>, prefix: &str, extension: &str, out: &mut Vec<SourceText>) {
    for file in dir.files() {
        if file.path().extension().is_some_and(|e| e == extension) {
            if let Some(text) = file.contents_utf8() {
                out.push(SourceText {
                    path: format!("<embedded>/{prefix}/{}", file.path().display()),
                    text: text.to_string(),
                });
            }
        }
    }
    for sub in dir.dirs() {
        walk(sub, prefix, extension, out);
    }
}

/// Parses every file, returning the trees that parsed and every diagnostic.
pub fn parse_all(files: &[SourceText]) -> (Vec<RuleFile>, Vec<Diagnostic>) {
    let mut parsed = Vec::new();
    let mut diags = Vec::new();
    for file in files {
        match parse_file(&file.path, &file.text) {
            Ok(tree) => parsed.push(tree),
            Err(mut errors) => diags.append(&mut errors),
        }
    }
    (parsed, diags)
}
