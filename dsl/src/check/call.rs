//! Calls: builtins from [`crate::builtins`], `config(...)` and stdlib scripts `file::fn(...)`.

use super::ctx::{with_suggestion, Ctx};
use super::env::{Env, Phase};
use super::expr::{infer, need_dim, need_number, phase_error, same_dim};
use super::ty::Ty;
use super::{dims, pattern, show};
use crate::ast::{Arg, Expr, ExprKind, Ident, Literal, Span};
use crate::builtins::{builtin, builtins, Accepts, Builtin, Returns};

/// Infers the result of a call and checks its arguments.
pub fn infer_call(ctx: &mut Ctx, env: &Env, call: &Expr, name: &Ident, args: &[Arg]) -> Ty {
    if name.name.contains("::") {
        return script_call(ctx, env, call, name, args);
    }
    let Some(b) = builtin(&name.name) else {
        let diag = ctx
            .error(
                "unknown-function",
                name.span,
                format!("unknown function `{}`", name.name),
            )
            .with_label("not a builtin");
        let all = builtins().iter().map(|b| b.name);
        ctx.push(with_suggestion(diag, &name.name, all, None));
        infer_all(ctx, env, args);
        return Ty::Unknown;
    };
    if b.stateful && env.phase <= Phase::Filter {
        let what = format!("{}() keeps state across samples", b.name);
        phase_error(ctx, env.phase, call, &what);
    }
    let slots: Vec<Slot> = b
        .params
        .iter()
        .map(|p| Slot {
            name: p.name,
            optional: p.optional,
        })
        .collect();
    let bound = bind_args(ctx, call.span, b.name, &slots, args);
    let mut types: Vec<Option<Ty>> = Vec::with_capacity(bound.len());
    for (index, arg) in bound.iter().enumerate() {
        let ty = arg.map(|e| {
            let ty = if b.params[index].accepts == Accepts::FieldPatterns {
                infer_constant(ctx, env, e)
            } else {
                infer(ctx, env, e)
            };
            accept(ctx, b, index, e, &ty, &bound, &types);
            ty
        });
        types.push(ty);
    }
    if b.returns == Returns::ConfigKey {
        return config_call(ctx, &bound, &types);
    }
    result_ty(b.returns, &types)
}

/// Infers an argument the evaluator needs when the rule loads (compiled filter rules): only
/// literals, config and params may feed it (`not-constant`).
fn infer_constant(ctx: &mut Ctx, env: &Env, e: &Expr) -> Ty {
    let mut at_load = env.clone();
    at_load.phase = Phase::Const;
    infer(ctx, &at_load, e)
}

fn infer_all(ctx: &mut Ctx, env: &Env, args: &[Arg]) {
    for arg in args {
        infer(ctx, env, &arg.value);
    }
}

/// One parameter as argument binding sees it: its name and whether it may be left out.
pub struct Slot<'n> {
    /// Name for named arguments.
    pub name: &'n str,
    /// Whether a call may leave it out.
    pub optional: bool,
}

/// Matches arguments to parameters, positional in order then by name, reporting `arity`
/// problems (unknown name, given twice, too many, missing).
pub fn bind_args<'e>(
    ctx: &mut Ctx,
    call_span: Span,
    fname: &str,
    params: &[Slot],
    args: &'e [Arg],
) -> Vec<Option<&'e Expr>> {
    let names: Vec<&str> = params.iter().map(|p| p.name).collect();
    let usage = format!("usage: {fname}({})", names.join(", "));
    let mut bound: Vec<Option<&Expr>> = vec![None; params.len()];
    let mut next = 0;
    for arg in args {
        let slot = match &arg.name {
            None => {
                next += 1;
                next - 1
            }
            Some(n) => match names.iter().position(|p| *p == n.name) {
                Some(slot) => slot,
                None => {
                    let diag = ctx
                        .error(
                            "arity",
                            n.span,
                            format!("{fname}() has no argument `{}`", n.name),
                        )
                        .with_label("unknown argument");
                    ctx.push(with_suggestion(
                        diag,
                        &n.name,
                        names.iter().copied(),
                        Some(usage.clone()),
                    ));
                    continue;
                }
            },
        };
        match bound.get_mut(slot) {
            Some(entry @ None) => *entry = Some(&arg.value),
            Some(Some(_)) => ctx.push(
                ctx.error(
                    "arity",
                    arg.value.span,
                    format!("argument `{}` of {fname}() is given twice", names[slot]),
                )
                .with_label("given again here"),
            ),
            None => ctx.push(
                ctx.error(
                    "arity",
                    arg.value.span,
                    format!("{fname}() takes {} arguments", params.len()),
                )
                .with_label("extra argument")
                .with_help(usage.clone()),
            ),
        }
    }
    for (param, arg) in params.iter().zip(&bound) {
        if arg.is_none() && !param.optional {
            ctx.push(
                ctx.error(
                    "arity",
                    call_span,
                    format!("{fname}() is missing its argument `{}`", param.name),
                )
                .with_label("missing argument")
                .with_help(usage.clone()),
            );
        }
    }
    bound
}

fn accept(
    ctx: &mut Ctx,
    b: &Builtin,
    index: usize,
    e: &Expr,
    ty: &Ty,
    bound: &[Option<&Expr>],
    earlier: &[Option<Ty>],
) {
    let context = format!("argument `{}` of {}()", b.params[index].name, b.name);
    match b.params[index].accepts {
        Accepts::Any => {}
        Accepts::Number => {
            need_number(ctx, e, ty, &context);
        }
        Accepts::NumberOf(dim) => need_dim(ctx, e, ty, dim, &context),
        Accepts::NumberIn(allowed) => {
            if let Some(dim) = need_number(ctx, e, ty, &context) {
                if !allowed.contains(&dim) {
                    let kinds: Vec<&str> = allowed.iter().map(|d| d.describe()).collect();
                    let message = format!("{context} must be {}, not {dim}", kinds.join(" or "));
                    ctx.push(
                        ctx.error("unit-mismatch", e.span, message)
                            .with_label(format!("this is {dim}")),
                    );
                }
            }
        }
        Accepts::SameDimAs(other) => {
            let dim = need_number(ctx, e, ty, &context);
            let other_expr = bound.get(other).copied().flatten();
            let other_dim = earlier.get(other).cloned().flatten();
            if let (Some(dim), Some(Ty::Num(od)), Some(oe)) = (dim, other_dim, other_expr) {
                same_dim(ctx, (oe, od), (e, dim));
            }
        }
        Accepts::StrOrList => {
            if !matches!(ty, Ty::Str | Ty::List(_) | Ty::Unknown) {
                let message = format!(
                    "{context} must be a string or a list, but {} is {ty}",
                    show::expr(e)
                );
                ctx.push(
                    ctx.error("type-mismatch", e.span, message)
                        .with_label(format!("this is {ty}")),
                );
            }
        }
        Accepts::NumberOrNumberList if matches!(ty, Ty::List(_)) => {
            accept_list(ctx, Accepts::NumberList, e, ty, &context)
        }
        Accepts::NumberOrNumberList => {
            need_number(ctx, e, ty, &context);
        }
        Accepts::StrLiteral => {
            if !matches!(e.kind, ExprKind::Literal(Literal::Str(_))) {
                ctx.push(
                    ctx.error(
                        "type-mismatch",
                        e.span,
                        format!("{context} must be a string literal"),
                    )
                    .with_label("not a string literal")
                    .with_help(
                        "write the key in quotes, e.g. \"EventTracing.Softirq.DisabledThreshold\"",
                    ),
                );
            }
        }
        Accepts::List | Accepts::NumberList | Accepts::BoolList => {
            accept_list(ctx, b.params[index].accepts, e, ty, &context)
        }
        Accepts::Regexes => pattern::check_regexes(ctx, e, ty),
        Accepts::FieldPatterns => {
            if !matches!(ty, Ty::Json | Ty::List(_) | Ty::Unknown) {
                let message = format!(
                    "{context} must be a list of {{Field, Pattern}} rules, but {} is {ty}",
                    show::expr(e)
                );
                ctx.push(
                    ctx.error("type-mismatch", e.span, message)
                        .with_label(format!("this is {ty}"))
                        .with_help("pass config(\"AutoTracing.CPUIdle.Filter.Included\", []) or [[\"container_qos\", \"besteffort\"]]"),
                );
            }
        }
    }
}

fn accept_list(ctx: &mut Ctx, accepts: Accepts, e: &Expr, ty: &Ty, context: &str) {
    let element = match ty {
        Ty::Unknown => return,
        Ty::List(inner) => (**inner).clone(),
        _ => {
            let message = format!("{context} must be a list, but {} is {ty}", show::expr(e));
            ctx.push(
                ctx.error("type-mismatch", e.span, message)
                    .with_label(format!("this is {ty}"))
                    .with_help("window(x, n) makes a list of the last n values of x"),
            );
            return;
        }
    };
    let fits = match accepts {
        Accepts::NumberList => element.is_numeric(),
        Accepts::BoolList => matches!(element, Ty::Bool | Ty::Unknown),
        _ => true,
    };
    if !fits {
        let message = format!(
            "{context} needs a list of {}, but its elements are {element}",
            if accepts == Accepts::BoolList {
                "booleans"
            } else {
                "numbers"
            }
        );
        ctx.push(
            ctx.error("type-mismatch", e.span, message)
                .with_label(format!("a list of {element}")),
        );
    }
}

fn result_ty(returns: Returns, types: &[Option<Ty>]) -> Ty {
    let arg = |i: usize| types.get(i).cloned().flatten().unwrap_or(Ty::Unknown);
    match returns {
        Returns::SameAs(i) => arg(i),
        Returns::RateOf(i) => match arg(i) {
            Ty::Num(dim) => dims::rate_of(dim).map_or(Ty::Unknown, Ty::Num),
            _ => Ty::Unknown,
        },
        Returns::Number(dim) => Ty::Num(dim),
        Returns::Bool => Ty::Bool,
        Returns::ListOf(i) => Ty::List(Box::new(arg(i))),
        Returns::ElementOf(i) => arg(i).element(),
        Returns::Scalar(i) => match arg(i) {
            Ty::List(inner) => *inner,
            other => other,
        },
        Returns::Str => Ty::Str,
        Returns::ConfigKey => Ty::Unknown,
    }
}

/// `config("Section.Key", default)`: the key must be registered and the default fit it.
fn config_call(ctx: &mut Ctx, bound: &[Option<&Expr>], types: &[Option<Ty>]) -> Ty {
    let Some(key_expr) = bound.first().copied().flatten() else {
        return Ty::Unknown;
    };
    let ExprKind::Literal(Literal::Str(path)) = &key_expr.kind else {
        return Ty::Unknown;
    };
    let Some(key) = ctx.catalog.config_key(path) else {
        let diag = ctx
            .error(
                "unknown-config-key",
                key_expr.span,
                format!("unknown config key {path:?}"),
            )
            .with_label("not a key of huatuo-bamai.conf");
        let keys: Vec<String> = ctx.catalog.config_keys().map(|k| k.path.clone()).collect();
        ctx.push(with_suggestion(
            diag,
            path,
            keys.iter().map(String::as_str),
            None,
        ));
        return Ty::Unknown;
    };
    let key_ty = Ty::from_field(key.ty, key.dim);
    if let (Some(default), Some(Some(default_ty))) = (bound.get(1).copied().flatten(), types.get(1))
    {
        default_fits(ctx, path, &key_ty, default, default_ty);
    }
    key_ty
}

fn default_fits(ctx: &mut Ctx, path: &str, key_ty: &Ty, default: &Expr, default_ty: &Ty) {
    let context = format!("the default of {path:?}");
    match (key_ty, default_ty) {
        (_, Ty::Unknown) | (Ty::Unknown | Ty::Json, _) => {}
        (Ty::Num(dim), _) => need_dim(ctx, default, default_ty, *dim, &context),
        (Ty::List(_), Ty::List(_)) => {}
        (want, got) if want == got => {}
        (want, got) => {
            let message = format!(
                "{context} must be {want}, but {} is {got}",
                show::expr(default)
            );
            ctx.push(
                ctx.error("type-mismatch", default.span, message)
                    .with_label(format!("this is {got}")),
            );
        }
    }
}

/// `file::fn(args)`: a registered rhai function with matching arity; its result is dynamic.
fn script_call(ctx: &mut Ctx, env: &Env, call: &Expr, name: &Ident, args: &[Arg]) -> Ty {
    infer_all(ctx, env, args);
    let Some(arity) = ctx.catalog.script_fn(&name.name) else {
        let diag = ctx
            .error(
                "unknown-script-fn",
                name.span,
                format!("unknown script function `{}`", name.name),
            )
            .with_label("not in stdlib/");
        let names: Vec<String> = ctx
            .catalog
            .script_fns()
            .map(|(n, _)| n.to_string())
            .collect();
        ctx.push(with_suggestion(
            diag,
            &name.name,
            names.iter().map(String::as_str),
            None,
        ));
        return Ty::Unknown;
    };
    if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
        ctx.push(
            ctx.error(
                "arity",
                named.span,
                format!(
                    "script functions take positional arguments, not `{}:`",
                    named.name
                ),
            )
            .with_label("named argument"),
        );
    } else if args.len() != arity {
        ctx.push(
            ctx.error(
                "arity",
                call.span,
                format!(
                    "`{}` takes {arity} arguments, {} given",
                    name.name,
                    args.len()
                ),
            )
            .with_label("wrong number of arguments"),
        );
    }
    Ty::Unknown
}
