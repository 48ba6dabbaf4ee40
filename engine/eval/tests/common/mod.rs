//! Helpers shared by the semantic tests: parsing rule text, building samples, a map config.

#![allow(dead_code)]

use huatuo_dsl::ast::RuleFile;
use huatuo_dsl::source::ConfigValues;
use huatuo_dsl::value::{Sample, Value};
use huatuo_eval::{compile, Evaluator, Output, Plan};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const SEC: i64 = 1_000_000_000;
pub const MIN: i64 = 60 * SEC;

/// Config values by dotted path.
#[derive(Default)]
pub struct MapConfig(pub BTreeMap<String, Value>);

impl MapConfig {
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.to_string(), value);
        self
    }
}

impl ConfigValues for MapConfig {
    fn value(&self, path: &str) -> Option<Value> {
        self.0.get(path).cloned()
    }
}

pub fn parse(text: &str) -> RuleFile {
    match huatuo_dsl::parser::parse_file("test.hto", text) {
        Ok(file) => file,
        Err(diags) => panic!("parse failed: {diags:#?}"),
    }
}

pub fn stdlib_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../stdlib")
}

pub fn plan_with(text: &str, config: &MapConfig, stdlib: Option<&std::path::Path>) -> Plan {
    match compile(&[parse(text)], config, stdlib) {
        Ok(plan) => plan,
        Err(diags) => panic!("compile failed: {diags:#?}"),
    }
}

pub fn evaluator(text: &str) -> Evaluator {
    Evaluator::new(plan_with(text, &MapConfig::default(), None))
}

/// A sample of `source` at `time_ns` with labels and fields.
pub fn sample(
    source: &str,
    time_ns: i64,
    labels: &[(&str, &str)],
    fields: &[(&str, Value)],
) -> Sample {
    Sample {
        source: source.to_string(),
        time_ns,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

pub fn records(outputs: &[Output]) -> Vec<&huatuo_dsl::output::Record> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Record(r) => Some(r),
            Output::Metric(_) => None,
        })
        .collect()
}

pub fn metrics(outputs: &[Output]) -> Vec<&huatuo_dsl::output::MetricPoint> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Metric(m) => Some(m),
            Output::Record(_) => None,
        })
        .collect()
}

pub fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v:?}"))
}
