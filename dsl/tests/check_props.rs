//! The checker never panics, whatever well-formed syntax tree it is given.

mod check_support;

use huatuo_dsl::ast::*;
use huatuo_dsl::check::check;
use huatuo_dsl::units::Dim;
use proptest::prelude::*;

const NAMES: &[&str] = &[
    "offtime",
    "comm",
    "pid",
    "cpu",
    "user",
    "system",
    "total",
    "latency",
    "anon",
    "now",
    "x",
    "threshold",
    "kernel",
    "host",
    "container",
    "container_id",
    "disk",
    "flamedata",
    "stack",
    "zone",
    "",
];
const FUNCS: &[&str] = &[
    "config",
    "delta",
    "rate",
    "percent",
    "ema",
    "window",
    "changed",
    "first",
    "last",
    "min",
    "max",
    "avg",
    "sum",
    "len",
    "all",
    "any",
    "abs",
    "matches_any",
    "contains",
    "nope",
    "window::slope",
    "a::b",
];
const SOURCES: &[&str] = &[
    "bpf.softirq_off",
    "proc.stat",
    "cgroup.cpu",
    "bpf.runqlat",
    "cgroup.memory_stat",
    "proc.diskstats",
    "nope",
];
const CAPTURES: &[&str] = &["stack", "profile", "tasks", "file", "top", "nope"];
const STRINGS: &[&str] = &[
    "EventTracing.Softirq.DisabledThreshold",
    "IssuesList",
    "Region",
    "(",
    "^a",
    "\\w{99}{99}",
    "",
];
const DIMS: &[Dim] = &[
    Dim::Count,
    Dim::Time,
    Dim::Bytes,
    Dim::Percent,
    Dim::BytesPerSec,
    Dim::PerSec,
];
const BINOPS: &[BinOp] = &[
    BinOp::Eq,
    BinOp::Ne,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
    BinOp::Match,
    BinOp::NotMatch,
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::Rem,
];

fn span() -> impl Strategy<Value = Span> {
    (1usize..50, 1usize..80).prop_map(|(line, col)| Span {
        start: 0,
        end: 1,
        line,
        col,
    })
}

fn ident(pool: &'static [&'static str]) -> impl Strategy<Value = Ident> {
    (prop::sample::select(pool), span()).prop_map(|(name, span)| Ident {
        name: name.to_string(),
        span,
    })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        (any::<i64>(), prop::sample::select(DIMS)).prop_map(|(v, d)| Literal::Int(v, d)),
        (-1e12f64..1e12, prop::sample::select(DIMS)).prop_map(|(v, d)| Literal::Float(v, d)),
        prop::sample::select(STRINGS).prop_map(|s| Literal::Str(s.to_string())),
        any::<bool>().prop_map(Literal::Bool),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        literal().prop_map(ExprKind::Literal),
        prop::sample::select(NAMES).prop_map(|n| ExprKind::Name(n.to_string())),
    ];
    let leaf = (leaf, span()).prop_map(|(kind, span)| Expr { kind, span });
    leaf.prop_recursive(5, 48, 4, |inner| {
        let kind = prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(ExprKind::List),
            (any::<bool>(), inner.clone()).prop_map(|(not, e)| {
                ExprKind::Unary(if not { UnOp::Not } else { UnOp::Neg }, Box::new(e))
            }),
            (prop::sample::select(BINOPS), inner.clone(), inner.clone())
                .prop_map(|(op, l, r)| ExprKind::Binary(op, Box::new(l), Box::new(r))),
            (any::<bool>(), prop::collection::vec(inner.clone(), 2..5)).prop_map(|(and, items)| {
                ExprKind::Logic(if and { LogicOp::And } else { LogicOp::Or }, items)
            }),
            (ident(FUNCS), prop::collection::vec(arg(inner), 0..4))
                .prop_map(|(f, args)| ExprKind::Call(f, args)),
        ];
        (kind, span()).prop_map(|(kind, span)| Expr { kind, span })
    })
}

fn arg(value: impl Strategy<Value = Expr>) -> impl Strategy<Value = Arg> {
    (
        prop::option::of(ident(&[
            "n", "x", "key", "default", "scope", "duration", "factor", "max",
        ])),
        value,
    )
        .prop_map(|(name, value)| Arg { name, value })
}

fn binding(kind: BindingKind) -> impl Strategy<Value = Binding> {
    (ident(NAMES), expr(), span()).prop_map(move |(name, value, span)| Binding {
        kind,
        name,
        value,
        span,
    })
}

fn emit_item() -> impl Strategy<Value = EmitItem> {
    prop_oneof![
        (
            ident(NAMES),
            prop::option::of(expr()),
            any::<bool>(),
            span()
        )
            .prop_map(|(name, value, counter, span)| EmitItem::Named {
                name,
                value,
                metric_type: counter.then_some(MetricType::Counter),
                help: None,
                span,
            }),
        (prop::option::of(expr()), prop::option::of(expr()), span()).prop_map(
            |(include, exclude, span)| EmitItem::AllFields {
                include,
                exclude,
                metric_type: None,
                span,
            }
        ),
    ]
}

fn actions() -> impl Strategy<Value = (Vec<Capture>, Option<Cooldown>, Option<RateLimit>)> {
    let capture = (
        ident(CAPTURES),
        prop::collection::vec(arg(expr()), 0..3),
        prop::option::of(ident(NAMES)),
        span(),
    )
        .prop_map(|(name, args, alias, span)| Capture {
            name,
            args,
            alias,
            span,
        });
    let policy = prop_oneof![
        Just(CooldownPolicy::None),
        expr().prop_map(CooldownPolicy::Fixed),
        prop::collection::vec(arg(expr()), 0..4).prop_map(CooldownPolicy::Backoff),
    ];
    let cooldown = (
        policy,
        prop::option::of(prop::collection::vec(ident(NAMES), 0..2)),
        span(),
    )
        .prop_map(|(policy, per, span)| Cooldown { policy, per, span });
    let limit =
        (expr(), expr(), prop::option::of(expr()), span()).prop_map(|(rate, per, burst, span)| {
            RateLimit {
                rate,
                per,
                burst,
                span,
            }
        });
    (
        prop::collection::vec(capture, 0..3),
        prop::option::of(cooldown),
        prop::option::of(limit),
    )
}

fn rule() -> impl Strategy<Value = Rule> {
    let kind = prop::sample::select(&[RuleKind::Metric, RuleKind::Event, RuleKind::Autotrace][..]);
    let head = (
        kind,
        ident(&["a", "b", "c"]),
        ident(SOURCES),
        prop::option::of(expr()),
        span(),
    );
    let body = (
        prop::collection::vec(binding(BindingKind::Param), 0..3),
        prop::collection::vec(
            prop_oneof![binding(BindingKind::Let), binding(BindingKind::Script)],
            0..3,
        ),
        prop::option::of(expr()),
        prop::option::of(expr()),
    );
    let metric = (
        prop::option::of(prop::collection::vec(ident(NAMES), 0..3)),
        prop::option::of(prop::collection::vec(ident(NAMES), 0..3)),
        prop::collection::vec(
            (
                ident(NAMES),
                prop::collection::vec(expr(), 0..4),
                prop::option::of(ident(NAMES)),
                span(),
            )
                .prop_map(|(field, bounds, label, span)| HistogramClause {
                    field,
                    bounds,
                    label,
                    span,
                }),
            0..2,
        ),
        prop::collection::vec(emit_item(), 0..4),
    );
    let tail = (
        prop::option::of(expr()),
        prop::option::of(ident(&["a", "b", "c", "d"])),
    );
    (head, body, metric, actions(), tail).prop_map(
        |(
            (kind, name, source, every, span),
            (params, lets, filter, trigger),
            (labels, scope, histograms, emits),
            (captures, cooldown, limit),
            (issues, fallback),
        )| Rule {
            kind,
            name,
            span,
            source: SourceClause {
                name: source,
                every,
                span,
            },
            help: None,
            params,
            lets,
            filter,
            trigger,
            labels,
            scope,
            histograms,
            emits,
            captures,
            cooldown,
            limit,
            issues,
            fallback,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn check_never_panics(rules in prop::collection::vec(rule(), 1..4)) {
        let file = RuleFile { path: "rules/p.hto".to_string(), rules };
        let catalog = check_support::catalog();
        let diags = check(&[file], &catalog);
        for d in &diags {
            prop_assert!(!d.message.is_empty());
            prop_assert_eq!(d.path.as_str(), "rules/p.hto");
        }
        let places: Vec<_> = diags.iter().map(|d| (d.span.line, d.span.col)).collect();
        let mut sorted = places.clone();
        sorted.sort();
        prop_assert_eq!(places, sorted);
    }
}

/// Valid rules that mutations start from.
const SEEDS: &[&str] = &[
    r#"event softirq_tracing { source bpf.softirq_off
        param threshold = config("EventTracing.Softirq.DisabledThreshold", 10ms)
        where offtime > threshold and comm !~ "^(ksoftirqd|swapper)"
        capture stack(kernel) cooldown backoff(10m, factor: 2, max: 3h) limit 10 per 1s
        emit offtime, threshold, comm, pid, cpu, now, stack }"#,
    r#"metric runqlat { source bpf.runqlat histogram latency zones [10ms, 20ms, 50ms]
        scope host, container labels container_id }"#,
    r#"autotrace cpusys { source proc.stat every 10s
        let sys = percent(delta(system), delta(total)) let w = window(sys, 5)
        when sys > 45% and avg(w) > 20% and matches_any("a", ["^a"])
        capture profile(scope: host, duration: 5s) as fd issues config("IssuesList", [])
        emit now_sys = sys, fd, x = first(w) * 2 }"#,
    r#"metric vm { source cgroup.memory_stat emit * include "^anon" counter,
        r = anon / 2 help "half" }"#,
];

const JUNK: &[&str] = &[
    "45%",
    "10",
    "10ms",
    "\"(\"",
    "nope",
    "window::slope(user)",
    "container",
    "host",
    "-",
    "+",
    "*",
    "/",
    "and",
    "not",
    "==",
    "=~",
    "[",
    "]",
    "(",
    ")",
    ",",
    "emit",
    "let",
    "x",
    "=",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_rule_texts_never_panic(
        seed in prop::sample::select(SEEDS),
        edits in prop::collection::vec((0usize..200, 0u8..3, prop::sample::select(JUNK)), 1..4),
    ) {
        let mut tokens: Vec<String> = seed.split_whitespace().map(str::to_string).collect();
        for (at, op, junk) in edits {
            let at = at % tokens.len().max(1);
            match op {
                0 if !tokens.is_empty() => { tokens.remove(at); }
                1 => tokens.insert(at, junk.to_string()),
                _ if !tokens.is_empty() => tokens[at] = junk.to_string(),
                _ => {}
            }
        }
        let text = tokens.join(" ");
        if let Ok(file) = huatuo_dsl::parser::parse_file("rules/m.hto", &text) {
            let diags = check(&[file], &check_support::catalog());
            let places: Vec<_> = diags.iter().map(|d| (d.span.line, d.span.col)).collect();
            let mut sorted = places.clone();
            sorted.sort();
            prop_assert_eq!(places, sorted);
        }
    }
}

#[test]
fn seeds_are_valid() {
    for seed in SEEDS {
        let file = huatuo_dsl::parser::parse_file("rules/m.hto", seed).expect("seed parses");
        let diags = check(&[file], &check_support::catalog());
        assert!(diags.is_empty(), "{diags:#?}");
    }
}

#[test]
fn deep_nesting_is_reported_not_recursed() {
    let mut e = Expr {
        kind: ExprKind::Literal(Literal::Int(1, Dim::Count)),
        span: Span::default(),
    };
    for _ in 0..5000 {
        e = Expr {
            kind: ExprKind::Unary(UnOp::Neg, Box::new(e)),
            span: Span {
                line: 4,
                col: 10,
                ..Span::default()
            },
        };
    }
    let rule = Rule {
        kind: RuleKind::Metric,
        name: Ident {
            name: "m".into(),
            span: Span::default(),
        },
        span: Span::default(),
        source: SourceClause {
            name: Ident {
                name: "proc.stat".into(),
                span: Span::default(),
            },
            every: None,
            span: Span::default(),
        },
        help: None,
        params: vec![],
        lets: vec![],
        filter: None,
        trigger: None,
        labels: None,
        scope: None,
        histograms: vec![],
        emits: vec![EmitItem::Named {
            name: Ident {
                name: "x".into(),
                span: Span::default(),
            },
            value: Some(e),
            metric_type: None,
            help: None,
            span: Span::default(),
        }],
        captures: vec![],
        cooldown: None,
        limit: None,
        issues: None,
        fallback: None,
    };
    let diags = check(
        &[RuleFile {
            path: "p".into(),
            rules: vec![rule],
        }],
        &check_support::catalog(),
    );
    let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["too-deep"]);
}
