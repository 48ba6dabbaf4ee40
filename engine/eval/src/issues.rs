//! Known-issue tagging, HUATUO's `IssuesList`: `[["name", "regex"], ...]` (a bare regex string
//! names itself). When any string of a record (fields, stack frames, capture output) matches,
//! the record gets `known_issue: name`; otherwise `known_issue: ""`, as HUATUO writes it.

use crate::patterns::{any_string_matches, build};
use huatuo_dsl::value::Value;
use regex::Regex;
use std::collections::BTreeMap;

/// One known issue: its name and the pattern that recognises it.
#[derive(Debug, Clone)]
pub struct KnownIssue {
    /// The name written into `known_issue`.
    pub name: String,
    /// The pattern.
    pub pattern: Regex,
}

/// Reads an issues list value (from a literal or a config key).
pub fn parse_issues(value: &Value) -> Result<Vec<KnownIssue>, String> {
    let items: Vec<Value> = match value {
        Value::Null => Vec::new(),
        Value::List(items) => items.clone(),
        Value::Json(serde_json::Value::Array(items)) => items.iter().map(json_item).collect(),
        Value::Str(_) => vec![value.clone()],
        other => {
            return Err(format!(
                "issues must be a list of [name, regex] pairs, found {}",
                crate::ops::type_name(other)
            ))
        }
    };
    items.iter().map(issue).collect()
}

fn json_item(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(json_item).collect()),
        _ => Value::Null,
    }
}

fn issue(item: &Value) -> Result<KnownIssue, String> {
    let (name, pattern) = match item {
        Value::Str(p) => (p.clone(), p.clone()),
        Value::List(pair) => match pair.as_slice() {
            [Value::Str(p)] => (p.clone(), p.clone()),
            [Value::Str(n), Value::Str(p)] => (n.clone(), p.clone()),
            _ => return Err("an issue must be [\"name\", \"regex\"]".to_string()),
        },
        _ => return Err("an issue must be [\"name\", \"regex\"] or a regex string".to_string()),
    };
    Ok(KnownIssue {
        pattern: build(&pattern)?,
        name,
    })
}

/// The name of the first issue (in list order) that matches any string of `data`, or "".
pub fn known_issue(issues: &[KnownIssue], data: &BTreeMap<String, Value>) -> String {
    issues
        .iter()
        .find(|issue| data.values().any(|v| any_string_matches(v, &issue.pattern)))
        .map(|issue| issue.name.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huatuo_pairs_match_stacks() {
        let list = Value::List(vec![
            Value::List(vec![
                Value::Str("known_issue1".into()),
                Value::Str("softlockup".into()),
            ]),
            Value::List(vec![
                Value::Str("known_issue2".into()),
                Value::Str("alloc_pages.*failed".into()),
            ]),
        ]);
        let issues = parse_issues(&list).unwrap();
        let mut data = BTreeMap::new();
        data.insert("comm".to_string(), Value::Str("java".into()));
        assert_eq!(known_issue(&issues, &data), "");
        data.insert(
            "stack".to_string(),
            Value::List(vec![
                Value::Str("io_schedule".into()),
                Value::Str("alloc_pages: order 3 failed".into()),
            ]),
        );
        assert_eq!(known_issue(&issues, &data), "known_issue2");
    }

    #[test]
    fn malformed_issue_is_an_error() {
        assert!(parse_issues(&Value::List(vec![Value::Int(1)])).is_err());
        assert!(parse_issues(&Value::List(vec![Value::Str("(".into())])).is_err());
    }
}
