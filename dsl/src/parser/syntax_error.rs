//! Syntax errors in words: pest's expected-rule sets become "expected an expression", and the
//! offending token is underlined. Also the bracket-depth guard run before parsing.

use super::context::Ctx;
use super::Rule;
use crate::diag::Diagnostic;
use pest::error::{Error, ErrorVariant, InputLocation};

/// What a syntax error says when a clause keyword or the closing brace was possible.
const CLAUSE_OR_BRACE: &str = "`}` or a clause keyword (source, where, when, emit, ...)";

/// Every reserved word, for the "cannot be used as a name" hint.
pub const KEYWORDS: &[&str] = &[
    "metric",
    "event",
    "autotrace",
    "source",
    "every",
    "help",
    "param",
    "let",
    "script",
    "where",
    "when",
    "labels",
    "label",
    "scope",
    "histogram",
    "zones",
    "emit",
    "include",
    "exclude",
    "counter",
    "gauge",
    "capture",
    "as",
    "cooldown",
    "none",
    "backoff",
    "per",
    "limit",
    "burst",
    "issues",
    "fallback",
    "and",
    "or",
    "not",
    "true",
    "false",
];

/// How an expected rule is described to an operator; `None` for rules not worth naming.
fn describe(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        kw_source | kw_help | kw_param | kw_let | kw_script | kw_where | kw_when | kw_labels
        | kw_scope | kw_histogram | kw_emit | kw_capture | kw_cooldown | kw_limit | kw_issues
        | kw_fallback | source_clause | help_clause | param_clause | let_clause | script_clause
        | where_clause | when_clause | labels_clause | scope_clause | histogram_clause
        | emit_clause | capture_clause | cooldown_clause | limit_clause | issues_clause
        | fallback_clause | rbrace => CLAUSE_OR_BRACE,
        hto_file | rule_block | rule_kind | kw_metric | kw_event | kw_autotrace => {
            "a rule (`metric`, `event` or `autotrace`)"
        }
        EOI => "end of file",
        expr | op_not | op_neg | number | digits | boolean | list | call | func_name | name
        | paren => "an expression",
        op_or | op_and | op_eq | op_ne | op_le | op_ge | op_lt | op_gt | op_match | op_notmatch
        | op_add | op_sub | op_mul | op_div | op_rem => "an operator",
        ident | word | arg_name => "a name",
        source_name => "a source name such as `proc.stat`",
        script_fn => "a script function such as `ema::decay`",
        string | str_body => "a string",
        emit_all | star | emit_named | emit_include | emit_exclude => {
            "an emit item (`*` or a name)"
        }
        capture_item => "a capture such as `stack(kernel)`",
        backoff | kw_backoff => "`backoff(...)`",
        metric_type | kw_counter | kw_gauge => "`counter` or `gauge`",
        args | arg => "an argument",
        kw_every => "`every`",
        kw_label => "`label`",
        kw_zones => "`zones`",
        kw_include => "`include`",
        kw_exclude => "`exclude`",
        kw_as => "`as`",
        kw_none => "`none`",
        kw_per => "`per`",
        kw_burst => "`burst`",
        kw_for => "`for` (`fallback for RULE`)",
        lbrace => "`{`",
        lparen => "`(`",
        rparen => "`)`",
        lbrack => "`[`",
        rbrack => "`]`",
        comma => "`,`",
        assign => "`=`",
        colon => "`:`",
        _ => return None,
    })
}

/// The `syntax` diagnostic for a pest error.
pub(super) fn translate(ctx: &Ctx<'_>, err: &Error<Rule>) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((start, _)) => start,
    };
    let (token, span) = token_at(ctx, pos);
    let message = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => expected_message(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let label = match token {
        Some(t) => format!("unexpected `{t}`"),
        None => "unexpected end of file".to_string(),
    };
    let diag = ctx.error("syntax", span, message).with_label(label);
    match token.and_then(|t| hint(ctx, t, pos)) {
        Some(help) => diag.with_help(help),
        None => diag,
    }
}

/// "expected A, B or C" for a set of expected rules.
fn expected_message(positives: &[Rule]) -> String {
    let mut wanted: Vec<&str> = Vec::new();
    for d in positives.iter().filter_map(|r| describe(*r)) {
        if !wanted.contains(&d) {
            wanted.push(d);
        }
    }
    // Drop what a broader alternative already covers.
    if wanted.contains(&"an expression") {
        wanted.retain(|d| !matches!(*d, "a name" | "a string" | "`(`" | "`[`"));
    }
    if wanted.contains(&"an emit item (`*` or a name)") {
        wanted.retain(|d| *d != "a name");
    }
    if wanted.len() > 1 {
        wanted.retain(|d| *d != "end of file");
    }
    // Put the clause-or-brace choice last: it already ends in "or ...".
    wanted.sort_by_key(|d| *d == CLAUSE_OR_BRACE);
    match wanted.as_slice() {
        [] => "unexpected input".to_string(),
        [one] => format!("expected {one}"),
        [init @ .., last] if *last == CLAUSE_OR_BRACE => {
            format!("expected {}, {last}", init.join(", "))
        }
        [init @ .., last] => format!("expected {} or {last}", init.join(", ")),
    }
}

/// The token starting at byte `pos` (a word, or one character) and its span.
fn token_at<'t>(ctx: &Ctx<'t>, pos: usize) -> (Option<&'t str>, crate::ast::Span) {
    let rest = ctx.text.get(pos..).unwrap_or("");
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let len = match rest.chars().next() {
        None => 0,
        Some(c) if is_word(c) => rest.find(|c: char| !is_word(c)).unwrap_or(rest.len()),
        Some(c) => c.len_utf8(),
    };
    let token = rest.get(..len).filter(|t| !t.is_empty());
    (token, ctx.span_at(pos, pos + len))
}

/// A hint for common mistakes: a keyword used as a name, an unterminated string.
fn hint(ctx: &Ctx<'_>, token: &str, pos: usize) -> Option<String> {
    if KEYWORDS.contains(&token) {
        return Some(format!(
            "`{token}` is a reserved keyword; it cannot be used as a name, and it starts or continues a clause"
        ));
    }
    if token == "\"" {
        let line_rest = ctx.text.get(pos + 1..)?.split('\n').next()?;
        if !line_rest.contains('"') {
            return Some("this string is not closed on its line".to_string());
        }
    }
    None
}

/// A `syntax` error at the first `(` or `[` nested deeper than `max` (outside strings and
/// comments), so that parsing and tree building never recurse without bound.
pub(super) fn check_nesting(ctx: &Ctx<'_>, max: usize) -> Option<Diagnostic> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    for (i, c) in ctx.text.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if in_string {
            in_string = !(c == '\n' || (c == '"' && !escaped));
            escaped = c == '\\' && !escaped;
        } else {
            match c {
                '#' => in_comment = true,
                '"' => in_string = true,
                '(' | '[' => {
                    depth += 1;
                    if depth > max {
                        let span = ctx.span_at(i, i + 1);
                        return Some(
                            ctx.error("syntax", span, "brackets nested too deeply")
                                .with_label(format!("more than {max} levels deep")),
                        );
                    }
                }
                ')' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_sets_read_as_words() {
        assert_eq!(expected_message(&[Rule::expr]), "expected an expression");
        assert_eq!(
            expected_message(&[Rule::op_add, Rule::kw_emit, Rule::rbrace]),
            format!("expected an operator, {CLAUSE_OR_BRACE}")
        );
        assert_eq!(
            expected_message(&[Rule::ident, Rule::number, Rule::string]),
            "expected an expression"
        );
    }

    #[test]
    fn nesting_guard_ignores_strings_and_comments() {
        let deep = format!("{}1{}", "(".repeat(70), ")".repeat(70));
        let ctx = Ctx::new("f.hto", &deep);
        let diag = check_nesting(&ctx, 64).expect("too deep");
        assert_eq!(diag.span.col, 65);
        let quoted = format!("\"{}\" # {}", "(".repeat(70), "[".repeat(70));
        assert!(check_nesting(&Ctx::new("f.hto", &quoted), 64).is_none());
    }
}
