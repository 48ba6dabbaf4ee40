//! Type inference of expressions: names, literals, lists and operators.

use super::ctx::{with_suggestion, Ctx, MAX_DEPTH};
use super::env::{Env, Lookup, Phase};
use super::ty::Ty;
use super::{call, dims, pattern, show};
use crate::ast::{BinOp, Expr, ExprKind, Literal, UnOp};
use crate::units::Dim;

/// Infers the type of `e`, reporting every problem inside it.
pub fn infer(ctx: &mut Ctx, env: &Env, e: &Expr) -> Ty {
    if ctx.depth >= MAX_DEPTH {
        let message = format!("expression nested deeper than {MAX_DEPTH} levels");
        ctx.push(
            ctx.error("too-deep", e.span, message)
                .with_label("too deep")
                .with_help("split it into `let` bindings"),
        );
        return Ty::Unknown;
    }
    ctx.depth += 1;
    let ty = infer_kind(ctx, env, e);
    ctx.depth -= 1;
    ty
}

fn infer_kind(ctx: &mut Ctx, env: &Env, e: &Expr) -> Ty {
    match &e.kind {
        ExprKind::Literal(lit) => literal_ty(lit),
        ExprKind::Name(name) => name_ty(ctx, env, name, e),
        ExprKind::List(items) => list_ty(ctx, env, items),
        ExprKind::Unary(op, inner) => unary_ty(ctx, env, *op, inner),
        ExprKind::Binary(op, l, r) => binary_ty(ctx, env, *op, l, r),
        ExprKind::Logic(op, operands) => {
            let word = format!("`{}`", op.word());
            for operand in operands {
                let ty = infer(ctx, env, operand);
                need_bool(ctx, operand, &ty, &word);
            }
            Ty::Bool
        }
        ExprKind::Call(name, args) => call::infer_call(ctx, env, e, name, args),
    }
}

fn literal_ty(lit: &Literal) -> Ty {
    match lit {
        Literal::Int(_, dim) | Literal::Float(_, dim) => Ty::Num(*dim),
        Literal::Str(_) => Ty::Str,
        Literal::Bool(_) => Ty::Bool,
    }
}

fn name_ty(ctx: &mut Ctx, env: &Env, name: &str, e: &Expr) -> Ty {
    match env.lookup(name) {
        Lookup::Found(ty) => ty,
        Lookup::Later(what) => {
            phase_error(ctx, env.phase, e, &format!("`{name}` is a {what}"));
            Ty::Unknown
        }
        Lookup::Missing => {
            let source = env.source.map(|s| s.name.as_str()).unwrap_or_default();
            let diag = ctx
                .error("unknown-name", e.span, format!("unknown name `{name}`"))
                .with_label("not a field, param or binding");
            let fields = format!("fields of {source}: {}", env.field_list());
            ctx.push(with_suggestion(
                diag,
                name,
                env.visible_names(),
                Some(fields),
            ));
            Ty::Unknown
        }
    }
}

/// Reports something used in a phase that cannot see it (a field in a param, a let in
/// `where`, a capture result before `emit`).
pub fn phase_error(ctx: &mut Ctx, phase: Phase, e: &Expr, what: &str) {
    let (code, message, help) = match phase {
        Phase::Const => (
            "not-constant",
            format!("{what}, but this value is computed once when the rule loads"),
            "use only literals, config(...) and earlier params here",
        ),
        Phase::Filter => (
            "stateful-in-where",
            format!("{what}, but `where` runs first, on each raw sample, without state"),
            "move this condition to `when`",
        ),
        Phase::Bindings | Phase::Output => (
            "unknown-name",
            format!("{what} that is not available yet at this point"),
            "a let can use earlier lets; capture results can only be emitted",
        ),
    };
    ctx.push(
        ctx.error(code, e.span, message)
            .with_label("not available here")
            .with_help(help),
    );
}

fn list_ty(ctx: &mut Ctx, env: &Env, items: &[Expr]) -> Ty {
    let mut element = Ty::Unknown;
    for item in items {
        let ty = infer(ctx, env, item);
        if element == Ty::Unknown {
            element = ty;
        } else if ty != Ty::Unknown && ty != element {
            let message = format!(
                "list elements must have one type: {} is {ty}, earlier ones are {element}",
                show::expr(item)
            );
            ctx.push(
                ctx.error("type-mismatch", item.span, message)
                    .with_label(format!("this is {ty}")),
            );
        }
    }
    Ty::List(Box::new(element))
}

fn unary_ty(ctx: &mut Ctx, env: &Env, op: UnOp, inner: &Expr) -> Ty {
    let ty = infer(ctx, env, inner);
    match op {
        UnOp::Not => {
            need_bool(ctx, inner, &ty, "`not`");
            Ty::Bool
        }
        UnOp::Neg => match need_number(ctx, inner, &ty, "`-`") {
            Some(dim) => Ty::Num(dim),
            None => Ty::Unknown,
        },
    }
}

fn binary_ty(ctx: &mut Ctx, env: &Env, op: BinOp, l: &Expr, r: &Expr) -> Ty {
    let lt = infer(ctx, env, l);
    let rt = infer(ctx, env, r);
    match op {
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            compare(ctx, op, (l, &lt), (r, &rt));
            Ty::Bool
        }
        BinOp::Match | BinOp::NotMatch => {
            regex_match(ctx, (l, &lt), r);
            Ty::Bool
        }
        BinOp::Add | BinOp::Sub | BinOp::Rem => {
            let word = match op {
                BinOp::Add => "`+`",
                BinOp::Sub => "`-`",
                _ => "`%`",
            };
            let ld = need_number(ctx, l, &lt, word);
            let rd = need_number(ctx, r, &rt, word);
            match (ld, rd) {
                (Some(ld), Some(rd)) => Ty::Num(same_dim(ctx, (l, ld), (r, rd))),
                _ => Ty::Unknown,
            }
        }
        BinOp::Mul | BinOp::Div => {
            let word = if op == BinOp::Mul { "`*`" } else { "`/`" };
            let ld = need_number(ctx, l, &lt, word);
            let rd = need_number(ctx, r, &rt, word);
            match (ld, rd) {
                (Some(ld), Some(rd)) => scale_dim(ctx, op, (l, ld), (r, rd)),
                _ => Ty::Unknown,
            }
        }
    }
}

fn compare(ctx: &mut Ctx, op: BinOp, (l, lt): (&Expr, &Ty), (r, rt): (&Expr, &Ty)) {
    let ordering = !matches!(op, BinOp::Eq | BinOp::Ne);
    match (lt, rt) {
        (Ty::Unknown, _) | (_, Ty::Unknown) => {}
        (Ty::Num(ld), Ty::Num(rd)) => {
            same_dim(ctx, (l, *ld), (r, *rd));
        }
        (Ty::Str, Ty::Str) | (Ty::Bool, Ty::Bool) if !ordering => {}
        (Ty::Str, Ty::Str) | (Ty::Bool, Ty::Bool) => {
            let message = format!("{lt}s cannot be ordered; only == and != compare them");
            ctx.push(
                ctx.error("type-mismatch", r.span, message)
                    .with_label("ordered comparison"),
            );
        }
        (Ty::Num(_) | Ty::Str | Ty::Bool, Ty::Num(_) | Ty::Str | Ty::Bool) => {
            let message = format!("{} is {lt}, {} is {rt}", show::expr(l), show::expr(r));
            ctx.push(
                ctx.error("type-mismatch", r.span, message)
                    .with_label(format!("this is {rt}")),
            );
        }
        _ => {
            let (bad, ty) = if matches!(lt, Ty::Num(_) | Ty::Str | Ty::Bool) {
                (r, rt)
            } else {
                (l, lt)
            };
            not_scalar(ctx, bad, ty, "a comparison");
        }
    }
}

fn regex_match(ctx: &mut Ctx, (l, lt): (&Expr, &Ty), r: &Expr) {
    if !matches!(lt, Ty::Str | Ty::Unknown) {
        let message = format!("`=~` matches strings, but {} is {lt}", show::expr(l));
        ctx.push(
            ctx.error("type-mismatch", l.span, message)
                .with_label("not a string"),
        );
    }
    match &r.kind {
        ExprKind::Literal(Literal::Str(p)) => pattern::check_literal(ctx, p, r),
        _ => ctx.push(
            ctx.error(
                "type-mismatch",
                r.span,
                "the right side of `=~` and `!~` must be a string literal regex",
            )
            .with_label("not a regex literal")
            .with_help("use matches_any(value, patterns) to match against a config list"),
        ),
    }
}

/// Unifies the dimensions of the operands of a comparison or of `+ - %`, reporting a
/// `unit-mismatch`. A unitless `0` fits every dimension.
pub fn same_dim(ctx: &mut Ctx, (l, ld): (&Expr, Dim), (r, rd): (&Expr, Dim)) -> Dim {
    if ld == rd {
        return ld;
    }
    if show::unitless_number(l) == Some(0.0) {
        return rd;
    }
    if show::unitless_number(r) == Some(0.0) {
        return ld;
    }
    for (lit, other, other_dim) in [(r, l, ld), (l, r, rd)] {
        if let Some(n) = show::unitless_number(lit) {
            let message = format!(
                "{} is {other_dim}, {n} is a plain number",
                show::expr(other)
            );
            let help = format!("write {n}{}", show::suggested_suffix(other_dim));
            ctx.push(
                ctx.error("unit-mismatch", lit.span, message)
                    .with_label("this number has no unit")
                    .with_help(help),
            );
            return other_dim;
        }
    }
    let message = format!("{} is {ld}, {} is {rd}", show::expr(l), show::expr(r));
    ctx.push(
        ctx.error("unit-mismatch", r.span, message)
            .with_label(format!("this is {rd}"))
            .with_help(format!("both sides must be {ld}")),
    );
    ld
}

fn scale_dim(ctx: &mut Ctx, op: BinOp, (l, ld): (&Expr, Dim), (r, rd): (&Expr, Dim)) -> Ty {
    let result = if op == BinOp::Mul {
        dims::product(ld, rd)
    } else {
        dims::quotient(ld, rd)
    };
    match result {
        Some((dim, _)) => Ty::Num(dim),
        None => {
            let verb = if op == BinOp::Mul {
                "multiply"
            } else {
                "divide"
            };
            let message = format!(
                "cannot {verb} {} ({ld}) by {} ({rd})",
                show::expr(l),
                show::expr(r)
            );
            ctx.push(
                ctx.error("unit-mismatch", r.span, message)
                    .with_label(format!("this is {rd}"))
                    .with_help("use percent(part, whole) for ratios of different quantities"),
            );
            Ty::Unknown
        }
    }
}

/// The dimension of a numeric operand, or a `type-mismatch` naming what it is instead.
pub fn need_number(ctx: &mut Ctx, e: &Expr, ty: &Ty, context: &str) -> Option<Dim> {
    match ty {
        Ty::Num(dim) => Some(*dim),
        Ty::Unknown => None,
        Ty::Str | Ty::Bool => {
            let message = format!("{context} needs a number, but {} is {ty}", show::expr(e));
            ctx.push(
                ctx.error("type-mismatch", e.span, message)
                    .with_label(format!("this is {ty}")),
            );
            None
        }
        _ => {
            not_scalar(ctx, e, ty, context);
            None
        }
    }
}

/// Reports a histogram, list or structured value where a single value is needed.
fn not_scalar(ctx: &mut Ctx, e: &Expr, ty: &Ty, context: &str) {
    let help = match ty {
        Ty::Hist(_) => "histogram fields are bucketed by a `histogram` clause of a metric",
        Ty::List(_) => "reduce the list with first, last, min, max, avg, sum or len",
        _ => "capture data can only be emitted",
    };
    let message = format!(
        "{context} needs a single value, but {} is {ty}",
        show::expr(e)
    );
    ctx.push(
        ctx.error("type-mismatch", e.span, message)
            .with_label(format!("this is {ty}"))
            .with_help(help),
    );
}

/// Reports a non-boolean operand of a logical operator or condition.
pub fn need_bool(ctx: &mut Ctx, e: &Expr, ty: &Ty, context: &str) {
    if !matches!(ty, Ty::Bool | Ty::Unknown) {
        let message = format!("{context} needs a boolean, but {} is {ty}", show::expr(e));
        ctx.push(
            ctx.error("type-mismatch", e.span, message)
                .with_label("not a condition")
                .with_help("compare it, e.g. `x > 10ms`"),
        );
    }
}

/// Checks that `e` (of type `ty`) is a number of dimension `want`.
pub fn need_dim(ctx: &mut Ctx, e: &Expr, ty: &Ty, want: Dim, context: &str) {
    let Some(dim) = need_number(ctx, e, ty, context) else {
        return;
    };
    if dim == want || show::unitless_number(e) == Some(0.0) {
        return;
    }
    let message = format!("{context} must be {want}, but {} is {dim}", show::expr(e));
    let diag = ctx
        .error("unit-mismatch", e.span, message)
        .with_label(format!("this is {dim}"));
    let diag = match show::unitless_number(e) {
        Some(n) => diag.with_help(format!("write {n}{}", show::suggested_suffix(want))),
        None => diag,
    };
    ctx.push(diag);
}
