//! What an event or autotrace does when it fires: `capture`, `cooldown`, `limit`, `issues`.

use super::call::{bind_args, Slot};
use super::ctx::{with_suggestion, Ctx};
use super::env::{Env, Phase};
use super::expr::{infer, need_dim};
use super::metric::check_label;
use super::show;
use super::ty::Ty;
use crate::ast::{
    Arg, Capture, Cooldown, CooldownPolicy, Expr, ExprKind, Literal, RateLimit, Rule, RuleKind,
};
use crate::catalog::{CaptureArg, FieldType};
use crate::units::Dim;

/// Checks the action clauses of an event or autotrace rule and adds capture results to `env`.
pub fn check_actions(ctx: &mut Ctx, env: &mut Env, rule: &Rule) {
    if rule.kind == RuleKind::Metric {
        return;
    }
    for capture in &rule.captures {
        check_capture(ctx, env, capture);
    }
    let mut constant = env.clone();
    constant.phase = Phase::Const;
    if let Some(cooldown) = &rule.cooldown {
        check_cooldown(ctx, &constant, cooldown);
    }
    if let Some(limit) = &rule.limit {
        check_limit(ctx, &constant, limit);
    }
    if let Some(issues) = &rule.issues {
        let ty = infer(ctx, &constant, issues);
        if !matches!(ty, Ty::List(_) | Ty::Unknown) {
            let message = format!(
                "`issues` needs a list of patterns, but {} is {ty}",
                show::expr(issues)
            );
            ctx.push(
                ctx.error("type-mismatch", issues.span, message)
                    .with_label(format!("this is {ty}"))
                    .with_help("use a list config key, e.g. config(\"IssuesList\", [])"),
            );
        }
    }
}

fn check_capture(ctx: &mut Ctx, env: &mut Env, capture: &Capture) {
    let name = &capture.name;
    let catalog = ctx.catalog;
    let Some(schema) = catalog.capture(&name.name) else {
        let diag = ctx
            .error(
                "unknown-capture",
                name.span,
                format!("unknown capture `{}`", name.name),
            )
            .with_label("not a capture action");
        ctx.push(with_suggestion(
            diag,
            &name.name,
            catalog.captures().map(|c| c.name.as_str()),
            None,
        ));
        if let Some(alias) = &capture.alias {
            env.captured.insert(alias.name.clone(), Ty::Unknown);
        }
        return;
    };
    if let Some(source) = env
        .source
        .filter(|s| schema.source_specific && !s.captures.contains(&schema.name))
    {
        let help = if source.captures.is_empty() {
            format!("{} supplies no source-specific captures", source.name)
        } else {
            format!(
                "{} can capture: {}",
                source.name,
                source.captures.join(", ")
            )
        };
        ctx.push(
            ctx.error(
                "capture-unsupported",
                name.span,
                format!("{} cannot capture `{}`", source.name, schema.name),
            )
            .with_label("not supplied by this source")
            .with_help(help),
        );
    }
    let slots: Vec<Slot> = schema
        .args
        .iter()
        .map(|a| Slot {
            name: &a.name,
            optional: !a.required,
        })
        .collect();
    let bound = bind_args(ctx, capture.span, &schema.name, &slots, &capture.args);
    for (arg, value) in schema.args.iter().zip(&bound) {
        if let Some(value) = value {
            capture_arg(ctx, env, &schema.name, arg, value);
        }
    }
    match &capture.alias {
        Some(alias) => {
            let ty = match schema.produces.as_slice() {
                [only] => Ty::from_field(only.ty, only.dim),
                _ => Ty::Json,
            };
            env.captured.insert(alias.name.clone(), ty);
        }
        None => {
            for field in &schema.produces {
                env.captured
                    .insert(field.name.clone(), Ty::from_field(field.ty, field.dim));
            }
        }
    }
}

fn capture_arg(ctx: &mut Ctx, env: &Env, capture: &str, arg: &CaptureArg, value: &Expr) {
    if !arg.choices.is_empty() {
        let word = match &value.kind {
            ExprKind::Name(w) | ExprKind::Literal(Literal::Str(w)) => Some(w),
            _ => None,
        };
        if word.is_some_and(|w| arg.choices.contains(w)) {
            return;
        }
        let written = word.cloned().unwrap_or_else(|| show::expr(value));
        let diag = ctx
            .error(
                "bad-choice",
                value.span,
                format!(
                    "`{written}` is not a choice of argument `{}` of {capture}()",
                    arg.name
                ),
            )
            .with_label("not a choice");
        let list = format!("choices: {}", arg.choices.join(", "));
        let choices = arg.choices.iter().map(String::as_str);
        ctx.push(with_suggestion(diag, &written, choices, Some(list)));
        return;
    }
    let ty = infer(ctx, env, value);
    let context = format!("argument `{}` of {capture}()", arg.name);
    let want = Ty::from_field(arg.ty, arg.dim);
    match (arg.ty, &ty) {
        (FieldType::Int | FieldType::Float, _) => need_dim(ctx, value, &ty, arg.dim, &context),
        (FieldType::Json, _) | (_, Ty::Unknown) => {}
        (FieldType::List, Ty::List(_)) => {}
        _ if ty == want => {}
        _ => {
            let message = format!(
                "{context} must be {want}, but {} is {ty}",
                show::expr(value)
            );
            ctx.push(
                ctx.error("type-mismatch", value.span, message)
                    .with_label(format!("this is {ty}")),
            );
        }
    }
}

const BACKOFF: &[(&str, Dim, bool)] = &[
    ("initial", Dim::Time, false),
    ("factor", Dim::Count, true),
    ("max", Dim::Time, true),
    ("reset", Dim::Time, true),
];

fn check_cooldown(ctx: &mut Ctx, env: &Env, cooldown: &Cooldown) {
    match &cooldown.policy {
        CooldownPolicy::None => {}
        CooldownPolicy::Fixed(e) => {
            let ty = infer(ctx, env, e);
            need_dim(ctx, e, &ty, Dim::Time, "a cooldown");
        }
        CooldownPolicy::Backoff(args) => backoff(ctx, env, cooldown, args),
    }
    if let (Some(per), Some(source)) = (&cooldown.per, env.source) {
        for label in per {
            check_label(ctx, source, label);
        }
    }
}

fn backoff(ctx: &mut Ctx, env: &Env, cooldown: &Cooldown, args: &[Arg]) {
    let slots: Vec<Slot> = BACKOFF
        .iter()
        .map(|(name, _, optional)| Slot {
            name,
            optional: *optional,
        })
        .collect();
    let bound = bind_args(ctx, cooldown.span, "backoff", &slots, args);
    for ((name, dim, _), value) in BACKOFF.iter().zip(&bound) {
        if let Some(value) = value {
            let ty = infer(ctx, env, value);
            need_dim(
                ctx,
                value,
                &ty,
                *dim,
                &format!("argument `{name}` of backoff()"),
            );
        }
    }
}

fn check_limit(ctx: &mut Ctx, env: &Env, limit: &RateLimit) {
    let parts = [
        (Some(&limit.rate), Dim::Count, "the rate of `limit`"),
        (Some(&limit.per), Dim::Time, "the period of `limit`"),
        (limit.burst.as_ref(), Dim::Count, "the burst of `limit`"),
    ];
    for (expr, dim, context) in parts {
        if let Some(e) = expr {
            let ty = infer(ctx, env, e);
            need_dim(ctx, e, &ty, dim, context);
        }
    }
}
