//! The state of checking one file: the catalog, the file's path and the diagnostics so far.

use crate::ast::Span;
use crate::catalog::Catalog;
use crate::diag::{did_you_mean, Diagnostic};

/// What every check of one file needs.
pub struct Ctx<'a> {
    /// The registered sources, captures, config keys and scripts.
    pub catalog: &'a Catalog,
    /// The file being checked.
    pub path: &'a str,
    /// Problems found so far.
    pub diags: Vec<Diagnostic>,
    /// How deep the expression being checked is nested.
    pub depth: usize,
}

/// Deepest expression nesting the checker follows; deeper input is reported, not recursed.
pub const MAX_DEPTH: usize = 128;

impl<'a> Ctx<'a> {
    /// A context for the file at `path`.
    pub fn new(catalog: &'a Catalog, path: &'a str) -> Self {
        Ctx {
            catalog,
            path,
            diags: Vec::new(),
            depth: 0,
        }
    }

    /// An error at `span` of this file.
    pub fn error(&self, code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, self.path, span, message)
    }

    /// Records a problem.
    pub fn push(&mut self, diag: Diagnostic) {
        self.diags.push(diag);
    }
}

/// "did you mean `x`?" for the candidate closest to `name`, if any is close.
pub fn suggest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<String> {
    did_you_mean(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Adds a did-you-mean help to `diag` when one applies, else `fallback` when given.
pub fn with_suggestion<'c>(
    diag: Diagnostic,
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
    fallback: Option<String>,
) -> Diagnostic {
    match (suggest(name, candidates), fallback) {
        (Some(hint), Some(more)) => diag.with_help(format!("{hint} ({more})")),
        (Some(hint), None) => diag.with_help(hint),
        (None, Some(more)) => diag.with_help(more),
        (None, None) => diag,
    }
}
