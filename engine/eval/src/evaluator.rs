//! Running samples through a plan: per-entity state, triggers, cooldowns, limits, captures.

use crate::bounded::BoundedMap;
use crate::capture::CaptureRunner;
use crate::cooldown::Cooldown;
use crate::expr::Ctx;
use crate::funcs::SlotState;
use crate::limit::TokenBucket;
use crate::metrics::{self, ZoneCounts};
use crate::ops::truth;
use crate::plan::{value_of, Clause, CompiledRule, Emit, Plan};
use crate::script::ScriptHost;
use huatuo_dsl::ast::{RuleKind, Span};
use huatuo_dsl::output::{MetricPoint, Record, TracerType};
use huatuo_dsl::value::{Sample, Value};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Entities (and cooldown keys, histogram series) kept per rule before the oldest is evicted.
pub const MAX_ENTITIES_PER_RULE: usize = 10_000;

/// What the evaluator produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "output", rename_all = "snake_case")]
pub enum Output {
    /// An event or autotracing record.
    Record(Record),
    /// A metric point.
    Metric(MetricPoint),
}

/// Counters of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    /// Samples of the rule's source seen.
    pub samples: u64,
    /// Records produced (events/autotrace) or samples that produced points (metrics).
    pub fired: u64,
    /// Triggers dropped because the key was in its cooldown.
    pub suppressed_by_cooldown: u64,
    /// Triggers dropped by the rate limit.
    pub shed_by_limit: u64,
    /// Runtime errors (the first one disables the rule).
    pub errors: u64,
    /// Script calls stopped at the script time limit (the first one disables the rule).
    pub script_timeouts: u64,
    /// Captures that failed (the record is still produced, with `<capture>_error`).
    pub capture_errors: u64,
    /// Entity, cooldown and histogram states evicted to stay within bounds.
    pub evicted: u64,
    /// Why the rule was disabled, if it was.
    pub disabled: Option<String>,
}

/// Counters of all rules, by rule name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EvalStats {
    /// Per rule.
    pub rules: BTreeMap<String, RuleStats>,
}

#[derive(Debug)]
struct EntityState {
    slots: Vec<SlotState>,
    last_accepted_ns: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct Runtime {
    entities: BoundedMap<EntityState>,
    cooldown: Cooldown,
    bucket: Option<TokenBucket>,
    zones: ZoneCounts,
    stats: RuleStats,
}

/// Owns a plan and the state of its rules; feed it samples in time order.
#[derive(Debug)]
pub struct Evaluator {
    pub(crate) plan: Plan,
    pub(crate) runtimes: Vec<Runtime>,
    by_source: HashMap<String, Vec<usize>>,
}

type Failure = (Span, String);

impl Runtime {
    /// The state of a rule that has seen no sample.
    pub(crate) fn fresh(rule: &CompiledRule) -> Self {
        Runtime {
            entities: BoundedMap::new(MAX_ENTITIES_PER_RULE),
            cooldown: Cooldown::new(rule.cooldown.clone(), MAX_ENTITIES_PER_RULE),
            bucket: rule
                .limit
                .map(|(rate, per, burst)| TokenBucket::new(rate, per, burst)),
            zones: BoundedMap::new(MAX_ENTITIES_PER_RULE),
            stats: RuleStats::default(),
        }
    }
}

impl Evaluator {
    /// An evaluator with fresh state.
    pub fn new(plan: Plan) -> Self {
        let runtimes = plan.rules.iter().map(Runtime::fresh).collect();
        Evaluator::with_runtimes(plan, runtimes)
    }

    /// An evaluator over `plan` whose rule `i` runs with `runtimes[i]`.
    pub(crate) fn with_runtimes(plan: Plan, runtimes: Vec<Runtime>) -> Self {
        let mut by_source: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, rule) in plan.rules.iter().enumerate() {
            by_source.entry(rule.source.clone()).or_default().push(i);
        }
        Evaluator {
            plan,
            runtimes,
            by_source,
        }
    }

    /// The plan being run.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Runs one sample through every enabled rule of its source.
    pub fn push(&mut self, sample: &Sample, captures: &mut dyn CaptureRunner) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(indices) = self.by_source.get(&sample.source) else {
            return out;
        };
        let scripts = self.plan.scripts.as_deref();
        for &i in indices {
            let (Some(rule), Some(rt)) = (self.plan.rules.get(i), self.runtimes.get_mut(i)) else {
                continue;
            };
            if rt.stats.disabled.is_some() {
                continue;
            }
            rt.stats.samples += 1;
            let timeouts_before = scripts.map_or(0, ScriptHost::timeouts);
            let result = run_rule(rule, rt, scripts, sample, captures, &mut out);
            rt.stats.script_timeouts += scripts.map_or(0, ScriptHost::timeouts) - timeouts_before;
            if let Err((span, message)) = result {
                let reason = format!("{}: rule `{}`: {message}", rule.place(span), rule.name);
                log::warn!("disabling rule: {reason}");
                rt.stats.errors += 1;
                rt.stats.disabled = Some(reason);
            }
        }
        out
    }

    /// Counters of every rule.
    pub fn stats(&self) -> EvalStats {
        EvalStats {
            rules: self
                .plan
                .rules
                .iter()
                .zip(&self.runtimes)
                .map(|(rule, rt)| {
                    let mut stats = rt.stats.clone();
                    stats.evicted =
                        rt.entities.evicted() + rt.cooldown.evicted() + rt.zones.evicted();
                    (self.stats_key(rule), stats)
                })
                .collect(),
        }
    }

    /// The name a rule's counters are kept under: its name, or `<name>/metric` for a metric
    /// rule sharing its name with an event or autotrace rule.
    fn stats_key(&self, rule: &CompiledRule) -> String {
        let shared = rule.kind == RuleKind::Metric
            && self
                .plan
                .rules
                .iter()
                .any(|other| other.kind != RuleKind::Metric && other.name == rule.name);
        if shared {
            format!("{}/metric", rule.name)
        } else {
            rule.name.clone()
        }
    }

    /// Rules stopped by a runtime error, with the reason (file:line:col and message).
    pub fn disabled_rules(&self) -> Vec<(String, String)> {
        self.plan
            .rules
            .iter()
            .zip(&self.runtimes)
            .filter_map(|(rule, rt)| {
                rt.stats
                    .disabled
                    .clone()
                    .map(|reason| (rule.name.clone(), reason))
            })
            .collect()
    }
}

fn condition(clause: &Clause, ctx: &mut Ctx<'_>) -> Result<Option<bool>, Failure> {
    let v = value_of(clause, ctx)?;
    truth(&v).map_err(|m| (clause.span, m))
}

fn run_rule(
    rule: &CompiledRule,
    rt: &mut Runtime,
    scripts: Option<&ScriptHost>,
    sample: &Sample,
    captures: &mut dyn CaptureRunner,
    out: &mut Vec<Output>,
) -> Result<(), Failure> {
    if let Some(filter) = &rule.filter {
        let mut ctx = Ctx {
            sample,
            locals: &[],
            slots: None,
            scripts,
            warming: false,
        };
        if condition(filter, &mut ctx)? != Some(true) {
            return Ok(());
        }
    }
    let entity_key = sample.entity_key();
    let entity = rt.entities.get_or_insert_with(&entity_key, || EntityState {
        slots: vec![SlotState::Empty; rule.slots],
        last_accepted_ns: None,
    });
    if let (Some(interval), Some(last)) = (rule.interval_ns, entity.last_accepted_ns) {
        // Several rules may share a source read at a shorter interval: keep this rule's pace.
        if sample.time_ns - last < interval - interval / 10 {
            return Ok(());
        }
    }
    entity.last_accepted_ns = Some(sample.time_ns);

    let mut locals = Vec::with_capacity(rule.lets.len());
    let mut warming = false;
    let mut eval = |clause: &Clause, locals: &[Value], warming: &mut bool| {
        let mut ctx = Ctx {
            sample,
            locals,
            slots: Some(&mut entity.slots),
            scripts,
            warming: false,
        };
        let v = value_of(clause, &mut ctx);
        *warming |= ctx.warming;
        v
    };
    for clause in &rule.lets {
        let v = eval(clause, &locals, &mut warming)?;
        locals.push(v);
    }
    let fired = match &rule.trigger {
        Some(clause) => {
            let v = eval(clause, &locals, &mut warming)?;
            truth(&v).map_err(|m| (clause.span, m))?
        }
        None => Some(true),
    };
    // Every emit is evaluated on every sample so that its stateful calls see every sample.
    let mut emitted = Vec::new();
    for emit in &rule.emits {
        if let Emit::Named { value, .. } = emit {
            emitted.push(eval(value, &locals, &mut warming)?);
        }
    }
    if fired != Some(true) {
        return Ok(());
    }
    if rule.kind == RuleKind::Metric {
        let points = metrics::points(rule, sample, &emitted, &mut rt.zones)
            .map_err(|m| (rule_span(rule), m))?;
        if !points.is_empty() {
            rt.stats.fired += 1;
        }
        out.extend(points.into_iter().map(Output::Metric));
        return Ok(());
    }
    if warming {
        return Ok(());
    }
    let key = cooldown_key(rule, sample, &entity_key);
    if !rt.cooldown.admit(&key, sample.time_ns) {
        rt.stats.suppressed_by_cooldown += 1;
        return Ok(());
    }
    if let Some(bucket) = &mut rt.bucket {
        if !bucket.take(sample.time_ns) {
            rt.stats.shed_by_limit += 1;
            return Ok(());
        }
    }
    rt.cooldown.fired(&key, sample.time_ns);
    let data = record_data(rule, rt, scripts, sample, &locals, emitted, captures)?;
    rt.stats.fired += 1;
    out.push(Output::Record(Record {
        tracer_name: rule.output().to_string(),
        tracer_type: TracerType::Auto,
        time_ns: sample.time_ns,
        labels: sample.labels.clone(),
        data,
    }));
    Ok(())
}

fn rule_span(rule: &CompiledRule) -> Span {
    rule.emits
        .iter()
        .find_map(|e| match e {
            Emit::Named { value, .. } => Some(value.span),
            Emit::All { .. } => None,
        })
        .unwrap_or_default()
}

fn cooldown_key(rule: &CompiledRule, sample: &Sample, entity_key: &str) -> String {
    match &rule.cooldown_per {
        None => entity_key.to_string(),
        Some(labels) => labels
            .iter()
            .map(|l| {
                let v = crate::expr::lookup(sample, l).unwrap_or(Value::Null);
                format!("{l}={}", serde_json::to_string(&v).unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn record_data(
    rule: &CompiledRule,
    rt: &mut Runtime,
    scripts: Option<&ScriptHost>,
    sample: &Sample,
    locals: &[Value],
    emitted: Vec<Value>,
    captures: &mut dyn CaptureRunner,
) -> Result<BTreeMap<String, Value>, Failure> {
    let mut data = BTreeMap::new();
    let mut values = emitted.into_iter();
    for emit in &rule.emits {
        match emit {
            Emit::Named { name, .. } => {
                data.insert(name.clone(), values.next().unwrap_or(Value::Null));
            }
            Emit::All {
                include, exclude, ..
            } => {
                for (field, value) in &sample.fields {
                    let wanted = (include.is_empty()
                        || include.iter().any(|re| re.is_match(field)))
                        && !exclude.iter().any(|re| re.is_match(field));
                    if wanted {
                        data.insert(field.clone(), value.clone());
                    }
                }
            }
        }
    }
    for spec in &rule.captures {
        let mut ctx = Ctx {
            sample,
            locals,
            slots: None,
            scripts,
            warming: false,
        };
        let request = spec.request(&mut ctx)?;
        match captures.run(&request, sample) {
            Ok(fields) => data.extend(fields),
            Err(message) => {
                rt.stats.capture_errors += 1;
                data.insert(
                    format!("{}_error", request.field_name()),
                    Value::Str(message),
                );
            }
        }
    }
    if let Some(issues) = &rule.issues {
        let name = crate::issues::known_issue(issues, &data);
        data.insert("known_issue".to_string(), Value::Str(name));
    }
    Ok(data)
}
