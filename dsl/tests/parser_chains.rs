//! `a and b and ...` chains are one flat node: long chains check cleanly, and parsing stays
//! linear in the length of the file.

mod check_support;

use check_support::check_text;
use huatuo_dsl::ast::{ExprKind, LogicOp};
use huatuo_dsl::parser::parse_file;
use std::time::{Duration, Instant};

/// A rule whose trigger joins `n` comparisons with `op`.
fn chained(n: usize, op: &str) -> String {
    let terms: Vec<String> = (0..n).map(|i| format!("user > {i}ms")).collect();
    format!(
        "event e {{\n    source proc.stat\n    when   {}\n    emit   user\n}}\n",
        terms.join(&format!(" {op} "))
    )
}

#[test]
fn a_chain_of_128_terms_is_one_flat_node_that_checks_clean() {
    for (op, logic) in [("and", LogicOp::And), ("or", LogicOp::Or)] {
        let text = chained(128, op);
        let file = parse_file("t.hto", &text).unwrap_or_else(|d| panic!("{d:#?}"));
        let when = file.rules[0].trigger.as_ref().expect("when");
        let ExprKind::Logic(found, operands) = &when.kind else {
            panic!("not a chain: {when:?}")
        };
        assert_eq!((*found, operands.len()), (logic, 128));
        assert_eq!((when.span.line, when.span.col), (3, 12));
        let line = text.lines().nth(2).unwrap().trim();
        let written = line.strip_prefix("when").unwrap().trim_start();
        assert_eq!(&text[when.span.start..when.span.end], written);
        let diags = check_text(&text);
        assert!(diags.is_empty(), "{diags:#?}");
    }
}

#[test]
fn mixed_operators_keep_their_precedence() {
    let file = parse_file(
        "t.hto",
        &chained(3, "or").replace(" or user > 1ms", " and user > 1ms"),
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    // `a and b or c` is `(a and b) or c`: an `or` of two operands, the first an `and`.
    let when = file.rules[0].trigger.as_ref().expect("when");
    let ExprKind::Logic(LogicOp::Or, operands) = &when.kind else {
        panic!("{when:?}")
    };
    assert_eq!(operands.len(), 2);
    assert!(matches!(&operands[0].kind, ExprKind::Logic(LogicOp::And, inner) if inner.len() == 2));
}

/// How long parsing `text` takes.
fn parse_time(text: &str) -> (Duration, bool) {
    let started = Instant::now();
    let ok = parse_file("t.hto", text).is_ok();
    (started.elapsed(), ok)
}

/// A rule whose trigger is `x OP x OP ...` with `n` operands, on one line.
fn one_line(n: usize, op: &str) -> String {
    format!(
        "event e {{\n    source proc.stat\n    when   x{}\n    emit   user\n}}\n",
        format!(" {op} x").repeat(n - 1)
    )
}

#[test]
fn parsing_long_chains_is_linear() {
    // 100 000 terms on one line: accepted. Ten times the terms may take about ten times as
    // long, not a hundred (columns used to be counted from the start of the line each time).
    let (short_time, short_ok) = parse_time(&one_line(10_000, "and"));
    let (long_time, long_ok) = parse_time(&one_line(100_000, "and"));
    assert!(short_ok && long_ok);
    assert!(
        long_time < short_time * 30,
        "10 000 terms: {short_time:?}, 100 000 terms: {long_time:?}"
    );
    // A chain of `+` stays a tree and is refused past its depth limit, just as quickly.
    let (sum_time, sum_ok) = parse_time(&one_line(10_000, "+"));
    assert!(!sum_ok);
    assert!(sum_time < short_time * 3, "10 000 additions: {sum_time:?}");
}

#[test]
fn columns_count_characters_on_long_lines_with_multibyte_text() {
    // A `µs` literal early on the line, the error far after it: the column counts characters.
    let text = format!(
        "event e {{\n    source proc.stat\n    when   user > 1µs{} and nosuch > 0\n    emit   user\n}}\n",
        " and user > 1ms".repeat(300)
    );
    let diags = check_text(&text);
    let line = text.lines().nth(2).unwrap();
    let col = line[..line.find("nosuch").unwrap()].chars().count() + 1;
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(
        (diags[0].code, diags[0].span.line, diags[0].span.col),
        ("unknown-name", 3, col)
    );
}
