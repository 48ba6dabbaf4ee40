//! Diagnostics: every problem the parser or checker finds, pointing at `file:line:col`.

use crate::ast::Span;
use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The rule set cannot run.
    Error,
    /// The rule set runs, but something is likely wrong.
    Warning,
}

/// One problem in a rule file or config file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable kebab-case code (`unknown-field`, `unit-mismatch`, `syntax`).
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The file the problem is in.
    pub path: String,
    /// Where in the file.
    pub span: Span,
    /// Text shown under the caret.
    pub label: String,
    /// How to fix it (did-you-mean, expected type).
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span` of `path`.
    pub fn error(code: &'static str, path: &str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            path: path.to_string(),
            span,
            label: String::new(),
            help: None,
        }
    }

    /// A warning at `span` of `path`.
    pub fn warning(code: &'static str, path: &str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, path, span, message)
        }
    }

    /// Sets the text under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Sets the hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `path:line:col`, the place an editor jumps to.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.path, self.span.line, self.span.col)
    }
}

/// The known name closest to `name`, for did-you-mean hints, if any is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
