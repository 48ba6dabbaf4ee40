//! Rules and their clauses: gathers the clauses of a block into a [`Rule`], reporting repeated
//! single clauses and a missing `source`.

use super::context::Ctx;
use super::cursor::Cursor;
use super::expr::{args, call_parts, expr, ident};
use super::{literal, Rule as R};
use crate::ast::{
    Binding, BindingKind, Capture, Cooldown, CooldownPolicy, EmitItem, Expr, ExprKind,
    HistogramClause, Ident, MetricType, RateLimit, Rule, RuleKind, SourceClause, Span,
};
use pest::iterators::{Pair, Pairs};

/// Every rule of a parsed `file`.
pub(super) fn build_file(ctx: &Ctx<'_>, pairs: Pairs<'_, R>) -> Vec<Rule> {
    pairs
        .flat_map(|file| file.into_inner())
        .filter(|p| p.as_rule() == R::rule_block)
        .filter_map(|p| build_rule(ctx, p))
        .collect()
}

/// The clauses of one rule as they are gathered.
#[derive(Default)]
struct Draft {
    source: Option<SourceClause>,
    help: Option<(String, Span)>,
    params: Vec<Binding>,
    lets: Vec<Binding>,
    filter: Option<Expr>,
    trigger: Option<Expr>,
    labels: Option<Vec<Ident>>,
    scope: Option<Vec<Ident>>,
    histograms: Vec<HistogramClause>,
    emits: Vec<EmitItem>,
    captures: Vec<Capture>,
    cooldown: Option<Cooldown>,
    limit: Option<RateLimit>,
    issues: Option<Expr>,
    fallback: Option<Ident>,
    /// Single clauses seen so far, with where they were written.
    seen: Vec<(&'static str, Span)>,
}

/// One rule block; `None` when it cannot be built (the reason is reported).
fn build_rule(ctx: &Ctx<'_>, pair: Pair<'_, R>) -> Option<Rule> {
    let span = ctx.pair_span(&pair);
    let mut cursor = Cursor::new(ctx, pair);
    let kind = match cursor.next()?.as_str() {
        "metric" => RuleKind::Metric,
        "event" => RuleKind::Event,
        _ => RuleKind::Autotrace,
    };
    let name = ident(ctx, cursor.next()?);
    let mut draft = Draft::default();
    let mut complete = true;
    while let Some(clause) = cursor.next_if_any() {
        complete &= add_clause(ctx, &mut draft, clause).is_some();
    }
    let Some(source) = draft.source else {
        ctx.report(
            ctx.error(
                "missing-source",
                name.span,
                format!("rule `{}` has no `source` clause", name.name),
            )
            .with_label("needs a source")
            .with_help("add a `source` clause, e.g. `source proc.stat every 10s`"),
        );
        return None;
    };
    complete.then_some(Rule {
        kind,
        name,
        span,
        source,
        help: draft.help,
        params: draft.params,
        lets: draft.lets,
        filter: draft.filter,
        trigger: draft.trigger,
        labels: draft.labels,
        scope: draft.scope,
        histograms: draft.histograms,
        emits: draft.emits,
        captures: draft.captures,
        cooldown: draft.cooldown,
        limit: draft.limit,
        issues: draft.issues,
        fallback: draft.fallback,
    })
}

/// Adds one clause to `draft`; `None` when it could not be built.
fn add_clause(ctx: &Ctx<'_>, draft: &mut Draft, pair: Pair<'_, R>) -> Option<()> {
    let span = ctx.pair_span(&pair);
    let rule = pair.as_rule();
    let mut c = Cursor::new(ctx, pair);
    match rule {
        R::param_clause | R::let_clause => {
            let kind = if rule == R::param_clause {
                BindingKind::Param
            } else {
                BindingKind::Let
            };
            let name = ident(ctx, c.next()?);
            let value = expr(ctx, c.next()?)?;
            let binding = Binding {
                kind,
                name,
                value,
                span,
            };
            match kind {
                BindingKind::Param => draft.params.push(binding),
                _ => draft.lets.push(binding),
            }
        }
        R::script_clause => {
            let name = ident(ctx, c.next()?);
            let func = ident(ctx, c.next()?);
            let args = args(ctx, c.next()?)?;
            let call_span = ctx.span_at(func.span.start, span.end);
            draft.lets.push(Binding {
                kind: BindingKind::Script,
                name,
                value: Expr {
                    kind: ExprKind::Call(func, args),
                    span: call_span,
                },
                span,
            });
        }
        R::histogram_clause => {
            let field = ident(ctx, c.next()?);
            let bounds = c
                .take_all(R::expr)
                .into_iter()
                .map(|p| expr(ctx, p))
                .collect::<Option<_>>()?;
            let label = c.next_if(R::ident).map(|p| ident(ctx, p));
            draft.histograms.push(HistogramClause {
                field,
                bounds,
                label,
                span,
            });
        }
        R::emit_clause => {
            for item in std::iter::from_fn(|| c.next_if_any()) {
                draft.emits.push(emit_item(ctx, item)?);
            }
        }
        R::capture_clause => {
            for item in c.take_all(R::capture_item) {
                draft.captures.push(capture(ctx, item)?);
            }
        }
        _ => {
            let Some(keyword) = single_keyword(rule) else {
                c.bug();
                return None;
            };
            if !first_of_kind(ctx, draft, keyword, span) {
                return Some(());
            }
            add_single_clause(ctx, draft, rule, span, c)?;
        }
    }
    Some(())
}

/// Adds a clause that may appear once per rule (already checked not to be a repeat).
fn add_single_clause(
    ctx: &Ctx<'_>,
    draft: &mut Draft,
    rule: R,
    span: Span,
    mut c: Cursor<'_, '_>,
) -> Option<()> {
    match rule {
        R::source_clause => {
            let name = ident(ctx, c.next()?);
            let every = match c.next_if(R::expr) {
                Some(p) => Some(expr(ctx, p)?),
                None => None,
            };
            draft.source = Some(SourceClause { name, every, span });
        }
        R::help_clause => draft.help = Some((literal::string(ctx, c.next()?), span)),
        R::where_clause => draft.filter = Some(expr(ctx, c.next()?)?),
        R::when_clause => draft.trigger = Some(expr(ctx, c.next()?)?),
        R::issues_clause => draft.issues = Some(expr(ctx, c.next()?)?),
        R::fallback_clause => draft.fallback = Some(ident(ctx, c.next()?)),
        R::labels_clause => draft.labels = Some(idents(ctx, &mut c)),
        R::scope_clause => draft.scope = Some(idents(ctx, &mut c)),
        R::cooldown_clause => {
            let policy_pair = c.next()?;
            let policy = match policy_pair.as_rule() {
                R::kw_none => CooldownPolicy::None,
                R::backoff => {
                    CooldownPolicy::Backoff(args(ctx, Cursor::new(ctx, policy_pair).next()?)?)
                }
                _ => CooldownPolicy::Fixed(expr(ctx, policy_pair)?),
            };
            let per = idents(ctx, &mut c);
            draft.cooldown = Some(Cooldown {
                policy,
                per: (!per.is_empty()).then_some(per),
                span,
            });
        }
        R::limit_clause => {
            let rate = expr(ctx, c.next()?)?;
            let per = expr(ctx, c.next()?)?;
            let burst = match c.next_if(R::expr) {
                Some(p) => Some(expr(ctx, p)?),
                None => None,
            };
            draft.limit = Some(RateLimit {
                rate,
                per,
                burst,
                span,
            });
        }
        _ => {
            c.bug();
            return None;
        }
    }
    Some(())
}

/// Records a single clause; reports `duplicate-clause` and returns false on a repeat.
fn first_of_kind(ctx: &Ctx<'_>, draft: &mut Draft, keyword: &'static str, span: Span) -> bool {
    if let Some((_, first)) = draft.seen.iter().find(|(k, _)| *k == keyword) {
        let at = ctx.span_at(span.start, span.start + keyword.len());
        ctx.report(
            ctx.error(
                "duplicate-clause",
                at,
                format!("`{keyword}` may appear only once in a rule"),
            )
            .with_label("repeated here")
            .with_help(format!(
                "the first `{keyword}` is at {}:{}:{}; merge the two",
                ctx.path, first.line, first.col
            )),
        );
        return false;
    }
    draft.seen.push((keyword, span));
    true
}

/// The keyword of a clause that may appear only once per rule.
fn single_keyword(rule: R) -> Option<&'static str> {
    Some(match rule {
        R::source_clause => "source",
        R::help_clause => "help",
        R::where_clause => "where",
        R::when_clause => "when",
        R::labels_clause => "labels",
        R::scope_clause => "scope",
        R::cooldown_clause => "cooldown",
        R::limit_clause => "limit",
        R::issues_clause => "issues",
        R::fallback_clause => "fallback",
        _ => return None,
    })
}

/// Every remaining `ident` child.
fn idents(ctx: &Ctx<'_>, c: &mut Cursor<'_, '_>) -> Vec<Ident> {
    c.take_all(R::ident)
        .into_iter()
        .map(|p| ident(ctx, p))
        .collect()
}

/// One item of an `emit` list.
fn emit_item(ctx: &Ctx<'_>, pair: Pair<'_, R>) -> Option<EmitItem> {
    let span = ctx.pair_span(&pair);
    let rule = pair.as_rule();
    let mut c = Cursor::new(ctx, pair);
    if rule == R::emit_all {
        c.next_if(R::star);
        let include = match c.next_if(R::emit_include) {
            Some(p) => Some(expr(ctx, Cursor::new(ctx, p).next()?)?),
            None => None,
        };
        let exclude = match c.next_if(R::emit_exclude) {
            Some(p) => Some(expr(ctx, Cursor::new(ctx, p).next()?)?),
            None => None,
        };
        let metric_type = c.next_if(R::metric_type).map(|p| metric_type(&p));
        return Some(EmitItem::AllFields {
            include,
            exclude,
            metric_type,
            span,
        });
    }
    let name = ident(ctx, c.next()?);
    let value = match c.next_if(R::expr) {
        Some(p) => Some(expr(ctx, p)?),
        None => None,
    };
    let metric_type = c.next_if(R::metric_type).map(|p| metric_type(&p));
    let help = c.next_if(R::string).map(|p| literal::string(ctx, p));
    Some(EmitItem::Named {
        name,
        value,
        metric_type,
        help,
        span,
    })
}

/// `counter` or `gauge`.
fn metric_type(pair: &Pair<'_, R>) -> MetricType {
    if pair.as_str() == "counter" {
        MetricType::Counter
    } else {
        MetricType::Gauge
    }
}

/// One `ACTION(args) [as NAME]` of a `capture` clause.
fn capture(ctx: &Ctx<'_>, pair: Pair<'_, R>) -> Option<Capture> {
    let span = ctx.pair_span(&pair);
    let alias_pair = pair
        .clone()
        .into_inner()
        .filter(|p| p.as_rule() == R::ident)
        .nth(1);
    let (name, args) = call_parts(ctx, pair)?;
    Some(Capture {
        name,
        args,
        alias: alias_pair.map(|p| ident(ctx, p)),
        span,
    })
}
