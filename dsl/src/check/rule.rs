//! Checking one rule: its source, bindings, conditions and outputs, in evaluation order.

use super::ctx::{with_suggestion, Ctx};
use super::env::{Env, Lookup, Phase, NOW};
use super::expr::{infer, need_bool, need_dim};
use super::ty::Ty;
use super::{actions, metric};
use crate::ast::{Binding, BindingKind, EmitItem, ExprKind, Rule, RuleKind};
use crate::catalog::{SourceMode, SourceSchema};
use crate::units::Dim;

/// Checks `rule` and returns the types of its params and bindings.
pub fn check_rule<'a>(ctx: &mut Ctx<'a>, rule: &Rule) -> Env<'a> {
    let source = source(ctx, rule);
    let mut env = Env::new(source);
    declare_later(ctx, &mut env, rule);
    for binding in &rule.params {
        bind(ctx, &mut env, binding);
    }
    if let Some(filter) = &rule.filter {
        env.phase = Phase::Filter;
        let ty = infer(ctx, &env, filter);
        need_bool(ctx, filter, &ty, "`where`");
    }
    env.phase = Phase::Bindings;
    for binding in &rule.lets {
        bind(ctx, &mut env, binding);
    }
    if let Some(trigger) = &rule.trigger {
        let ty = infer(ctx, &env, trigger);
        need_bool(ctx, trigger, &ty, "`when`");
    }
    if rule.kind == RuleKind::Metric {
        metric::check_metric(ctx, &env, rule);
    } else {
        metric::reject_metric_clauses(ctx, rule);
    }
    actions::check_actions(ctx, &mut env, rule);
    env.phase = Phase::Output;
    env.emitted = emits(ctx, &env, rule);
    env
}

/// Records the names the rule defines after the filter: lets and capture results.
fn declare_later(ctx: &Ctx, env: &mut Env, rule: &Rule) {
    for binding in &rule.lets {
        env.later.insert(binding.name.name.clone(), "let binding");
    }
    for capture in &rule.captures {
        let produced = ctx.catalog.capture(&capture.name.name).map(|c| &c.produces);
        let names = match &capture.alias {
            Some(alias) => vec![alias.name.clone()],
            None => produced
                .into_iter()
                .flatten()
                .map(|f| f.name.clone())
                .collect(),
        };
        for name in names {
            env.later.insert(name, "capture result");
        }
    }
}

fn source<'a>(ctx: &mut Ctx<'a>, rule: &Rule) -> Option<&'a SourceSchema> {
    let name = &rule.source.name;
    let catalog = ctx.catalog;
    let Some(schema) = catalog.source(&name.name) else {
        let diag = ctx
            .error(
                "unknown-source",
                name.span,
                format!("unknown source `{}`", name.name),
            )
            .with_label("not in the catalog");
        let names = catalog.sources().map(|s| s.name.as_str());
        ctx.push(with_suggestion(diag, &name.name, names, None));
        if let Some(every) = &rule.source.every {
            infer(ctx, &Env::new(None), every);
        }
        return None;
    };
    if let Some(every) = &rule.source.every {
        if schema.mode == SourceMode::Stream {
            ctx.push(
                ctx.error(
                    "every-on-stream",
                    every.span,
                    format!(
                        "{} is a stream source; it has no poll interval",
                        schema.name
                    ),
                )
                .with_label("remove `every`")
                .with_help("only polled sources (procfs, cgroup readers) take `every`"),
            );
        }
        let ty = infer(ctx, &Env::new(Some(schema)), every);
        need_dim(ctx, every, &ty, Dim::Time, "the poll interval");
    }
    Some(schema)
}

/// Checks a param, let or script binding and adds it to `env`.
fn bind(ctx: &mut Ctx, env: &mut Env, binding: &Binding) {
    let name = &binding.name;
    if binding.kind == BindingKind::Script {
        let is_script =
            matches!(&binding.value.kind, ExprKind::Call(f, _) if f.name.contains("::"));
        if !is_script {
            ctx.push(
                ctx.error(
                    "not-a-script",
                    binding.value.span,
                    "a `script` binding must call a stdlib function `file::function(...)`",
                )
                .with_label("not a script call")
                .with_help("use `let` for other expressions"),
            );
        }
    }
    let ty = infer(ctx, env, &binding.value);
    if env.params.contains_key(&name.name) || env.lets.contains_key(&name.name) {
        ctx.push(
            ctx.error(
                "duplicate-binding",
                name.span,
                format!("`{}` is already bound in this rule", name.name),
            )
            .with_label("bound again here")
            .with_help("give it another name"),
        );
        return;
    }
    let field = env
        .source
        .and_then(|s| s.fields.iter().find(|f| f.name == name.name));
    if field.is_some() || name.name == NOW {
        let what = if field.is_some() {
            "a field of the source"
        } else {
            "the sample time"
        };
        ctx.push(
            crate::diag::Diagnostic::warning(
                "shadowing",
                ctx.path,
                name.span,
                format!("`{}` hides {what}", name.name),
            )
            .with_label("shadows")
            .with_help("rename the binding to keep the original reachable"),
        );
    }
    let table = if binding.kind == BindingKind::Param {
        &mut env.params
    } else {
        &mut env.lets
    };
    table.insert(name.name.clone(), ty);
}

/// Checks the `emit` items; returns the type of each named one.
fn emits(ctx: &mut Ctx, env: &Env, rule: &Rule) -> Vec<(String, Ty)> {
    let is_metric = rule.kind == RuleKind::Metric;
    if rule.emits.is_empty() && (!is_metric || rule.histograms.is_empty()) {
        let needs = if is_metric {
            "`emit` or `histogram`"
        } else {
            "`emit`"
        };
        ctx.push(
            ctx.error(
                "missing-output",
                rule.name.span,
                format!("rule `{}` produces nothing", rule.name.name),
            )
            .with_label("no output")
            .with_help(format!("a {} rule needs {needs}", rule.kind.keyword())),
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut emitted = Vec::new();
    for item in &rule.emits {
        match item {
            EmitItem::Named {
                name,
                value,
                metric_type,
                help,
                span,
            } => {
                if seen.contains(&name.name.as_str()) {
                    ctx.push(
                        ctx.error(
                            "duplicate-emit",
                            name.span,
                            format!("`{}` is emitted twice", name.name),
                        )
                        .with_label("emitted again here"),
                    );
                }
                seen.push(&name.name);
                if !is_metric && (metric_type.is_some() || help.is_some()) {
                    not_for_kind(ctx, rule.kind, *span, "metric types and help");
                }
                let ty = match value {
                    Some(e) => infer(ctx, env, e),
                    None => emit_name(ctx, env, name),
                };
                if is_metric {
                    metric::need_metric_value(ctx, name, &ty);
                }
                emitted.push((name.name.clone(), ty));
            }
            EmitItem::AllFields {
                include,
                exclude,
                span,
                ..
            } => {
                if !is_metric {
                    not_for_kind(ctx, rule.kind, *span, "`emit *`");
                }
                let mut constant = env.clone();
                constant.phase = Phase::Const;
                for e in [include, exclude].into_iter().flatten() {
                    let ty = infer(ctx, &constant, e);
                    super::pattern::check_regexes(ctx, e, &ty);
                }
            }
        }
    }
    emitted
}

fn emit_name(ctx: &mut Ctx, env: &Env, name: &crate::ast::Ident) -> Ty {
    match env.lookup(&name.name) {
        Lookup::Found(ty) => ty,
        Lookup::Later(_) | Lookup::Missing => {
            let diag = ctx
                .error(
                    "unknown-name",
                    name.span,
                    format!(
                        "cannot emit `{}`: no such field, binding, param or capture result",
                        name.name
                    ),
                )
                .with_label("unknown name");
            let fields = format!("fields: {}", env.field_list());
            let diag = match super::ctx::suggest(&name.name, env.visible_names()) {
                Some(hint) => diag.with_help(format!("{hint} ({fields})")),
                None => diag.with_help(format!("write `{} = expression`; {fields}", name.name)),
            };
            ctx.push(diag);
            Ty::Unknown
        }
    }
}

/// Reports a clause the rule's kind does not take.
pub fn not_for_kind(ctx: &mut Ctx, kind: RuleKind, span: crate::ast::Span, what: &str) {
    let help = if kind == RuleKind::Metric {
        "metrics are series; captures, cooldowns, limits and issues belong to events and autotraces"
    } else {
        "this belongs to metric rules"
    };
    ctx.push(
        ctx.error(
            "not-for-kind",
            span,
            format!("{what} cannot be used in a {} rule", kind.keyword()),
        )
        .with_label("not for this kind of rule")
        .with_help(help),
    );
}
