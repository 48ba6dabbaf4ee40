//! Semantic analysis of parsed rule files against the catalog: names, units, types, and what
//! each kind of rule may contain. Every problem is a [`Diagnostic`] with a stable code.

mod actions;
mod call;
mod ctx;
pub mod dims;
mod env;
mod expr;
mod fallback;
mod metric;
pub mod pattern;
mod rule;
mod show;
mod ty;

pub use ty::Ty;

use crate::ast::{RuleFile, RuleKind, Span};
use crate::catalog::Catalog;
use crate::diag::Diagnostic;
use std::collections::BTreeMap;
use std::collections::HashMap;

pub use crate::catalog::CONTAINER_ID;

/// Every diagnostic code the checker emits, with what it means, for the rule reference.
pub const CODES: &[(&str, &str)] = &[
    (
        "arity",
        "wrong number of arguments, an unknown or repeated named argument",
    ),
    (
        "bad-choice",
        "a capture argument that is not one of its allowed words",
    ),
    (
        "bad-fallback",
        "a `fallback for` naming itself, another fallback, a rule of the same source, a rule that already has a fallback, or a rule whose records or families differ",
    ),
    (
        "bad-histogram",
        "histogram bounds missing or not strictly increasing",
    ),
    (
        "bad-regex",
        "a regex literal that does not compile within the size limits",
    ),
    (
        "bad-scope",
        "a scope other than host/container, container on a host-only source, or host on a per-container source",
    ),
    (
        "capture-unsupported",
        "a source-specific capture the rule's source cannot supply",
    ),
    (
        "duplicate-binding",
        "a param, let or script bound twice in one rule",
    ),
    ("duplicate-emit", "the same output name emitted twice"),
    (
        "empty-file",
        "warning: a rule file without rules (empty, or only comments)",
    ),
    (
        "duplicate-rule",
        "two rules with one name across the rule set",
    ),
    ("every-on-stream", "a poll interval on a stream source"),
    (
        "missing-output",
        "a rule without emit (or histogram for metrics)",
    ),
    (
        "not-a-script",
        "a `script` binding that does not call file::function",
    ),
    (
        "not-constant",
        "a field, binding or stateful call in a value computed once at load",
    ),
    ("not-for-kind", "a clause this kind of rule does not take"),
    (
        "shadowing",
        "warning: a binding hides a field of the source or `now`",
    ),
    (
        "stateful-in-where",
        "a let binding or stateful call in the stateless `where` filter",
    ),
    (
        "too-deep",
        "an expression nested deeper than the checker follows",
    ),
    (
        "type-mismatch",
        "strings vs numbers, lists or histograms where a single value is needed",
    ),
    (
        "unit-mismatch",
        "operands or arguments of different dimensions (`offtime > 45%`)",
    ),
    ("unknown-capture", "a capture action not in the catalog"),
    (
        "unknown-config-key",
        "a config(...) key huatuo-bamai.conf does not have",
    ),
    (
        "unknown-function",
        "a call of a function that is not a builtin",
    ),
    ("unknown-label", "a label the source does not have"),
    (
        "unknown-rule",
        "a `fallback for` naming no rule of its kind in the rule set",
    ),
    (
        "unknown-name",
        "a name that is not a field, param, binding or capture result here",
    ),
    (
        "unknown-script-fn",
        "a file::function call not registered from stdlib/",
    ),
    ("unknown-source", "a source not in the catalog"),
];

/// What the checker inferred about one rule, for the compiler and evaluator.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTypes {
    /// Type of each param.
    pub params: BTreeMap<String, Ty>,
    /// Type of each let and script binding.
    pub lets: BTreeMap<String, Ty>,
    /// Type of each record field a capture adds.
    pub captured: BTreeMap<String, Ty>,
    /// Type of each named `emit` item, in order.
    pub emitted: Vec<(String, Ty)>,
}

/// Checks every rule of `files` against `catalog`; errors and warnings sorted by place.
pub fn check(files: &[RuleFile], catalog: &Catalog) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    // Metric names are family prefixes, event and autotrace names are tracer names: a metric
    // may share its name with the event it counts (`softlockup` and `softlockup_total`).
    let mut first_seen: HashMap<(bool, &str), (&str, Span)> = HashMap::new();
    let mut checked = Vec::new();
    for file in files {
        if file.rules.is_empty() {
            let start = Span {
                line: 1,
                col: 1,
                ..Span::default()
            };
            diags.push(
                Diagnostic::warning("empty-file", &file.path, start, "this file has no rules")
                    .with_help("a rule file holds `metric`, `event` or `autotrace` blocks"),
            );
        }
        for rule in &file.rules {
            let name = rule.name.name.as_str();
            let key = (rule.kind == RuleKind::Metric, name);
            match first_seen.get(&key) {
                Some((path, span)) => diags.push(
                    Diagnostic::error(
                        "duplicate-rule",
                        &file.path,
                        rule.name.span,
                        format!("rule `{name}` is defined twice"),
                    )
                    .with_label("second definition")
                    .with_help(format!(
                        "first defined at {path}:{}:{}; metric names must be unique, and so must event and autotrace names",
                        span.line, span.col
                    )),
                ),
                None => {
                    first_seen.insert(key, (file.path.as_str(), rule.name.span));
                }
            }
        }
        let (types, file_diags) = infer_rules(file, catalog);
        diags.extend(file_diags);
        checked.extend(
            file.rules
                .iter()
                .zip(types)
                .map(|(rule, types)| fallback::Checked {
                    path: &file.path,
                    rule,
                    types,
                }),
        );
    }
    diags.extend(fallback::check_fallbacks(&checked));
    diags.sort_by(|a, b| {
        (a.path.as_str(), a.span.line, a.span.col).cmp(&(b.path.as_str(), b.span.line, b.span.col))
    });
    diags
}

/// Checks one file and returns the inferred types of each rule, by rule name, with the
/// file's diagnostics (unsorted, without cross-file checks).
pub fn infer_file(
    file: &RuleFile,
    catalog: &Catalog,
) -> (BTreeMap<String, RuleTypes>, Vec<Diagnostic>) {
    let (types, diags) = infer_rules(file, catalog);
    let named = file
        .rules
        .iter()
        .zip(types)
        .map(|(rule, types)| (rule.name.name.clone(), types))
        .collect();
    (named, diags)
}

/// Checks one file; the inferred types of each rule in file order, with the diagnostics.
fn infer_rules(file: &RuleFile, catalog: &Catalog) -> (Vec<RuleTypes>, Vec<Diagnostic>) {
    let mut ctx = ctx::Ctx::new(catalog, &file.path);
    let types = file
        .rules
        .iter()
        .map(|rule| {
            let env = rule::check_rule(&mut ctx, rule);
            RuleTypes {
                params: env.params,
                lets: env.lets,
                captured: env.captured,
                emitted: env.emitted,
            }
        })
        .collect();
    (types, ctx.diags)
}

#[cfg(test)]
mod tests {
    use super::CODES;

    const SOURCES: &[&str] = &[
        include_str!("actions.rs"),
        include_str!("call.rs"),
        include_str!("expr.rs"),
        include_str!("fallback.rs"),
        include_str!("metric.rs"),
        include_str!("mod.rs"),
        include_str!("pattern.rs"),
        include_str!("rule.rs"),
    ];

    #[test]
    fn every_code_is_documented_and_used() {
        for (code, meaning) in CODES {
            let quoted = format!("\"{code}\"");
            let uses = SOURCES
                .iter()
                .map(|s| s.matches(&quoted).count())
                .sum::<usize>();
            assert!(uses >= 2, "{code} is documented but never emitted");
            assert!(!meaning.is_empty());
        }
        let kebab = regex::Regex::new(r#""([a-z]+(?:-[a-z]+)+)""#).unwrap();
        for source in SOURCES {
            for found in kebab.captures_iter(source) {
                let code = &found[1];
                assert!(
                    CODES.iter().any(|(c, _)| *c == code),
                    "{code} is not in CODES"
                );
            }
        }
        let mut sorted: Vec<_> = CODES.iter().map(|(c, _)| *c).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), CODES.len());
    }
}
