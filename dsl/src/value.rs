//! Runtime values and the samples that sources feed into the evaluator.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A kernel- or user-space-aggregated histogram: sorted buckets of `(upper_bound, count)`,
/// each bound in the base unit of the field (ns for latencies), exclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Buckets sorted by upper bound; the last bound may be `u64::MAX` for overflow.
    pub buckets: Vec<(u64, u64)>,
}

impl Histogram {
    /// Sums the counts of the buckets whose upper bound is within `(lo, hi]`.
    pub fn count_between(&self, lo: u64, hi: u64) -> u64 {
        self.buckets
            .iter()
            .filter(|(upper, _)| *upper > lo && *upper <= hi)
            .map(|(_, count)| *count)
            .sum()
    }

    /// The number of observations in all buckets.
    pub fn total(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |n, (_, count)| n.saturating_add(*count))
    }

    /// The upper bound of the bucket holding the `q`-quantile (0 < q <= 1) observation, `None`
    /// when the histogram is empty: the true value lies below this bound.
    pub fn quantile_bound(&self, q: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        self.buckets.iter().find_map(|(upper, count)| {
            seen = seen.saturating_add(*count);
            (seen >= rank).then_some(*upper)
        })
    }
}

/// A value a field, parameter, binding or record entry can hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// Nothing (a missing field, a capture that produced nothing).
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer in the base unit of its dimension.
    Int(i64),
    /// A float in the base unit of its dimension.
    Float(f64),
    /// A string (comm, device, reason).
    Str(String),
    /// A histogram of a latency or size.
    Hist(Histogram),
    /// A list (a window of samples, a stack as frames, a set of tasks).
    List(Vec<Value>),
    /// Structured data produced by a capture (flame graph, task list, file snapshot).
    Json(serde_json::Value),
}

impl Value {
    /// The value as a float when it is numeric or boolean.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// The value as a string slice when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// One observation from a source: what a reader read or a template emitted at one time,
/// for one entity (the host, a container, a device, a CPU) named by its labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The catalog name of the source (`proc.stat`, `bpf.runqlat`).
    pub source: String,
    /// Wall-clock time of the observation in nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Labels that identify the entity (`container_id`, `device`, `cpu`); empty for the host.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Field values in the base units of their schema.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

impl Sample {
    /// A stable key naming the entity this sample is about, for per-entity state.
    pub fn entity_key(&self) -> String {
        let mut key = String::new();
        for (name, value) in &self.labels {
            if !key.is_empty() {
                key.push(',');
            }
            key.push_str(name);
            key.push('=');
            key.push_str(value);
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn quantile_bounds_name_the_bucket_of_the_ranked_observation() {
        let h = Histogram {
            buckets: vec![(10, 0), (20, 98), (50, 1), (u64::MAX, 1)],
        };
        assert_eq!(h.total(), 100);
        assert_eq!(h.quantile_bound(0.5), Some(20));
        assert_eq!(h.quantile_bound(0.98), Some(20));
        assert_eq!(h.quantile_bound(0.99), Some(50));
        assert_eq!(h.quantile_bound(1.0), Some(u64::MAX));
        assert_eq!(Histogram::default().quantile_bound(0.5), None);
    }
}
