//! Semantic analysis of parsed rule files against the catalog: names, units, types, and what
//! each kind of rule may contain. Every problem is a [`Diagnostic`] with a stable code.

mod actions;
mod call;
mod ctx;
pub mod dims;
mod env;
mod expr;
mod metric;
pub mod pattern;
mod rule;
mod show;
mod ty;

pub use ty::Ty;

use crate::ast::{RuleFile, Span};
use crate::catalog::Catalog;
use crate::diag::Diagnostic;
use std::collections::BTreeMap;
use std::collections::HashMap;

/// The label every per-container sample carries.
pub const CONTAINER_ID: &str = "container_id";

/// What the checker inferred about one rule, for the compiler and evaluator.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTypes {
    /// Type of each param.
    pub params: BTreeMap<String, Ty>,
    /// Type of each let and script binding.
    pub lets: BTreeMap<String, Ty>,
    /// Type of each record field a capture adds.
    pub captured: BTreeMap<String, Ty>,
}

/// Checks every rule of `files` against `catalog`; errors and warnings sorted by place.
pub fn check(files: &[RuleFile], catalog: &Catalog) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut first_seen: HashMap<&str, (&str, Span)> = HashMap::new();
    for file in files {
        for rule in &file.rules {
            let name = rule.name.name.as_str();
            match first_seen.get(name) {
                Some((path, span)) => diags.push(
                    Diagnostic::error(
                        "duplicate-rule",
                        &file.path,
                        rule.name.span,
                        format!("rule `{name}` is defined twice"),
                    )
                    .with_label("second definition")
                    .with_help(format!(
                        "first defined at {path}:{}:{}; rule names must be unique",
                        span.line, span.col
                    )),
                ),
                None => {
                    first_seen.insert(name, (file.path.as_str(), rule.name.span));
                }
            }
        }
        let (_, file_diags) = infer_file(file, catalog);
        diags.extend(file_diags);
    }
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
    let mut ctx = ctx::Ctx::new(catalog, &file.path);
    let mut types = BTreeMap::new();
    for rule in &file.rules {
        let env = rule::check_rule(&mut ctx, rule);
        types.insert(
            rule.name.name.clone(),
            RuleTypes {
                params: env.params,
                lets: env.lets,
                captured: env.captured,
            },
        );
    }
    (types, ctx.diags)
}
