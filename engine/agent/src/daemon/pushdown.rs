//! Kernel pushdown: conditions of `where` clauses and `limit` clauses that a template can
//! evaluate itself, turned into the template's tunables.
//!
//! A tunable is set only when every rule reading the template constrains it, and then to the
//! loosest value among them: the kernel emits a superset and each rule still filters exactly
//! in user space. Templates that can keep per-container histograms do so only when a rule
//! reading them may produce container series.

use huatuo_bpf::TemplateSchema;
use huatuo_dsl::ast::{BinOp, BindingKind, Expr, ExprKind, Literal, LogicOp, Rule, RuleFile, UnOp};
use huatuo_dsl::source::ConfigValues;
use huatuo_dsl::value::Value;
use std::collections::BTreeMap;

/// Tunables per template (folder name) per global variable.
pub type Tunables = BTreeMap<String, BTreeMap<String, u64>>;

fn op_text(op: BinOp) -> Option<&'static str> {
    match op {
        BinOp::Gt => Some(">"),
        BinOp::Ge => Some(">="),
        BinOp::Eq => Some("=="),
        BinOp::Ne => Some("!="),
        _ => None,
    }
}

fn conjuncts<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &expr.kind {
        ExprKind::Logic(LogicOp::And, operands) => {
            for operand in operands {
                conjuncts(operand, out);
            }
        }
        _ => out.push(expr),
    }
}

/// The value of a constant expression: a literal, a param bound to one, or `config(k, d)`.
fn constant(expr: &Expr, rule: &Rule, config: &dyn ConfigValues) -> Option<f64> {
    match &expr.kind {
        ExprKind::Literal(Literal::Int(v, _)) => Some(*v as f64),
        ExprKind::Literal(Literal::Float(v, _)) => Some(*v),
        ExprKind::Name(name) => rule
            .params
            .iter()
            .find(|b| b.kind == BindingKind::Param && b.name.name == *name)
            .and_then(|b| constant(&b.value, rule, config)),
        ExprKind::Call(name, args) if name.name == "config" => {
            let key = match &args.first()?.value.kind {
                ExprKind::Literal(Literal::Str(key)) => key,
                _ => return None,
            };
            match config.value(key) {
                Some(Value::Int(v)) => Some(v as f64),
                Some(Value::Float(v)) => Some(v),
                _ => constant(&args.get(1)?.value, rule, config),
            }
        }
        _ => None,
    }
}

/// The truth of a constant expression: a boolean literal, a param bound to one, or a boolean
/// `config(k, d)`.
fn constant_bool(expr: &Expr, rule: &Rule, config: &dyn ConfigValues) -> Option<bool> {
    match &expr.kind {
        ExprKind::Literal(Literal::Bool(v)) => Some(*v),
        ExprKind::Name(name) => rule
            .params
            .iter()
            .find(|b| b.kind == BindingKind::Param && b.name.name == *name)
            .and_then(|b| constant_bool(&b.value, rule, config)),
        ExprKind::Call(name, args) if name.name == "config" => {
            let key = match &args.first()?.value.kind {
                ExprKind::Literal(Literal::Str(key)) => key,
                _ => return None,
            };
            match config.value(key) {
                Some(Value::Bool(v)) => Some(v),
                _ => constant_bool(&args.get(1)?.value, rule, config),
            }
        }
        _ => None,
    }
}

/// Whether `expr` is the boolean field `field` itself, or `c and field` with every `c`
/// constantly true: the terms a `not` turns into "never `field`".
fn is_field_when_on(expr: &Expr, field: &str, rule: &Rule, config: &dyn ConfigValues) -> bool {
    let mut parts = Vec::new();
    conjuncts(expr, &mut parts);
    parts
        .iter()
        .any(|p| matches!(&p.kind, ExprKind::Name(name) if name == field))
        && parts.iter().all(|p| match &p.kind {
            ExprKind::Name(name) if name == field => true,
            _ => constant_bool(p, rule, config) == Some(true),
        })
}

/// The bound a rule's filter puts on `field` with `op`, when it has one. Op `not` (a boolean
/// field the rule never wants true) gives 1 for a conjunct `not field` or
/// `not (c and field)` with `c` constantly true.
fn rule_bound(rule: &Rule, field: &str, op: &str, config: &dyn ConfigValues) -> Option<f64> {
    let mut parts = Vec::new();
    conjuncts(rule.filter.as_ref()?, &mut parts);
    if op == "not" {
        return parts.iter().find_map(|part| match &part.kind {
            ExprKind::Unary(UnOp::Not, inner) if is_field_when_on(inner, field, rule, config) => {
                Some(1.0)
            }
            _ => None,
        });
    }
    parts.iter().find_map(|part| match &part.kind {
        ExprKind::Binary(bin, lhs, rhs) if op_text(*bin) == Some(op) => match &lhs.kind {
            ExprKind::Name(name) if name == field => constant(rhs, rule, config),
            _ => None,
        },
        _ => None,
    })
}

/// Events per second a rule's `limit` allows, and its burst.
fn rule_limit(rule: &Rule, config: &dyn ConfigValues) -> Option<(f64, f64)> {
    let limit = rule.limit.as_ref()?;
    let rate = constant(&limit.rate, rule, config)?;
    let per_ns = constant(&limit.per, rule, config)?;
    let burst = limit
        .burst
        .as_ref()
        .and_then(|b| constant(b, rule, config))
        .unwrap_or(rate);
    (per_ns > 0.0).then(|| (rate * 1e9 / per_ns, burst))
}

/// Global of templates that can keep per-container histograms at an extra cost per event.
const PER_CGROUP: &str = "per_cgroup";

/// Whether a rule may produce container series (an explicit `scope` without `container`
/// keeps it host-only).
fn wants_containers(rule: &Rule) -> bool {
    rule.scope
        .as_ref()
        .is_none_or(|scope| scope.iter().any(|s| s.name == "container"))
}

/// Computes the tunables of the compiled-in templates named in `sources` (the BPF sources a
/// plan reads).
pub fn tunables_of_sources(
    files: &[RuleFile],
    sources: &[String],
    config: &dyn ConfigValues,
) -> Tunables {
    let schemas: Vec<TemplateSchema> = huatuo_bpf::template_schemas()
        .0
        .into_iter()
        .map(|(_, schema)| schema)
        .filter(|s| sources.contains(&s.source.name))
        .collect();
    tunables(files, &schemas, config)
}

/// Computes the tunables of every template the rules read.
pub fn tunables(
    files: &[RuleFile],
    templates: &[TemplateSchema],
    config: &dyn ConfigValues,
) -> Tunables {
    let mut out = Tunables::new();
    for template in templates {
        let schema = &template.source;
        let rules: Vec<&Rule> = files
            .iter()
            .flat_map(|f| f.rules.iter())
            .filter(|r| r.source.name.name == schema.name)
            .collect();
        if rules.is_empty() {
            continue;
        }
        let folder = schema.name.trim_start_matches("bpf.").to_string();
        let mut values = BTreeMap::new();
        for tunable in &schema.tunables {
            let bounds: Option<Vec<f64>> = rules
                .iter()
                .map(|r| rule_bound(r, &tunable.field, &tunable.op, config))
                .collect();
            let loosest = match tunable.op.as_str() {
                ">" | ">=" => bounds.and_then(|b| b.into_iter().reduce(f64::min)),
                _ => bounds
                    .filter(|b| b.windows(2).all(|w| w[0] == w[1]))
                    .and_then(|b| b.first().copied()),
            };
            if let Some(value) = loosest.filter(|v| *v >= 0.0) {
                values.insert(tunable.name.clone(), value as u64);
            }
        }
        let limits: Option<Vec<(f64, f64)>> = rules.iter().map(|r| rule_limit(r, config)).collect();
        if let Some(limits) = limits {
            let rate: f64 = limits.iter().map(|l| l.0).fold(0.0, f64::max);
            let burst: f64 = limits.iter().map(|l| l.1).fold(0.0, f64::max);
            if rate > 0.0 {
                values.insert("rate_per_sec".into(), rate.ceil() as u64);
                values.insert("burst".into(), burst.ceil().max(1.0) as u64);
            }
        }
        if template.global.iter().any(|g| g.name == PER_CGROUP) {
            let per_cgroup = rules.iter().any(|r| wants_containers(r));
            values.insert(PER_CGROUP.into(), u64::from(per_cgroup));
        }
        out.insert(folder, values);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunables_for(text: &str) -> Tunables {
        let file = huatuo_dsl::parser::parse_file("t.hto", text).expect("parses");
        let templates: Vec<TemplateSchema> = huatuo_bpf::template_schemas()
            .0
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        tunables(&[file], &templates, &huatuo_config::Config::default())
    }

    #[test]
    fn the_loosest_threshold_and_limit_of_all_rules_go_to_the_kernel() {
        let t = tunables_for(
            r#"
event a { source bpf.softirq_off where offtime > 20ms limit 10 per 1s emit offtime }
event b { source bpf.softirq_off param t = config("EventTracing.Softirq.DisabledThreshold", 10ms)
          where comm != "x" and offtime > t limit 100 per 2s burst 7 emit offtime }
"#,
        );
        let knobs = &t["softirq_off"];
        // DisabledThreshold defaults to 10 ms; the looser of 20 ms and 10 ms wins.
        assert_eq!(knobs.get("threshold_ns"), Some(&10_000_000));
        assert_eq!(knobs.get("rate_per_sec"), Some(&50));
        assert_eq!(knobs.get("burst"), Some(&10));
    }

    #[test]
    fn a_rule_without_the_condition_keeps_the_kernel_unfiltered() {
        let t = tunables_for(
            r#"
event a { source bpf.softirq_off where offtime > 20ms emit offtime }
event b { source bpf.softirq_off emit offtime }
"#,
        );
        assert_eq!(t["softirq_off"].get("threshold_ns"), None);
        assert_eq!(t["softirq_off"].get("rate_per_sec"), None);
    }

    #[test]
    fn host_netns_packets_are_skipped_in_the_kernel_only_when_every_rule_skips_them() {
        // The shipped rule form: `not (skip_host and host_netns)`, skip_host from the config.
        let rule = |name: &str, skip: &str| {
            format!(
                "event {name} {{ source bpf.netrx_latency param skip_host = {skip} \
                 where latency > 5ms and not (skip_host and host_netns) emit latency }}\n"
            )
        };
        let on = tunables_for(&rule("a", "true"));
        assert_eq!(on["netrx_latency"].get("skip_host_netns"), Some(&1));
        let off = tunables_for(&rule("a", "false"));
        assert_eq!(off["netrx_latency"].get("skip_host_netns"), None);
        let plain =
            tunables_for("event a { source bpf.netrx_latency where not host_netns emit latency }");
        assert_eq!(plain["netrx_latency"].get("skip_host_netns"), Some(&1));
        // One rule wanting host packets keeps them all.
        let mixed = tunables_for(&format!("{}{}", rule("a", "true"), rule("b", "false")));
        assert_eq!(mixed["netrx_latency"].get("skip_host_netns"), None);
        // `not (host_netns or x)` is not the same condition: nothing is pushed.
        let other = tunables_for(
            "event a { source bpf.netrx_latency where not (host_netns or latency > 1ms) emit latency }",
        );
        assert_eq!(other["netrx_latency"].get("skip_host_netns"), None);
        // The default config (ExcludedHostNetnamespace = true) with the shipped rule text.
        let shipped = tunables_for(
            r#"event a { source bpf.netrx_latency
                 param skip_host = config("EventTracing.NetRxLatency.ExcludedHostNetnamespace", true)
                 where not (skip_host and host_netns) emit latency }"#,
        );
        assert_eq!(shipped["netrx_latency"].get("skip_host_netns"), Some(&1));
    }

    #[test]
    fn per_container_histograms_only_when_a_rule_wants_container_series() {
        let host_only = tunables_for(
            "metric runqlat { source bpf.runqlat scope host histogram latency zones [10ms] }",
        );
        assert_eq!(host_only["runqlat"].get("per_cgroup"), Some(&0));
        let both = tunables_for(
            "metric runqlat { source bpf.runqlat scope host, container histogram latency zones [10ms] }",
        );
        assert_eq!(both["runqlat"].get("per_cgroup"), Some(&1));
    }
}
