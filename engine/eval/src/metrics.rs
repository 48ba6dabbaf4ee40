//! Turning one evaluated sample of a metric rule into Prometheus points.
//!
//! Naming (owned here): family `<rule>_<name>` for host samples and `<rule>_container_<name>`
//! for samples with a `container_id` label; histogram families are `<rule>_<field>` with one
//! series per zone, labelled `zone="0".."n"` (or the clause's label). A rule whose name already
//! has a `container` word (`cpu_util_container`, `iolatency_container_blkdisk`) gets no second
//! infix, so a container rule on its own source can produce HUATUO's container families.

use crate::bounded::BoundedMap;
use crate::expr::CExpr;
use crate::funcs::Stateful;
use crate::ops::type_name;
use crate::plan::{CompiledRule, Emit, HistogramSpec, Plan};
use huatuo_dsl::ast::RuleKind;
use huatuo_dsl::catalog::Catalog;
use huatuo_dsl::output::{MetricKind, MetricPoint};
use huatuo_dsl::value::{Sample, Value};
use std::collections::BTreeMap;

/// The label that marks a sample as a container's.
pub const CONTAINER_LABEL: &str = "container_id";

/// Per-series zone counts accumulated from numeric stream samples.
pub type ZoneCounts = BoundedMap<Vec<u64>>;

/// The points of one sample. `emitted` holds the values of the rule's `Named` emits, in order.
pub fn points(
    rule: &CompiledRule,
    sample: &Sample,
    emitted: &[Value],
    zones: &mut ZoneCounts,
) -> Result<Vec<MetricPoint>, String> {
    let container = sample.labels.contains_key(CONTAINER_LABEL);
    if let Some(scopes) = rule.scopes {
        if (container && !scopes.container) || (!container && !scopes.host) {
            return Ok(Vec::new());
        }
    }
    let prefix = family_prefix(rule.output(), container);
    let labels = series_labels(rule, sample, container);
    let point = |family: String, help: &str, kind, value| MetricPoint {
        family,
        help: help.to_string(),
        kind,
        labels: labels.clone(),
        value,
    };
    let mut out = Vec::new();
    let mut values = emitted.iter();
    for emit in &rule.emits {
        match emit {
            Emit::Named {
                name, kind, help, ..
            } => {
                let value = values.next().unwrap_or(&Value::Null);
                let number = match value {
                    Value::Null => continue,
                    Value::Int(_) | Value::Float(_) | Value::Bool(_) => value.as_f64(),
                    other => {
                        return Err(format!(
                            "emit `{name}`: a metric value must be a number, found {}",
                            type_name(other)
                        ))
                    }
                };
                let help = help.as_deref().unwrap_or(&rule.help);
                out.extend(number.map(|n| point(format!("{prefix}{name}"), help, *kind, n)));
            }
            Emit::All {
                include,
                exclude,
                kind,
            } => {
                for (field, value) in &sample.fields {
                    let Some(n) = crate::ops::number(value) else {
                        continue;
                    };
                    let wanted = (include.is_empty()
                        || include.iter().any(|re| re.is_match(field)))
                        && !exclude.iter().any(|re| re.is_match(field));
                    if wanted {
                        out.push(point(format!("{prefix}{field}"), &rule.help, *kind, n));
                    }
                }
            }
        }
    }
    for hist in &rule.histograms {
        let family = format!("{prefix}{}", hist.field);
        let Some(counts) = zone_counts(hist, sample, &family, &labels, zones)? else {
            continue;
        };
        for (zone, count) in counts.into_iter().enumerate() {
            let mut series = point(
                family.clone(),
                &rule.help,
                MetricKind::Counter,
                count as f64,
            );
            series.labels.insert(hist.label.clone(), zone.to_string());
            out.push(series);
        }
    }
    Ok(out)
}

/// The series exported before any sample arrives, at 0: every named `counter` emit whose value
/// is a `total(...)` (a count the agent keeps, so 0 until something is counted) of a metric rule
/// whose host series carries no label (the source's catalog labels, narrowed by `labels`, hold
/// none besides `container_id`). HUATUO exports its event counters (`softlockup_total`,
/// `hungtask_total`, `oom_total`) from the start; counters with labels appear with their first
/// series, since their label values are not known before it.
pub fn zero_points(plan: &Plan, catalog: &Catalog) -> Vec<MetricPoint> {
    let mut out = Vec::new();
    for rule in &plan.rules {
        let host = rule.scopes.is_none_or(|s| s.host);
        if rule.kind != RuleKind::Metric || !host || !host_series_unlabelled(rule, catalog) {
            continue;
        }
        let prefix = family_prefix(rule.output(), false);
        for emit in &rule.emits {
            let Emit::Named {
                name,
                value,
                kind: MetricKind::Counter,
                help,
            } = emit
            else {
                continue;
            };
            if is_running_total(rule, &value.expr) {
                out.push(MetricPoint {
                    family: format!("{prefix}{name}"),
                    help: help.as_deref().unwrap_or(&rule.help).to_string(),
                    kind: MetricKind::Counter,
                    labels: BTreeMap::new(),
                    value: 0.0,
                });
            }
        }
    }
    out
}

/// Whether a rule's host series has no label: its source is known and every label its samples
/// carry is `container_id` or dropped by the rule's `labels` clause.
fn host_series_unlabelled(rule: &CompiledRule, catalog: &Catalog) -> bool {
    let Some(schema) = catalog.source(&rule.source) else {
        return false;
    };
    schema.labels.iter().all(|label| {
        label == CONTAINER_LABEL
            || rule
                .labels
                .as_ref()
                .is_some_and(|keep| !keep.contains(label))
    })
}

/// Whether an emitted value is a `total(...)` call, directly or through a `let`.
fn is_running_total(rule: &CompiledRule, expr: &CExpr) -> bool {
    match expr {
        CExpr::Stateful {
            func: Stateful::Total,
            ..
        } => true,
        CExpr::Local(i) => rule
            .lets
            .get(*i)
            .is_some_and(|c| is_running_total(rule, &c.expr)),
        _ => false,
    }
}

/// The family prefix of a rule's series: `<rule>_`, with `container_` after the rule name for
/// container samples unless the name already has a `container` word.
pub fn family_prefix(rule: &str, container: bool) -> String {
    let named = rule.split('_').any(|word| word == "container");
    if container && !named {
        format!("{rule}_container_")
    } else {
        format!("{rule}_")
    }
}

fn series_labels(
    rule: &CompiledRule,
    sample: &Sample,
    container: bool,
) -> BTreeMap<String, String> {
    match &rule.labels {
        None => sample.labels.clone(),
        Some(keep) => sample
            .labels
            .iter()
            .filter(|(k, _)| keep.contains(k) || (container && k.as_str() == CONTAINER_LABEL))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Zone counts of one histogram clause: from a kernel histogram as is, or accumulated from a
/// numeric stream value. `None` when the sample has no value for the field.
fn zone_counts(
    hist: &HistogramSpec,
    sample: &Sample,
    family: &str,
    labels: &BTreeMap<String, String>,
    zones: &mut ZoneCounts,
) -> Result<Option<Vec<u64>>, String> {
    let n = hist.bounds.len();
    match sample.fields.get(&hist.field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Hist(h)) => {
            let mut edges = vec![0u64];
            edges.extend(hist.bounds.iter().map(|b| *b as u64));
            edges.push(u64::MAX);
            Ok(Some(
                edges
                    .windows(2)
                    .map(|w| h.count_between(w[0], w[1]))
                    .collect(),
            ))
        }
        Some(v @ (Value::Int(_) | Value::Float(_))) => {
            let x = crate::ops::number(v).unwrap_or(0.0);
            let zone = hist.bounds.iter().filter(|b| x > **b).count();
            let key = format!("{family}{labels:?}");
            let counts = zones.get_or_insert_with(&key, || vec![0; n + 1]);
            if let Some(c) = counts.get_mut(zone) {
                *c += 1;
            }
            Ok(Some(counts.clone()))
        }
        Some(other) => Err(format!(
            "histogram `{}`: needs a histogram or a number, found {}",
            hist.field,
            type_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::family_prefix;

    #[test]
    fn container_infix_is_added_once() {
        assert_eq!(family_prefix("runqlat", false), "runqlat_");
        assert_eq!(family_prefix("runqlat", true), "runqlat_container_");
        assert_eq!(
            family_prefix("cpu_util_container", true),
            "cpu_util_container_"
        );
        assert_eq!(
            family_prefix("iolatency_container_blkdisk", true),
            "iolatency_container_blkdisk_"
        );
        // A word that merely contains "container" is not the infix.
        assert_eq!(family_prefix("containers", true), "containers_container_");
    }
}
