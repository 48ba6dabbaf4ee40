//! Compiling checked rule files into a [`Plan`].

use crate::capture::CaptureRequest;
use crate::compile::Scope;
use crate::cooldown::CooldownSpec;
use crate::expr::{CExpr, Ctx};
use crate::issues::{parse_issues, KnownIssue};
use crate::script::ScriptHost;
use huatuo_dsl::ast::{self, Expr, Ident, MetricType, Rule, RuleFile, RuleKind, Span};
use huatuo_dsl::diag::Diagnostic;
use huatuo_dsl::output::MetricKind;
use huatuo_dsl::source::ConfigValues;
use huatuo_dsl::units::{show_quantity, Dim};
use huatuo_dsl::value::Value;
use regex::Regex;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// An expression with the span of the clause it came from (for runtime error locations).
#[derive(Debug, Clone)]
pub struct Clause {
    /// The compiled expression.
    pub expr: CExpr,
    /// Where it was written.
    pub span: Span,
}

/// A compiled `emit` item.
#[derive(Debug, Clone)]
pub enum Emit {
    /// `name [= expr]`.
    Named {
        /// Output name.
        name: String,
        /// Value.
        value: Clause,
        /// Metric kind.
        kind: MetricKind,
        /// Family help text.
        help: Option<String>,
    },
    /// `* include .. exclude ..`.
    All {
        /// A field must match one of these (all fields when empty).
        include: Vec<Regex>,
        /// A field matching one of these is dropped.
        exclude: Vec<Regex>,
        /// Metric kind.
        kind: MetricKind,
    },
}

/// A compiled `histogram` clause.
#[derive(Debug, Clone)]
pub struct HistogramSpec {
    /// The bucketed field.
    pub field: String,
    /// Zone boundaries, base units, increasing.
    pub bounds: Vec<f64>,
    /// Label carrying the zone index.
    pub label: String,
}

/// A compiled `capture` clause.
#[derive(Debug, Clone)]
pub struct CaptureSpec {
    /// The capture action.
    pub name: String,
    /// Positional arguments.
    pub positional: Vec<Clause>,
    /// Named arguments.
    pub named: Vec<(String, Clause)>,
    /// Record field for the result.
    pub alias: Option<String>,
}

impl CaptureSpec {
    /// Evaluates the arguments into a request.
    pub fn request(&self, ctx: &mut Ctx<'_>) -> Result<CaptureRequest, (Span, String)> {
        let eval = |c: &Clause, ctx: &mut Ctx<'_>| c.expr.eval(ctx).map_err(|m| (c.span, m));
        let mut positional = Vec::new();
        for c in &self.positional {
            positional.push(eval(c, ctx)?);
        }
        let mut named = BTreeMap::new();
        for (name, c) in &self.named {
            named.insert(name.clone(), eval(c, ctx)?);
        }
        Ok(CaptureRequest {
            name: self.name.clone(),
            positional,
            named,
            alias: self.alias.clone(),
        })
    }
}

/// Which series a metric rule produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    /// Host series (samples without `container_id`).
    pub host: bool,
    /// Container series (samples with `container_id`).
    pub container: bool,
}

/// One rule, ready to run.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Rule name.
    pub name: String,
    /// `fallback for RULE`: runs only where that rule's source is unavailable (see
    /// [`Plan::select_fallbacks`]).
    pub fallback_for: Option<String>,
    /// File it came from.
    pub path: String,
    /// Metric, event or autotrace.
    pub kind: RuleKind,
    /// Source catalog name.
    pub source: String,
    /// `every` interval, ns.
    pub interval_ns: Option<i64>,
    /// Help text.
    pub help: String,
    /// `where`.
    pub filter: Option<Clause>,
    /// `let`/`script` bindings in order.
    pub lets: Vec<Clause>,
    /// `when`.
    pub trigger: Option<Clause>,
    /// `emit` items.
    pub emits: Vec<Emit>,
    /// `histogram` clauses.
    pub histograms: Vec<HistogramSpec>,
    /// `capture` clauses.
    pub captures: Vec<CaptureSpec>,
    /// Cooldown policy.
    pub cooldown: CooldownSpec,
    /// Labels the cooldown is kept per (entity when absent).
    pub cooldown_per: Option<Vec<String>>,
    /// `limit`: (rate, period ns, burst).
    pub limit: Option<(f64, i64, f64)>,
    /// `issues`: known issues to tag records with.
    pub issues: Option<Vec<KnownIssue>>,
    /// `labels`: sample labels kept on metrics (all when absent).
    pub labels: Option<Vec<String>>,
    /// `scope`: which series (by the sample when absent).
    pub scopes: Option<Scopes>,
    /// Number of stateful call sites.
    pub slots: usize,
}

impl CompiledRule {
    /// The name its records (`tracer_name`) and metric families carry: the rule it is the
    /// fallback for (`fallback for`), else its own name.
    pub fn output(&self) -> &str {
        self.fallback_for.as_deref().unwrap_or(&self.name)
    }

    /// `path:line:col` of a span in this rule's file.
    pub fn place(&self, span: Span) -> String {
        format!("{}:{}:{}", self.path, span.line, span.col)
    }
}

/// What the plan needs from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNeed {
    /// Source catalog name.
    pub source: String,
    /// Shortest `every` among the rules using it, ns (the source default when none says).
    pub interval_ns: Option<i64>,
    /// Names of the rules that read it.
    pub rules: Vec<String>,
}

/// A compiled rule set and the script library it calls.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The rules in file order.
    pub rules: Vec<CompiledRule>,
    /// The loaded scripts.
    pub scripts: Option<Arc<ScriptHost>>,
}

impl Plan {
    /// The sources the rules read, grouped by source name, sorted.
    pub fn sources(&self) -> Vec<SourceNeed> {
        let mut needs: BTreeMap<&str, SourceNeed> = BTreeMap::new();
        for rule in &self.rules {
            let need = needs.entry(&rule.source).or_insert_with(|| SourceNeed {
                source: rule.source.clone(),
                interval_ns: None,
                rules: Vec::new(),
            });
            need.rules.push(rule.name.clone());
            if let Some(iv) = rule.interval_ns {
                need.interval_ns = Some(need.interval_ns.map_or(iv, |cur| cur.min(iv)));
            }
        }
        needs.into_values().collect()
    }

    /// Rule names in file order.
    pub fn rule_names(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.name.clone()).collect()
    }

    /// Keeps one rule of every `fallback for` pair and removes the other from the plan: the
    /// preferred rule where `available(its source)`, else its fallback. A fallback whose
    /// preferred rule is not in the plan (switched off by the BlackList, which removes both)
    /// stays. Returns the rules removed, each with the one running in its place and why.
    pub fn select_fallbacks(&mut self, available: &dyn Fn(&str) -> bool) -> Vec<Inactive> {
        let mut removed = vec![false; self.rules.len()];
        let mut inactive = Vec::new();
        for (i, fallback) in self.rules.iter().enumerate() {
            let Some(target) = &fallback.fallback_for else {
                continue;
            };
            let Some(p) = self
                .rules
                .iter()
                .position(|r| r.kind == fallback.kind && &r.name == target)
            else {
                continue;
            };
            let preferred = &self.rules[p];
            let is_fallback = available(&preferred.source);
            let (gone, active, reason) = if is_fallback {
                let reason = format!(
                    "fallback for `{}`, whose source {} is available",
                    preferred.name, preferred.source
                );
                (i, p, reason)
            } else {
                let reason = format!(
                    "source {} is unavailable: its fallback `{}` ({}) runs instead",
                    preferred.source, fallback.name, fallback.source
                );
                (p, i, reason)
            };
            removed[gone] = true;
            let (gone, active) = (&self.rules[gone], &self.rules[active]);
            inactive.push(Inactive {
                name: gone.name.clone(),
                kind: gone.kind,
                source: gone.source.clone(),
                active: active.name.clone(),
                active_source: active.source.clone(),
                is_fallback,
                reason,
            });
        }
        let mut index = 0;
        self.rules.retain(|_| {
            index += 1;
            !removed[index - 1]
        });
        inactive
    }
}

/// A rule of a `fallback for` pair that does not run, because the other one does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inactive {
    /// The rule left out.
    pub name: String,
    /// Its kind.
    pub kind: RuleKind,
    /// Its source.
    pub source: String,
    /// The rule of the pair that runs.
    pub active: String,
    /// That rule's source.
    pub active_source: String,
    /// True when the rule left out is the fallback (the preferred rule's source is
    /// available), false when it is the preferred rule.
    pub is_fallback: bool,
    /// Why, in words (for `/status` and the log).
    pub reason: String,
}

/// Compiles checked rule files; `config` answers `config(...)`, `stdlib_dir` holds `*.rhai`.
pub fn compile(
    files: &[RuleFile],
    config: &dyn ConfigValues,
    stdlib_dir: Option<&Path>,
) -> Result<Plan, Vec<Diagnostic>> {
    let scripts = match stdlib_dir {
        Some(dir) => Some(Arc::new(ScriptHost::load(dir).map_err(|d| vec![d])?)),
        None => None,
    };
    compile_with_scripts(files, config, scripts)
}

/// Compiles checked rule files calling the scripts of an already loaded script host.
pub fn compile_with_scripts(
    files: &[RuleFile],
    config: &dyn ConfigValues,
    scripts: Option<Arc<ScriptHost>>,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut rules = Vec::new();
    let mut diags = Vec::new();
    // Metric names and tracer names are separate namespaces (see the checker).
    let mut seen: BTreeMap<(bool, String), String> = BTreeMap::new();
    for file in files {
        for rule in &file.rules {
            let key = (rule.kind == RuleKind::Metric, rule.name.name.clone());
            if let Some(place) = seen.get(&key) {
                diags.push(Diagnostic::error(
                    "duplicate-rule",
                    &file.path,
                    rule.name.span,
                    format!("rule `{}` is already defined at {place}", rule.name.name),
                ));
                continue;
            }
            seen.insert(
                key,
                format!(
                    "{}:{}:{}",
                    file.path, rule.name.span.line, rule.name.span.col
                ),
            );
            let mut scope = Scope::new(&file.path, config, scripts.as_deref());
            match compile_rule(rule, &mut scope) {
                Ok(compiled) => rules.push(compiled),
                Err(d) => diags.push(d),
            }
        }
    }
    if diags.is_empty() {
        Ok(Plan { rules, scripts })
    } else {
        Err(diags)
    }
}

fn clause(scope: &mut Scope<'_>, e: &Expr) -> Result<Clause, Diagnostic> {
    Ok(Clause {
        expr: scope.expr(e)?,
        span: e.span,
    })
}

fn kind_of(t: Option<MetricType>) -> MetricKind {
    match t {
        Some(MetricType::Counter) => MetricKind::Counter,
        _ => MetricKind::Gauge,
    }
}

fn names(idents: &Option<Vec<Ident>>) -> Option<Vec<String>> {
    idents
        .as_ref()
        .map(|ids| ids.iter().map(|i| i.name.clone()).collect())
}

fn compile_rule(rule: &Rule, scope: &mut Scope<'_>) -> Result<CompiledRule, Diagnostic> {
    for p in &rule.params {
        let v = scope.constant(&p.value, "a param")?;
        scope.params.insert(p.name.name.clone(), v);
    }
    let interval_ns = match &rule.source.every {
        Some(e) => Some(positive_duration(scope, e, "the poll interval", true)?),
        None => None,
    };
    scope.allow_stateful = false;
    let filter = rule.filter.as_ref().map(|e| clause(scope, e)).transpose()?;
    scope.allow_stateful = true;
    let mut lets = Vec::new();
    for b in &rule.lets {
        lets.push(clause(scope, &b.value)?);
        scope.lets.push(b.name.name.clone());
    }
    let trigger = rule
        .trigger
        .as_ref()
        .map(|e| clause(scope, e))
        .transpose()?;
    let emits = rule
        .emits
        .iter()
        .map(|item| compile_emit(item, scope))
        .collect::<Result<_, _>>()?;
    let histograms = rule
        .histograms
        .iter()
        .map(|h| compile_histogram(h, scope))
        .collect::<Result<_, _>>()?;
    scope.allow_stateful = false;
    scope.words = true;
    let captures = rule
        .captures
        .iter()
        .map(|c| compile_capture(c, scope))
        .collect::<Result<_, _>>()?;
    scope.words = false;
    let (cooldown, cooldown_per) = match &rule.cooldown {
        Some(c) => (compile_cooldown(&c.policy, c.span, scope)?, names(&c.per)),
        None => (CooldownSpec::None, None),
    };
    let limit = rule
        .limit
        .as_ref()
        .map(|l| compile_limit(l, scope))
        .transpose()?;
    let issues = match &rule.issues {
        Some(e) => {
            let v = scope.constant(e, "the issues list")?;
            Some(parse_issues(&v).map_err(|m| scope.err("bad-issues", e.span, m))?)
        }
        None => None,
    };
    let scopes = match &rule.scope {
        Some(ids) => Some(compile_scopes(ids, scope)?),
        None => None,
    };
    Ok(CompiledRule {
        name: rule.name.name.clone(),
        fallback_for: rule.fallback.as_ref().map(|f| f.name.clone()),
        path: scope.path.to_string(),
        kind: rule.kind,
        source: rule.source.name.name.clone(),
        interval_ns,
        help: rule
            .help
            .as_ref()
            .map(|(h, _)| h.clone())
            .unwrap_or_default(),
        filter,
        lets,
        trigger,
        emits,
        histograms,
        captures,
        cooldown,
        cooldown_per,
        limit,
        issues,
        labels: names(&rule.labels),
        scopes,
        slots: scope.slots,
    })
}

fn compile_emit(item: &ast::EmitItem, scope: &mut Scope<'_>) -> Result<Emit, Diagnostic> {
    Ok(match item {
        ast::EmitItem::Named {
            name,
            value,
            metric_type,
            help,
            ..
        } => {
            let value = match value {
                Some(e) => clause(scope, e)?,
                None => clause(
                    scope,
                    &Expr {
                        kind: ast::ExprKind::Name(name.name.clone()),
                        span: name.span,
                    },
                )?,
            };
            Emit::Named {
                name: name.name.clone(),
                value,
                kind: kind_of(*metric_type),
                help: help.clone(),
            }
        }
        ast::EmitItem::AllFields {
            include,
            exclude,
            metric_type,
            ..
        } => Emit::All {
            include: match include {
                Some(e) => scope.patterns(e)?,
                None => Vec::new(),
            },
            exclude: match exclude {
                Some(e) => scope.patterns(e)?,
                None => Vec::new(),
            },
            kind: kind_of(*metric_type),
        },
    })
}

fn compile_histogram(
    h: &ast::HistogramClause,
    scope: &mut Scope<'_>,
) -> Result<HistogramSpec, Diagnostic> {
    let mut bounds = Vec::new();
    for b in &h.bounds {
        let v = scope.constant_f64(b, "a zone boundary")?;
        if bounds.last().is_some_and(|prev| *prev >= v) || v < 0.0 {
            return Err(scope.err(
                "bad-zones",
                b.span,
                "zone boundaries must be non-negative and increasing",
            ));
        }
        bounds.push(v);
    }
    Ok(HistogramSpec {
        field: h.field.name.clone(),
        bounds,
        label: h
            .label
            .as_ref()
            .map_or_else(|| "zone".to_string(), |l| l.name.clone()),
    })
}

fn compile_capture(c: &ast::Capture, scope: &mut Scope<'_>) -> Result<CaptureSpec, Diagnostic> {
    let mut positional = Vec::new();
    let mut named = Vec::new();
    for arg in &c.args {
        let compiled = clause(scope, &arg.value)?;
        match &arg.name {
            Some(n) => named.push((n.name.clone(), compiled)),
            None => positional.push(compiled),
        }
    }
    Ok(CaptureSpec {
        name: c.name.name.clone(),
        positional,
        named,
        alias: c.alias.as_ref().map(|a| a.name.clone()),
    })
}

/// The longest backoff period when `max` is not given: 3 hours (HUATUO's).
const DEFAULT_BACKOFF_MAX_NS: i64 = 3 * 3600 * 1_000_000_000;

/// A constant duration that must be positive (or, with `strict` false, not negative); the
/// error shows the value as written (`-5s`) at the expression.
fn positive_duration(
    scope: &mut Scope<'_>,
    e: &Expr,
    what: &str,
    strict: bool,
) -> Result<i64, Diagnostic> {
    let ns = scope.constant_int(e, what)?;
    if ns > 0 || (ns == 0 && !strict) {
        return Ok(ns);
    }
    let wanted = if strict {
        "greater than 0"
    } else {
        "0 or more"
    };
    Err(scope.err(
        "bad-duration",
        e.span,
        format!(
            "{what} must be {wanted}, found {}",
            show_quantity(ns as f64, Dim::Time)
        ),
    ))
}

fn compile_cooldown(
    policy: &ast::CooldownPolicy,
    span: Span,
    scope: &mut Scope<'_>,
) -> Result<CooldownSpec, Diagnostic> {
    Ok(match policy {
        ast::CooldownPolicy::None => CooldownSpec::None,
        ast::CooldownPolicy::Fixed(e) => {
            CooldownSpec::Fixed(positive_duration(scope, e, "a cooldown", false)?)
        }
        ast::CooldownPolicy::Backoff(args) => {
            let mut initial = None;
            let (mut factor, mut max, mut reset) = (2.0, None, None);
            for arg in args {
                let value = &arg.value;
                match arg.name.as_ref().map(|n| n.name.as_str()) {
                    None | Some("initial") => {
                        initial = Some(positive_duration(
                            scope,
                            value,
                            "the initial backoff",
                            true,
                        )?)
                    }
                    Some("factor") => factor = scope.constant_f64(value, "the backoff factor")?,
                    Some("max") => {
                        let ns = positive_duration(scope, value, "the longest backoff", true)?;
                        max = Some((ns, value.span));
                    }
                    Some("reset") => {
                        reset = Some(positive_duration(scope, value, "the backoff reset", true)?)
                    }
                    Some(other) => {
                        return Err(scope.err(
                            "bad-backoff",
                            value.span,
                            format!(
                                "unknown backoff argument `{other}` (initial, factor, max, reset)"
                            ),
                        ))
                    }
                }
            }
            let initial = initial.ok_or_else(|| {
                scope.err(
                    "bad-backoff",
                    span,
                    "backoff needs a positive initial period",
                )
            })?;
            if factor < 1.0 {
                return Err(scope.err(
                    "bad-backoff",
                    span,
                    "the backoff factor must be at least 1",
                ));
            }
            let max = match max {
                Some((max, max_span)) if max < initial => {
                    return Err(scope.err(
                        "bad-backoff",
                        max_span,
                        format!(
                            "the longest backoff ({}) is shorter than the initial one ({})",
                            show_quantity(max as f64, Dim::Time),
                            show_quantity(initial as f64, Dim::Time)
                        ),
                    ))
                }
                Some((max, _)) => max,
                None => DEFAULT_BACKOFF_MAX_NS.max(initial),
            };
            CooldownSpec::Backoff {
                initial,
                factor,
                max,
                reset: reset.unwrap_or(max),
            }
        }
    })
}

fn compile_limit(l: &ast::RateLimit, scope: &mut Scope<'_>) -> Result<(f64, i64, f64), Diagnostic> {
    let rate = scope.constant_f64(&l.rate, "the limit rate")?;
    let per = scope.constant_int(&l.per, "the limit period")?;
    let burst = match &l.burst {
        Some(b) => scope.constant_f64(b, "the limit burst")?,
        None => rate,
    };
    if rate <= 0.0 || per <= 0 || burst < 1.0 {
        return Err(scope.err(
            "bad-limit",
            l.span,
            "a limit needs a positive rate and period and a burst of at least 1",
        ));
    }
    Ok((rate, per, burst))
}

fn compile_scopes(ids: &[Ident], scope: &Scope<'_>) -> Result<Scopes, Diagnostic> {
    let mut scopes = Scopes {
        host: false,
        container: false,
    };
    for id in ids {
        match id.name.as_str() {
            "host" => scopes.host = true,
            "container" => scopes.container = true,
            other => {
                return Err(scope.err(
                    "bad-scope",
                    id.span,
                    format!("unknown scope `{other}` (host, container)"),
                ))
            }
        }
    }
    Ok(scopes)
}

/// Evaluates a value expression for the record or metric of a rule (helper for the runtime).
pub fn value_of(clause: &Clause, ctx: &mut Ctx<'_>) -> Result<Value, (Span, String)> {
    clause.expr.eval(ctx).map_err(|m| (clause.span, m))
}
