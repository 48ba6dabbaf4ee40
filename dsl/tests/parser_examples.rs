//! The example rules of the language reference parse into the expected trees.

use huatuo_dsl::ast::*;
use huatuo_dsl::parser::parse_file;
use huatuo_dsl::units::Dim;

const EXAMPLES: &str = r#"
event softirq_tracing {
    source   bpf.softirq_off
    param    threshold = config("EventTracing.Softirq.DisabledThreshold", 10ms)
    where    offtime > threshold and comm !~ "^(ksoftirqd|swapper)"
    capture  stack(kernel)
    cooldown none
    limit    100 per 1s burst 200
    emit     offtime, threshold, comm, pid, cpu, now, stack
}
metric runqlat {
    source    bpf.runqlat
    help      "cpu run queue latency"
    scope     host, container
    histogram latency zones [10ms, 20ms, 50ms] label zone
}
metric memory_vmstat {
    source cgroup.memory_stat every 10s
    emit * include config("MetricCollector.Vmstat.IncludedOnHost") exclude ["^total_"] gauge
}
autotrace cpusys {
    source   proc.stat every config("AutoTracing.CPUSys.Interval", 10s)
    let      sys = percent(delta(system), delta(total))
    script   load = ema::decay(sys, 0.9)
    when     sys > config("AutoTracing.CPUSys.SysThreshold", 45%)
             and delta(sys) > config("AutoTracing.CPUSys.DeltaSysThreshold", 20%)
    capture  profile(scope: host, duration: config("AutoTracing.CPUSys.RunTracingToolTimeout", 10s)) as flamedata
    cooldown backoff(10m, factor: 2, max: 3h, reset: 3h) per container_id
    issues   config("AutoTracing.IssuesList")
    emit     now_sys = sys help "system cpu", deltasys = delta(sys) counter, flamedata
}
"#;

fn parse(text: &str) -> RuleFile {
    match parse_file("examples.hto", text) {
        Ok(file) => file,
        Err(diags) => panic!("unexpected diagnostics: {diags:#?}"),
    }
}

fn name(e: &Expr) -> &str {
    match &e.kind {
        ExprKind::Name(n) => n,
        other => panic!("not a name: {other:?}"),
    }
}

fn lit(e: &Expr) -> &Literal {
    match &e.kind {
        ExprKind::Literal(l) => l,
        other => panic!("not a literal: {other:?}"),
    }
}

fn call(e: &Expr) -> (&str, &[Arg]) {
    match &e.kind {
        ExprKind::Call(f, args) => (f.name.as_str(), args.as_slice()),
        other => panic!("not a call: {other:?}"),
    }
}

#[test]
fn all_examples_parse_in_order() {
    let file = parse(EXAMPLES);
    assert_eq!(file.path, "examples.hto");
    let names: Vec<_> = file
        .rules
        .iter()
        .map(|r| (r.kind, r.name.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (RuleKind::Event, "softirq_tracing"),
            (RuleKind::Metric, "runqlat"),
            (RuleKind::Metric, "memory_vmstat"),
            (RuleKind::Autotrace, "cpusys"),
        ]
    );
}

#[test]
fn softirq_event_clauses() {
    let file = parse(EXAMPLES);
    let r = &file.rules[0];
    assert_eq!(r.source.name.name, "bpf.softirq_off");
    assert!(r.source.every.is_none());
    assert_eq!(r.params.len(), 1);
    let p = &r.params[0];
    assert_eq!(
        (p.kind, p.name.name.as_str()),
        (BindingKind::Param, "threshold")
    );
    let (f, args) = call(&p.value);
    assert_eq!(f, "config");
    assert_eq!(
        lit(&args[0].value),
        &Literal::Str("EventTracing.Softirq.DisabledThreshold".into())
    );
    assert_eq!(lit(&args[1].value), &Literal::Int(10_000_000, Dim::Time));

    // offtime > threshold and comm !~ "..."  =>  And(Gt(..), NotMatch(..))
    let filter = r.filter.as_ref().expect("where");
    let ExprKind::Logic(LogicOp::And, operands) = &filter.kind else {
        panic!("{filter:?}")
    };
    let [l, rr] = &operands[..] else {
        panic!("{operands:?}")
    };
    let ExprKind::Binary(BinOp::Gt, a, b) = &l.kind else {
        panic!()
    };
    assert_eq!((name(a), name(b)), ("offtime", "threshold"));
    let ExprKind::Binary(BinOp::NotMatch, c, re) = &rr.kind else {
        panic!()
    };
    assert_eq!(name(c), "comm");
    assert_eq!(lit(re), &Literal::Str("^(ksoftirqd|swapper)".into()));

    assert_eq!(r.captures.len(), 1);
    assert_eq!(r.captures[0].name.name, "stack");
    assert_eq!(name(&r.captures[0].args[0].value), "kernel");
    assert!(r.captures[0].alias.is_none());

    let cd = r.cooldown.as_ref().expect("cooldown");
    assert_eq!(cd.policy, CooldownPolicy::None);
    assert!(cd.per.is_none());

    let lim = r.limit.as_ref().expect("limit");
    assert_eq!(lit(&lim.rate), &Literal::Int(100, Dim::Count));
    assert_eq!(lit(&lim.per), &Literal::Int(1_000_000_000, Dim::Time));
    assert_eq!(
        lit(lim.burst.as_ref().expect("burst")),
        &Literal::Int(200, Dim::Count)
    );

    let emitted: Vec<&str> = r
        .emits
        .iter()
        .map(|e| match e {
            EmitItem::Named {
                name,
                value: None,
                metric_type: None,
                help: None,
                ..
            } => name.name.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        emitted,
        ["offtime", "threshold", "comm", "pid", "cpu", "now", "stack"]
    );
}

#[test]
fn runqlat_metric_clauses() {
    let file = parse(EXAMPLES);
    let r = &file.rules[1];
    assert_eq!(
        r.help.as_ref().map(|h| h.0.as_str()),
        Some("cpu run queue latency")
    );
    let scope: Vec<_> = r.scope.iter().flatten().map(|i| i.name.as_str()).collect();
    assert_eq!(scope, ["host", "container"]);
    assert!(r.labels.is_none());
    let h = &r.histograms[0];
    assert_eq!(h.field.name, "latency");
    let bounds: Vec<_> = h.bounds.iter().map(lit).cloned().collect();
    assert_eq!(
        bounds,
        [
            Literal::Int(10_000_000, Dim::Time),
            Literal::Int(20_000_000, Dim::Time),
            Literal::Int(50_000_000, Dim::Time)
        ]
    );
    assert_eq!(h.label.as_ref().map(|l| l.name.as_str()), Some("zone"));
}

#[test]
fn vmstat_emit_all_fields() {
    let file = parse(EXAMPLES);
    let r = &file.rules[2];
    assert_eq!(r.source.name.name, "cgroup.memory_stat");
    assert_eq!(
        lit(r.source.every.as_ref().expect("every")),
        &Literal::Int(10_000_000_000, Dim::Time)
    );
    let [EmitItem::AllFields {
        include: Some(inc),
        exclude: Some(exc),
        metric_type,
        ..
    }] = r.emits.as_slice()
    else {
        panic!("{:?}", r.emits)
    };
    assert_eq!(call(inc).0, "config");
    let ExprKind::List(items) = &exc.kind else {
        panic!()
    };
    assert_eq!(lit(&items[0]), &Literal::Str("^total_".into()));
    assert_eq!(*metric_type, Some(MetricType::Gauge));
}

#[test]
fn cpusys_autotrace_clauses() {
    let file = parse(EXAMPLES);
    let r = &file.rules[3];
    assert_eq!(call(r.source.every.as_ref().expect("every")).0, "config");
    assert_eq!(r.lets.len(), 2);
    assert_eq!(r.lets[0].kind, BindingKind::Let);
    assert_eq!(call(&r.lets[0].value).0, "percent");
    let script = &r.lets[1];
    assert_eq!(
        (script.kind, script.name.name.as_str()),
        (BindingKind::Script, "load")
    );
    let (f, args) = call(&script.value);
    assert_eq!(f, "ema::decay");
    assert_eq!(name(&args[0].value), "sys");
    assert_eq!(lit(&args[1].value), &Literal::Float(0.9, Dim::Count));

    // The trigger spans two lines.
    let when = r.trigger.as_ref().expect("when");
    let ExprKind::Logic(LogicOp::And, operands) = &when.kind else {
        panic!()
    };
    let [l, rr] = &operands[..] else {
        panic!("{operands:?}")
    };
    let ExprKind::Binary(BinOp::Gt, _, t1) = &l.kind else {
        panic!()
    };
    assert_eq!(lit(&call(t1).1[1].value), &Literal::Int(45, Dim::Percent));
    let ExprKind::Binary(BinOp::Gt, d, _) = &rr.kind else {
        panic!()
    };
    assert_eq!(call(d).0, "delta");
    assert_eq!(rr.span.line, when.span.line + 1);

    let cap = &r.captures[0];
    assert_eq!(cap.name.name, "profile");
    let arg_names: Vec<_> = cap
        .args
        .iter()
        .map(|a| a.name.as_ref().map(|n| n.name.as_str()))
        .collect();
    assert_eq!(arg_names, [Some("scope"), Some("duration")]);
    assert_eq!(
        cap.alias.as_ref().map(|a| a.name.as_str()),
        Some("flamedata")
    );

    let cd = r.cooldown.as_ref().expect("cooldown");
    let CooldownPolicy::Backoff(args) = &cd.policy else {
        panic!()
    };
    assert_eq!(
        lit(&args[0].value),
        &Literal::Int(600_000_000_000, Dim::Time)
    );
    assert!(args[0].name.is_none());
    assert_eq!(args[2].name.as_ref().map(|n| n.name.as_str()), Some("max"));
    assert_eq!(
        lit(&args[2].value),
        &Literal::Int(3 * 3_600_000_000_000, Dim::Time)
    );
    let per: Vec<_> = cd.per.iter().flatten().map(|i| i.name.as_str()).collect();
    assert_eq!(per, ["container_id"]);
    assert_eq!(call(r.issues.as_ref().expect("issues")).0, "config");

    let [EmitItem::Named {
        name: n0,
        value: Some(v0),
        help: h0,
        metric_type: None,
        ..
    }, EmitItem::Named {
        name: n1,
        value: Some(v1),
        metric_type: t1,
        help: None,
        ..
    }, EmitItem::Named {
        name: n2,
        value: None,
        ..
    }] = r.emits.as_slice()
    else {
        panic!("{:?}", r.emits)
    };
    assert_eq!(
        (n0.name.as_str(), name(v0), h0.as_deref()),
        ("now_sys", "sys", Some("system cpu"))
    );
    assert_eq!(
        (n1.name.as_str(), call(v1).0, *t1),
        ("deltasys", "delta", Some(MetricType::Counter))
    );
    assert_eq!(n2.name, "flamedata");
}
