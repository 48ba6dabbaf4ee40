//! HUATUO's `{Field, Pattern}` filter lists (`[[AutoTracing.CPUIdle.Filter.Included]]` and
//! `Excluded`), compiled once when the rule loads and applied to each sample by
//! `filter_allows(included, excluded)`.

use crate::expr::lookup;
use crate::ops::type_name;
use crate::patterns::build;
use huatuo_dsl::catalog::CONTAINER_RECORD_FIELDS;
use huatuo_dsl::value::{Sample, Value};
use regex::Regex;
use serde_json::Value as Json;

/// One rule: the sample's `field` must match `pattern`.
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// The label or field the rule reads, as the config names it.
    pub field: String,
    /// The compiled pattern.
    pub pattern: Regex,
}

impl FieldRule {
    /// Whether the sample's value of the field matches. A field the sample lacks matches
    /// nothing; HUATUO's record names of container labels (`container_qos`) read the label.
    pub fn matches(&self, sample: &Sample) -> bool {
        let alias = CONTAINER_RECORD_FIELDS
            .iter()
            .find(|(record, _)| *record == self.field)
            .map(|(_, label)| *label);
        let value = lookup(sample, &self.field).or_else(|| alias.and_then(|l| lookup(sample, l)));
        match value {
            None | Some(Value::Null) => false,
            Some(Value::Int(i)) => self.pattern.is_match(&i.to_string()),
            Some(Value::Float(f)) => self.pattern.is_match(&f.to_string()),
            Some(Value::Bool(b)) => self.pattern.is_match(&b.to_string()),
            Some(other) => crate::patterns::any_string_matches(&other, &self.pattern),
        }
    }
}

/// An Included/Excluded pair: with no rules every sample passes.
#[derive(Debug, Clone, Default)]
pub struct FieldFilter {
    /// A sample must match one of these, unless there are none.
    pub included: Vec<FieldRule>,
    /// A sample matching one of these is dropped.
    pub excluded: Vec<FieldRule>,
}

impl FieldFilter {
    /// Compiles the two rule lists (`Null` is an empty list).
    pub fn new(included: &Value, excluded: &Value) -> Result<FieldFilter, String> {
        Ok(FieldFilter {
            included: rules(included)?,
            excluded: rules(excluded)?,
        })
    }

    /// Whether the sample passes: matches an included rule (or there are none) and no
    /// excluded rule.
    pub fn allows(&self, sample: &Sample) -> bool {
        let included = self.included.is_empty() || self.included.iter().any(|r| r.matches(sample));
        included && !self.excluded.iter().any(|r| r.matches(sample))
    }
}

/// Reads a rule list: a JSON array of `{"Field", "Pattern"}` objects (structured config), or
/// a list of `[field, pattern]` pairs. A rule with an empty pattern is no rule, as an empty
/// pattern is everywhere else in huatuo-bamai.conf.
pub fn rules(value: &Value) -> Result<Vec<FieldRule>, String> {
    let pairs: Vec<(String, String)> = match value {
        Value::Null => Vec::new(),
        Value::List(items) => items.iter().map(pair_of_value).collect::<Result<_, _>>()?,
        Value::Json(Json::Array(items)) => {
            items.iter().map(pair_of_json).collect::<Result<_, _>>()?
        }
        other => {
            return Err(format!(
                "a filter is a list of {{Field, Pattern}} rules, found {}",
                type_name(other)
            ))
        }
    };
    pairs
        .into_iter()
        .filter(|(_, pattern)| !pattern.is_empty())
        .map(|(field, pattern)| {
            Ok(FieldRule {
                pattern: build(&pattern).map_err(|e| format!("filter rule on `{field}`: {e}"))?,
                field,
            })
        })
        .collect()
}

fn pair_of_value(item: &Value) -> Result<(String, String), String> {
    match item {
        Value::List(pair) => match pair.as_slice() {
            [Value::Str(field), Value::Str(pattern)] => Ok((field.clone(), pattern.clone())),
            _ => Err("a filter rule pair is [field, pattern], two strings".to_string()),
        },
        Value::Json(json) => pair_of_json(json),
        other => Err(format!(
            "a filter rule is {{Field, Pattern}} or [field, pattern], found {}",
            type_name(other)
        )),
    }
}

fn pair_of_json(item: &Json) -> Result<(String, String), String> {
    let text = |key: &str| item.get(key).and_then(Json::as_str).map(str::to_string);
    if let (Some(field), Some(pattern)) = (text("Field"), text("Pattern")) {
        return Ok((field, pattern));
    }
    match item.as_array().map(Vec::as_slice) {
        Some([Json::String(field), Json::String(pattern)]) => Ok((field.clone(), pattern.clone())),
        _ => Err(format!(
            "a filter rule needs string `Field` and `Pattern`, found {item}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(namespace: &str, qos: &str) -> Sample {
        let mut sample = Sample::default();
        for (k, v) in [
            ("container_id", "c1"),
            ("container_hostnamespace", namespace),
            ("container_level", qos),
        ] {
            sample.labels.insert(k.into(), v.into());
        }
        sample
    }

    fn config(rules: Json) -> Value {
        Value::Json(rules)
    }

    #[test]
    fn no_rules_allow_everything() {
        let filter = FieldFilter::new(&Value::Null, &config(json!([]))).unwrap();
        assert!(filter.allows(&container("x", "besteffort")));
        assert!(filter.allows(&Sample::default()));
    }

    #[test]
    fn included_and_excluded_as_huatuo_documents_them() {
        // As HUATUO's manual has it for CPUIdle filters: both present means "matches Included and not Excluded".
        let included =
            config(json!([{"Field": "container_host_namespace", "Pattern": "^application-"}]));
        let excluded = config(json!([{"Field": "container_qos", "Pattern": "besteffort"}]));
        let filter = FieldFilter::new(&included, &excluded).unwrap();
        assert!(filter.allows(&container("application-web", "burstable")));
        assert!(!filter.allows(&container("application-web", "besteffort")));
        assert!(!filter.allows(&container("kube-system", "burstable")));
        // A host sample has no namespace label: it matches no Included rule.
        assert!(!filter.allows(&Sample::default()));
        let only_excluded = FieldFilter::new(&Value::Null, &excluded).unwrap();
        assert!(only_excluded.allows(&Sample::default()));
        assert!(!only_excluded.allows(&container("a", "besteffort")));
    }

    #[test]
    fn pairs_labels_and_fields_by_their_own_names() {
        let included = Value::List(vec![
            Value::List(vec![
                Value::Str("container_level".into()),
                Value::Str("^guar".into()),
            ]),
            Value::List(vec![Value::Str("cpu".into()), Value::Str("^3$".into())]),
        ]);
        let filter = FieldFilter::new(&included, &Value::Null).unwrap();
        assert!(filter.allows(&container("n", "guaranteed")));
        let mut host = Sample::default();
        host.fields.insert("cpu".into(), Value::Int(3));
        assert!(filter.allows(&host));
        host.fields.insert("cpu".into(), Value::Int(4));
        assert!(!filter.allows(&host));
    }

    #[test]
    fn bad_rules_are_errors_naming_the_problem() {
        let err = FieldFilter::new(
            &config(json!([{"Field": "container_qos", "Pattern": "("}])),
            &Value::Null,
        )
        .unwrap_err();
        assert!(
            err.contains("container_qos") && err.contains("invalid regex"),
            "{err}"
        );
        let err = FieldFilter::new(&config(json!([{"Field": "x"}])), &Value::Null).unwrap_err();
        assert!(err.contains("Pattern"), "{err}");
        assert!(FieldFilter::new(&Value::Int(3), &Value::Null).is_err());
        // An empty pattern is no rule.
        let empty = FieldFilter::new(
            &config(json!([{"Field": "container_qos", "Pattern": ""}])),
            &Value::Null,
        )
        .unwrap();
        assert!(empty.included.is_empty());
    }
}
