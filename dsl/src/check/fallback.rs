//! `fallback for RULE`: a rule that stands in for another where that rule's source is
//! unavailable (a kernel template that cannot attach), with that rule's name on its records
//! and families. Checked across the rule set: the named rule exists with the same kind, is
//! not itself a fallback and has no other one, reads another source, and both produce the
//! same output — the same record fields, or the same families with the same types and labels —
//! so a consumer cannot tell which of the two ran.

use super::ty::Ty;
use super::RuleTypes;
use crate::ast::{EmitItem, MetricType, Rule, RuleKind};
use crate::diag::{did_you_mean, Diagnostic};
use std::collections::{BTreeMap, HashMap};

/// One checked rule and what the checker inferred about it.
pub struct Checked<'a> {
    /// The file it is in.
    pub path: &'a str,
    /// The rule.
    pub rule: &'a Rule,
    /// Its inferred types.
    pub types: RuleTypes,
}

/// One output of a rule, for comparing a fallback with the rule it stands in for.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    /// A record field.
    Field(Ty),
    /// A metric family from a named emit.
    Family(Ty, MetricType),
    /// The zone families of a `histogram` clause.
    Histogram,
    /// `emit *`: whatever numeric fields the source has.
    AllFields,
}

/// What a consumer sees of a rule: its outputs by name, and for metrics the label and scope
/// clauses that shape the series.
#[derive(Debug, PartialEq)]
struct Shape {
    outputs: BTreeMap<String, Out>,
    labels: Option<Vec<String>>,
    scope: Option<Vec<String>>,
}

fn sorted_names(idents: &Option<Vec<crate::ast::Ident>>) -> Option<Vec<String>> {
    idents.as_ref().map(|ids| {
        let mut names: Vec<String> = ids.iter().map(|i| i.name.clone()).collect();
        names.sort();
        names
    })
}

fn shape(checked: &Checked) -> Shape {
    let rule = checked.rule;
    let types: HashMap<&str, &Ty> = checked
        .types
        .emitted
        .iter()
        .map(|(name, ty)| (name.as_str(), ty))
        .collect();
    let mut outputs = BTreeMap::new();
    for item in &rule.emits {
        match item {
            EmitItem::Named {
                name, metric_type, ..
            } => {
                let ty = types
                    .get(name.name.as_str())
                    .map_or(Ty::Unknown, |t| (*t).clone());
                let out = if rule.kind == RuleKind::Metric {
                    Out::Family(ty, metric_type.unwrap_or(MetricType::Gauge))
                } else {
                    Out::Field(ty)
                };
                outputs.insert(name.name.clone(), out);
            }
            EmitItem::AllFields { .. } => {
                outputs.insert("*".to_string(), Out::AllFields);
            }
        }
    }
    if rule.kind == RuleKind::Metric {
        for histogram in &rule.histograms {
            outputs.insert(histogram.field.name.clone(), Out::Histogram);
        }
    } else {
        for (name, ty) in &checked.types.captured {
            outputs.insert(name.clone(), Out::Field(ty.clone()));
        }
        if rule.issues.is_some() {
            outputs.insert("known_issue".to_string(), Out::Field(Ty::Str));
        }
    }
    Shape {
        outputs,
        labels: sorted_names(&rule.labels),
        scope: sorted_names(&rule.scope),
    }
}

/// Whether two inferred types can hold the same values (an unknown type fits any).
fn fits(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Unknown, _) | (_, Ty::Unknown) => true,
        (Ty::List(x), Ty::List(y)) => fits(x, y),
        _ => a == b,
    }
}

fn outputs_fit(a: &Out, b: &Out) -> bool {
    match (a, b) {
        (Out::Field(x), Out::Field(y)) => fits(x, y),
        (Out::Family(x, kx), Out::Family(y, ky)) => kx == ky && fits(x, y),
        _ => a == b,
    }
}

fn describe(out: &Out) -> String {
    match out {
        Out::Field(ty) => ty.to_string(),
        Out::Family(ty, MetricType::Counter) => format!("a counter of {ty}"),
        Out::Family(ty, MetricType::Gauge) => format!("a gauge of {ty}"),
        Out::Histogram => "histogram zones".to_string(),
        Out::AllFields => "every numeric field".to_string(),
    }
}

/// The differences between what `fallback` and `preferred` produce, one phrase each.
fn differences(fallback: &Shape, preferred: &Shape, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (field, want) in &preferred.outputs {
        match fallback.outputs.get(field) {
            None => out.push(format!("`{field}` is missing (`{name}` emits it)")),
            Some(got) if !outputs_fit(got, want) => out.push(format!(
                "`{field}` is {} here but {} in `{name}`",
                describe(got),
                describe(want)
            )),
            Some(_) => {}
        }
    }
    for field in fallback.outputs.keys() {
        if !preferred.outputs.contains_key(field) {
            out.push(format!("`{field}` is extra (`{name}` does not emit it)"));
        }
    }
    if fallback.labels != preferred.labels {
        out.push(format!("the `labels` clauses differ from `{name}`'s"));
    }
    if fallback.scope != preferred.scope {
        out.push(format!("the `scope` clauses differ from `{name}`'s"));
    }
    out
}

/// "a metric", "an event", "an autotrace".
fn article(kind: RuleKind) -> &'static str {
    match kind {
        RuleKind::Metric => "a metric",
        RuleKind::Event => "an event",
        RuleKind::Autotrace => "an autotrace",
    }
}

/// Every problem with the `fallback for` clauses of the rule set.
pub fn check_fallbacks(rules: &[Checked]) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    // The first rule of each (kind, name): later duplicates are reported by the caller.
    let mut by_name: HashMap<(RuleKind, &str), &Checked> = HashMap::new();
    for checked in rules {
        by_name
            .entry((checked.rule.kind, checked.rule.name.name.as_str()))
            .or_insert(checked);
    }
    let mut taken: HashMap<(RuleKind, &str), &Checked> = HashMap::new();
    for checked in rules {
        let rule = checked.rule;
        let Some(target) = &rule.fallback else {
            continue;
        };
        let kind = rule.kind.keyword();
        let error = |code: &'static str, message: String| {
            Diagnostic::error(code, checked.path, target.span, message)
        };
        if target.name == rule.name.name {
            diags.push(
                error(
                    "bad-fallback",
                    format!("rule `{}` cannot be its own fallback", rule.name.name),
                )
                .with_label("names this rule")
                .with_help("name the rule this one stands in for"),
            );
            continue;
        }
        let Some(preferred) = by_name.get(&(rule.kind, target.name.as_str())) else {
            let same_kind = rules
                .iter()
                .filter(|c| c.rule.kind == rule.kind && c.rule.fallback.is_none())
                .map(|c| c.rule.name.name.as_str());
            let other_kind = rules
                .iter()
                .find(|c| c.rule.kind != rule.kind && c.rule.name.name == target.name);
            let help = match (did_you_mean(&target.name, same_kind), other_kind) {
                (Some(close), _) => format!("did you mean `{close}`?"),
                (None, Some(other)) => format!(
                    "`{}` is {} rule; a fallback stands in for {} rule",
                    target.name,
                    article(other.rule.kind),
                    article(rule.kind)
                ),
                (None, None) => format!(
                    "a fallback names the {kind} rule it stands in for, defined in the same rule set"
                ),
            };
            diags.push(
                error(
                    "unknown-rule",
                    format!("no {kind} rule `{}` to stand in for", target.name),
                )
                .with_label("unknown rule")
                .with_help(help),
            );
            continue;
        };
        let place = |c: &Checked| {
            format!(
                "{}:{}:{}",
                c.path, c.rule.name.span.line, c.rule.name.span.col
            )
        };
        if preferred.rule.fallback.is_some() {
            diags.push(
                error(
                    "bad-fallback",
                    format!(
                        "`{}` is itself a fallback; name the rule it stands in for",
                        target.name
                    ),
                )
                .with_label("a fallback")
                .with_help(format!(
                    "`{}` is defined at {}",
                    target.name,
                    place(preferred)
                )),
            );
            continue;
        }
        if preferred.rule.source.name.name == rule.source.name.name {
            diags.push(
                error(
                    "bad-fallback",
                    format!(
                        "`{}` reads {} too: a fallback must read another source",
                        target.name, rule.source.name.name
                    ),
                )
                .with_label("same source")
                .with_help("a fallback runs where the other rule's source is unavailable"),
            );
            continue;
        }
        if let Some(first) = taken.get(&(rule.kind, target.name.as_str())) {
            diags.push(
                error(
                    "bad-fallback",
                    format!("`{}` already has a fallback", target.name),
                )
                .with_label("second fallback")
                .with_help(format!(
                    "`{}` at {} is its fallback; a rule has at most one",
                    first.rule.name.name,
                    place(first)
                )),
            );
            continue;
        }
        taken.insert((rule.kind, target.name.as_str()), checked);
        let found = differences(&shape(checked), &shape(preferred), &target.name);
        if !found.is_empty() {
            diags.push(
                error(
                    "bad-fallback",
                    format!(
                        "`{}` must produce what `{}` produces: {}",
                        rule.name.name,
                        target.name,
                        found.join("; ")
                    ),
                )
                .with_label("different output")
                .with_help(format!(
                    "the fallback's records carry `{}`'s name: emit the same fields (`{}` is at {})",
                    target.name,
                    target.name,
                    place(preferred)
                )),
            );
        }
    }
    diags
}
