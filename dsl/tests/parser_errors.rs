//! Every parser error code, with the place it points at, and the rendered forms.

use huatuo_dsl::diag::{Diagnostic, Severity};
use huatuo_dsl::parser::parse_file;
use huatuo_dsl::render::{render_human, render_json};

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse_file("file.hto", text) {
        Ok(file) => panic!("expected errors, parsed {file:#?}"),
        Err(diags) => diags,
    }
}

fn one_error(text: &str) -> Diagnostic {
    let diags = errors(text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    diags.into_iter().next().expect("one")
}

fn at(d: &Diagnostic) -> (&'static str, usize, usize) {
    (d.code, d.span.line, d.span.col)
}

#[test]
fn missing_expression_is_a_readable_syntax_error() {
    let d = one_error("metric a {\n  source proc.stat\n  when }\n");
    assert_eq!(at(&d), ("syntax", 3, 8));
    assert_eq!(d.message, "expected an expression");
    assert_eq!(d.label, "unexpected `}`");
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.location(), "file.hto:3:8");
}

#[test]
fn stray_token_after_expression_names_clause_keywords() {
    let d = one_error("metric a {\n  source proc.stat\n  when x > 3 y\n}\n");
    assert_eq!(at(&d), ("syntax", 3, 14));
    assert!(
        d.message
            .starts_with("expected an operator, `}` or a clause keyword (source,"),
        "{}",
        d.message
    );
    assert!(
        !d.message.contains("op_"),
        "no pest rule names: {}",
        d.message
    );
}

#[test]
fn unknown_rule_kind() {
    let d = one_error("\n  foo a {}");
    assert_eq!(at(&d), ("syntax", 2, 3));
    assert_eq!(
        d.message,
        "expected a rule (`metric`, `event` or `autotrace`)"
    );
    assert_eq!(
        (d.span.start, d.span.end),
        (3, 6),
        "underlines the whole word"
    );
}

#[test]
fn keyword_as_name_gets_a_hint() {
    let d = one_error("metric a {\n source x\n let limit = 3\n}");
    assert_eq!(at(&d), ("syntax", 3, 6));
    assert_eq!(d.message, "expected a name");
    assert!(d
        .help
        .as_deref()
        .unwrap_or("")
        .contains("`limit` is a reserved keyword"));
}

#[test]
fn unterminated_string() {
    let d = one_error("metric a {\n  source proc.stat\n  help \"abc\n}\n");
    assert_eq!(at(&d), ("syntax", 3, 8));
    assert_eq!(d.message, "expected a string");
    assert_eq!(
        d.help.as_deref(),
        Some("this string is not closed on its line")
    );
}

#[test]
fn unexpected_end_of_file() {
    let d = one_error("metric a { source x.y");
    assert_eq!(at(&d), ("syntax", 1, 22));
    assert_eq!(d.label, "unexpected end of file");
    assert!(d.message.contains("`every`"), "{}", d.message);
}

#[test]
fn bad_escape_in_string() {
    let d = one_error("metric a { source x.y help \"a\\qb\" }");
    assert_eq!(at(&d), ("syntax", 1, 30));
    assert_eq!(d.message, "unknown escape `\\q` in string");
}

#[test]
fn chained_comparison_is_rejected_but_parenthesized_is_not() {
    let d = one_error("metric a { source x.y\n when a < b < c }");
    assert_eq!(at(&d), ("syntax", 2, 13));
    assert_eq!(d.message, "comparisons cannot be chained");
    assert!(parse_file("f.hto", "metric a { source x.y when (a < b) == c }").is_ok());
}

#[test]
fn unknown_units_with_did_you_mean() {
    let d = one_error("metric a {\n  source proc.stat every 10min\n}\n");
    assert_eq!(at(&d), ("unknown-unit", 2, 28));
    assert_eq!(d.message, "unknown unit `min`");
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .starts_with("did you mean `m`?"),
        "{:?}",
        d.help
    );

    let d = one_error("metric a { source x.y\n  limit 5mb per 1s }");
    assert_eq!(at(&d), ("unknown-unit", 2, 10));
    assert!(
        d.help
            .as_deref()
            .unwrap_or("")
            .starts_with("did you mean `MB`?"),
        "{:?}",
        d.help
    );
}

#[test]
fn duplicate_clause_points_at_the_repeat_and_the_first() {
    let d = one_error("metric a {\n  source proc.stat\n  where a\n  where b\n}\n");
    assert_eq!(at(&d), ("duplicate-clause", 4, 3));
    assert_eq!((d.span.end - d.span.start), "where".len());
    assert_eq!(d.message, "`where` may appear only once in a rule");
    assert!(d.help.as_deref().unwrap_or("").contains("file.hto:3:3"));
}

#[test]
fn repeatable_clauses_append() {
    let file = parse_file(
        "f.hto",
        "event e { source s param a = 1 param b = 2 emit a emit b, c capture x() capture y() as z }",
    )
    .expect("parses");
    let r = &file.rules[0];
    assert_eq!((r.params.len(), r.emits.len(), r.captures.len()), (2, 3, 2));
}

#[test]
fn missing_source_points_at_rule_name() {
    let d = one_error("metric a {\n  help \"x\"\n}\n");
    assert_eq!(at(&d), ("missing-source", 1, 8));
    assert!(d.message.contains("`a`"));
}

#[test]
fn semantic_errors_are_all_reported() {
    let text =
        "metric a {\n help \"x\"\n}\nevent b {\n source s every 3min\n when x > 3q\n when y\n}\n";
    let diags = errors(text);
    let got: Vec<_> = diags.iter().map(at).collect();
    assert_eq!(
        got,
        [
            ("missing-source", 1, 8),
            ("unknown-unit", 5, 18),
            ("unknown-unit", 6, 12),
            ("duplicate-clause", 7, 2),
        ]
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!(
        "metric a {{ source s when {}1{} }}",
        "(".repeat(500),
        ")".repeat(500)
    );
    let d = one_error(&deep);
    assert_eq!(d.code, "syntax");
    assert_eq!(d.message, "brackets nested too deeply");

    let prefixes = format!("metric a {{ source s when {}x }}", "not ".repeat(100));
    assert_eq!(
        one_error(&prefixes).message,
        "too many prefix operators in a row"
    );

    let long = format!("metric a {{ source s when x{} }}", " + x".repeat(1000));
    assert_eq!(one_error(&long).message, "expression too complex");
}

const RENDER_SRC: &str = "metric a {\n  source proc.stat\n  when x >\n}\n";

#[test]
fn human_rendering_shows_location_line_caret_and_help() {
    // `every` on its own line still belongs to the `source` clause before it.
    let d = one_error("metric a {\n  source proc.stat\n  every = 3\n}\n");
    assert_eq!(
        (at(&d), d.message.as_str()),
        (("syntax", 3, 9), "expected an expression")
    );
    let d = one_error(RENDER_SRC);
    assert_eq!(d.location(), "file.hto:4:1");

    // A diagnostic at 3:11 of a file, with help.
    let text = "metric a {\n  source proc.stat\n  when x>5min\n}\n";
    let d = one_error(text);
    assert_eq!(d.location(), "file.hto:3:11");
    let out = render_human(std::slice::from_ref(&d), &|p| {
        (p == "file.hto").then(|| text.to_string())
    });
    let first = out.lines().next().expect("a line");
    assert!(
        first.contains("error[unknown-unit]: unknown unit `min`"),
        "{out}"
    );
    assert!(out.contains("file.hto:3:11"), "{out}");
    assert!(out.contains("  when x>5min"), "{out}");
    assert!(out.contains('^') || out.contains('|'), "{out}");
    let caret_line = out.lines().find(|l| l.contains('^')).expect("a caret line");
    let src_line = out
        .lines()
        .find(|l| l.contains("when x>5min"))
        .expect("source");
    assert_eq!(caret_line.find('^'), src_line.find("min"), "{out}");
    assert!(out.contains("not a unit"), "{out}");
    assert!(out.contains("help: did you mean `m`?"), "{out}");
    assert!(!out.contains('\u{1b}'), "no escape codes: {out}");
}

#[test]
fn human_rendering_without_source_still_locates() {
    let d = one_error(RENDER_SRC);
    let out = render_human(&[d], &|_| None);
    let mut lines = out.lines();
    assert!(lines
        .next()
        .expect("headline")
        .contains("error[syntax]: expected an expression"));
    assert_eq!(lines.next(), Some("  --> file.hto:4:1"));
}

#[test]
fn human_rendering_at_end_of_file_and_warnings() {
    let text = "metric a { source x.y";
    let d = one_error(text);
    let out = render_human(&[d], &|_| Some(text.to_string()));
    assert!(out.contains("file.hto:1:22"), "{out}");
    assert!(out.contains("unexpected end of file"), "{out}");

    let w = Diagnostic::warning(
        "unused",
        "w.hto",
        huatuo_dsl::ast::Span {
            start: 0,
            end: 3,
            line: 1,
            col: 1,
        },
        "odd",
    )
    .with_label("here");
    let out = render_human(&[w], &|_| Some("abc\n".to_string()));
    assert!(
        out.lines()
            .next()
            .unwrap_or("")
            .contains("warning[unused]: odd"),
        "{out}"
    );
    assert!(out.contains("w.hto:1:1"), "{out}");
}

#[test]
fn json_rendering_has_every_field() {
    let diags = errors("metric a {\n  help \"x\"\n}\nmetric b { source s every 2min }");
    let json: serde_json::Value = serde_json::from_str(&render_json(&diags)).expect("valid json");
    let arr = json.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["severity"], "error");
    assert_eq!(arr[0]["code"], "missing-source");
    assert_eq!(arr[0]["path"], "file.hto");
    assert_eq!(
        (arr[0]["line"].as_u64(), arr[0]["col"].as_u64()),
        (Some(1), Some(8))
    );
    assert_eq!(arr[0]["label"], "needs a source");
    assert_eq!(arr[1]["code"], "unknown-unit");
    assert_eq!(arr[1]["message"], "unknown unit `min`");
    assert!(arr[1]["help"].as_str().expect("help").contains("`m`"));
    assert_eq!(render_json(&[]), "[]");
}
