//! Renders diagnostics for people (miette snippets with a caret under the span) and for
//! tools (one JSON array).

use crate::diag::{Diagnostic, Severity};
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode, SourceSpan,
};
use serde::Serialize;
use std::fmt;

/// Width the human rendering wraps at: wide enough that a headline stays on one line, and
/// fixed so that output does not depend on the terminal.
const WIDTH: usize = 400;

/// Renders `diags` for a terminal, without colour; `text_of` returns a file's text by path
/// (when it returns `None`, the diagnostic is shown without a source snippet).
pub fn render_human(diags: &[Diagnostic], text_of: &dyn Fn(&str) -> Option<String>) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::none())
        .with_width(WIDTH)
        .with_links(false)
        .without_primary_span_start();
    let mut out = String::new();
    for diag in diags {
        let source = text_of(&diag.path)
            .filter(|text| span_fits(diag, text))
            .map(|text| NamedSource::new(diag.location(), text));
        let report = Report { diag, source };
        let mut rendered = String::new();
        if handler.render_report(&mut rendered, &report).is_err() {
            rendered = format!("{}\n", report.headline());
        }
        if report.source.is_none() {
            // Without a snippet miette prints no location: add it under the headline.
            rendered = match rendered.split_once('\n') {
                Some((first, rest)) => format!("{first}\n  --> {}\n{rest}", diag.location()),
                None => format!("{rendered}\n  --> {}\n", diag.location()),
            };
        }
        out.push_str(rendered.trim_start_matches('\n'));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Whether the span of `diag` lies inside `text` on character boundaries.
fn span_fits(diag: &Diagnostic, text: &str) -> bool {
    let s = diag.span;
    s.start <= s.end
        && s.end <= text.len()
        && text.is_char_boundary(s.start)
        && text.is_char_boundary(s.end)
}

/// One diagnostic as miette sees it.
struct Report<'a> {
    diag: &'a Diagnostic,
    /// The file, named `path:line:col` so that the snippet header shows the location.
    source: Option<NamedSource<String>>,
}

impl<'a> Report<'a> {
    /// `error[code]: message`.
    fn headline(&self) -> String {
        let severity = match self.diag.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        format!("{severity}[{}]: {}", self.diag.code, self.diag.message)
    }
}

impl Report<'_> {
    /// The byte range to underline: the span, or the last character when the span is empty
    /// at the very end of the file (miette cannot show a caret past the last character).
    fn visible_range(&self) -> std::ops::Range<usize> {
        let s = self.diag.span;
        let text = self.source.as_ref().map_or("", |src| src.inner().as_str());
        if s.start == s.end && s.start == text.len() {
            if let Some(last) = text.chars().next_back() {
                return s.start - last.len_utf8()..s.start;
            }
        }
        s.start..s.end
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let span = SourceSpan::from(self.visible_range());
        let label = (!self.diag.label.is_empty()).then(|| self.diag.label.clone());
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(label, span),
        )))
    }
}

/// One diagnostic in the JSON rendering.
#[derive(Serialize)]
struct JsonDiag<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
    path: &'a str,
    line: usize,
    col: usize,
    label: &'a str,
    help: Option<&'a str>,
}

/// Renders `diags` as one JSON array of objects with the fields severity, code, message,
/// path, line, col, label and help.
pub fn render_json(diags: &[Diagnostic]) -> String {
    let items: Vec<JsonDiag<'_>> = diags
        .iter()
        .map(|d| JsonDiag {
            severity: d.severity,
            code: d.code,
            message: &d.message,
            path: &d.path,
            line: d.span.line,
            col: d.span.col,
            label: &d.label,
            help: d.help.as_deref(),
        })
        .collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_string())
}
