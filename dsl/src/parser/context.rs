//! What every step of tree building shares: the file, a line index for spans, and the
//! diagnostics found so far (bounded; the overflow is counted).

use super::Rule;
use crate::ast::Span;
use crate::diag::Diagnostic;
use pest::iterators::Pair;
use std::cell::{Cell, RefCell};

/// Most diagnostics kept for one file; further ones are only counted.
const MAX_DIAGS: usize = 100;
/// Distance in bytes between two counts of `Ctx::continuations`.
const CHECKPOINT: usize = 256;

/// Whether a byte continues a multi-byte UTF-8 character.
fn is_continuation(byte: &u8) -> bool {
    byte & 0xc0 == 0x80
}

/// Shared state of one parse.
pub(super) struct Ctx<'a> {
    /// Path of the file, for diagnostics.
    pub path: &'a str,
    /// The whole file.
    pub text: &'a str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    /// UTF-8 continuation bytes before each multiple of `CHECKPOINT` bytes, so that a column
    /// costs at most `CHECKPOINT` byte reads however long its line is.
    continuations: Vec<usize>,
    /// Diagnostics found so far.
    diags: RefCell<Vec<Diagnostic>>,
    /// Diagnostics dropped because `MAX_DIAGS` was reached.
    dropped: Cell<usize>,
}

impl<'a> Ctx<'a> {
    /// A context for `text` read from `path`.
    pub fn new(path: &'a str, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut continuations = vec![0];
        for block in text.as_bytes().chunks(CHECKPOINT) {
            let before = continuations.last().copied().unwrap_or(0);
            continuations.push(before + block.iter().filter(|b| is_continuation(b)).count());
        }
        Ctx {
            path,
            text,
            line_starts,
            continuations,
            diags: RefCell::new(Vec::new()),
            dropped: Cell::new(0),
        }
    }

    /// The span of bytes `start..end`, with the line and column of `start`.
    pub fn span_at(&self, start: usize, end: usize) -> Span {
        let start = start.min(self.text.len());
        let end = end.clamp(start, self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= start);
        let line_start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let col = start
            - line_start
            - (self.continuations_before(start) - self.continuations_before(line_start))
            + 1;
        Span {
            start,
            end,
            line: line.max(1),
            col,
        }
    }

    /// UTF-8 continuation bytes in the text before byte `at`.
    fn continuations_before(&self, at: usize) -> usize {
        let block = at / CHECKPOINT;
        let counted = self.continuations.get(block).copied().unwrap_or(0);
        let rest = self
            .text
            .as_bytes()
            .get(block * CHECKPOINT..at)
            .map_or(0, |bytes| {
                bytes.iter().filter(|b| is_continuation(b)).count()
            });
        counted + rest
    }

    /// The span of a pest span.
    pub fn span(&self, span: pest::Span<'_>) -> Span {
        self.span_at(span.start(), span.end())
    }

    /// The span of a pair, without the whitespace and comments the grammar skipped after its
    /// last token.
    pub fn pair_span(&self, pair: &Pair<'_, Rule>) -> Span {
        let own = pair.as_span();
        let end = if own.as_str().ends_with(char::is_whitespace) {
            pair.clone()
                .into_inner()
                .flatten()
                .map(|p| p.as_span())
                .filter(|s| !s.as_str().ends_with(char::is_whitespace))
                .map(|s| s.end())
                .max()
                .unwrap_or(own.end())
        } else {
            own.end()
        };
        self.span_at(own.start(), end)
    }

    /// An error of this file.
    pub fn error(&self, code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, self.path, span, message)
    }

    /// Records a diagnostic.
    pub fn report(&self, diag: Diagnostic) {
        let mut diags = self.diags.borrow_mut();
        if diags.len() < MAX_DIAGS {
            diags.push(diag);
        } else {
            self.dropped.set(self.dropped.get() + 1);
        }
    }

    /// The diagnostics found, with a note on how many were dropped.
    pub fn into_diags(self) -> Vec<Diagnostic> {
        let dropped = self.dropped.get();
        let span = self.span_at(self.text.len(), self.text.len());
        let mut diags = self.diags.into_inner();
        if dropped > 0 {
            diags.push(
                Diagnostic::error(
                    "too-many-errors",
                    self.path,
                    span,
                    format!("{dropped} more errors not shown"),
                )
                .with_help("fix the errors above and run again"),
            );
        }
        diags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_lines_and_characters() {
        let ctx = Ctx::new("f.hto", "ab\nµx y\n");
        assert_eq!(ctx.span_at(0, 1).line, 1);
        let s = ctx.span_at(7, 8); // `y`: µ is two bytes
        assert_eq!((s.line, s.col), (2, 4));
        let eof = ctx.span_at(99, 99);
        assert_eq!((eof.start, eof.line, eof.col), (9, 3, 1));
    }

    #[test]
    fn diagnostics_are_bounded_and_counted() {
        let ctx = Ctx::new("f.hto", "x");
        for _ in 0..MAX_DIAGS + 5 {
            ctx.report(ctx.error("syntax", ctx.span_at(0, 1), "bad"));
        }
        let diags = ctx.into_diags();
        assert_eq!(diags.len(), MAX_DIAGS + 1);
        assert_eq!(diags[MAX_DIAGS].message, "5 more errors not shown");
    }
}
