//! Expressions: the flat `expr` pair folded by a Pratt parser, plus call arguments and names.

use super::context::Ctx;
use super::cursor::Cursor;
use super::{literal, Rule};
use crate::ast::{Arg, BinOp, Expr, ExprKind, Ident, Literal, LogicOp, Span, UnOp};
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::LazyLock;

/// Deepest operator tree accepted in one expression (keeps later recursion bounded).
const MAX_DEPTH: usize = 200;
/// Longest run of prefix operators (`not not - x`) accepted.
const MAX_PREFIX_RUN: usize = 32;

/// Operator precedence, loosest first.
static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::op_or, Assoc::Left))
        .op(Op::infix(Rule::op_and, Assoc::Left))
        .op(Op::prefix(Rule::op_not))
        .op(Op::infix(Rule::op_eq, Assoc::Left)
            | Op::infix(Rule::op_ne, Assoc::Left)
            | Op::infix(Rule::op_lt, Assoc::Left)
            | Op::infix(Rule::op_le, Assoc::Left)
            | Op::infix(Rule::op_gt, Assoc::Left)
            | Op::infix(Rule::op_ge, Assoc::Left)
            | Op::infix(Rule::op_match, Assoc::Left)
            | Op::infix(Rule::op_notmatch, Assoc::Left))
        .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
        .op(Op::infix(Rule::op_mul, Assoc::Left)
            | Op::infix(Rule::op_div, Assoc::Left)
            | Op::infix(Rule::op_rem, Assoc::Left))
        .op(Op::prefix(Rule::op_neg))
});

/// A partly folded expression.
struct Folded {
    expr: Expr,
    /// Height of the operator tree.
    depth: usize,
    /// A comparison not wrapped in parentheses (comparisons do not chain).
    bare_cmp: bool,
}

impl Folded {
    /// A leaf.
    fn leaf(expr: Expr) -> Self {
        Folded {
            expr,
            depth: 1,
            bare_cmp: false,
        }
    }
}

/// The expression of an `expr` pair; `None` after reporting why it cannot be built.
pub(super) fn expr(ctx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Option<Expr> {
    let pairs = pair.into_inner();
    if longest_prefix_run(pairs.clone()) > MAX_PREFIX_RUN {
        let span = ctx.pair_span(&pairs.peek()?);
        ctx.report(
            ctx.error("syntax", span, "too many prefix operators in a row")
                .with_label(format!("more than {MAX_PREFIX_RUN} in a row")),
        );
        return None;
    }
    fold(ctx, pairs).map(|f| f.expr)
}

/// The longest run of consecutive prefix operators among `pairs`.
fn longest_prefix_run(pairs: Pairs<'_, Rule>) -> usize {
    let mut run = 0;
    let mut longest = 0;
    for p in pairs {
        if matches!(p.as_rule(), Rule::op_not | Rule::op_neg) {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// Folds the operator/operand sequence of one `expr`.
fn fold(ctx: &Ctx<'_>, pairs: Pairs<'_, Rule>) -> Option<Folded> {
    PRATT
        .map_primary(|p| primary(ctx, p).map(Folded::leaf))
        .map_prefix(|op, rhs| {
            let rhs = rhs?;
            let un = if op.as_rule() == Rule::op_not {
                UnOp::Not
            } else {
                UnOp::Neg
            };
            let span = ctx.span_at(op.as_span().start(), rhs.expr.span.end);
            let expr = Expr {
                kind: ExprKind::Unary(un, Box::new(rhs.expr)),
                span,
            };
            deeper(ctx, expr, rhs.depth + 1, false)
        })
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (lhs?, rhs?);
            if let Some(logic) = logic_op(op.as_rule()) {
                return chain(ctx, logic, lhs, rhs);
            }
            let bin = binop(op.as_rule());
            let cmp = is_comparison(bin);
            if cmp && (lhs.bare_cmp || rhs.bare_cmp) {
                ctx.report(
                    ctx.error(
                        "syntax",
                        ctx.pair_span(&op),
                        "comparisons cannot be chained",
                    )
                    .with_label("second comparison")
                    .with_help("combine comparisons with `and`/`or`, or add parentheses"),
                );
            }
            let span = ctx.span_at(lhs.expr.span.start, rhs.expr.span.end);
            let depth = lhs.depth.max(rhs.depth) + 1;
            let expr = Expr {
                kind: ExprKind::Binary(bin, Box::new(lhs.expr), Box::new(rhs.expr)),
                span,
            };
            deeper(ctx, expr, depth, cmp)
        })
        .parse(pairs)
}

/// `lhs and rhs` (or `or`): appended to `lhs` when it is already a chain of the same operator,
/// so that `a and b and c ...` stays one flat node however long it is.
fn chain(ctx: &Ctx<'_>, op: LogicOp, lhs: Folded, rhs: Folded) -> Option<Folded> {
    // The chain starts where its first operand does: only the end moves.
    let span = Span {
        end: rhs.expr.span.end,
        ..lhs.expr.span
    };
    let (mut operands, depth) = match lhs.expr.kind {
        ExprKind::Logic(lop, operands) if lop == op => (operands, lhs.depth),
        kind => {
            let first = Expr {
                kind,
                span: lhs.expr.span,
            };
            (vec![first], lhs.depth + 1)
        }
    };
    let depth = depth.max(rhs.depth + 1);
    operands.push(rhs.expr);
    let expr = Expr {
        kind: ExprKind::Logic(op, operands),
        span,
    };
    deeper(ctx, expr, depth, false)
}

/// The logical operator of an infix pair, if it is one.
fn logic_op(rule: Rule) -> Option<LogicOp> {
    match rule {
        Rule::op_or => Some(LogicOp::Or),
        Rule::op_and => Some(LogicOp::And),
        _ => None,
    }
}

/// Wraps a new operator node, refusing trees deeper than `MAX_DEPTH`.
fn deeper(ctx: &Ctx<'_>, expr: Expr, depth: usize, bare_cmp: bool) -> Option<Folded> {
    if depth > MAX_DEPTH {
        ctx.report(
            ctx.error("syntax", expr.span, "expression too complex")
                .with_label(format!("more than {MAX_DEPTH} nested operations"))
                .with_help("split it into several `let` bindings"),
        );
        return None;
    }
    Some(Folded {
        expr,
        depth,
        bare_cmp,
    })
}

/// The binary operator of an infix pair.
fn binop(rule: Rule) -> BinOp {
    match rule {
        Rule::op_eq => BinOp::Eq,
        Rule::op_ne => BinOp::Ne,
        Rule::op_lt => BinOp::Lt,
        Rule::op_le => BinOp::Le,
        Rule::op_gt => BinOp::Gt,
        Rule::op_ge => BinOp::Ge,
        Rule::op_match => BinOp::Match,
        Rule::op_notmatch => BinOp::NotMatch,
        Rule::op_add => BinOp::Add,
        Rule::op_sub => BinOp::Sub,
        Rule::op_mul => BinOp::Mul,
        Rule::op_div => BinOp::Div,
        _ => BinOp::Rem,
    }
}

/// Whether `op` is a comparison or match (non-associative).
fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq
            | BinOp::Ne
            | BinOp::Lt
            | BinOp::Le
            | BinOp::Gt
            | BinOp::Ge
            | BinOp::Match
            | BinOp::NotMatch
    )
}

/// An operand: literal, list, call, name or parenthesized expression.
fn primary(ctx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Option<Expr> {
    let span = ctx.pair_span(&pair);
    let kind = match pair.as_rule() {
        Rule::number => ExprKind::Literal(literal::number(ctx, pair)),
        Rule::string => ExprKind::Literal(Literal::Str(literal::string(ctx, pair))),
        Rule::boolean => ExprKind::Literal(Literal::Bool(pair.as_str() == "true")),
        Rule::list => {
            let mut items = Cursor::new(ctx, pair);
            let items = items.take_all(Rule::expr);
            ExprKind::List(
                items
                    .into_iter()
                    .map(|p| expr(ctx, p))
                    .collect::<Option<_>>()?,
            )
        }
        Rule::call => {
            let (name, args) = call_parts(ctx, pair)?;
            ExprKind::Call(name, args)
        }
        Rule::name => ExprKind::Name(pair.as_str().to_string()),
        Rule::paren => {
            let inner = Cursor::new(ctx, pair).next()?;
            return Some(Expr {
                kind: expr(ctx, inner)?.kind,
                span,
            });
        }
        _ => {
            Cursor::new(ctx, pair).bug();
            return None;
        }
    };
    Some(Expr { kind, span })
}

/// The function name and arguments of a `call`-shaped pair (`NAME ( args )`).
pub(super) fn call_parts(ctx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Option<(Ident, Vec<Arg>)> {
    let mut cursor = Cursor::new(ctx, pair);
    let name = ident(ctx, cursor.next()?);
    let args = args(ctx, cursor.next()?)?;
    Some((name, args))
}

/// The arguments of an `args` pair.
pub(super) fn args(ctx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Option<Vec<Arg>> {
    let mut cursor = Cursor::new(ctx, pair);
    cursor
        .take_all(Rule::arg)
        .into_iter()
        .map(|arg| {
            let mut parts = Cursor::new(ctx, arg);
            let name = parts.next_if(Rule::arg_name).map(|p| ident(ctx, p));
            let value = expr(ctx, parts.next()?)?;
            Some(Arg { name, value })
        })
        .collect()
}

/// The name written by a name-like pair (`ident`, `source_name`, `func_name`, ...).
pub(super) fn ident(ctx: &Ctx<'_>, pair: Pair<'_, Rule>) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: ctx.pair_span(&pair),
    }
}
