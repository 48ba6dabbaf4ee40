//! Literal forms, operator precedence, every clause form and the spans of nodes.

use huatuo_dsl::ast::*;
use huatuo_dsl::parser::parse_file;
use huatuo_dsl::units::Dim;

/// The `when` expression of a one-rule file.
fn when(expr_text: &str) -> Expr {
    let text = format!("event e {{ source s when {expr_text} }}");
    match parse_file("f.hto", &text) {
        Ok(mut file) => file.rules.remove(0).trigger.expect("when"),
        Err(d) => panic!("{expr_text}: {d:#?}"),
    }
}

fn lit(expr_text: &str) -> Literal {
    match when(expr_text).kind {
        ExprKind::Literal(l) => l,
        other => panic!("{other:?}"),
    }
}

/// A compact prefix rendering of an expression, to check structure.
fn sexp(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Literal(Literal::Int(v, _)) => v.to_string(),
        ExprKind::Literal(Literal::Float(v, _)) => v.to_string(),
        ExprKind::Literal(Literal::Str(s)) => format!("{s:?}"),
        ExprKind::Literal(Literal::Bool(b)) => b.to_string(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::List(items) => {
            format!("[{}]", items.iter().map(sexp).collect::<Vec<_>>().join(" "))
        }
        ExprKind::Unary(op, x) => format!("({op:?} {})", sexp(x)),
        ExprKind::Binary(op, a, b) => format!("({op:?} {} {})", sexp(a), sexp(b)),
        ExprKind::Logic(op, operands) => {
            let operands: Vec<String> = operands.iter().map(sexp).collect();
            format!("({op:?} {})", operands.join(" "))
        }
        ExprKind::Call(f, args) => {
            let args: Vec<String> = args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{}:{}", n.name, sexp(&a.value)),
                    None => sexp(&a.value),
                })
                .collect();
            format!("{}({})", f.name, args.join(" "))
        }
    }
}

#[test]
fn number_literals_scale_to_base_units() {
    assert_eq!(lit("10"), Literal::Int(10, Dim::Count));
    assert_eq!(lit("0.25"), Literal::Float(0.25, Dim::Count));
    assert_eq!(lit("10ms"), Literal::Int(10_000_000, Dim::Time));
    assert_eq!(lit("1.5s"), Literal::Int(1_500_000_000, Dim::Time));
    assert_eq!(lit("10µs"), Literal::Int(10_000, Dim::Time));
    assert_eq!(lit("7us"), Literal::Int(7_000, Dim::Time));
    assert_eq!(lit("3ns"), Literal::Int(3, Dim::Time));
    assert_eq!(lit("10m"), Literal::Int(600_000_000_000, Dim::Time));
    assert_eq!(lit("3h"), Literal::Int(10_800_000_000_000, Dim::Time));
    assert_eq!(lit("45%"), Literal::Int(45, Dim::Percent));
    assert_eq!(lit("2.5%"), Literal::Float(2.5, Dim::Percent));
    assert_eq!(
        lit("1500MiB/s"),
        Literal::Int(1500 * 1048576, Dim::BytesPerSec)
    );
    assert_eq!(lit("4KiB"), Literal::Int(4096, Dim::Bytes));
    assert_eq!(lit("2GB"), Literal::Int(2_000_000_000, Dim::Bytes));
    assert_eq!(lit("100/s"), Literal::Int(100, Dim::PerSec));
    assert_eq!(lit("0.5B"), Literal::Float(0.5, Dim::Bytes));
}

#[test]
fn other_literals() {
    assert_eq!(
        lit(r#""a\"b\\c\nd\te""#),
        Literal::Str("a\"b\\c\nd\te".into())
    );
    assert_eq!(
        lit("\"# not a comment\""),
        Literal::Str("# not a comment".into())
    );
    assert_eq!(lit("true"), Literal::Bool(true));
    assert_eq!(lit("false"), Literal::Bool(false));
    assert_eq!(sexp(&when("[]")), "[]");
    assert_eq!(sexp(&when("[1, \"x\", [y]]")), "[1 \"x\" [y]]");
    // Names that merely start with a keyword are names.
    assert_eq!(sexp(&when("android or nothing")), "(Or android nothing)");
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(sexp(&when("a or b and c")), "(Or a (And b c))");
    assert_eq!(sexp(&when("not a and b")), "(And (Not a) b)");
    assert_eq!(sexp(&when("not a == b")), "(Not (Eq a b))");
    assert_eq!(
        sexp(&when("a + b * c > d - e")),
        "(Gt (Add a (Mul b c)) (Sub d e))"
    );
    assert_eq!(sexp(&when("a - b - c")), "(Sub (Sub a b) c)");
    assert_eq!(sexp(&when("a / b % c")), "(Rem (Div a b) c)");
    assert_eq!(sexp(&when("-a * b")), "(Mul (Neg a) b)");
    assert_eq!(sexp(&when("(a + b) * c")), "(Mul (Add a b) c)");
    assert_eq!(
        sexp(&when("x =~ \"^a\" or x !~ \"b\"")),
        "(Or (Match x \"^a\") (NotMatch x \"b\"))"
    );
    assert_eq!(
        sexp(&when("a <= b and a >= c and a != d and a < e")),
        "(And (Le a b) (Ge a c) (Ne a d) (Lt a e))"
    );
    // `%` attached to digits is percent; with spaces it is the remainder.
    assert_eq!(sexp(&when("10% > x % 3")), "(Gt 10 (Rem x 3))");
    // `/s` attached to digits is a unit; with spaces it divides.
    assert_eq!(sexp(&when("10 / s")), "(Div 10 s)");
}

#[test]
fn calls_and_arguments() {
    assert_eq!(sexp(&when("f()")), "f()");
    assert_eq!(
        sexp(&when("f(a, k: 1, scope: host)")),
        "f(a k:1 scope:host)"
    );
    assert_eq!(sexp(&when("ema::decay(x, 0.5)")), "ema::decay(x 0.5)");
    assert_eq!(sexp(&when("f(g(h(1)))")), "f(g(h(1)))");
}

#[test]
fn expressions_span_lines_and_stop_at_clause_keywords() {
    let text = "event e {\n source s\n when a >\n   1\n   and b\n emit a\n}";
    let file = parse_file("f.hto", text).expect("parses");
    let r = &file.rules[0];
    assert_eq!(sexp(r.trigger.as_ref().expect("when")), "(And (Gt a 1) b)");
    assert_eq!(r.emits.len(), 1);
}

#[test]
fn comments_and_whitespace_are_ignored() {
    let text =
        "# header\nmetric m { # trailing\n  source proc.stat # c\n  labels cpu , mode\n}\n# end";
    let file = parse_file("f.hto", text).expect("parses");
    let labels: Vec<_> = file.rules[0]
        .labels
        .iter()
        .flatten()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(labels, ["cpu", "mode"]);
    assert!(parse_file("f.hto", "").expect("empty").rules.is_empty());
}

#[test]
fn cooldown_forms() {
    let parse = |c: &str| {
        let text = format!("event e {{ source s cooldown {c} }}");
        parse_file("f.hto", &text)
            .expect("parses")
            .rules
            .remove(0)
            .cooldown
            .expect("cooldown")
    };
    let fixed = parse("30s per pid, cpu");
    let CooldownPolicy::Fixed(d) = &fixed.policy else {
        panic!("{fixed:?}")
    };
    assert_eq!(
        d.kind,
        ExprKind::Literal(Literal::Int(30_000_000_000, Dim::Time))
    );
    let per: Vec<_> = fixed
        .per
        .iter()
        .flatten()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(per, ["pid", "cpu"]);
    assert_eq!(parse("none").policy, CooldownPolicy::None);
    let CooldownPolicy::Backoff(args) = parse("backoff(1s)").policy else {
        panic!()
    };
    assert_eq!(args.len(), 1);
}

#[test]
fn limit_without_burst_and_emit_variants() {
    let text =
        "metric m { source s limit 10 per 1m emit *, x gauge, y = a + b counter help \"h\" }";
    let r = parse_file("f.hto", text).expect("parses").rules.remove(0);
    let lim = r.limit.expect("limit");
    assert!(lim.burst.is_none());
    assert!(matches!(
        &r.emits[0],
        EmitItem::AllFields {
            include: None,
            exclude: None,
            metric_type: None,
            ..
        }
    ));
    assert!(matches!(
        &r.emits[1],
        EmitItem::Named {
            value: None,
            metric_type: Some(MetricType::Gauge),
            ..
        }
    ));
    let EmitItem::Named {
        value: Some(v),
        metric_type,
        help,
        ..
    } = &r.emits[2]
    else {
        panic!()
    };
    assert_eq!(sexp(v), "(Add a b)");
    assert_eq!(
        (*metric_type, help.as_deref()),
        (Some(MetricType::Counter), Some("h"))
    );
}

#[test]
fn spans_of_nodes() {
    let text = "metric m {\n  source proc.stat every 10s\n  let x = a + f(b)\n  histogram lat zones [1ms] label z\n}\n";
    let file = parse_file("f.hto", text).expect("parses");
    let r = &file.rules[0];
    let slice = |s: Span| &text[s.start..s.end];

    assert_eq!((r.span.start, r.span.line, r.span.col), (0, 1, 1));
    assert_eq!(r.span.end, text.trim_end().len());
    assert_eq!(
        (slice(r.name.span), r.name.span.line, r.name.span.col),
        ("m", 1, 8)
    );

    assert_eq!(slice(r.source.span), "source proc.stat every 10s");
    assert_eq!((r.source.span.line, r.source.span.col), (2, 3));
    assert_eq!(
        (slice(r.source.name.span), r.source.name.span.col),
        ("proc.stat", 10)
    );
    let every = r.source.every.as_ref().expect("every");
    assert_eq!((slice(every.span), every.span.col), ("10s", 26));

    let b = &r.lets[0];
    assert_eq!(slice(b.span), "let x = a + f(b)");
    assert_eq!(
        (slice(b.name.span), b.name.span.line, b.name.span.col),
        ("x", 3, 7)
    );
    assert_eq!((slice(b.value.span), b.value.span.col), ("a + f(b)", 11));
    let ExprKind::Binary(_, lhs, rhs) = &b.value.kind else {
        panic!()
    };
    assert_eq!((slice(lhs.span), lhs.span.col), ("a", 11));
    assert_eq!((slice(rhs.span), rhs.span.col), ("f(b)", 15));
    let ExprKind::Call(f, args) = &rhs.kind else {
        panic!()
    };
    assert_eq!((slice(f.span), slice(args[0].value.span)), ("f", "b"));

    let h = &r.histograms[0];
    assert_eq!(slice(h.span), "histogram lat zones [1ms] label z");
    assert_eq!(slice(h.bounds[0].span), "1ms");
    assert_eq!(
        h.label
            .as_ref()
            .map(|l| (slice(l.span), l.span.line, l.span.col)),
        Some(("z", 4, 35))
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let text = "metric m { source s help \"µµµ\" where x }";
    let r = parse_file("f.hto", text).expect("parses").rules.remove(0);
    let filter = r.filter.expect("where");
    assert_eq!(
        filter.span.col,
        text.chars().position(|c| c == 'x').expect("x") + 1
    );
    assert_eq!(&text[filter.span.start..filter.span.end], "x");
}
