//! Short renderings of expressions for diagnostics (`offtime`, `45%`, `delta(...)`).

use crate::ast::{Expr, ExprKind, Literal, UnOp};
use crate::units::{show_quantity, Dim};

/// How an operator would have written a literal: the value in the largest unit that keeps
/// it whole (`10ms`, `45%`, `2GiB`).
pub fn literal(lit: &Literal) -> String {
    match lit {
        Literal::Int(value, dim) => show_quantity(*value as f64, *dim),
        Literal::Float(value, dim) => show_quantity(*value, *dim),
        Literal::Str(s) => format!("{s:?}"),
        Literal::Bool(b) => b.to_string(),
    }
}

/// The expression as a short phrase: a name or literal as written, a call by its name.
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Literal(lit) => literal(lit),
        ExprKind::Name(name) => name.clone(),
        ExprKind::Call(name, _) => format!("{}(...)", name.name),
        ExprKind::Unary(UnOp::Neg, inner) => match &inner.kind {
            ExprKind::Literal(_) | ExprKind::Name(_) => format!("-{}", expr(inner)),
            _ => "this expression".to_string(),
        },
        _ => "this expression".to_string(),
    }
}

/// The suffix a hint suggests for a unitless number meant to have this dimension.
pub fn suggested_suffix(dim: Dim) -> &'static str {
    match dim {
        Dim::Count => "",
        Dim::Time => "ms",
        Dim::Bytes => "MiB",
        Dim::Percent => "%",
        Dim::BytesPerSec => "MB/s",
        Dim::PerSec => "/s",
    }
}

/// The plain number a unitless literal holds (through a leading minus), if `e` is one.
pub fn unitless_number(e: &Expr) -> Option<f64> {
    let mut sign = 1.0;
    let mut e = e;
    loop {
        match &e.kind {
            ExprKind::Literal(Literal::Int(v, Dim::Count)) => return Some(sign * *v as f64),
            ExprKind::Literal(Literal::Float(v, Dim::Count)) => return Some(sign * *v),
            ExprKind::Unary(UnOp::Neg, inner) => {
                sign = -sign;
                e = inner;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_render_in_their_natural_unit() {
        assert_eq!(literal(&Literal::Int(10_000_000, Dim::Time)), "10ms");
        assert_eq!(literal(&Literal::Int(45, Dim::Percent)), "45%");
        assert_eq!(literal(&Literal::Int(2 << 30, Dim::Bytes)), "2GiB");
        assert_eq!(literal(&Literal::Int(0, Dim::Time)), "0ns");
        assert_eq!(literal(&Literal::Int(7, Dim::Count)), "7");
        assert_eq!(literal(&Literal::Str("a".into())), "\"a\"");
    }
}
