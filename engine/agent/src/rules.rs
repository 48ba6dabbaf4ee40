//! Finding, reading and parsing rule files, from disk or from the copy built into the binary.

use huatuo_dsl::ast::{RuleFile, Span};
use huatuo_dsl::diag::Diagnostic;
use huatuo_dsl::parser::parse_file;
use include_dir::{include_dir, Dir};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest rule or script file read: parsing stays bounded in memory and time.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

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
    let shown = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(vec![Diagnostic::error(
            "io",
            &shown,
            Span::default(),
            format!("file is larger than {} MiB", MAX_FILE_BYTES >> 20),
        )
        .with_label("too large")]);
    }
    let text = utf8_text(&shown, bytes)?;
    out.push(SourceText { path: shown, text });
    Ok(())
}

/// The text of a file's bytes, or an error at the line and column of the first byte that is
/// not UTF-8.
fn utf8_text(path: &str, bytes: Vec<u8>) -> Result<String, Vec<Diagnostic>> {
    String::from_utf8(bytes).map_err(|err| {
        let bad = err.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&err.as_bytes()[..bad]).unwrap_or_default();
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        let span = Span {
            start: bad,
            end: bad + 1,
            line: valid.matches('\n').count() + 1,
            col: valid[line_start..].chars().count() + 1,
        };
        vec![Diagnostic::error(
            "encoding",
            path,
            span,
            format!(
                "not UTF-8: byte 0x{:02x}",
                err.as_bytes().get(bad).copied().unwrap_or_default()
            ),
        )
        .with_label("first byte that is not UTF-8")
        .with_help("rule and script files are UTF-8 text")]
    })
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
