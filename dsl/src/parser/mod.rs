//! The `.hto` parser: pest grammar (`grammar.pest`) → [`RuleFile`] with spans on every node.
//!
//! Syntax errors stop the parse at the first one; semantic problems found while building the
//! tree (unknown unit, repeated clause, missing `source`) are collected so that one run
//! reports all of them.

mod context;
mod cursor;
mod expr;
mod literal;
mod rules;
mod syntax_error;

use crate::ast::RuleFile;
use crate::diag::Diagnostic;
use context::Ctx;
use pest::Parser;
pub use syntax_error::KEYWORDS;

/// The pest parser generated from `grammar.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct HtoParser;

/// Deepest bracket nesting accepted, so that recursion over the input stays bounded.
const MAX_NESTING: usize = 64;

/// Parses the rule file `text`, read from `path` (used in diagnostics).
pub fn parse_file(path: &str, text: &str) -> Result<RuleFile, Vec<Diagnostic>> {
    let ctx = Ctx::new(path, text);
    if let Some(diag) = syntax_error::check_nesting(&ctx, MAX_NESTING) {
        return Err(vec![diag]);
    }
    let pairs = match HtoParser::parse(Rule::hto_file, text) {
        Ok(pairs) => pairs,
        Err(err) => return Err(vec![syntax_error::translate(&ctx, &err)]),
    };
    let rules = rules::build_file(&ctx, pairs);
    let diags = ctx.into_diags();
    if diags.is_empty() {
        Ok(RuleFile {
            path: path.to_string(),
            rules,
        })
    } else {
        Err(diags)
    }
}
