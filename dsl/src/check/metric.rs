//! Clauses of metric rules: `labels`, `scope`, `histogram` and the values of `emit`.

use super::ctx::{with_suggestion, Ctx};
use super::env::{Env, Lookup, Phase};
use super::expr::{infer, need_dim};
use super::rule::not_for_kind;
use super::ty::Ty;
use super::{show, CONTAINER_ID};
use crate::ast::{Expr, ExprKind, HistogramClause, Ident, Literal, Rule};
use crate::catalog::SourceSchema;
use crate::units::Dim;

/// The words `scope` accepts.
pub const SCOPES: &[&str] = &["host", "container"];

/// Checks the metric-only clauses and rejects the clauses metrics do not take.
pub fn check_metric(ctx: &mut Ctx, env: &Env, rule: &Rule) {
    if let (Some(labels), Some(source)) = (&rule.labels, env.source) {
        for label in labels {
            check_label(ctx, source, label);
        }
    }
    if let (Some(scope), Some(source)) = (&rule.scope, env.source) {
        for word in scope {
            check_scope(ctx, source, word);
        }
    }
    for clause in &rule.histograms {
        check_histogram(ctx, env, clause);
    }
    let kind = rule.kind;
    for capture in &rule.captures {
        not_for_kind(ctx, kind, capture.span, "`capture`");
    }
    if let Some(cooldown) = &rule.cooldown {
        not_for_kind(ctx, kind, cooldown.span, "`cooldown`");
    }
    if let Some(limit) = &rule.limit {
        not_for_kind(ctx, kind, limit.span, "`limit`");
    }
    if let Some(issues) = &rule.issues {
        not_for_kind(ctx, kind, issues.span, "`issues`");
    }
}

/// Rejects metric-only clauses in an event or autotrace rule.
pub fn reject_metric_clauses(ctx: &mut Ctx, rule: &Rule) {
    let kind = rule.kind;
    if let Some(first) = rule.labels.iter().flatten().next() {
        not_for_kind(ctx, kind, first.span, "`labels`");
    }
    if let Some(first) = rule.scope.iter().flatten().next() {
        not_for_kind(ctx, kind, first.span, "`scope`");
    }
    for clause in &rule.histograms {
        not_for_kind(ctx, kind, clause.span, "`histogram`");
    }
}

/// Checks that `label` is a label of `source`, `container_id`, or a container label of a
/// source whose samples may name a container.
pub fn check_label(ctx: &mut Ctx, source: &SourceSchema, label: &Ident) {
    if label.name == CONTAINER_ID || source.has_label(&label.name) {
        return;
    }
    let diag = ctx
        .error(
            "unknown-label",
            label.span,
            format!("{} has no label `{}`", source.name, label.name),
        )
        .with_label("unknown label");
    let mut known = source.label_names();
    if !known.contains(&CONTAINER_ID) {
        known.push(CONTAINER_ID);
    }
    let list = format!("labels of {}: {}", source.name, known.join(", "));
    ctx.push(with_suggestion(diag, &label.name, known, Some(list)));
}

fn check_scope(ctx: &mut Ctx, source: &SourceSchema, word: &Ident) {
    if !SCOPES.contains(&word.name.as_str()) {
        let diag = ctx
            .error(
                "bad-scope",
                word.span,
                format!("unknown scope `{}`", word.name),
            )
            .with_label("not a scope");
        let fallback = Some("scopes are `host` and `container`".to_string());
        ctx.push(with_suggestion(
            diag,
            &word.name,
            SCOPES.iter().copied(),
            fallback,
        ));
        return;
    }
    if word.name == "host" && source.container_only {
        ctx.push(
            ctx.error(
                "bad-scope",
                word.span,
                format!(
                    "{} reports only per container: `scope host` produces nothing",
                    source.name
                ),
            )
            .with_label("no host series")
            .with_help("use `scope container`, or a host source"),
        );
    }
    if word.name == "container" && !source.may_carry_container() {
        ctx.push(
            ctx.error(
                "bad-scope",
                word.span,
                format!("{} does not report per container", source.name),
            )
            .with_label("no container series")
            .with_help("use `scope host`, or a per-container source"),
        );
    }
}

fn check_histogram(ctx: &mut Ctx, env: &Env, clause: &HistogramClause) {
    let field = &clause.field;
    let dim = match env.lookup(&field.name) {
        Lookup::Found(Ty::Hist(dim) | Ty::Num(dim)) => Some(dim),
        Lookup::Found(Ty::Unknown) => None,
        Lookup::Found(ty) => {
            let message = format!(
                "`{}` is {ty}; a histogram needs a histogram or a number",
                field.name
            );
            ctx.push(
                ctx.error("type-mismatch", field.span, message)
                    .with_label(format!("this is {ty}")),
            );
            None
        }
        Lookup::Later(_) | Lookup::Missing => {
            let diag = ctx
                .error(
                    "unknown-name",
                    field.span,
                    format!("unknown field `{}`", field.name),
                )
                .with_label("not a field or binding");
            let fields = format!("fields: {}", env.field_list());
            ctx.push(with_suggestion(
                diag,
                &field.name,
                env.visible_names(),
                Some(fields),
            ));
            None
        }
    };
    if clause.bounds.is_empty() {
        ctx.push(
            ctx.error(
                "bad-histogram",
                clause.span,
                "a histogram needs at least one bound",
            )
            .with_label("no zones")
            .with_help("write bounds such as [10ms, 20ms, 50ms]"),
        );
    }
    let mut constant = env.clone();
    constant.phase = Phase::Const;
    let mut previous: Option<(f64, &Expr)> = None;
    for bound in &clause.bounds {
        let ty = infer(ctx, &constant, bound);
        if let Some(dim) = dim {
            need_dim(ctx, bound, &ty, dim, "a histogram bound");
        }
        let Some(value) = literal_value(bound)
            .filter(|(_, d)| Some(*d) == dim)
            .map(|(v, _)| v)
        else {
            continue;
        };
        if let Some((_, prev)) = previous.filter(|(p, _)| value <= *p) {
            let message = format!(
                "histogram bounds must increase strictly: {} is not above the bound before it",
                show::expr(bound)
            );
            ctx.push(
                ctx.error("bad-histogram", bound.span, message)
                    .with_label(format!("not above {}", show::expr(prev)))
                    .with_help("list the bounds in increasing order, each once"),
            );
        }
        previous = Some((value, bound));
    }
}

fn literal_value(e: &Expr) -> Option<(f64, Dim)> {
    match &e.kind {
        ExprKind::Literal(Literal::Int(v, d)) => Some((*v as f64, *d)),
        ExprKind::Literal(Literal::Float(v, d)) => Some((*v, *d)),
        _ => None,
    }
}

/// Reports an emitted metric value that is not a number.
pub fn need_metric_value(ctx: &mut Ctx, name: &Ident, ty: &Ty) {
    if matches!(ty, Ty::Num(_) | Ty::Bool | Ty::Unknown) {
        return;
    }
    let help = if matches!(ty, Ty::Hist(_)) {
        "bucket histogram fields with a `histogram` clause"
    } else {
        "metric series hold numbers; emit strings as labels"
    };
    ctx.push(
        ctx.error(
            "type-mismatch",
            name.span,
            format!("metric `{}` must be a number, but it is {ty}", name.name),
        )
        .with_label(format!("this is {ty}"))
        .with_help(help),
    );
}
