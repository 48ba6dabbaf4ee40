//! Regex literals: compiled once by the checker with size limits, so a hostile pattern is a
//! diagnostic and not a memory blow-up at run time.

use super::ctx::Ctx;
use super::ty::Ty;
use crate::ast::{Expr, ExprKind, Literal};
use regex::{Regex, RegexBuilder};

/// Upper bound of a compiled program and of the lazy DFA cache, per regex.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles `pattern` the way the evaluator must, with the same limits.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Checks a regex literal, reporting `bad-regex` when it does not compile.
pub fn check_literal(ctx: &mut Ctx, pattern: &str, e: &Expr) {
    if let Err(err) = compile(pattern) {
        let message = format!("invalid regex {pattern:?}");
        ctx.push(
            ctx.error("bad-regex", e.span, message)
                .with_label("this regex does not compile")
                .with_help(err.to_string()),
        );
    }
}

/// Checks an expression that must be a regex or a list of regexes (`matches_any`, `emit *
/// include`): literal patterns must compile, other expressions must be strings, lists of
/// strings, or structured config (checked when the evaluator loads it).
pub fn check_regexes(ctx: &mut Ctx, e: &Expr, ty: &Ty) {
    match &e.kind {
        ExprKind::Literal(Literal::Str(p)) => check_literal(ctx, p, e),
        ExprKind::List(items) => {
            for item in items {
                if let ExprKind::Literal(Literal::Str(p)) = &item.kind {
                    check_literal(ctx, p, item);
                }
            }
        }
        _ => {}
    }
    let fits = match ty {
        Ty::Str | Ty::Json | Ty::Unknown => true,
        Ty::List(inner) => matches!(**inner, Ty::Str | Ty::Unknown),
        _ => false,
    };
    if !fits {
        let message = format!("expected a regex or a list of regexes, found {ty}");
        ctx.push(
            ctx.error("type-mismatch", e.span, message)
                .with_label("not a regex")
                .with_help("write a string such as \"^eth\" or a list [\"^eth\", \"^bond\"]"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_patterns_are_rejected() {
        assert!(compile("^(ksoftirqd|swapper)").is_ok());
        assert!(compile("(").is_err());
        assert!(compile("\\w{1000}{1000}").is_err());
    }
}
